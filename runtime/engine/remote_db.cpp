#include "engine/remote_db.h"

#include <cmath>
#include <condition_variable>
#include <exception>
#include <limits>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/turn.h"
#include "db/sqlite_connection.h"

namespace hoist::engine {
namespace {

using json = nlohmann::json;
using net::agent::Message;

[[noreturn]] void Protocol(const std::string& what) {
  throw Error("agent", "protocol",
              fmt::format("{}: the two ends of the agent protocol disagree (update hoist on both)", what));
}

using net::agent::Arg;

json ParamsJson(const std::vector<db::Value>& params, Message& m) {
  json a = json::array();
  for (const auto& p : params) a.push_back(DbValueJson(p, m));
  return a;
}

std::vector<db::Value> ParamsFrom(const json& a, const Message& m) {
  std::vector<db::Value> out;
  if (a.is_null()) return out;
  if (!a.is_array()) Protocol("db parameters that are not a list");
  for (const auto& v : a) out.push_back(DbValueFrom(v, m));
  return out;
}

json ResultJson(const db::Result& r, Message& m) {
  json rows = json::array();
  for (const auto& row : r.rows) rows.push_back(ParamsJson(row, m));
  return {{"columns", r.columns}, {"rows", rows}, {"changes", r.changes}};
}

db::Result ResultFrom(const json& j, const Message& m) {
  db::Result r;
  r.columns = j.value("columns", std::vector<std::string>{});
  for (const auto& row : j.value("rows", json::array())) r.rows.push_back(ParamsFrom(row, m));
  r.changes = j.value("changes", int64_t{0});
  return r;
}

json ColumnJson(const db::ColumnInfo& c) {
  return {{"name", c.name},
          {"type", c.type},
          {"not_null", c.not_null},
          {"default", c.default_value ? json(*c.default_value) : json(nullptr)},
          {"pk", c.pk}};
}

db::ColumnInfo ColumnFrom(const json& j) {
  db::ColumnInfo c;
  c.name = j.value("name", "");
  c.type = j.value("type", "");
  c.not_null = j.value("not_null", false);
  if (j.contains("default") && j["default"].is_string()) c.default_value = j["default"].get<std::string>();
  c.pk = j.value("pk", 0);
  return c;
}

json IntegrityJson(const db::IntegrityReport& r) {
  return {{"ok", r.ok},         {"engine", r.engine},     {"method", r.method},
          {"checked", r.checked}, {"problems", r.problems}, {"notes", r.notes}};
}

db::IntegrityReport IntegrityFrom(const json& j) {
  db::IntegrityReport r;
  r.ok = j.value("ok", false);
  r.engine = j.value("engine", "");
  r.method = j.value("method", "");
  r.checked = j.value("checked", std::vector<std::string>{});
  r.problems = j.value("problems", std::vector<std::string>{});
  r.notes = j.value("notes", std::vector<std::string>{});
  return r;
}

json TimeoutsJson(const db::Timeouts& t) {
  return {{"lock_timeout", t.lock_timeout}, {"statement_timeout", t.statement_timeout}};
}

db::Timeouts TimeoutsFrom(const json& j) {
  db::Timeouts t;
  t.lock_timeout = j.value("lock_timeout", t.lock_timeout);
  t.statement_timeout = j.value("statement_timeout", t.statement_timeout);
  return t;
}

}  // namespace

// ---- values ------------------------------------------------------------------

json DbValueJson(const db::Value& v, Message& m) {
  switch (v.index()) {
    case 0:
      return nullptr;
    case 1:
      return std::get<bool>(v);
    case 2:
      return std::get<int64_t>(v);
    case 3: {
      double d = std::get<double>(v);
      // JSON has no inf or nan; finite doubles print and parse back exactly.
      if (std::isnan(d)) return {{"f", "nan"}};
      if (std::isinf(d)) return {{"f", d > 0 ? "inf" : "-inf"}};
      return {{"f", d}};
    }
    case 4:
      return {{"t", m.Blob(std::get<std::string>(v))}};
    default:
      return {{"b", m.Blob(std::get<db::Blob>(v).bytes)}};
  }
}

db::Value DbValueFrom(const json& j, const Message& m) {
  if (j.is_null()) return db::Null{};
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_integer()) {
    if (j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      Protocol("a db integer out of range");
    }
    return j.get<int64_t>();
  }
  if (j.is_object() && j.size() == 1) {
    if (j.contains("f")) {
      const json& f = j["f"];
      if (f.is_number()) return f.get<double>();
      if (f == "inf") return std::numeric_limits<double>::infinity();
      if (f == "-inf") return -std::numeric_limits<double>::infinity();
      if (f == "nan") return std::numeric_limits<double>::quiet_NaN();
    }
    if (j.contains("t")) return m.BlobAt(j["t"]);
    if (j.contains("b")) return db::Blob{m.BlobAt(j["b"])};
  }
  Protocol("a db value " + j.dump().substr(0, 60) + " of no known form");
}

db::DbUrl HostDbUrl(const std::string& url, const std::string& host) {
  // Decided on the text: ParseUrl would resolve a relative path against
  // this machine's working directory, which means nothing on that host.
  std::string_view rest = url;
  bool sqlite = rest.rfind("sqlite:", 0) == 0;
  if (sqlite) {
    rest.remove_prefix(7);
    rest = rest.substr(0, rest.find('?'));
    if (rest.rfind("//", 0) == 0) rest.remove_prefix(2);
    if (rest == ":memory:") {
      throw Error("db", "invalid",
                  fmt::format("db.open({}, {{host = \"{}\"}}): an in-memory database lives in the process that opens "
                              "it: drop host=, or name a file on {} by its absolute path",
                              url, host, host));
    }
    if (rest.empty() || rest[0] != '/') {
      throw Error("db", "invalid",
                  fmt::format("db.open({}, {{host = \"{}\"}}): a relative path means nothing on another host (the "
                              "project is not there): write the absolute path of the file on {} "
                              "(sqlite:///srv/app/data/app.db)",
                              url, host, host));
    }
  }
  db::DbUrl u = db::ParseUrl(url);
  if (u.engine != db::Engine::kSqlite) {
    throw Error("db", "unsupported",
                fmt::format("db.open({}, {{host = \"{}\"}}): host= names where a SQLite file is; a PostgreSQL "
                            "database is reached over the network from where hoist runs: drop host=",
                            u.redacted, host));
  }
  return u;
}

// ---- the caller's side -------------------------------------------------------

RemoteDbConnection::RemoteDbConnection(AgentConnection& agent, db::DbUrl url, int64_t handle, db::Timeouts t)
    : Connection(std::move(url)), agent_(agent), handle_(handle), timeouts_(t) {}

std::unique_ptr<RemoteDbConnection> RemoteDbConnection::Open(AgentConnection& agent, const std::string& url,
                                                             const db::OpenOptions& o) {
  db::DbUrl u = HostDbUrl(url, agent.host());
  json args = {{"url", u.redacted},           {"create", o.create},
               {"readonly", o.readonly},       {"busy_timeout", o.busy_timeout},
               {"statement_timeout", o.statement_timeout}, {"journal_mode", o.journal_mode}};
  json ok;
  {
    TurnGivenUp waiting;
    ok = agent.Call("db.open", std::move(args));
  }
  auto handle = ok.value("handle", int64_t{-1});
  if (handle < 0) Protocol("db.open answered no handle");
  return std::unique_ptr<RemoteDbConnection>(
      new RemoteDbConnection(agent, std::move(u), handle, TimeoutsFrom(ok.value("timeouts", json::object()))));
}

RemoteDbConnection::~RemoteDbConnection() {
  try {
    Close();
  } catch (const std::exception&) {
    // The agent went away: its handles went with it.
  }
}

void RemoteDbConnection::CheckOpenHere() const {
  std::lock_guard lock(mu_);
  if (closed_) {
    throw Error("db", "closed", fmt::format("host {}: the connection to {} is closed", agent_.host(), url_.redacted));
  }
}

json RemoteDbConnection::Call(const std::string& method, json args, Message& req, Message* resp) {
  CheckOpenHere();
  args["handle"] = handle_;
  // A round trip to the host: run:each's other hosts go on meanwhile.
  TurnGivenUp waiting;
  return agent_.Call(method, std::move(args), req, resp);
}

json RemoteDbConnection::Call(const std::string& method, json args) {
  Message req;
  return Call(method, std::move(args), req, nullptr);
}

int64_t RemoteDbConnection::Exec(std::string_view sql, const std::vector<db::Value>& params) {
  Message req;
  json args = {{"sql", req.Blob(std::string(sql))}, {"params", ParamsJson(params, req)}};
  return Call("db.exec", std::move(args), req, nullptr).value("changes", int64_t{0});
}

db::Result RemoteDbConnection::Query(std::string_view sql, const std::vector<db::Value>& params) {
  Message req, resp;
  json args = {{"sql", req.Blob(std::string(sql))}, {"params", ParamsJson(params, req)}};
  json ok = Call("db.query", std::move(args), req, &resp);
  return ResultFrom(ok, resp);
}

void RemoteDbConnection::ExecControl(const std::string& sql) { Call("db.control", {{"sql", sql}}); }

std::vector<std::string> RemoteDbConnection::Tables() {
  return Call("db.tables", json::object()).get<std::vector<std::string>>();
}

std::vector<db::ColumnInfo> RemoteDbConnection::Columns(const std::string& table) {
  std::vector<db::ColumnInfo> out;
  for (const auto& c : Call("db.columns", {{"table", table}})) out.push_back(ColumnFrom(c));
  return out;
}

db::Schema RemoteDbConnection::ReadSchema() { return db::SchemaFromJson(Call("db.schema", json::object())); }

db::IntegrityReport RemoteDbConnection::Integrity(bool quick) {
  return IntegrityFrom(Call("db.integrity", {{"quick", quick}}));
}

void RemoteDbConnection::Lock(const std::string& name, const db::LockOptions& options,
                              const std::function<void()>& fn) {
  // owner "" leaves the default to the agent: "<its host>:<its pid>", the
  // process that really holds the lease, which a later taker there can
  // prove dead.
  json ok = Call("db.lock", {{"name", name}, {"timeout", options.timeout}, {"ttl", options.ttl}, {"owner", options.owner}});
  int64_t lock = ok.value("lock", int64_t{-1});
  if (lock < 0) Protocol("db.lock answered no lock");
  try {
    fn();
  } catch (...) {
    // fn's failure is the one to report; the lease goes however the unlock ends.
    try {
      Call("db.unlock", {{"lock", lock}});
    } catch (const std::exception&) {
    }
    throw;
  }
  Call("db.unlock", {{"lock", lock}});  // lock_lost, when the lease was taken over meanwhile
}

db::Timeouts RemoteDbConnection::timeouts() const {
  std::lock_guard lock(mu_);
  return timeouts_;
}

void RemoteDbConnection::SetTimeouts(const db::Timeouts& t) {
  json ok = Call("db.timeouts", {{"timeouts", TimeoutsJson(t)}});
  std::lock_guard lock(mu_);
  timeouts_ = TimeoutsFrom(ok);
}

void RemoteDbConnection::Close() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
  }
  Message req;
  json args = {{"handle", handle_}};
  {
    std::lock_guard lock(mu_);
    closed_ = true;  // whatever the agent answers: this side uses it no more
  }
  // The turn is kept: Close also runs from a __gc, in the middle of the
  // VM's collector, where another thread must not enter the VM.
  agent_.Call("db.close", std::move(args), req, nullptr);
}

bool RemoteDbConnection::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::string RemoteDbConnection::JournalMode() { return Call("db.journal_mode", json::object()).get<std::string>(); }

std::string RemoteDbConnection::SetJournalMode(const std::string& mode) {
  return Call("db.journal_mode", {{"mode", mode}}).get<std::string>();
}

json RemoteDbConnection::Backup(const std::string& dir, const json& options) {
  CheckOpenHere();
  json args = options.is_object() ? options : json::object();
  args["db"] = url_.path;
  args["dir"] = dir;
  TurnGivenUp waiting;
  return agent_.Call("BackupSqlite", std::move(args));
}

json RemoteDbConnection::Restore(const std::string& file, const json& options) {
  CheckOpenHere();
  json args = options.is_object() ? options : json::object();
  args["file"] = file;
  args["target"] = url_.path;
  TurnGivenUp waiting;
  return agent_.Call("RestoreSqlite", std::move(args));
}

// ---- the agent's side --------------------------------------------------------

namespace {

/// A lease held on a thread of its own: SqliteConnection::Lock runs there,
/// and its fn waits until the caller says release, so the lease (and its
/// heartbeat) lasts exactly as long as the caller's fn.
struct HeldLock {
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  bool acquired = false, release = false, done = false;
  std::exception_ptr error;

  void Release() {
    {
      std::lock_guard lock(mu);
      release = true;
    }
    cv.notify_all();
    if (thread.joinable()) thread.join();
  }
  ~HeldLock() { Release(); }
};

struct Handle {
  std::unique_ptr<db::SqliteConnection> conn;
  std::map<int64_t, std::unique_ptr<HeldLock>> locks;
  ~Handle() {
    // Leases first: releasing one deletes its row through the file.
    locks.clear();
    conn.reset();
  }
};

}  // namespace

struct AgentDbHandles::Impl {
  std::map<int64_t, std::unique_ptr<Handle>> handles;
  int64_t next_handle = 1;
  int64_t next_lock = 1;

  Handle& Get(const json& a, const std::string& method) {
    auto id = Arg<int64_t>(a, "handle", method);
    auto it = handles.find(id);
    if (it == handles.end()) {
      throw Error("db", "closed", fmt::format("{}: database handle {} is not open (closed, or never opened)", method, id));
    }
    return *it->second;
  }
};

AgentDbHandles::AgentDbHandles(std::string) : impl_(std::make_unique<Impl>()) {}
AgentDbHandles::~AgentDbHandles() = default;

const std::vector<std::string>& AgentDbHandles::Methods() {
  static const std::vector<std::string> kMethods = {
      "db.open",   "db.exec",      "db.query",   "db.control",      "db.tables", "db.columns", "db.schema",
      "db.integrity", "db.timeouts", "db.journal_mode", "db.lock", "db.unlock",  "db.close"};
  return kMethods;
}

json AgentDbHandles::Call(const std::string& method, const json& a, const Message& req, Message& resp) {
  if (method == "db.open") {
    db::OpenOptions o;
    o.create = a.value("create", false);
    o.readonly = a.value("readonly", false);
    o.busy_timeout = a.value("busy_timeout", o.busy_timeout);
    o.statement_timeout = a.value("statement_timeout", o.statement_timeout);
    o.journal_mode = a.value("journal_mode", "");
    o.cwd = "/";  // a relative path is refused by the caller; never this process's cwd
    db::DbUrl u = db::ParseUrl(Arg<std::string>(a, "url", method), o.cwd);
    if (u.engine != db::Engine::kSqlite || u.memory()) {
      throw Error("db", "unsupported", fmt::format("{}: the agent opens SQLite files only, not {}", method, u.redacted));
    }
    auto h = std::make_unique<Handle>();
    h->conn = std::make_unique<db::SqliteConnection>(std::move(u), o);
    json timeouts = TimeoutsJson(h->conn->timeouts());
    int64_t id = impl_->next_handle++;
    impl_->handles[id] = std::move(h);
    return {{"handle", id}, {"timeouts", timeouts}};
  }
  if (method == "db.close") {
    impl_->handles.erase(Arg<int64_t>(a, "handle", method));  // idempotent
    return true;
  }
  Handle& h = impl_->Get(a, method);
  db::SqliteConnection& c = *h.conn;
  if (method == "db.exec") {
    return {{"changes", c.Exec(req.BlobAt(a.value("sql", json())), ParamsFrom(a.value("params", json()), req))}};
  }
  if (method == "db.query") {
    return ResultJson(c.Query(req.BlobAt(a.value("sql", json())), ParamsFrom(a.value("params", json()), req)), resp);
  }
  if (method == "db.control") {
    c.Exec(Arg<std::string>(a, "sql", method));  // SqliteConnection::ExecControl is Exec
    return true;
  }
  if (method == "db.tables") return c.Tables();
  if (method == "db.columns") {
    json out = json::array();
    for (const auto& col : c.Columns(Arg<std::string>(a, "table", method))) out.push_back(ColumnJson(col));
    return out;
  }
  if (method == "db.schema") return db::SchemaToJson(c.ReadSchema());
  if (method == "db.integrity") return IntegrityJson(c.Integrity(a.value("quick", false)));
  if (method == "db.timeouts") {
    c.SetTimeouts(TimeoutsFrom(a.value("timeouts", json::object())));
    return TimeoutsJson(c.timeouts());
  }
  if (method == "db.journal_mode") {
    if (a.contains("mode") && a["mode"].is_string()) return c.SetJournalMode(a["mode"].get<std::string>());
    return c.JournalMode();
  }
  if (method == "db.lock") {
    db::LockOptions o;
    o.timeout = a.value("timeout", o.timeout);
    o.ttl = a.value("ttl", o.ttl);
    o.owner = a.value("owner", "");
    std::string name = Arg<std::string>(a, "name", method);
    auto held = std::make_unique<HeldLock>();
    HeldLock* p = held.get();
    // The deadline is this thread's (core/interrupt); waiting for the lease
    // must honour it there too. Ctrl-C (a cancel) reaches it as it is process-wide.
    Clock::time_point deadline = CurrentDeadline();
    p->thread = std::thread([p, &c, name, o, deadline] {
      std::optional<DeadlineScope> scope;
      if (deadline != Clock::time_point::max()) {
        scope.emplace(std::max<Clock::duration>(deadline - Clock::now(), std::chrono::milliseconds(1)));
      }
      std::exception_ptr error;
      try {
        c.Lock(name, o, [p] {
          std::unique_lock lock(p->mu);
          p->acquired = true;
          p->cv.notify_all();
          p->cv.wait(lock, [p] { return p->release; });
        });
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard lock(p->mu);
      p->error = error;
      p->done = true;
      p->cv.notify_all();
    });
    {
      std::unique_lock lock(p->mu);
      p->cv.wait(lock, [p] { return p->acquired || p->done; });
    }
    if (!p->acquired) {
      p->thread.join();
      std::rethrow_exception(p->error);
    }
    int64_t id = impl_->next_lock++;
    h.locks[id] = std::move(held);
    return {{"lock", id}};
  }
  if (method == "db.unlock") {
    auto id = Arg<int64_t>(a, "lock", method);
    auto it = h.locks.find(id);
    if (it == h.locks.end()) throw Error("db", "invalid", fmt::format("{}: lock {} is not held", method, id));
    std::unique_ptr<HeldLock> held = std::move(it->second);
    h.locks.erase(it);
    held->Release();
    if (held->error) std::rethrow_exception(held->error);
    return true;
  }
  throw Error("agent", "unknown_method", fmt::format("no database method \"{}\"", method));
}

}  // namespace hoist::engine

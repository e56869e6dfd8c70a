// hoist.db: SQLite and PostgreSQL connections for playbooks — bound
// parameters, typed rows with a distinct null, transactions, schema,
// fingerprint, diff, integrity and named locks. Every call is journaled as
// a world call (SQL text, parameters, row count, timing; secrets masked by
// the journal).
#include "bind/db.h"

#include <algorithm>
#include <filesystem>
#include <new>

#include <fmt/format.h>

#include "bind/context.h"
#include "bind/hosts.h"
#include "bind/modules.h"
#include "core/error.h"
#include "db/detail.h"
#include "db/schema.h"
#include "db/sqlite_connection.h"
#include "db/url.h"
#include "engine/remote_db.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/clock.h"

namespace hoist::bind {

using json = nlohmann::json;

struct DbHandle {
  std::unique_ptr<db::Connection> conn;
  std::string redacted;
  std::string host;           // db.open's host= ("" = where hoist runs), journaled with each call
  int busy = 0;               // calls in progress (a callback may run Lua)
  bool close_pending = false;  // close() asked while busy
};

namespace {

constexpr const char* kConnMeta = "hoist.db.Connection";
constexpr const char* kBlobMeta = "hoist.db.Blob";
constexpr size_t kJournalSql = 16384;  // bytes of SQL text kept per journal entry

DbHandle* ToHandle(lua_State* L, int idx) { return static_cast<DbHandle*>(luaL_testudata(L, idx, kConnMeta)); }

void CloseHandle(DbHandle* h) {
  if (!h) return;
  if (h->busy > 0) {
    h->close_pending = true;
    return;
  }
  h->conn.reset();
}

bool IsBlob(lua_State* L, int idx) {
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return false;
  luaL_getmetatable(L, kBlobMeta);
  bool same = lua_rawequal(L, -1, -2) != 0;
  lua_pop(L, 2);
  return same;
}

db::Value ToValue(lua_State* L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
      return db::Null{};
    case LUA_TBOOLEAN:
      return lua_toboolean(L, idx) != 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return static_cast<int64_t>(lua_tointeger(L, idx));
      return static_cast<double>(lua_tonumber(L, idx));
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, idx, &n);
      return std::string(s, n);
    }
    case LUA_TLIGHTUSERDATA:
      if (lua::IsNull(L, idx)) return db::Null{};
      break;
    case LUA_TTABLE:
      if (IsBlob(L, idx)) {
        lua_rawgeti(L, idx, 1);
        size_t n = 0;
        const char* s = lua_tolstring(L, -1, &n);
        db::Blob b{std::string(s ? s : "", s ? n : 0)};
        lua_pop(L, 1);
        return b;
      }
      break;
    default:
      break;
  }
  throw Error("lua", "invalid",
              fmt::format("bad argument #{} (SQL parameter): nil, boolean, number, string, db.null or db.blob(...) "
                          "expected, got {}",
                          idx, luaL_typename(L, idx)));
}

std::vector<db::Value> Params(lua_State* L, int first) {
  std::vector<db::Value> out;
  for (int i = first; i <= lua_gettop(L); ++i) out.push_back(ToValue(L, i));
  return out;
}

/// [-0, +1, m]
void PushValue(lua_State* L, const db::Value& v) {
  switch (v.index()) {
    case 0:
      lua::PushNull(L);
      return;
    case 1:
      lua_pushboolean(L, std::get<bool>(v));
      return;
    case 2:
      lua_pushinteger(L, static_cast<lua_Integer>(std::get<int64_t>(v)));
      return;
    case 3:
      lua_pushnumber(L, std::get<double>(v));
      return;
    case 4:
      lua::PushString(L, std::get<std::string>(v));
      return;
    default:
      lua::PushString(L, std::get<db::Blob>(v).bytes);
  }
}

/// [-0, +1, m] A row as {column = value}.
void PushRow(lua_State* L, const db::Result& r, size_t i) {
  const auto& row = r.rows[i];
  lua_createtable(L, 0, static_cast<int>(row.size()));
  for (size_t c = 0; c < row.size(); ++c) {
    PushValue(L, row[c]);
    lua_setfield(L, -2, r.columns[c].c_str());
  }
}

/// [-0, +1, m] An array that json.encode keeps an array even when empty.
void PushArrayMarker(lua_State* L) {
  lua_createtable(L, 0, 1);
  lua_pushstring(L, "array");
  lua_setfield(L, -2, "__jsontype");
  lua_setmetatable(L, -2);
}

void PushStrings(lua_State* L, const std::vector<std::string>& v) {
  lua_createtable(L, static_cast<int>(v.size()), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    lua::PushString(L, v[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  if (v.empty()) PushArrayMarker(L);
}

json ParamsJson(const std::vector<db::Value>& params) {
  json a = json::array();
  for (const auto& p : params) a.push_back(db::ValueToJson(p));
  return a;
}

std::string JournalSql(std::string_view sql) {
  if (sql.size() <= kJournalSql) return std::string(sql);
  return std::string(sql.substr(0, kJournalSql)) + "…";
}

// Journals a call on the connection h (its redacted URL in data).
template <typename F>
void Journaled(lua_State* L, const DbHandle& h, const std::string& name, json data, F&& f) {
  data["url"] = h.redacted;
  if (!h.host.empty()) data["host"] = h.host;
  bind::Journaled(L, "db", name, std::move(data), std::forward<F>(f));
}

// Marks the connection busy for the duration of a method.
struct Use {
  DbHandle* h;
  db::Connection* conn;
  Use(lua_State* L, int idx) : h(ToHandle(L, idx)), conn(nullptr) {
    conn = &CheckConnection(L, idx);
    ++h->busy;
  }
  ~Use() {
    if (--h->busy == 0 && h->close_pending) h->conn.reset();
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
};

double OptSeconds(lua_State* L, int idx, const char* key, double fallback, bool allow_zero = true) {
  auto v = lua::OptNumberField(L, idx, key);
  if (!v) return fallback;
  if (*v < 0 || (!allow_zero && *v == 0)) {
    throw Error("db", "invalid", fmt::format("option '{}' must be {} seconds", key, allow_zero ? ">= 0" : "> 0"));
  }
  return *v;
}

/// In a sandbox run only copies may be opened: the environment's real
/// database is redirected to its copy, any other database is refused, so a
/// rehearsal can never write to a real one whatever the playbook passes.
std::string SandboxUrl(lua_State* L, const std::string& url) {
  Context* ctx = GetContext(L);
  if (!ctx || ctx->sandbox_dir.empty()) return url;
  db::DbUrl u = db::ParseUrl(url);
  if (u.engine == db::Engine::kSqlite) {
    if (u.memory() || u.path.rfind(ctx->sandbox_dir + "/", 0) == 0) return url;
    std::error_code ec;
    std::string canon = std::filesystem::weakly_canonical(u.path, ec).string();
    if (auto it = ctx->db_redirects.find(ec ? u.path : canon); it != ctx->db_redirects.end()) return it->second;
  } else if (auto it = ctx->db_redirects.find(u.redacted); it != ctx->db_redirects.end()) {
    return it->second;
  } else {
    for (const auto& [real, copy] : ctx->db_redirects) {
      if (db::ParseUrl(copy).redacted == u.redacted) return url;  // the copy itself
    }
  }
  throw Error("db", "sandbox",
              fmt::format("db.open({}) refused in a sandbox run: only the copy of the environment's database may be "
                          "opened (name another source with --sandbox-db)",
                          u.redacted));
}

/// db.open(url, {host = name}): the SQLite file on that host, opened by its
/// agent (engine/remote_db). A host with ssh = false is this machine.
std::unique_ptr<db::Connection> OpenOnHost(lua_State* L, const std::string& host, const std::string& url,
                                           const db::OpenOptions& o) {
  // Refusals first: a wrong URL must not wait for an ssh connection.
  db::DbUrl u = engine::HostDbUrl(url, host);
  if (Context* ctx = GetContext(L); ctx && !ctx->sandbox_dir.empty()) {
    // The sandbox holds copies of this machine's databases only.
    throw Error("db", "sandbox",
                fmt::format("db.open({}, {{host = \"{}\"}}) refused in a sandbox run: a rehearsal cannot reach "
                            "another host's database file (rehearse the database part on a copy here, without host=)",
                            u.redacted, host));
  }
  engine::World& world = HostWorld(L, host);
  engine::RemoteWorld* remote = engine::AsRemote(world);
  if (!remote) return db::Open(url, o);
  return engine::RemoteDbConnection::Open(remote->connection(), url, o);
}

// ---- module functions ------------------------------------------------------

/// db.open(url, opts) -> connection
int l_open(lua_State* L) {
  std::string url = lua::CheckString(L, 1, "url");
  lua::CheckKeys(L, 2, "db.open",
                 {"busy_timeout", "lock_timeout", "statement_timeout", "connect_timeout", "journal_mode", "readonly",
                  "create", "application_name", "host"});
  // host = a name or a host table: the SQLite file is on that host and
  // every call runs in its agent. Never implied by run:on / run:each: a
  // database is not behind the world seam (library code opening the
  // environment's database inside a host's scope means this one).
  std::string host;
  if (lua_istable(L, 2)) {
    lua::RawField(L, 2, "host");
    if (!lua_isnil(L, -1)) host = HostArg(L, lua_gettop(L));
    lua_pop(L, 1);
  }
  db::OpenOptions o;
  o.busy_timeout = OptSeconds(L, 2, "busy_timeout", o.busy_timeout);
  o.lock_timeout = OptSeconds(L, 2, "lock_timeout", o.lock_timeout);
  o.statement_timeout = OptSeconds(L, 2, "statement_timeout", o.statement_timeout);
  o.connect_timeout = OptSeconds(L, 2, "connect_timeout", o.connect_timeout);
  o.journal_mode = lua::OptStringField(L, 2, "journal_mode").value_or("");
  o.readonly = lua::OptBooleanField(L, 2, "readonly").value_or(false);
  o.create = lua::OptBooleanField(L, 2, "create").value_or(false);
  o.application_name = lua::OptStringField(L, 2, "application_name").value_or(o.application_name);
  lua_settop(L, 2);
  // The metatable goes on at once so __gc runs whatever happens next.
  auto* h = static_cast<DbHandle*>(lua_newuserdatauv(L, sizeof(DbHandle), 0));
  new (h) DbHandle();
  luaL_setmetatable(L, kConnMeta);
  double start = sys::Monotonic();
  std::string target = host.empty() ? SandboxUrl(L, url) : url;
  h->host = host;
  try {
    if (host.empty()) {
      h->conn = db::Open(target, o);
    } else {
      h->conn = OpenOnHost(L, host, target, o);
    }
  } catch (const std::exception& e) {
    // Journaled too: a replay compares the outcome, not only the answers.
    std::string redacted;
    try {
      redacted = db::ParseUrl(target).redacted;
    } catch (const std::exception&) {
      redacted = "(invalid URL)";
    }
    auto* he = dynamic_cast<const Error*>(&e);
    json data = {{"url", redacted}, {"error", e.what()}, {"code", he ? he->code() : "error"}};
    if (!host.empty()) data["host"] = host;
    RecordWorld(L, "db", "open " + redacted, data, sys::Monotonic() - start);
    throw;
  }
  if (Context* ctx = GetContext(L); ctx && !ctx->sandbox_dir.empty() && !o.readonly &&
                                    h->conn->kind() == std::string("sqlite") &&
                                    db::ParseUrl(target).path.rfind(ctx->sandbox_dir + "/", 0) == 0) {
    // A sandbox's copy is thrown away after the rehearsal: waiting for the
    // disk on every commit buys nothing (and made `hoist test` fsync-bound).
    h->conn->Exec("PRAGMA synchronous=OFF");
  }
  h->redacted = h->conn->redacted();
  json data = {{"url", h->redacted}, {"kind", h->conn->kind()}};
  if (auto* s = dynamic_cast<db::SqliteConnection*>(h->conn.get())) data["journal_mode"] = s->JournalMode();
  if (auto* r = dynamic_cast<engine::RemoteDbConnection*>(h->conn.get())) data["journal_mode"] = r->JournalMode();
  if (!host.empty()) data["host"] = host;
  RecordWorld(L, "db", "open " + h->redacted, data, sys::Monotonic() - start);
  return 1;
}

/// db.blob(bytes) -> a value that binds as a BLOB (bytea)
int l_blob(lua_State* L) {
  std::string bytes = lua::CheckString(L, 1, "bytes");
  lua_createtable(L, 1, 0);
  lua::PushString(L, bytes);
  lua_rawseti(L, -2, 1);
  luaL_setmetatable(L, kBlobMeta);
  return 1;
}

int l_blob_tostring(lua_State* L) {
  lua_rawgeti(L, 1, 1);
  size_t n = 0;
  lua_tolstring(L, -1, &n);
  lua_pushfstring(L, "<blob %d bytes>", static_cast<int>(n));
  return 1;
}

db::Schema SchemaArg(lua_State* L, int idx) {
  if (ToHandle(L, idx)) {
    Use use(L, idx);
    return use.conn->ReadSchema();
  }
  if (!lua_istable(L, idx)) {
    throw Error("lua", "invalid",
                fmt::format("bad argument #{} (schema): a connection or a table from conn:schema() expected, got {}",
                            idx, luaL_typename(L, idx)));
  }
  return db::SchemaFromJson(lua::ToJson(L, idx));
}

/// db.diff(a, b) -> {equal, changes, added, dropped, changed, text}
int l_diff(lua_State* L) {
  db::Schema a = SchemaArg(L, 1);
  db::Schema b = SchemaArg(L, 2);
  lua::PushJson(L, db::Diff(a, b).ToJson());
  return 1;
}

// ---- connection methods ----------------------------------------------------

int l_exec(lua_State* L) {
  Use use(L, 1);
  std::string sql = lua::CheckString(L, 2, "sql");
  auto params = Params(L, 3);
  int64_t changes = 0;
  Journaled(L, *use.h, db::detail::FirstLine(sql), {{"sql", JournalSql(sql)}, {"params", ParamsJson(params)}},
            [&](json& d) {
              changes = use.conn->Exec(sql, params);
              d["changes"] = changes;
            });
  lua_pushinteger(L, changes);
  return 1;
}

db::Result RunQuery(lua_State* L, Use& use) {
  std::string sql = lua::CheckString(L, 2, "sql");
  auto params = Params(L, 3);
  db::Result r;
  Journaled(L, *use.h, db::detail::FirstLine(sql), {{"sql", JournalSql(sql)}, {"params", ParamsJson(params)}},
            [&](json& d) {
              r = use.conn->Query(sql, params);
              d["rows"] = r.rows.size();
            });
  return r;
}

int l_query(lua_State* L) {
  Use use(L, 1);
  db::Result r = RunQuery(L, use);
  lua_createtable(L, static_cast<int>(r.rows.size()), 0);
  for (size_t i = 0; i < r.rows.size(); ++i) {
    PushRow(L, r, i);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  if (r.rows.empty()) PushArrayMarker(L);
  return 1;
}

int l_one(lua_State* L) {
  Use use(L, 1);
  db::Result r = RunQuery(L, use);
  if (r.rows.empty()) {
    lua_pushnil(L);
  } else {
    PushRow(L, r, 0);
  }
  return 1;
}

int l_scalar(lua_State* L) {
  Use use(L, 1);
  db::Result r = RunQuery(L, use);
  if (r.rows.empty() || r.rows[0].empty()) {
    lua_pushnil(L);
  } else {
    PushValue(L, r.rows[0][0]);
  }
  return 1;
}

/// conn:tx(fn) -> fn's results. fn(conn) runs in a transaction (savepoint
/// when nested): commit when it returns, rollback when it raises.
int l_tx(lua_State* L) {
  Use use(L, 1);
  lua::CheckFunction(L, 2, "fn");
  lua_settop(L, 2);
  const int depth = use.conn->tx_depth();
  Journaled(L, *use.h, depth == 0 ? "tx" : "tx (savepoint)", {{"depth", depth}}, [&](json& d) {
    d["outcome"] = "rollback";
    use.conn->Tx([&] {
      lua_settop(L, 2);
      lua_pushvalue(L, 2);
      lua_pushvalue(L, 1);
      lua::Call(L, 1, LUA_MULTRET);
    });
    d["outcome"] = "commit";
  });
  return lua_gettop(L) - 2;
}

int l_tables(lua_State* L) {
  Use use(L, 1);
  std::vector<std::string> tables;
  Journaled(L, *use.h, "tables", json::object(), [&](json&) { tables = use.conn->Tables(); });
  PushStrings(L, tables);
  return 1;
}

int l_columns(lua_State* L) {
  Use use(L, 1);
  std::string table = lua::CheckString(L, 2, "table");
  std::vector<db::ColumnInfo> cols;
  Journaled(L, *use.h, "columns " + table, {{"table", table}}, [&](json&) { cols = use.conn->Columns(table); });
  lua_createtable(L, static_cast<int>(cols.size()), 0);
  for (size_t i = 0; i < cols.size(); ++i) {
    const auto& c = cols[i];
    lua_createtable(L, 0, 5);
    lua::SetField(L, "name", c.name);
    lua::SetField(L, "type", c.type);
    lua::SetFieldBool(L, "not_null", c.not_null);
    if (c.default_value) {
      lua::SetField(L, "default", *c.default_value);
    } else {
      lua::PushNull(L);
      lua_setfield(L, -2, "default");
    }
    lua::SetField(L, "pk", static_cast<lua_Integer>(c.pk));
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

int l_schema(lua_State* L) {
  Use use(L, 1);
  db::Schema s;
  Journaled(L, *use.h, "schema", json::object(), [&](json& d) {
    s = use.conn->ReadSchema();
    d["tables"] = s.tables.size();
  });
  lua::PushJson(L, db::SchemaToJson(s));
  return 1;
}

int l_fingerprint(lua_State* L) {
  Use use(L, 1);
  std::string fp;
  Journaled(L, *use.h, "fingerprint", json::object(), [&](json& d) {
    fp = use.conn->Fingerprint();
    d["fingerprint"] = fp;
  });
  lua::PushString(L, fp);
  return 1;
}

int l_integrity(lua_State* L) {
  Use use(L, 1);
  lua::CheckKeys(L, 2, "conn:integrity", {"quick"});
  bool quick = lua::OptBooleanField(L, 2, "quick").value_or(false);
  db::IntegrityReport r;
  Journaled(L, *use.h, quick ? "integrity (quick)" : "integrity", {{"quick", quick}}, [&](json& d) {
    r = use.conn->Integrity(quick);
    d["ok"] = r.ok;
    d["problems"] = r.problems;
  });
  lua_createtable(L, 0, 7);
  lua::SetFieldBool(L, "ok", r.ok);
  lua::SetField(L, "engine", r.engine);
  lua::SetField(L, "method", r.method);
  PushStrings(L, r.checked);
  lua_setfield(L, -2, "checked");
  PushStrings(L, r.problems);
  lua_setfield(L, -2, "problems");
  PushStrings(L, r.notes);
  lua_setfield(L, -2, "notes");
  lua::SetField(L, "summary", r.Summary());
  return 1;
}

/// conn:lock(name, {timeout, ttl, owner}, fn) or conn:lock(name, fn) -> fn's results
int l_lock(lua_State* L) {
  Use use(L, 1);
  std::string name = lua::CheckString(L, 2, "name");
  if (lua_isfunction(L, 3)) {
    lua_pushnil(L);
    lua_insert(L, 3);
  }
  lua::CheckKeys(L, 3, "conn:lock", {"timeout", "ttl", "owner"});
  db::LockOptions o;
  o.timeout = OptSeconds(L, 3, "timeout", o.timeout);
  o.ttl = OptSeconds(L, 3, "ttl", o.ttl, /*allow_zero=*/false);
  o.owner = lua::OptStringField(L, 3, "owner").value_or("");
  lua::CheckFunction(L, 4, "fn");
  lua_settop(L, 4);
  Journaled(L, *use.h, "lock " + name, {{"name", name}, {"timeout", o.timeout}, {"ttl", o.ttl}}, [&](json&) {
    use.conn->Lock(name, o, [&] {
      lua_settop(L, 4);
      lua_pushvalue(L, 4);
      lua_pushvalue(L, 1);
      lua::Call(L, 1, LUA_MULTRET);
    });
  });
  return lua_gettop(L) - 4;
}

void PushTimeouts(lua_State* L, const db::Timeouts& t) {
  lua_createtable(L, 0, 2);
  lua::SetFieldNumber(L, "lock_timeout", t.lock_timeout);
  lua::SetFieldNumber(L, "statement_timeout", t.statement_timeout);
}

/// conn:timeouts() -> current; conn:timeouts(t) sets them, returns the
/// previous ones; conn:timeouts(t, fn) sets them for fn only.
int l_timeouts(lua_State* L) {
  Use use(L, 1);
  lua::CheckKeys(L, 2, "conn:timeouts", {"lock_timeout", "statement_timeout"});
  const db::Timeouts before = use.conn->timeouts();
  if (lua_isnoneornil(L, 2)) {
    PushTimeouts(L, before);
    return 1;
  }
  lua::CheckTable(L, 2, "timeouts");
  db::Timeouts t = before;
  t.lock_timeout = OptSeconds(L, 2, "lock_timeout", t.lock_timeout);
  t.statement_timeout = OptSeconds(L, 2, "statement_timeout", t.statement_timeout);
  if (lua_isnoneornil(L, 3)) {
    use.conn->SetTimeouts(t);
    PushTimeouts(L, before);
    return 1;
  }
  lua::CheckFunction(L, 3, "fn");
  lua_settop(L, 3);
  use.conn->SetTimeouts(t);
  try {
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 1);
    lua::Call(L, 1, LUA_MULTRET);
  } catch (...) {
    try {
      if (!use.conn->closed()) use.conn->SetTimeouts(before);
    } catch (...) {
    }
    throw;
  }
  use.conn->SetTimeouts(before);
  return lua_gettop(L) - 3;
}

/// conn:journal_mode() -> mode; conn:journal_mode("wal") sets it (SQLite).
int l_journal_mode(lua_State* L) {
  Use use(L, 1);
  auto* s = dynamic_cast<db::SqliteConnection*>(use.conn);
  auto* r = dynamic_cast<engine::RemoteDbConnection*>(use.conn);
  if (!s && !r) {
    throw Error("db", "unsupported", "journal_mode is a SQLite setting; " + use.h->redacted + " is PostgreSQL");
  }
  auto mode = lua::OptString(L, 2, "mode");
  std::string now;
  if (mode) {
    Journaled(L, *use.h, "journal_mode " + *mode, {{"mode", *mode}},
              [&](json&) { now = s ? s->SetJournalMode(*mode) : r->SetJournalMode(*mode); });
  } else {
    now = s ? s->JournalMode() : r->JournalMode();
  }
  lua::PushString(L, now);
  return 1;
}

int l_kind(lua_State* L) {
  Use use(L, 1);
  lua::PushString(L, use.conn->kind());
  return 1;
}

int l_url(lua_State* L) {
  DbHandle* h = ToHandle(L, 1);
  if (!h) CheckConnection(L, 1);
  lua::PushString(L, h->redacted);
  return 1;
}

int l_close(lua_State* L) {
  DbHandle* h = ToHandle(L, 1);
  if (!h) CheckConnection(L, 1);  // throws the "bad argument" error
  bool was_open = h->conn != nullptr && !h->close_pending;
  CloseHandle(h);
  if (was_open) {
    json data = {{"url", h->redacted}};
    if (!h->host.empty()) data["host"] = h->host;
    RecordWorld(L, "db", "close " + h->redacted, data, 0);
  }
  return 0;
}

int l_gc(lua_State* L) {
  if (DbHandle* h = ToHandle(L, 1)) {
    h->conn.reset();
    h->~DbHandle();
  }
  return 0;
}

int l_tostring(lua_State* L) {
  DbHandle* h = ToHandle(L, 1);
  std::string s = "hoist.db.Connection(";
  if (h) s += h->redacted + (h->conn && !h->close_pending ? "" : ", closed");
  lua::PushString(L, s + ")");
  return 1;
}

void RegisterTypes(lua_State* L) {
  if (luaL_newmetatable(L, kConnMeta)) {
    const luaL_Reg methods[] = {{"exec", lua::Protect<l_exec>},
                                {"query", lua::Protect<l_query>},
                                {"one", lua::Protect<l_one>},
                                {"scalar", lua::Protect<l_scalar>},
                                {"tx", lua::Protect<l_tx>},
                                {"tables", lua::Protect<l_tables>},
                                {"columns", lua::Protect<l_columns>},
                                {"schema", lua::Protect<l_schema>},
                                {"fingerprint", lua::Protect<l_fingerprint>},
                                {"integrity", lua::Protect<l_integrity>},
                                {"lock", lua::Protect<l_lock>},
                                {"timeouts", lua::Protect<l_timeouts>},
                                {"journal_mode", lua::Protect<l_journal_mode>},
                                {"kind", lua::Protect<l_kind>},
                                {"url", lua::Protect<l_url>},
                                {"close", lua::Protect<l_close>},
                                {nullptr, nullptr}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lua::Protect<l_close>);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, lua::Protect<l_tostring>);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, "hoist.db.Connection");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, kBlobMeta)) {
    lua_pushcfunction(L, l_blob_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

}  // namespace

db::Connection& CheckConnection(lua_State* L, int idx) {
  DbHandle* h = ToHandle(L, idx);
  if (!h) {
    throw Error("lua", "invalid",
                fmt::format("bad argument #{} (connection): hoist.db connection expected, got {}", idx,
                            luaL_typename(L, idx)));
  }
  if (!h->conn || h->close_pending) throw Error("db", "closed", "the connection to " + h->redacted + " is closed");
  return *h->conn;
}

ConnectionUse::ConnectionUse(lua_State* L, int idx) : handle_(ToHandle(L, idx)), conn_(CheckConnection(L, idx)) {
  ++handle_->busy;
}

ConnectionUse::~ConnectionUse() {
  if (--handle_->busy == 0 && handle_->close_pending) handle_->conn.reset();
}

// db.url{ user, password, host, port, database, params } -> a PostgreSQL
// URL with every part percent-encoded: the way to put a secret in a URL.
int l_url_build(lua_State* L) {
  lua::CheckTable(L, 1, "db.url parts");
  lua::CheckKeys(L, 1, "db.url", {"user", "password", "host", "port", "database", "params"});
  db::UrlParts p;
  p.user = lua::OptStringField(L, 1, "user").value_or("");
  p.password = lua::OptStringField(L, 1, "password").value_or("");
  p.host = lua::OptStringField(L, 1, "host").value_or("");
  p.port = static_cast<int>(lua::OptIntegerField(L, 1, "port").value_or(0));
  p.database = lua::OptStringField(L, 1, "database").value_or("");
  auto params = lua::OptStringMapField(L, 1, "params");  // sorted: a stable URL whatever the table's order
  p.params.assign(params.begin(), params.end());
  lua::PushString(L, db::BuildPostgresUrl(p));
  return 1;
}

int OpenDb(lua_State* L) {
  RegisterTypes(L);
  const luaL_Reg fns[] = {{"open", lua::Protect<l_open>},
                          {"diff", lua::Protect<l_diff>},
                          {"blob", lua::Protect<l_blob>},
                          {"url", lua::Protect<l_url_build>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  lua::PushNull(L);
  lua_setfield(L, -2, "null");
  return 1;
}

}  // namespace hoist::bind

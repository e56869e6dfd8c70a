#include "engine/state_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <thread>
#include <cstring>
#include <fmt/format.h>

#include "core/log.h"
#include "core/secrets.h"
#include "db/sqlite.h"
#include "engine/state_rows.h"
#include "engine/state_store_pg.h"
#include "sys/clock.h"

namespace hoist::engine {
namespace {

constexpr int kSchemaVersion = 3;  // 3: runs.pid

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  playbook TEXT NOT NULL, version TEXT NOT NULL, origin TEXT,
  source_sha256 TEXT NOT NULL, source TEXT NOT NULL,
  params TEXT NOT NULL, operator TEXT, host TEXT, env TEXT,
  hoist_version TEXT, sandbox INTEGER NOT NULL DEFAULT 0,
  started_at TEXT NOT NULL, ended_at TEXT, status TEXT NOT NULL,
  exit_code INTEGER, error TEXT, pid INTEGER);
CREATE INDEX IF NOT EXISTS runs_env ON runs(env, id);
CREATE TABLE IF NOT EXISTS steps (
  run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, parent_seq INTEGER,
  name TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER,
  started_at TEXT NOT NULL, ended_at TEXT, seconds REAL, result TEXT, error TEXT,
  PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS events (
  run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, step_seq INTEGER,
  at TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, data TEXT, seconds REAL,
  PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS leases (
  env TEXT PRIMARY KEY, owner TEXT, host TEXT, pid INTEGER, run_id INTEGER,
  reason TEXT, token TEXT NOT NULL, started_at REAL, heartbeat_at REAL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
  env TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, run_id INTEGER, updated_at TEXT NOT NULL,
  PRIMARY KEY (env, key));
)sql";

// A state file or hoist's state dir that group or others can read: set
// to `mode` (0 = only warn), saying so once.
void Tighten(const std::string& path, mode_t mode, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || (st.st_mode & 077) == 0) return;
  mode_t was = st.st_mode & 07777;
  if (mode != 0 && ::chmod(path.c_str(), mode) == 0) {
    log::Warn(fmt::format("{} ({}) was {:04o}, readable by others: tightened to {:04o}", path, what, was, mode));
  } else {
    log::Warn(fmt::format("{} ({}) is {:04o}: group and others can read hoist's journal through it; chmod go-rwx it",
                          path, what, was));
  }
}

void EnsurePrivateDir(const std::string& dir) {
  if (dir.empty()) return;
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw Error("state", "invalid", dir + " exists and is not a directory");
    return;
  }
  // Parents first (like mkdir -p), the state dir itself 0700.
  auto slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) EnsurePrivateDir(dir.substr(0, slash));
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw Error("state", "failed", fmt::format("cannot create {}: {}", dir, std::strerror(errno)));
  }
}

using rows::kLeaseCols;
using rows::MaskedJson;

json AllFacts(db::Sqlite& db, const std::string& env) {
  auto s = db.Prepare(fmt::format("SELECT {}, key FROM kv WHERE env = ? ORDER BY key", rows::kFactCols));
  s.Bind(1, env);
  json out = json::object();
  while (s.Step()) out[s.Text(3)] = rows::FactRow(s);
  return out;
}

class SqliteStateStore final : public StateStore {
 public:
  explicit SqliteStateStore(const std::string& path) : db_(Open(path)) {
    // Every hoist run opens the store once, so its open/close cost is start-up
    // time. WAL + synchronous=NORMAL: commits cost no fsync and the file stays
    // consistent on power loss (only the newest entries may be lost). No
    // checkpoint on close (it would fsync twice and delete the WAL each run);
    // a small auto-checkpoint keeps the WAL, which the next open scans, short.
    sqlite3_db_config(db_.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    // Two hoist processes may create the store at the same moment; switching
    // to WAL takes an exclusive lock that SQLite's busy handler does not wait
    // for, so retry the set-up for as long as the busy timeout.
    for (int attempt = 0;; ++attempt) {
      try {
        Setup();
        break;
      } catch (const Error& e) {
        if (e.code() == "not_a_database") {
          throw Error("state", "not_a_store",
                      fmt::format("{} is not a hoist state store (SQLite: {}): move it aside to start a new journal "
                                  "there, or point 'state' in hoist.lua at the right file",
                                  path, e.message()));
        }
        if (e.code() != "busy") throw Error("state", e.code(), "state store " + path + ": " + e.message());
        if (attempt >= 250) throw Error("state", "busy", "state store " + path + " stays locked: " + e.message());
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }

  void Setup() {
    auto mode = db_.Prepare("PRAGMA journal_mode");
    mode.Step();
    bool wal = mode.Text(0) == "wal";
    mode.Reset();
    if (!wal) db_.Exec("PRAGMA journal_mode=WAL");
    db_.Exec("PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=64; PRAGMA foreign_keys=ON");
    auto v = db_.Prepare("PRAGMA user_version");
    v.Step();
    int64_t version = v.Int(0);
    v.Reset();
    if (version < kSchemaVersion) {
      db::Transaction tx(db_, true);
      db_.Exec(kSchema);
      // A store from before runs.pid (CREATE TABLE IF NOT EXISTS kept its runs).
      bool has_pid = false;
      auto cols = db_.Prepare("SELECT name FROM pragma_table_info('runs')");
      while (cols.Step()) has_pid = has_pid || cols.Text(0) == "pid";
      cols.Reset();
      if (!has_pid) db_.Exec("ALTER TABLE runs ADD COLUMN pid INTEGER");
      db_.Exec(fmt::format("PRAGMA user_version={}", kSchemaVersion));
      tx.Commit();
    }
  }

  void Events(int64_t run, const std::vector<PendingEvent>& events) override {
    db::Transaction tx(db_, true);
    for (const auto& e : events) Event(run, e.step, e.kind, e.name, e.data, e.seconds);
    tx.Commit();
  }

  // Runs of this host still "running" whose process is gone were killed
  // (perhaps before they held a lease, or without one): say so now.
  void AbandonDeadRuns(const RunMeta& by) {
    std::vector<std::pair<int64_t, int64_t>> dead;
    auto q = db_.Prepare("SELECT id, pid FROM runs WHERE status = 'running' AND host = ? AND pid IS NOT NULL");
    q.Bind(1, by.host);
    while (q.Step()) {
      Lease l;
      l.host = by.host;
      l.pid = q.Int(1);
      if (l.pid != getpid() && HolderGoneHere(l)) dead.emplace_back(q.Int(0), l.pid);
    }
    q.Reset();
    for (const auto& [id, pid] : dead) {
      auto up = db_.Prepare(
          "UPDATE runs SET status = 'abandoned', ended_at = ?, error = ? WHERE id = ? AND status = 'running'");
      up.Bind(1, sys::NowIso())
          .Bind(2, rows::KilledReason(pid, by.host, by.operator_name, by.host))
          .Bind(3, id)
          .Run();
    }
  }

  int64_t BeginRun(const RunMeta& m) override {
    AbandonDeadRuns(m);
    auto s = db_.Prepare(
        "INSERT INTO runs(playbook, version, origin, source_sha256, source, params, operator, host, env, "
        "hoist_version, sandbox, started_at, status, pid) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,'running',?)");
    s.Bind(1, m.playbook).Bind(2, m.version).Bind(3, m.origin).Bind(4, m.source_sha256).Bind(5, Mask(m.source));
    s.Bind(6, MaskedJson(m.params)).Bind(7, m.operator_name).Bind(8, m.host).Bind(9, m.env).Bind(10, m.hoist_version);
    s.Bind(11, static_cast<int64_t>(m.sandbox ? 1 : 0)).Bind(12, sys::NowIso());
    s.Bind(13, static_cast<int64_t>(getpid()));
    s.Run();
    int64_t id = db_.LastInsertId();
    step_seq_ = 0;
    event_seq_ = 0;
    return id;
  }

  void FinishRun(int64_t run, const std::string& status, int exit_code, const std::string& error) override {
    auto s = db_.Prepare("UPDATE runs SET ended_at=?, status=?, exit_code=?, error=? WHERE id=?");
    s.Bind(1, sys::NowIso()).Bind(2, status).Bind(3, static_cast<int64_t>(exit_code));
    if (error.empty()) {
      s.BindNull(4);
    } else {
      s.Bind(4, Mask(error));
    }
    s.Bind(5, run).Run();
  }

  int64_t StepStarted(int64_t run, std::optional<int64_t> parent, const std::string& name,
                      const std::string& kind) override {
    int64_t seq = ++step_seq_;
    if (!step_insert_) {
      step_insert_.emplace(db_.Prepare(
          "INSERT INTO steps(run_id, seq, parent_seq, name, kind, status, started_at) VALUES(?,?,?,?,?,'running',?)"));
    }
    step_insert_->Bind(1, run).Bind(2, seq).Bind(3, parent).Bind(4, Mask(name)).Bind(5, kind).Bind(6, sys::NowIso());
    step_insert_->Run();
    return seq;
  }

  void StepFinished(int64_t run, int64_t seq, const std::string& status, int attempts, const json& result,
                    const std::string& error, double seconds) override {
    if (!step_update_) {
      step_update_.emplace(db_.Prepare(
          "UPDATE steps SET status=?, attempts=?, result=?, error=?, ended_at=?, seconds=? WHERE run_id=? AND seq=?"));
    }
    auto& s = *step_update_;
    s.Bind(1, status).Bind(2, static_cast<int64_t>(attempts));
    if (result.is_null()) {
      s.BindNull(3);
    } else {
      s.Bind(3, MaskedJson(result));
    }
    if (error.empty()) {
      s.BindNull(4);
    } else {
      s.Bind(4, Mask(error));
    }
    s.Bind(5, sys::NowIso()).Bind(6, seconds).Bind(7, run).Bind(8, seq);
    s.Run();
  }

  void Event(int64_t run, std::optional<int64_t> step, const std::string& kind, const std::string& name,
             const json& data, double seconds) override {
    if (!event_insert_) {
      event_insert_.emplace(db_.Prepare(
          "INSERT INTO events(run_id, seq, step_seq, at, kind, name, data, seconds) VALUES(?,?,?,?,?,?,?,?)"));
    }
    auto& s = *event_insert_;
    s.Bind(1, run).Bind(2, ++event_seq_).Bind(3, step).Bind(4, sys::NowIso()).Bind(5, kind).Bind(6, Mask(name));
    s.Bind(7, MaskedJson(data)).Bind(8, seconds);
    s.Run();
  }

  std::vector<json> History(const std::optional<std::string>& env, int limit) override {
    std::string sql = fmt::format("SELECT {} FROM runs", rows::kRunCols);
    if (env) sql += " WHERE env = ?";
    sql += " ORDER BY id DESC LIMIT ?";
    auto s = db_.Prepare(sql);
    int i = 1;
    if (env) s.Bind(i++, *env);
    s.Bind(i, static_cast<int64_t>(limit));
    std::vector<json> out;
    while (s.Step()) out.push_back(rows::RunRow(s));
    return out;
  }

  std::optional<json> GetRun(int64_t id) override {
    auto s = db_.Prepare(fmt::format("SELECT {}, {} FROM runs WHERE id = ?", rows::kRunCols, rows::kRunDetailCols));
    s.Bind(1, id);
    if (!s.Step()) return std::nullopt;
    json run = rows::RunDetailRow(s);
    json steps = json::array();
    auto st = db_.Prepare(fmt::format("SELECT {} FROM steps WHERE run_id = ? ORDER BY seq", rows::kStepCols));
    st.Bind(1, id);
    while (st.Step()) steps.push_back(rows::StepRow(st));
    run["steps"] = std::move(steps);
    json events = json::array();
    auto ev = db_.Prepare(fmt::format("SELECT {} FROM events WHERE run_id = ? ORDER BY seq", rows::kEventCols));
    ev.Bind(1, id);
    while (ev.Step()) events.push_back(rows::EventRow(ev));
    run["events"] = std::move(events);
    return run;
  }

  void AcquireLease(const Lease& want, double ttl) override {
    db::Transaction tx(db_, true);  // BEGIN IMMEDIATE: one writer decides
    double now = sys::NowEpoch();
    auto sel = db_.Prepare(fmt::format("SELECT {} FROM leases WHERE env = ?", kLeaseCols));
    sel.Bind(1, want.env);
    if (sel.Step()) {
      Lease cur = rows::LeaseRow(sel);
      // A holder on this host whose process is gone is provably dead: no
      // need to wait out its TTL (a pid reused since keeps it waiting).
      bool gone = cur.token != want.token && HolderGoneHere(cur);
      if (cur.expires_at > now && cur.token != want.token && !gone) throw LeaseHeldError(cur);
      // The holder stopped heart-beating (killed, host down): its run would
      // otherwise stay "running" in the journal forever.
      if (cur.token != want.token && cur.run_id > 0) {
        auto up = db_.Prepare(
            "UPDATE runs SET status = 'abandoned', ended_at = ?, error = ? WHERE id = ? AND status = 'running'");
        std::string why = rows::TakeoverReason(cur, want, cur.expires_at <= now);
        up.Bind(1, sys::IsoUtc(std::min(now, cur.expires_at))).Bind(2, why).Bind(3, cur.run_id).Run();
      }
    }
    auto up = db_.Prepare(fmt::format("INSERT OR REPLACE INTO leases({}) VALUES(?,?,?,?,?,?,?,?,?,?)", kLeaseCols));
    up.Bind(1, want.env).Bind(2, want.owner).Bind(3, want.host).Bind(4, want.pid).Bind(5, want.run_id);
    up.Bind(6, Mask(want.reason)).Bind(7, want.token).Bind(8, now).Bind(9, now).Bind(10, now + ttl);
    up.Run();
    tx.Commit();
  }

  bool Heartbeat(const std::string& env, const std::string& token, double ttl) override {
    double now = sys::NowEpoch();
    auto s = db_.Prepare("UPDATE leases SET heartbeat_at = ?, expires_at = ? WHERE env = ? AND token = ?");
    s.Bind(1, now).Bind(2, now + ttl).Bind(3, env).Bind(4, token).Run();
    return db_.Changes() == 1;
  }

  void ReleaseLease(const std::string& env, const std::string& token) override {
    db_.Prepare("DELETE FROM leases WHERE env = ? AND token = ?").Bind(1, env).Bind(2, token).Run();
  }

  std::optional<Lease> ForceRelease(const std::string& env, const std::string& by, const std::string& reason) override {
    db::Transaction tx(db_, true);
    auto sel = db_.Prepare(fmt::format("SELECT {} FROM leases WHERE env = ?", kLeaseCols));
    sel.Bind(1, env);
    std::optional<Lease> cur;
    if (sel.Step()) cur = rows::LeaseRow(sel);
    db_.Prepare("DELETE FROM leases WHERE env = ?").Bind(1, env).Run();
    if (cur && cur->run_id > 0) {
      // As a takeover after expiry does: the run would stay "running" forever.
      auto up = db_.Prepare(
          "UPDATE runs SET status = 'abandoned', ended_at = ?, error = ? WHERE id = ? AND status = 'running'");
      up.Bind(1, sys::IsoUtc(sys::NowEpoch()))
          .Bind(2, rows::ForceReleasedReason(by, reason))
          .Bind(3, cur->run_id)
          .Run();
    }
    tx.Commit();
    return cur;
  }

  void Remember(const std::string& env, const std::string& key, const json& value, int64_t run) override {
    auto s = db_.Prepare("INSERT OR REPLACE INTO kv(env, key, value, run_id, updated_at) VALUES(?,?,?,?,?)");
    // Exactly as given: run:remember refuses values holding a secret, and a
    // masked copy would be recalled corrupted.
    s.Bind(1, env).Bind(2, key).Bind(3, rows::ExactJson(value));
    if (run > 0) {
      s.Bind(4, run);
    } else {
      s.BindNull(4);
    }
    s.Bind(5, sys::NowIso()).Run();
  }

  std::optional<json> Recall(const std::string& env, const std::string& key) override {
    auto s = db_.Prepare(fmt::format("SELECT {} FROM kv WHERE env = ? AND key = ?", rows::kFactCols));
    s.Bind(1, env).Bind(2, key);
    if (!s.Step()) return std::nullopt;
    return rows::FactRow(s);
  }

  json RecallAll(const std::string& env) override { return AllFacts(db_, env); }

  void SeedFacts(const std::string& env, const json& facts) override {
    db::Transaction tx(db_, true);
    auto s = db_.Prepare("INSERT OR REPLACE INTO kv(env, key, value, run_id, updated_at) VALUES(?,?,?,?,?)");
    for (const auto& [key, row] : facts.items()) {
      s.Bind(1, env).Bind(2, key).Bind(3, rows::ExactJson(row.value("value", json())));
      if (row.contains("run_id") && row["run_id"].is_number_integer()) {
        s.Bind(4, row["run_id"].get<int64_t>());
      } else {
        s.BindNull(4);
      }
      s.Bind(5, row.value("updated_at", sys::NowIso())).Run();
    }
    tx.Commit();
  }

  std::vector<Lease> Leases() override {
    auto s = db_.Prepare(fmt::format("SELECT {} FROM leases ORDER BY env", kLeaseCols));
    std::vector<Lease> out;
    while (s.Step()) out.push_back(rows::LeaseRow(s));
    return out;
  }

 private:
  static db::Sqlite Open(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash != std::string::npos) {
      std::string dir = path.substr(0, slash);
      EnsurePrivateDir(dir);
      // hoist's own directory holds the journal: a pre-existing one that
      // others may enter is tightened. Any other directory is the user's.
      bool own = dir.size() >= 7 && dir.compare(dir.size() - 7, 7, "/.hoist") == 0;
      Tighten(dir, own ? 0700 : 0, "its directory");
    }
    // Create the file 0600 ourselves so SQLite never makes it world-readable.
    // O_EXCL: an existing store is never opened raw, since closing that
    // descriptor would drop the locks of a connection here that has it open.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
    } else if (errno != EEXIST) {
      throw Error("state", "failed", fmt::format("cannot open state store {}: {}", path, std::strerror(errno)));
    }
    for (const char* ext : {"", "-wal", "-shm"}) Tighten(path + ext, 0600, "the state store");
    try {
      return db::Sqlite(path);
    } catch (const Error& e) {
      throw Error("state", "failed", e.message());
    }
  }

  db::Sqlite db_;
  int64_t step_seq_ = 0;
  int64_t event_seq_ = 0;
  std::optional<db::Stmt> step_insert_, step_update_, event_insert_;
};

}  // namespace

void StateStore::Remember(const std::string&, const std::string&, const json&, int64_t) {
  throw Error("state", "unsupported", "this state store keeps no remembered facts");
}
std::optional<json> StateStore::Recall(const std::string&, const std::string&) {
  throw Error("state", "unsupported", "this state store keeps no remembered facts");
}
json StateStore::RecallAll(const std::string&) {
  throw Error("state", "unsupported", "this state store keeps no remembered facts");
}
void StateStore::SeedFacts(const std::string&, const json&) {
  throw Error("state", "unsupported", "this state store keeps no remembered facts");
}

bool HolderGoneHere(const Lease& l) {
  char host[256] = {};
  if (l.pid <= 0 || gethostname(host, sizeof host - 1) != 0 || l.host != host) return false;
  return ::kill(static_cast<pid_t>(l.pid), 0) != 0 && errno == ESRCH;
}

namespace {

std::string HeldMessage(const Lease& h) {
  double left = h.expires_at - sys::NowEpoch();
  std::string when = left > 0 ? fmt::format("expires in {:.0f} s ({})", std::ceil(left), sys::IsoUtc(h.expires_at))
                              : fmt::format("expired {}", sys::IsoUtc(h.expires_at));
  return fmt::format("environment '{}' is locked by {}@{} (pid {}, run {}{}) since {}, lease {}", h.env, h.owner,
                     h.host, h.pid, h.run_id, h.reason.empty() ? "" : ", reason: " + h.reason,
                     sys::IsoUtc(h.started_at), when);
}

}  // namespace

LeaseHeldError::LeaseHeldError(Lease holder) : Error("lease", "lease_held", HeldMessage(holder)), holder_(std::move(holder)) {}

std::unique_ptr<StateStore> OpenStateStore(const std::string& location) {
  if (IsPostgresState(location)) return OpenPgStateStore(location);
  return std::make_unique<SqliteStateStore>(location);
}

json ReadFacts(const std::string& location, const std::string& env) {
  if (IsPostgresState(location)) return ReadPgFacts(location, env);
  struct stat st {};
  if (::stat(location.c_str(), &st) != 0) return json::object();
  try {
    db::Sqlite db(location, SQLITE_OPEN_READONLY);
    auto kv = db.Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv'");
    if (!kv.Step()) return json::object();
    return AllFacts(db, env);
  } catch (const Error& e) {
    throw Error("state", "failed", fmt::format("cannot read the facts in state store {}: {}", location, e.message()));
  }
}

}  // namespace hoist::engine

#include "engine/state_store_pg.h"

#include <unistd.h>

#include <map>
#include <optional>

#include <fmt/format.h>

#include "core/error.h"
#include "core/secrets.h"
#include "db/pg_connection.h"
#include "db/url.h"
#include "engine/state_rows.h"
#include "sys/clock.h"

namespace hoist::engine {
namespace {

using db::Null;
using db::Value;

constexpr int kPgSchemaVersion = 1;

// Journal timestamps are text in the SQLite store's form, from the
// database's clock (every operator and runner writes the same clock).
constexpr const char* kPgSchema = R"sql(
CREATE SCHEMA IF NOT EXISTS hoist;
CREATE TABLE IF NOT EXISTS hoist.schema_version (version integer NOT NULL);
CREATE OR REPLACE FUNCTION hoist.now_iso() RETURNS text LANGUAGE sql VOLATILE AS
  $$ SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;
CREATE TABLE IF NOT EXISTS hoist.runs (
  id bigserial PRIMARY KEY,
  playbook text NOT NULL, version text NOT NULL, origin text,
  source_sha256 text NOT NULL, source text NOT NULL,
  params text NOT NULL, operator text, host text, env text,
  hoist_version text, sandbox boolean NOT NULL DEFAULT false,
  started_at text NOT NULL, ended_at text, status text NOT NULL,
  exit_code integer, error text, pid bigint,
  import_key text UNIQUE);
CREATE INDEX IF NOT EXISTS runs_env ON hoist.runs(env, id);
CREATE TABLE IF NOT EXISTS hoist.steps (
  run_id bigint NOT NULL REFERENCES hoist.runs(id), seq bigint NOT NULL, parent_seq bigint,
  name text NOT NULL, kind text NOT NULL, status text NOT NULL, attempts integer,
  started_at text NOT NULL, ended_at text, seconds double precision, result text, error text,
  PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS hoist.events (
  run_id bigint NOT NULL REFERENCES hoist.runs(id), seq bigint NOT NULL, step_seq bigint,
  at text NOT NULL, kind text NOT NULL, name text NOT NULL, data text, seconds double precision,
  PRIMARY KEY (run_id, seq));
CREATE SEQUENCE IF NOT EXISTS hoist.lease_fence;
CREATE TABLE IF NOT EXISTS hoist.lease (
  env text PRIMARY KEY, owner text, host text, pid bigint, run_id bigint, reason text,
  token text NOT NULL, fence bigint NOT NULL,
  started_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL, expires_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS hoist.facts (
  env text NOT NULL, key text NOT NULL, value text NOT NULL, run_id bigint, updated_at text NOT NULL,
  PRIMARY KEY (env, key));
)sql";

constexpr const char* kPgLeaseCols =
    "env, owner, host, pid, run_id, reason, token, extract(epoch FROM started_at)::float8, "
    "extract(epoch FROM heartbeat_at)::float8, extract(epoch FROM expires_at)::float8";

// $1 = the run's fencing token (NULL: the run holds no lease), $2 = its
// environment. In the write's own statement, so a run whose lease was
// taken or expired between two writes cannot land the second.
constexpr const char* kFenced =
    "($1::bigint IS NULL OR EXISTS (SELECT 1 FROM hoist.lease l WHERE l.env = $2::text AND l.fence = $1::bigint "
    "AND l.expires_at > clock_timestamp()))";

// A row of a db::Result read like a db::Stmt, for state_rows.h's readers.
struct PgRow {
  const std::vector<Value>& v;
  bool IsNull(int c) const { return std::holds_alternative<Null>(v[static_cast<size_t>(c)]); }
  int64_t Int(int c) const {
    const Value& x = v[static_cast<size_t>(c)];
    if (const auto* i = std::get_if<int64_t>(&x)) return *i;
    if (const auto* b = std::get_if<bool>(&x)) return *b ? 1 : 0;
    if (const auto* d = std::get_if<double>(&x)) return static_cast<int64_t>(*d);
    return 0;
  }
  double Double(int c) const {
    const Value& x = v[static_cast<size_t>(c)];
    if (const auto* d = std::get_if<double>(&x)) return *d;
    if (const auto* i = std::get_if<int64_t>(&x)) return static_cast<double>(*i);
    return 0;
  }
  std::string Text(int c) const {
    const Value& x = v[static_cast<size_t>(c)];
    if (const auto* s = std::get_if<std::string>(&x)) return *s;
    if (const auto* i = std::get_if<int64_t>(&x)) return std::to_string(*i);
    return "";
  }
};

Value Opt(const std::optional<int64_t>& v) { return v ? Value(*v) : Value(Null{}); }
Value TextOrNull(const std::string& s) { return s.empty() ? Value(Null{}) : Value(s); }

db::DbUrl ParseStateUrl(const std::string& url) {
  try {
    db::DbUrl u = db::ParseUrl(url);
    // A half-open TCP connection must fail a write in seconds, not the
    // kernel's ~15 minutes: the lease it renews expires meanwhile anyway.
    for (const auto& [k, v] : {std::pair{"keepalives_idle", "10"}, std::pair{"keepalives_interval", "5"},
                               std::pair{"keepalives_count", "3"}, std::pair{"tcp_user_timeout", "30000"}}) {
      if (u.conninfo.find(std::string(k) + "=") == std::string::npos) u.conninfo += fmt::format(" {}={}", k, v);
    }
    return u;
  } catch (const Error& e) {
    throw Error("state", "invalid", fmt::format("state store: {}", e.message()));
  }
}

std::unique_ptr<db::Connection> Connect(const db::DbUrl& u, bool readonly) {
  db::OpenOptions o;
  o.application_name = "hoist state";
  o.lock_timeout = 10;
  o.statement_timeout = 60;
  o.readonly = readonly;
  try {
    return std::make_unique<db::PgConnection>(u, o);
  } catch (const Error& e) {
    throw Error("state", e.code(), fmt::format("cannot open the state store {}: {}", u.redacted, e.message()));
  }
}

void CreateSchema(db::Connection& c, const std::string& redacted) {
  auto version = [&]() -> int64_t {
    auto exists = c.Query("SELECT to_regclass('hoist.schema_version') IS NOT NULL");
    if (!PgRow{exists.rows.at(0)}.Int(0)) return 0;
    auto v = c.Query("SELECT COALESCE(max(version), 0) FROM hoist.schema_version");
    return PgRow{v.rows.at(0)}.Int(0);
  };
  auto refuse_newer = [&](int64_t v) {
    if (v > kPgSchemaVersion) {
      throw Error("state", "newer_schema",
                  fmt::format("the state store {} has schema version {}, newer than this hoist's {} ({}): upgrade "
                              "hoist here to the version the other operators use",
                              redacted, v, kPgSchemaVersion, HOIST_VERSION));
    }
  };
  try {
    int64_t v = version();
    refuse_newer(v);
    if (v == kPgSchemaVersion) return;
    // Two hoists starting at once: the second waits here and then finds
    // the schema made (CREATE ... IF NOT EXISTS alone races in the catalog).
    c.Tx([&] {
      c.Query("SELECT pg_advisory_xact_lock(hashtextextended('hoist state schema', 0))");
      int64_t now = version();
      refuse_newer(now);
      if (now == kPgSchemaVersion) return;
      c.Exec(kPgSchema);
      c.Exec("DELETE FROM hoist.schema_version");
      c.Exec("INSERT INTO hoist.schema_version(version) VALUES ($1)", {static_cast<int64_t>(kPgSchemaVersion)});
    });
  } catch (const Error& e) {
    if (e.area() == "state") throw;
    std::string hint = e.message().find("permission denied") != std::string::npos
                           ? " (the role needs CREATE on the database once, or create the schema for it: CREATE "
                             "SCHEMA hoist AUTHORIZATION <role>)"
                           : "";
    throw Error("state", e.code(),
                fmt::format("cannot create hoist's schema in the state store {}: {}{}", redacted, e.message(), hint));
  }
}

class PgStateStore final : public StateStore {
 public:
  explicit PgStateStore(const std::string& url) : url_(ParseStateUrl(url)), conn_(Connect(url_, false)) {
    CreateSchema(*conn_, url_.redacted);
  }

  int64_t BeginRun(const RunMeta& m) override {
    AbandonDeadRuns(m);
    // Not retried after a lost connection: the insert may have landed.
    auto r = Wrap([&] {
      return conn_->Query(
          "INSERT INTO hoist.runs(playbook, version, origin, source_sha256, source, params, operator, host, env, "
          "hoist_version, sandbox, started_at, status, pid) "
          "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,hoist.now_iso(),'running',$12) RETURNING id",
          {m.playbook, m.version, m.origin, m.source_sha256, Mask(m.source), rows::MaskedJson(m.params),
           m.operator_name, m.host, m.env, m.hoist_version, m.sandbox, static_cast<int64_t>(getpid())});
    });
    step_seq_ = 0;
    event_seq_ = 0;
    return PgRow{r.rows.at(0)}.Int(0);
  }

  void FinishRun(int64_t run, const std::string& status, int exit_code, const std::string& error) override {
    Write(run,
          fmt::format("UPDATE hoist.runs SET ended_at = hoist.now_iso(), status = $3, exit_code = $4, error = $5 "
                      "WHERE id = $6 AND {}",
                      kFenced),
          {status, static_cast<int64_t>(exit_code), TextOrNull(Mask(error)), run});
  }

  int64_t StepStarted(int64_t run, std::optional<int64_t> parent, const std::string& name,
                      const std::string& kind) override {
    int64_t seq = ++step_seq_;
    Write(run,
          fmt::format("INSERT INTO hoist.steps(run_id, seq, parent_seq, name, kind, status, started_at) "
                      "SELECT $3::bigint, $4::bigint, $5::bigint, $6::text, $7::text, 'running', hoist.now_iso() "
                      "WHERE {} ON CONFLICT DO NOTHING",
                      kFenced),
          {run, seq, Opt(parent), Mask(name), kind});
    return seq;
  }

  void StepFinished(int64_t run, int64_t seq, const std::string& status, int attempts, const json& result,
                    const std::string& error, double seconds) override {
    Write(run,
          fmt::format("UPDATE hoist.steps SET status = $3, attempts = $4, result = $5, error = $6, "
                      "ended_at = hoist.now_iso(), seconds = $7 WHERE run_id = $8 AND seq = $9 AND {}",
                      kFenced),
          {status, static_cast<int64_t>(attempts), result.is_null() ? Value(Null{}) : Value(rows::MaskedJson(result)),
           TextOrNull(Mask(error)), seconds, run, seq});
  }

  void Event(int64_t run, std::optional<int64_t> step, const std::string& kind, const std::string& name,
             const json& data, double seconds) override {
    Events(run, {{step, kind, name, data, seconds}});
  }

  // One statement for the whole batch: a runner far from the database
  // pays one round trip, not one per recorded call.
  void Events(int64_t run, const std::vector<PendingEvent>& events) override {
    if (events.empty()) return;
    json batch = json::array();
    for (const auto& e : events) {
      batch.push_back({{"seq", ++event_seq_},
                       {"step_seq", e.step ? json(*e.step) : json(nullptr)},
                       {"kind", e.kind},
                       {"name", Mask(e.name)},
                       {"data", rows::MaskedJson(e.data)},
                       {"seconds", e.seconds}});
    }
    Write(run,
          fmt::format("INSERT INTO hoist.events(run_id, seq, step_seq, at, kind, name, data, seconds) "
                      "SELECT $3::bigint, e.seq, e.step_seq, hoist.now_iso(), e.kind, e.name, e.data, e.seconds "
                      "FROM json_to_recordset($4::json) AS e(seq bigint, step_seq bigint, kind text, name text, "
                      "data text, seconds float8) WHERE {} ON CONFLICT DO NOTHING",
                      kFenced),
          {run, rows::ExactJson(batch)});
  }

  std::vector<json> History(const std::optional<std::string>& env, int limit) override {
    auto r = Retry([&] {
      return conn_->Query(fmt::format("SELECT {} FROM hoist.runs WHERE ($1::text IS NULL OR env = $1::text) "
                                      "ORDER BY id DESC LIMIT $2",
                                      rows::kRunCols),
                          {env ? Value(*env) : Value(Null{}), static_cast<int64_t>(limit)});
    });
    std::vector<json> out;
    for (const auto& row : r.rows) out.push_back(rows::RunRow(PgRow{row}));
    return out;
  }

  std::optional<json> GetRun(int64_t id) override {
    return Retry([&]() -> std::optional<json> {
      auto r = conn_->Query(
          fmt::format("SELECT {}, {} FROM hoist.runs WHERE id = $1", rows::kRunCols, rows::kRunDetailCols), {id});
      if (r.rows.empty()) return std::nullopt;
      json run = rows::RunDetailRow(PgRow{r.rows[0]});
      json steps = json::array();
      for (const auto& row :
           conn_->Query(fmt::format("SELECT {} FROM hoist.steps WHERE run_id = $1 ORDER BY seq", rows::kStepCols), {id})
               .rows) {
        steps.push_back(rows::StepRow(PgRow{row}));
      }
      run["steps"] = std::move(steps);
      json events = json::array();
      for (const auto& row :
           conn_->Query(fmt::format("SELECT {} FROM hoist.events WHERE run_id = $1 ORDER BY seq", rows::kEventCols),
                        {id})
               .rows) {
        events.push_back(rows::EventRow(PgRow{row}));
      }
      run["events"] = std::move(events);
      return run;
    });
  }

  void AcquireLease(const Lease& want, double ttl) override {
    int64_t fence = 0;
    Retry([&] {
      conn_->Tx([&] {
        // One acquirer per environment decides at a time; the row lock
        // below then keeps heartbeats and releases out until we commit.
        conn_->Query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", {"hoist lease " + want.env});
        auto cur = conn_->Query(fmt::format("SELECT {}, expires_at <= clock_timestamp() FROM hoist.lease "
                                            "WHERE env = $1 FOR UPDATE",
                                            kPgLeaseCols),
                                {want.env});
        if (!cur.rows.empty()) {
          PgRow row{cur.rows[0]};
          Lease held = rows::LeaseRow(row);
          bool expired = row.Int(10) != 0;
          bool ours = held.token == want.token;
          if (!ours && !expired && !HolderGoneHere(held)) throw LeaseHeldError(held);
          if (!ours && held.run_id > 0) {
            conn_->Exec(
                "UPDATE hoist.runs SET status = 'abandoned', ended_at = hoist.now_iso(), error = $1 "
                "WHERE id = $2 AND status = 'running'",
                {rows::TakeoverReason(held, want, expired), held.run_id});
          }
        }
        auto got = conn_->Query(
            "INSERT INTO hoist.lease(env, owner, host, pid, run_id, reason, token, fence, started_at, heartbeat_at, "
            "expires_at) VALUES($1, $2, $3, $4, $5, $6, $7, nextval('hoist.lease_fence'), clock_timestamp(), "
            "clock_timestamp(), clock_timestamp() + make_interval(secs => $8)) "
            "ON CONFLICT (env) DO UPDATE SET owner = EXCLUDED.owner, host = EXCLUDED.host, pid = EXCLUDED.pid, "
            "run_id = EXCLUDED.run_id, reason = EXCLUDED.reason, token = EXCLUDED.token, fence = EXCLUDED.fence, "
            "started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at, expires_at = EXCLUDED.expires_at "
            "RETURNING fence",
            {want.env, want.owner, want.host, want.pid, want.run_id, Mask(want.reason), want.token, ttl});
        fence = PgRow{got.rows.at(0)}.Int(0);
      });
    });
    if (want.run_id > 0) fences_[want.run_id] = {want.env, fence};
  }

  bool Heartbeat(const std::string& env, const std::string& token, double ttl) override {
    // An expired lease is not revived: someone may have seen it free.
    return Retry([&] {
             return conn_->Exec(
                 "UPDATE hoist.lease SET heartbeat_at = clock_timestamp(), expires_at = clock_timestamp() + "
                 "make_interval(secs => $3) WHERE env = $1 AND token = $2 AND expires_at > clock_timestamp()",
                 {env, token, ttl});
           }) == 1;
  }

  void ReleaseLease(const std::string& env, const std::string& token) override {
    Retry([&] { return conn_->Exec("DELETE FROM hoist.lease WHERE env = $1 AND token = $2", {env, token}); });
  }

  std::optional<Lease> ForceRelease(const std::string& env, const std::string& by, const std::string& reason) override {
    std::optional<Lease> cur;
    Retry([&] {
      cur.reset();
      conn_->Tx([&] {
        auto r = conn_->Query(fmt::format("DELETE FROM hoist.lease WHERE env = $1 RETURNING {}", kPgLeaseCols), {env});
        if (r.rows.empty()) return;
        cur = rows::LeaseRow(PgRow{r.rows[0]});
        if (cur->run_id > 0) {
          conn_->Exec(
              "UPDATE hoist.runs SET status = 'abandoned', ended_at = hoist.now_iso(), error = $1 "
              "WHERE id = $2 AND status = 'running'",
              {rows::ForceReleasedReason(by, reason), cur->run_id});
        }
      });
    });
    return cur;
  }

  std::vector<Lease> Leases() override {
    auto r = Retry([&] { return conn_->Query(fmt::format("SELECT {} FROM hoist.lease ORDER BY env", kPgLeaseCols)); });
    std::vector<Lease> out;
    for (const auto& row : r.rows) out.push_back(rows::LeaseRow(PgRow{row}));
    return out;
  }

  void Remember(const std::string& env, const std::string& key, const json& value, int64_t run) override {
    Write(run,
          fmt::format("INSERT INTO hoist.facts(env, key, value, run_id, updated_at) "
                      "SELECT $3::text, $4::text, $5::text, $6::bigint, hoist.now_iso() WHERE {} "
                      "ON CONFLICT (env, key) DO UPDATE SET value = EXCLUDED.value, run_id = EXCLUDED.run_id, "
                      "updated_at = EXCLUDED.updated_at",
                      kFenced),
          {env, key, rows::ExactJson(value), run > 0 ? Value(run) : Value(Null{})});
  }

  std::optional<json> Recall(const std::string& env, const std::string& key) override {
    auto r = Retry([&] {
      return conn_->Query(fmt::format("SELECT {} FROM hoist.facts WHERE env = $1 AND key = $2", rows::kFactCols),
                          {env, key});
    });
    if (r.rows.empty()) return std::nullopt;
    return rows::FactRow(PgRow{r.rows[0]});
  }

  json RecallAll(const std::string& env) override {
    return Retry([&] { return AllFacts(*conn_, env); });
  }

  void SeedFacts(const std::string& env, const json& facts) override {
    Retry([&] {
      conn_->Tx([&] {
        for (const auto& [key, row] : facts.items()) {
          bool has_run = row.contains("run_id") && row["run_id"].is_number_integer();
          conn_->Exec(
              "INSERT INTO hoist.facts(env, key, value, run_id, updated_at) VALUES($1, $2, $3, $4, "
              "COALESCE($5, hoist.now_iso())) ON CONFLICT (env, key) DO UPDATE SET value = EXCLUDED.value, "
              "run_id = EXCLUDED.run_id, updated_at = EXCLUDED.updated_at",
              {env, key, rows::ExactJson(row.value("value", json())),
               has_run ? Value(row["run_id"].get<int64_t>()) : Value(Null{}),
               row.contains("updated_at") && row["updated_at"].is_string() ? Value(row["updated_at"].get<std::string>())
                                                                           : Value(Null{})});
        }
      });
      return 0;
    });
  }

  static json AllFacts(db::Connection& c, const std::string& env) {
    auto r = c.Query(fmt::format("SELECT {}, key FROM hoist.facts WHERE env = $1 ORDER BY key", rows::kFactCols), {env});
    json out = json::object();
    for (const auto& row : r.rows) out[PgRow{row}.Text(3)] = rows::FactRow(PgRow{row});
    return out;
  }

 private:
  struct Fence {
    std::string env;
    int64_t token = 0;
  };

  // Runs of this host still "running" whose process is gone were killed.
  void AbandonDeadRuns(const RunMeta& by) {
    auto r = Retry([&] {
      return conn_->Query("SELECT id, pid FROM hoist.runs WHERE status = 'running' AND host = $1 AND pid IS NOT NULL",
                          {by.host});
    });
    for (const auto& row : r.rows) {
      Lease l;
      l.host = by.host;
      l.pid = PgRow{row}.Int(1);
      if (l.pid == getpid() || !HolderGoneHere(l)) continue;
      Retry([&] {
        return conn_->Exec(
            "UPDATE hoist.runs SET status = 'abandoned', ended_at = hoist.now_iso(), error = $1 "
            "WHERE id = $2 AND status = 'running'",
            {rows::KilledReason(l.pid, by.host, by.operator_name, by.host), PgRow{row}.Int(0)});
      });
    }
  }

  // A write of `run`: $1, $2 are its fence (kFenced), the rest follow.
  // Zero rows changed by a fenced write means the lease is gone, or the
  // row was there already (a retry after a lost connection): asking the
  // lease row tells which.
  void Write(int64_t run, const std::string& sql, std::vector<Value> params) {
    const Fence* f = nullptr;
    if (auto it = fences_.find(run); it != fences_.end()) f = &it->second;
    params.insert(params.begin(), {f ? Value(f->token) : Value(Null{}), f ? Value(f->env) : Value(Null{})});
    int64_t changed = Retry([&] { return conn_->Exec(sql, params); });
    if (changed == 0 && f) CheckFence(run, *f);
  }

  void CheckFence(int64_t run, const Fence& f) {
    auto r = Retry([&] {
      return conn_->Query(fmt::format("SELECT {}, fence, expires_at <= clock_timestamp() FROM hoist.lease "
                                      "WHERE env = $1",
                                      kPgLeaseCols),
                          {f.env});
    });
    std::string now;
    if (r.rows.empty()) {
      now = "nobody holds it now (it was released, by `hoist lock release --force` or its expiry)";
    } else {
      PgRow row{r.rows[0]};
      Lease l = rows::LeaseRow(row);
      int64_t fence = row.Int(10);
      bool expired = row.Int(11) != 0;
      if (fence == f.token && !expired) return;  // ours and live: the row was simply there already
      now = fence == f.token
                ? fmt::format("it expired at {} (no heartbeat reached the state store in time)", sys::IsoUtc(l.expires_at))
                : fmt::format("it is held by {}@{} now (pid {}, run {}, fencing token {})", l.owner, l.host, l.pid,
                              l.run_id, fence);
    }
    throw Error("state", "lease_lost",
                Mask(fmt::format("the lease on environment '{}' is no longer run {}'s (fencing token {}): {}; nothing "
                                 "more of run {} is journaled. Check what it changed (hoist show {}) and who holds "
                                 "the environment (hoist lock status) before running it again",
                                 f.env, run, f.token, now, run, run)));
  }

  Error Named(const Error& e) const {
    return Error("state", e.code(), fmt::format("state store {}: {}", url_.redacted, e.message()));
  }

  // A database error with the store named; a state or lease error (a
  // LeaseHeldError keeps its type) as it is.
  template <class F>
  auto Wrap(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const Error& e) {
      if (e.area() != "db") throw;
      throw Named(e);
    }
  }

  // Reconnects once when the connection was lost: every write is safe to
  // repeat (inserts skip rows already there, the fence still decides).
  template <class F>
  auto Retry(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const Error& e) {
      if (e.area() != "db") throw;
      if (e.code() != "connection" && e.code() != "closed") throw Named(e);
    }
    conn_ = Connect(url_, false);
    return Wrap(f);
  }

  db::DbUrl url_;
  std::unique_ptr<db::Connection> conn_;
  std::map<int64_t, Fence> fences_;  // run id -> the lease it acquired
  int64_t step_seq_ = 0;
  int64_t event_seq_ = 0;
};

}  // namespace

bool IsPostgresState(const std::string& location) {
  return location.rfind("postgres://", 0) == 0 || location.rfind("postgresql://", 0) == 0;
}

std::unique_ptr<StateStore> OpenPgStateStore(const std::string& url) { return std::make_unique<PgStateStore>(url); }

std::unique_ptr<db::Connection> OpenPgStateSchema(const std::string& url) {
  db::DbUrl u = ParseStateUrl(url);
  auto c = Connect(u, false);
  CreateSchema(*c, u.redacted);
  return c;
}

json ReadPgFacts(const std::string& url, const std::string& env) {
  db::DbUrl u = ParseStateUrl(url);
  auto c = Connect(u, true);
  try {
    auto exists = c->Query("SELECT to_regclass('hoist.facts') IS NOT NULL");
    if (!PgRow{exists.rows.at(0)}.Int(0)) return json::object();
    return PgStateStore::AllFacts(*c, env);
  } catch (const Error& e) {
    throw Error("state", "failed", fmt::format("cannot read the facts in state store {}: {}", u.redacted, e.message()));
  }
}

}  // namespace hoist::engine

#include "db/migrator.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "core/identity.h"
#include "core/log.h"
#include "db/migrate_classify.h"
#include "db/migrate_fk.h"
#include "db/migrate_schema.h"
#include "db/sql_split.h"
#include "sys/clock.h"

namespace hoist::db {
namespace {

using json = nlohmann::json;

[[noreturn]] void Fail(const std::string& code, const std::string& message) {
  throw Error("migrate", code, message);
}

bool IsPg(const Connection& c) { return c.url().engine == Engine::kPostgres; }
Dialect DialectOf(const Connection& c) { return IsPg(c) ? Dialect::kPostgres : Dialect::kSqlite; }

// Placeholder i (1-based) in the connection's dialect.
std::string P(const Connection& c, int i) { return (IsPg(c) ? "$" : "?") + std::to_string(i); }

int64_t AsInt(const Value& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  if (auto* s = std::get_if<std::string>(&v)) return std::stoll(*s);
  if (auto* b = std::get_if<bool>(&v)) return *b ? 1 : 0;
  if (auto* d = std::get_if<double>(&v)) return static_cast<int64_t>(*d);
  return 0;
}
double AsDouble(const Value& v) {
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (auto* s = std::get_if<std::string>(&v)) return std::stod(*s);
  return 0;
}
std::string AsText(const Value& v) {
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* b = std::get_if<Blob>(&v)) return b->bytes;
  return "";
}
std::optional<std::string> AsOptText(const Value& v) {
  if (std::holds_alternative<Null>(v)) return std::nullopt;
  return AsText(v);
}
bool AsBool(const Value& v) {
  if (auto* b = std::get_if<bool>(&v)) return *b;
  if (auto* i = std::get_if<int64_t>(&v)) return *i != 0;
  if (auto* s = std::get_if<std::string>(&v)) return *s == "t" || *s == "true" || *s == "1";
  return false;
}
Value Opt(const std::string& s) { return s.empty() ? Value(Null{}) : Value(s); }
Value Opt(const std::optional<std::string>& s) { return s ? Value(*s) : Value(Null{}); }

constexpr const char* kColumns =
    "version, name, file, kind, checksum, phase, no_transaction, down_source, applied_at, duration_ms, run_id, "
    "hoist_version, success, error, applied_by, class, reason, repaired_at, repaired_by";
constexpr int kColumnCount = 19;

std::string CreateTableSql(const Connection& c) {
  if (IsPg(c)) {
    return "CREATE TABLE IF NOT EXISTS hoist_schema_migrations (version bigint PRIMARY KEY, name text NOT NULL, "
           "file text NOT NULL, kind text NOT NULL, checksum text NOT NULL, phase text NOT NULL DEFAULT '', "
           "no_transaction boolean NOT NULL DEFAULT false, down_source text, applied_at text NOT NULL, "
           "duration_ms double precision NOT NULL DEFAULT 0, run_id bigint, hoist_version text NOT NULL, "
           "success boolean NOT NULL, error text, applied_by text NOT NULL, class text, reason text, "
           "repaired_at text, repaired_by text)";
  }
  return "CREATE TABLE IF NOT EXISTS hoist_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
         "file TEXT NOT NULL, kind TEXT NOT NULL, checksum TEXT NOT NULL, phase TEXT NOT NULL DEFAULT '', "
         "no_transaction INTEGER NOT NULL DEFAULT 0, down_source TEXT, applied_at TEXT NOT NULL, "
         "duration_ms REAL NOT NULL DEFAULT 0, run_id INTEGER, hoist_version TEXT NOT NULL, "
         "success INTEGER NOT NULL, error TEXT, applied_by TEXT NOT NULL, class TEXT, reason TEXT, "
         "repaired_at TEXT, repaired_by TEXT)";
}

bool TableExists(Connection& c) {
  if (IsPg(c)) {
    auto r = c.Query("SELECT to_regclass('hoist_schema_migrations') IS NOT NULL");
    return !r.rows.empty() && AsBool(r.rows[0][0]);
  }
  auto r = c.Query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hoist_schema_migrations'");
  return !r.rows.empty();
}

std::vector<AppliedMigration> ReadApplied(Connection& c) {
  std::vector<AppliedMigration> out;
  auto r = c.Query(std::string("SELECT ") + kColumns + " FROM hoist_schema_migrations ORDER BY version");
  for (const auto& row : r.rows) {
    AppliedMigration a;
    a.version = AsInt(row[0]);
    a.name = AsText(row[1]);
    a.file = AsText(row[2]);
    a.kind = AsText(row[3]);
    a.checksum = AsText(row[4]);
    a.phase = AsText(row[5]);
    a.no_transaction = AsBool(row[6]);
    a.down_source = AsOptText(row[7]);
    a.applied_at = AsText(row[8]);
    a.duration_ms = AsDouble(row[9]);
    if (!std::holds_alternative<Null>(row[10])) a.run_id = AsInt(row[10]);
    a.hoist_version = AsText(row[11]);
    a.success = AsBool(row[12]);
    a.error = AsText(row[13]);
    a.applied_by = AsText(row[14]);
    a.cls = AsText(row[15]);
    a.reason = AsText(row[16]);
    a.repaired_at = AsText(row[17]);
    a.repaired_by = AsText(row[18]);
    out.push_back(std::move(a));
  }
  return out;
}

std::string BuildUpsertSql(const Connection& c) {
  const std::string cols = kColumns;
  std::string values, updates;
  for (int i = 1; i <= kColumnCount; ++i) values += (i > 1 ? ", " : "") + P(c, i);
  size_t pos = 0;
  while (pos < cols.size()) {
    size_t comma = cols.find(',', pos);
    std::string col = cols.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    while (!col.empty() && col.front() == ' ') col.erase(0, 1);
    if (col != "version") updates += (updates.empty() ? "" : ", ") + col + " = excluded." + col;
    pos = comma == std::string::npos ? cols.size() : comma + 1;
  }
  return "INSERT INTO hoist_schema_migrations (" + cols + ") VALUES (" + values +
         ") ON CONFLICT (version) DO UPDATE SET " + updates;
}

const std::string& UpsertSql(const Connection& c) {
  thread_local std::string cached[2];  // by dialect
  std::string& slot = cached[IsPg(c) ? 1 : 0];
  if (slot.empty()) slot = BuildUpsertSql(c);
  return slot;
}

std::vector<Value> RowValues(const AppliedMigration& a) {
  std::vector<Value> p;
  p.reserve(kColumnCount);
  p.emplace_back(a.version);
  p.emplace_back(a.name);
  p.emplace_back(a.file);
  p.emplace_back(a.kind);
  p.emplace_back(a.checksum);
  p.emplace_back(a.phase);
  p.emplace_back(a.no_transaction);
  p.push_back(Opt(a.down_source));
  p.emplace_back(a.applied_at);
  p.emplace_back(a.duration_ms);
  p.push_back(a.run_id ? Value(*a.run_id) : Value(Null{}));
  p.emplace_back(a.hoist_version);
  p.emplace_back(a.success);
  p.push_back(Opt(a.error));
  p.emplace_back(a.applied_by);
  p.push_back(Opt(a.cls));
  p.push_back(Opt(a.reason));
  p.push_back(Opt(a.repaired_at));
  p.push_back(Opt(a.repaired_by));
  return p;
}

void Upsert(Connection& c, const AppliedMigration& a) { c.Exec(UpsertSql(c), RowValues(a)); }

void DeleteRow(Connection& c, int64_t version) {
  c.Exec("DELETE FROM hoist_schema_migrations WHERE version = " + P(c, 1), {Value(version)});
}

enum class Recorded { kNone, kFailed, kApplied };

// What the table holds for a version. kApplied right before applying means
// another migrator applied it meanwhile (one that held the lock before us,
// or whose lease we outlived): the exactly-once guard.
Recorded RecordOf(Connection& c, int64_t version) {
  auto r = c.Query("SELECT success FROM hoist_schema_migrations WHERE version = " + P(c, 1), {Value(version)});
  if (r.rows.empty()) return Recorded::kNone;
  return AsBool(r.rows[0][0]) ? Recorded::kApplied : Recorded::kFailed;
}

// Records a successful migration: a plain INSERT (cheaper to prepare than
// the upsert, and prepared once per migration on the hot path), replacing
// a failed attempt's row.
void RecordApplied(Connection& c, const AppliedMigration& a, Recorded before) {
  if (before == Recorded::kFailed) DeleteRow(c, a.version);
  static const std::string kInsertSqlite = [] {
    std::string v;
    for (int i = 1; i <= kColumnCount; ++i) v += (i > 1 ? ", ?" : "?") + std::to_string(i);
    return std::string("INSERT INTO hoist_schema_migrations (") + kColumns + ") VALUES (" + v + ")";
  }();
  static const std::string kInsertPg = [] {
    std::string v;
    for (int i = 1; i <= kColumnCount; ++i) v += (i > 1 ? ", $" : "$") + std::to_string(i);
    return std::string("INSERT INTO hoist_schema_migrations (") + kColumns + ") VALUES (" + v + ")";
  }();
  c.Exec(IsPg(c) ? kInsertPg : kInsertSqlite, RowValues(a));
}

std::string Short(const std::string& checksum) { return checksum.substr(0, 12); }

// The down section as stored: blank lines stand in for the file's lines
// above it, so a failing down statement is reported at its line in the
// file, as an up statement is.
std::string StoredDown(const MigrationFile& m) {
  return std::string(m.down_line > 1 ? static_cast<size_t>(m.down_line - 1) : 0, '\n') + m.down;
}

std::string VersionText(const std::optional<int64_t>& v) {
  return v ? fmt::format("is at version {}", *v) : std::string("has no migration applied");
}

std::string ErrorText(const std::exception& e) {
  if (auto* he = dynamic_cast<const Error*>(&e)) return he->message();
  return e.what();
}

// A database message that a sentence of ours follows: PostgreSQL's DETAIL
// and HINT end with a period, and ". It was rolled back" must not double it.
std::string Clause(std::string message) {
  while (!message.empty() && (message.back() == '.' || message.back() == ' ')) message.pop_back();
  return message;
}

std::string LuaChunk(const MigrationFile& m) { return "@" + m.path; }

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// ---- status -----------------------------------------------------------------

MigrationStatus ComputeStatus(const std::string& dir, bool tracked, const std::vector<MigrationFile>& files,
                              const std::vector<AppliedMigration>& rows) {
  MigrationStatus st;
  st.dir = dir;
  st.tracked = tracked;
  std::map<int64_t, const MigrationFile*> by_file;
  std::map<int64_t, const AppliedMigration*> by_row;
  for (const auto& f : files) by_file[f.version] = &f;
  for (const auto& r : rows) {
    by_row[r.version] = &r;
    if (!r.success) continue;
    if (!st.current || r.version > *st.current) st.current = r.version;
    if (r.kind == "baseline" && (!st.baseline || r.version > *st.baseline)) st.baseline = r.version;
  }
  std::set<int64_t> versions;
  for (const auto& [v, f] : by_file) versions.insert(v);
  for (const auto& [v, r] : by_row) versions.insert(v);
  for (int64_t v : versions) {
    StatusEntry e;
    e.version = v;
    auto fi = by_file.find(v);
    auto ri = by_row.find(v);
    if (fi != by_file.end()) e.file = *fi->second;
    if (ri != by_row.end()) e.applied = *ri->second;
    e.label = e.file ? e.file->file : (e.applied && !e.applied->file.empty() ? e.applied->file : std::to_string(v));
    if (e.applied && !e.applied->success) {
      e.state = "failed";
    } else if (e.applied && e.applied->kind == "baseline") {
      e.state = "baseline";
    } else if (e.applied) {
      if (!e.file) {
        e.state = "missing";
      } else if (!e.applied->checksum.empty() && e.applied->checksum != e.file->checksum) {
        e.state = "changed";
      } else {
        e.state = "applied";
      }
    } else if (st.baseline && v <= *st.baseline) {
      e.state = "baseline";
    } else if (st.current && v < *st.current) {
      e.state = "out_of_order";
    } else {
      e.state = "pending";
    }
    st.entries.push_back(std::move(e));
  }
  return st;
}

MigrationStatus ReadStatus(Connection& conn, const std::string& dir, const std::vector<MigrationFile>& files) {
  bool tracked = TableExists(conn);
  std::vector<AppliedMigration> rows;
  if (tracked) rows = ReadApplied(conn);
  return ComputeStatus(dir, tracked, files, rows);
}

std::vector<std::string> HistoryProblems(const MigrationStatus& st, const ValidateOptions& o, std::string* code) {
  std::vector<std::string> problems;
  auto note = [&](const char* c, std::string msg) {
    if (code->empty()) *code = c;
    problems.push_back(std::move(msg));
  };
  for (const auto& e : st.entries) {
    if (e.state == "changed" && !o.allow_changed) {
      note("changed", fmt::format("{} was changed after it was applied (applied {} with checksum {}, the file now has "
                                  "{}): restore the file as applied, or accept the change with "
                                  "migrate.repair(db, {{ dir = ..., reason = \"...\" }})",
                                  e.label, e.applied->applied_at, Short(e.applied->checksum),
                                  Short(e.file->checksum)));
    }
  }
  for (const auto& e : st.entries) {
    if (e.state == "missing" && !o.allow_missing) {
      note("missing", fmt::format("{} is applied (since {}) but its file is not in {}: roll it back with migrate.down "
                                  "(its down is stored), restore the file, or pass allow_missing = true",
                                  e.label, e.applied->applied_at, st.dir));
    }
  }
  for (const auto& e : st.entries) {
    if (e.state == "out_of_order" && !o.allow_out_of_order) {
      note("out_of_order", fmt::format("{} is pending but older than the current version {} (it was added after "
                                       "later migrations were applied): renumber it above {}, or apply it with "
                                       "allow_out_of_order = true",
                                       e.label, *st.current, *st.current));
    }
  }
  return problems;
}

void ThrowProblems(const std::string& code, const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  if (problems.size() == 1) Fail(code, problems[0]);
  Fail(code, fmt::format("{} problems with the migration history: {}", problems.size(), Join(problems, "; ")));
}

// ---- applying ---------------------------------------------------------------

constexpr int kAtCommit = -2;

// A statement of a migration failed: which one, and why.
struct StatementFailure {
  int index = -1;  // 0-based; -1 = Lua or no statement; kAtCommit = the checks before COMMIT, or COMMIT
  std::string message;
};

// A database error that ends a migration's transaction (a deferred
// constraint at COMMIT, say) rather than Ctrl-C or a step timeout.
bool IsCommitFailure(const Error& e) {
  return e.area() == "db" && e.code() != "interrupted" && e.code() != "timeout";
}

// PRAGMA foreign_keys in a migration does nothing (hoist runs it in a
// transaction, where SQLite ignores it): say so instead of silently.
void WarnForeignKeysPragma(const MigrationFile& m, const std::vector<Statement>& statements, int first_line) {
  for (const auto& st : statements) {
    std::string head;
    for (char ch : st.sql) {
      if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') continue;
      head += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (head.size() >= 18) break;
    }
    if (head.rfind("pragmaforeign_keys", 0) == 0) {
      log::Warn(fmt::format("{}:{}: PRAGMA foreign_keys inside a migration has no effect (SQLite ignores it in a "
                            "transaction); hoist already runs every migration with foreign keys off and checks them "
                            "(PRAGMA foreign_key_check) before COMMIT",
                            m.file, first_line + st.line - 1));
    }
  }
}

class Applier {
 public:
  Applier(Connection& conn, const MigrateEnv& env) : conn_(conn), env_(env), probe_(conn) {
    applied_by_ = env.applied_by.empty() ? DefaultOperator() : env.applied_by;
  }

  AppliedMigration RowFor(const MigrationFile& m, const std::string& phase, bool no_tx, bool has_down) const {
    AppliedMigration a;
    a.version = m.version;
    a.name = m.name;
    a.file = m.file;
    a.kind = m.kind;
    a.checksum = m.checksum;
    a.phase = phase;
    a.no_transaction = no_tx;
    if (m.kind == "lua") {
      a.down_source = m.source;  // the whole file: down() is looked up when rolling back
    } else if (has_down) {
      a.down_source = StoredDown(m);
    }
    a.applied_at = sys::NowIso();
    a.run_id = env_.run_id;
    a.hoist_version = HOIST_VERSION;
    a.applied_by = applied_by_;
    return a;
  }

  void Event(const std::string& action, int64_t version, const std::string& file, double seconds, json data) {
    if (env_.on_event) env_.on_event({action, version, file, seconds, std::move(data)});
  }

  LuaMigrationHost::Info Inspect(const MigrationFile& m) {
    if (!env_.lua) {
      Fail("needs_lua", fmt::format("{} is a Lua migration: apply it from a playbook (require \"hoist.migrate\"), "
                                    "which runs Lua",
                                    m.file));
    }
    return env_.lua->Inspect(m.source, LuaChunk(m));
  }

  // Declared phase and transaction mode of a migration (Lua: header or table).
  void Describe(const MigrationFile& m, std::string* phase, bool* no_tx, bool* has_down) {
    *phase = m.phase;
    *no_tx = m.no_transaction;
    *has_down = m.has_down;
    if (m.kind != "lua") return;
    auto info = Inspect(m);
    if (!info.phase.empty()) {
      if (info.phase != "expand" && info.phase != "contract") {
        Fail("invalid", fmt::format("{}: phase = \"{}\" (expected \"expand\" or \"contract\")", m.file, info.phase));
      }
      if (!m.phase.empty() && m.phase != info.phase) {
        Fail("invalid", fmt::format("{}: the header says phase {} but the table says phase = \"{}\"", m.file, m.phase,
                                    info.phase));
      }
      *phase = info.phase;
    }
    if (info.transaction && !*info.transaction) *no_tx = true;
    *has_down = info.has_down;
  }

  const SchemaSnapshot& Before() {
    int64_t cookie = probe_.Cookie();
    if (!cached_ || cookie < 0 || cookie != cached_->cookie) cached_ = probe_.Take();
    return *cached_;
  }

  // Runs the statements (or the Lua up/down) of one migration on conn_.
  void RunBody(const MigrationFile& m, const std::vector<Statement>& statements, bool up,
               const std::optional<std::string>& lua_source, const std::string& chunk,
               const StatementHook& after = nullptr) {
    if (lua_source) {
      try {
        env_.lua->Run(conn_, *lua_source, chunk, up);
      } catch (const std::exception& e) {
        throw StatementFailure{-1, ErrorText(e)};
      }
      return;
    }
    (void)m;
    for (size_t i = 0; i < statements.size(); ++i) {
      try {
        conn_.Exec(statements[i].sql);
      } catch (const std::exception& e) {
        throw StatementFailure{static_cast<int>(i), ErrorText(e)};
      }
      if (after) after(static_cast<int>(i));
    }
  }

  // Re-runs a refused migration statement by statement in a transaction
  // that is rolled back, to find the first statement after which it is as
  // bad as it is in all (the DROP of a rebuild, not its harmless RENAME).
  int FindRefusedStatement(const std::vector<Statement>& statements, MigrationClass worst) {
    struct Stop {};
    int found = -1;
    try {
      conn_.Tx([&] {
        SchemaSnapshot before = probe_.Take();
        std::vector<Statement> so_far;
        for (size_t i = 0; i < statements.size(); ++i) {
          conn_.Exec(statements[i].sql);
          so_far.push_back(statements[i]);
          SchemaSnapshot now = probe_.Take();
          auto cmp = probe_.Compare(before, now);
          auto cls = Classify(cmp.before, cmp.after, cmp.diff, so_far);
          if (cls.cls == worst) {
            found = static_cast<int>(i);
            throw Stop{};
          }
        }
        throw Stop{};
      });
    } catch (const Stop&) {
    } catch (const std::exception&) {
    }
    cached_.reset();
    return found;
  }

  std::string Where(const MigrationFile& m, const std::vector<Statement>& statements, int index) const {
    if (index == kAtCommit) return "before COMMIT";
    if (m.kind == "lua") return "in its up function";
    if (index < 0 || index >= static_cast<int>(statements.size())) return "";
    const auto& s = statements[static_cast<size_t>(index)];
    return fmt::format("at statement {} (line {}: {})", index + 1, m.up_line + s.line - 1, StatementHead(s.sql));
  }

  // Applies one pending migration. Returns false when another migrator had
  // applied it meanwhile.
  bool Apply(const MigrationFile& m, const UpOptions& o, std::optional<int64_t>& current, UpResult& result) {
    std::string phase;
    bool no_tx = false, has_down = false;
    Describe(m, &phase, &no_tx, &has_down);
    const bool expand = o.policy == "expand";
    const std::string stays = VersionText(current);
    if (expand && phase == "contract" && !o.allow_contract) {
      Event("refuse", m.version, m.file, 0, {{"reason", "declared contract"}});
      Fail("refused", fmt::format("{} is declared '-- hoist:phase contract': policy expand applies it only with "
                                  "allow_contract = true, once the previous version of the app is gone. Nothing of "
                                  "it was applied; the database {}",
                                  m.file, stays));
    }
    std::vector<Statement> statements;
    if (m.kind == "sql") statements = SplitSql(m.up, DialectOf(conn_));
    std::optional<std::string> lua_source;
    if (m.kind == "lua") lua_source = m.source;
    AppliedMigration row = RowFor(m, phase, no_tx, has_down);
    if (MayDestroy(m, statements, phase, o)) {
      BeforeDestructive(fmt::format("{} ({})", m.file, phase == "contract" ? "a contract migration"
                                                       : m.kind == "lua"   ? "a Lua migration under policy any"
                                                                           : "it drops or deletes data"));
    }
    const double t0 = sys::Monotonic();
    Classification cls;
    bool measured = false, skipped = false;

    if (no_tx) {
      if (expand && !(phase == "contract" && o.allow_contract)) {
        for (size_t i = 0; i < statements.size(); ++i) {
          auto c = ClassifyStatementText(statements[i].sql);
          if (c && RefusedByExpand(c->cls, phase, o.allow_contract)) {
            Event("refuse", m.version, m.file, 0, {{"class", ClassName(c->cls)}, {"what", c->what}});
            Fail("refused",
                 fmt::format("{} is {} ({}: {}) {}; policy expand refuses it: a no-transaction migration cannot be "
                             "checked and rolled back, so its text decides. Declare it '-- hoist:phase contract' and "
                             "apply it with allow_contract = true once the previous version is gone. Nothing of it "
                             "was applied; the database {}",
                             m.file, ClassName(c->cls), c->what, c->why,
                             Where(m, statements, static_cast<int>(i)), stays));
          }
        }
      }
      const Recorded recorded = RecordOf(conn_, m.version);
      if (recorded == Recorded::kApplied) {
        skipped = true;
      } else {
        try {
          RunBody(m, statements, true, lua_source, LuaChunk(m));
        } catch (const StatementFailure& f) {
          row.success = false;
          row.duration_ms = (sys::Monotonic() - t0) * 1000;
          std::string done = f.index > 1    ? fmt::format("statements 1-{} stay applied", f.index)
                             : f.index == 1 ? std::string("statement 1 stays applied")
                                            : std::string("nothing of it was applied");
          std::string msg = fmt::format(
              "{} failed {}: {}. It runs without a transaction (-- hoist:no-transaction): {}; it is recorded as "
              "failed and blocks further migrations until you check the database and drop the record with "
              "migrate.repair(db, {{ reason = \"...\" }}); the database {}",
              m.file, Where(m, statements, f.index), Clause(f.message), done, stays);
          row.error = msg;
          RecordFailure(row, &msg);
          Event("fail", m.version, m.file, sys::Monotonic() - t0, {{"error", msg}});
          Fail("failed", msg);
        }
        row.duration_ms = (sys::Monotonic() - t0) * 1000;
        conn_.Tx([&] { RecordApplied(conn_, row, RecordOf(conn_, m.version)); });
      }
    } else {
      if (m.kind == "sql" && !IsPg(conn_)) WarnForeignKeysPragma(m, statements, m.up_line);
      ForeignKeysOff fk_off(conn_, RenameAsideRebuild(statements));
      auto dropped = m.kind == "sql" ? DroppedTables(statements) : std::vector<std::pair<std::string, int>>{};
      std::map<std::string, int64_t> rows_before;
      int rows_lost_at = -1;
      try {
        conn_.Tx([&] {
          const Recorded recorded = RecordOf(conn_, m.version);
          if (recorded == Recorded::kApplied) {
            skipped = true;
            return;
          }
          const SchemaSnapshot* before = expand ? &Before() : nullptr;
          // Rows of the tables it drops: a table recreated without them is
          // destructive, whatever the schema diff says.
          if (expand) {
            rows_before = CountRows(conn_, dropped);
            RunMeasuringDrops(conn_, dropped, rows_before, [&](const StatementHook& after) {
              RunBody(m, statements, true, lua_source, LuaChunk(m), after);
            });
          } else {
            RunBody(m, statements, true, lua_source, LuaChunk(m));
          }
          if (std::string broken = ForeignKeyViolations(conn_); !broken.empty()) {
            throw StatementFailure{kAtCommit, broken};
          }
          if (expand) {
            SchemaSnapshot after = probe_.Take();
            auto cmp = probe_.Compare(*before, after);
            cls = Classify(cmp.before, cmp.after, cmp.diff, statements);
            rows_lost_at = CheckRowsSurvived(cls, dropped, rows_before, CountRows(conn_, dropped));
            measured = true;
            if (RefusedByExpand(cls.cls, phase, o.allow_contract)) throw cls;
            row.cls = ClassName(cls.cls);
            cached_ = std::move(after);
          }
          row.duration_ms = (sys::Monotonic() - t0) * 1000;
          RecordApplied(conn_, row, recorded);
        });
      } catch (const Classification& refused) {
        cached_.reset();
        int at = rows_lost_at >= 0 ? rows_lost_at
                 : m.kind == "sql"  ? FindRefusedStatement(statements, refused.cls)
                                    : -1;
        // A rebuild's schema looks destructive as soon as the new table
        // exists; its data goes at the DROP TABLE that follows.
        if (at >= 0 && refused.cls == MigrationClass::kDestructive && rows_lost_at < 0) {
          for (const auto& [name, index] : dropped) {
            if (index >= at) {
              at = index;
              break;
            }
          }
        }
        const auto& c = refused.changes.front();
        std::string declared = phase == "expand" ? ", although it is declared expand" : "";
        std::string where = Where(m, statements, at);
        Event("refuse", m.version, m.file, sys::Monotonic() - t0, refused.ToJson());
        Fail("refused",
             fmt::format("{} is {} ({}: {}){}{}; policy expand refuses it. Declare it '-- hoist:phase contract' and "
                         "apply it with allow_contract = true once the previous version is gone, or split it into an "
                         "expand and a contract migration. It was rolled back; the database {}",
                         m.file, ClassName(refused.cls), c.what, c.why, where.empty() ? "" : " " + where, declared,
                         stays));
      } catch (const StatementFailure& f) {
        cached_.reset();
        row.success = false;
        row.duration_ms = (sys::Monotonic() - t0) * 1000;
        std::string msg = fmt::format("{} failed {}: {}. It was rolled back and recorded as failed; the database {}",
                                      m.file, Where(m, statements, f.index), Clause(f.message), stays);
        row.error = msg;
        RecordFailure(row, &msg);
        Event("fail", m.version, m.file, sys::Monotonic() - t0, {{"error", msg}});
        Fail("failed", msg);
      } catch (const Error& e) {
        // Everything ran; the transaction's end (COMMIT, a deferred
        // constraint) refused it: the same context as a failed statement.
        if (!IsCommitFailure(e)) throw;
        cached_.reset();
        row.success = false;
        row.duration_ms = (sys::Monotonic() - t0) * 1000;
        std::string msg = fmt::format("{} failed at COMMIT: {}. It was rolled back and recorded as failed; the "
                                      "database {}",
                                      m.file, Clause(ErrorText(e)), stays);
        row.error = msg;
        RecordFailure(row, &msg);
        Event("fail", m.version, m.file, sys::Monotonic() - t0, {{"error", msg}});
        Fail("failed", msg);
      }
    }
    double seconds = sys::Monotonic() - t0;
    if (skipped) {
      result.skipped.push_back(m.file);
      Event("skip", m.version, m.file, seconds, {{"reason", "applied by another migrator meanwhile"}});
      return false;
    }
    if (!current || m.version > *current) current = m.version;
    result.applied.push_back({m.version, m.file, seconds, measured ? ClassName(cls.cls) : ""});
    if (env_.on_event) {
      json data = {{"statements", statements.size()}, {"transaction", !no_tx}, {"kind", m.kind}};
      if (measured) data["class"] = cls.ToJson();
      Event("apply", m.version, m.file, seconds, std::move(data));
    }
    return true;
  }

  // Whether applying m can destroy data that no check inside its
  // transaction refuses: expand refuses the rest before COMMIT.
  static bool MayDestroy(const MigrationFile& m, const std::vector<Statement>& statements, const std::string& phase,
                         const UpOptions& o) {
    if (phase == "contract" && o.allow_contract) return true;
    if (o.policy == "expand") return false;
    if (m.kind == "lua") return true;
    for (const auto& st : statements) {
      auto c = ClassifyStatementText(st.sql);
      if (c && c->cls == MigrationClass::kDestructive) return true;
    }
    return false;
  }

  // Once per call: the host's safety backup before the first destructive step.
  void BeforeDestructive(const std::string& what) {
    if (backed_up_ || !env_.before_destructive) return;
    env_.before_destructive(what);
    backed_up_ = true;
  }

  void RecordFailure(const AppliedMigration& row, std::string* msg) {
    try {
      conn_.Tx([&] { Upsert(conn_, row); });
    } catch (const std::exception& e) {
      *msg += fmt::format(" (recording the failure failed too: {})", ErrorText(e));
    }
  }

  Connection& conn() { return conn_; }

 private:
  Connection& conn_;
  const MigrateEnv& env_;
  SchemaProbe probe_;
  std::optional<SchemaSnapshot> cached_;
  std::string applied_by_;
  bool backed_up_ = false;
};

json PlanEntry(const MigrationFile& m, Dialect d, bool up) {
  json statements = json::array();
  if (m.kind == "lua") {
    statements.push_back(fmt::format("-- Lua: the {} function of {}", up ? "up" : "down", m.file));
  } else {
    for (const auto& s : SplitSql(up ? m.up : m.down, d)) statements.push_back(s.sql);
  }
  return {{"version", m.version}, {"file", m.file}, {"transaction", !m.no_transaction}, {"statements", statements}};
}

void LogPlan(const MigrateEnv& env, const json& plan, const char* what) {
  if (!env.log) return;
  if (plan.empty()) {
    env.log(fmt::format("dry run: nothing to {}", what));
    return;
  }
  for (const auto& p : plan) {
    std::string text = fmt::format("-- {} {}{}\n", what, p["file"].get<std::string>(),
                                   p["transaction"].get<bool>() ? "" : " (no transaction)");
    for (const auto& s : p["statements"]) {
      const auto& sql = s.get_ref<const std::string&>();
      text += sql + (sql.rfind("--", 0) == 0 ? "\n" : ";\n");
    }
    env.log(text);
  }
}

void EnsureTable(Connection& c) { c.Exec(CreateTableSql(c)); }

}  // namespace

// ---- public -------------------------------------------------------------------

std::string DefaultOperator() { return OperatorAtHost(); }

json AppliedMigration::ToJson() const {
  auto opt = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return {{"version", version},
          {"name", name},
          {"file", file},
          {"kind", kind},
          {"checksum", checksum},
          {"phase", opt(phase)},
          {"no_transaction", no_transaction},
          {"has_down", down_source.has_value()},
          {"applied_at", applied_at},
          {"duration_ms", duration_ms},
          {"run_id", run_id ? json(*run_id) : json(nullptr)},
          {"hoist_version", hoist_version},
          {"success", success},
          {"error", opt(error)},
          {"applied_by", applied_by},
          {"class", opt(cls)},
          {"reason", opt(reason)},
          {"repaired_at", opt(repaired_at)},
          {"repaired_by", opt(repaired_by)}};
}

std::vector<std::string> MigrationStatus::Labels(const std::string& state) const {
  std::vector<std::string> out;
  for (const auto& e : entries) {
    if (e.state == state) out.push_back(e.label);
  }
  return out;
}

size_t MigrationStatus::Count(const std::string& state) const {
  return static_cast<size_t>(
      std::count_if(entries.begin(), entries.end(), [&](const StatusEntry& e) { return e.state == state; }));
}

json MigrationStatus::ToJson() const {
  json list = json::array();
  for (const auto& e : entries) {
    json j = {{"version", e.version}, {"file", e.label}, {"state", e.state}};
    if (e.file) {
      j["name"] = e.file->name;
      j["kind"] = e.file->kind;
      j["checksum"] = e.file->checksum;
      j["phase"] = e.file->phase.empty() ? json(nullptr) : json(e.file->phase);
      j["no_transaction"] = e.file->no_transaction;
    }
    if (e.applied) {
      const auto& a = *e.applied;
      if (!e.file) {
        j["name"] = a.name;
        j["kind"] = a.kind;
        j["phase"] = a.phase.empty() ? json(nullptr) : json(a.phase);
        j["no_transaction"] = a.no_transaction;
      }
      j["applied"] = a.ToJson();
      j["applied_at"] = a.applied_at;
      j["applied_checksum"] = a.checksum;
    }
    list.push_back(std::move(j));
  }
  json counts = json::object();
  for (const char* s : {"applied", "pending", "changed", "missing", "failed", "out_of_order", "baseline"}) {
    counts[s] = Count(s);
  }
  bool ok = Count("changed") == 0 && Count("missing") == 0 && Count("failed") == 0 && Count("out_of_order") == 0;
  return {{"dir", dir},
          {"tracked", tracked},
          {"current", current ? json(*current) : json(nullptr)},
          {"baseline", baseline ? json(*baseline) : json(nullptr)},
          {"ok", ok},
          {"counts", counts},
          {"pending", Labels("pending")},
          {"changed", Labels("changed")},
          {"missing", Labels("missing")},
          {"failed", Labels("failed")},
          {"out_of_order", Labels("out_of_order")},
          {"migrations", list}};
}

std::string MigrationStatus::Text() const {
  std::string out;
  std::vector<std::string> parts;
  for (const char* s : {"applied", "pending", "changed", "missing", "failed", "out_of_order", "baseline"}) {
    if (size_t n = Count(s)) parts.push_back(fmt::format("{} {}", n, std::string(s) == "out_of_order" ? "out of order" : s));
  }
  out += fmt::format("current version: {}{}\n", current ? std::to_string(*current) : "none",
                     parts.empty() ? "" : " (" + Join(parts, ", ") + ")");
  if (!tracked) out += "no hoist_schema_migrations table yet: hoist has applied nothing here\n";
  if (entries.empty()) {
    out += "no migrations in " + dir + "\n";
    return out;
  }
  size_t w = 7;
  for (const auto& e : entries) w = std::max(w, std::to_string(e.version).size());
  out += fmt::format("{:>{}}  {:<12}  {:<8}  {:<24}  {}\n", "VERSION", w, "STATE", "PHASE", "APPLIED AT", "FILE");
  for (const auto& e : entries) {
    std::string phase = e.file ? e.file->phase : e.applied ? e.applied->phase : "";
    std::string at = e.applied ? e.applied->applied_at : "";
    std::string state = e.state == "out_of_order" ? "out-of-order" : e.state;
    out += fmt::format("{:>{}}  {:<12}  {:<8}  {:<24}  {}\n", e.version, w, state, phase.empty() ? "-" : phase,
                       at.empty() ? "-" : at, e.label);
    if (e.state == "failed" && e.applied && !e.applied->error.empty()) {
      out += fmt::format("{:>{}}  error: {}\n", "", w, e.applied->error);
    }
  }
  return out;
}

MigrationStatus Status(Connection& conn, const std::string& dir) {
  auto files = LoadMigrationDir(dir);
  return ReadStatus(conn, dir, files);
}

MigrationStatus Validate(Connection& conn, const std::string& dir, const ValidateOptions& options) {
  auto st = Status(conn, dir);
  std::string code;
  auto problems = HistoryProblems(st, options, &code);
  ThrowProblems(code, problems);
  return st;
}

json UpResult::ToJson() const {
  json a = json::array();
  for (const auto& s : applied) {
    a.push_back({{"version", s.version}, {"file", s.file}, {"seconds", s.seconds},
                 {"class", s.cls.empty() ? json(nullptr) : json(s.cls)}});
  }
  return {{"from", from ? json(*from) : json(nullptr)},
          {"to", to ? json(*to) : json(nullptr)},
          {"applied", a},
          {"skipped", skipped},
          {"dry_run", dry_run},
          {"plan", plan},
          {"lock_wait_seconds", lock_wait_seconds}};
}

UpResult Up(Connection& conn, const std::string& dir, const UpOptions& o, const MigrateEnv& env) {
  if (o.policy != "expand" && o.policy != "any") {
    Fail("invalid", fmt::format("unknown policy '{}' (expected \"expand\" or \"any\")", o.policy));
  }
  auto files = LoadMigrationDir(dir);
  UpResult result;
  result.dry_run = o.dry_run;

  auto plan = [&](const MigrationStatus& st) {
    std::string code;
    ValidateOptions v;
    v.allow_missing = o.allow_missing;
    v.allow_out_of_order = o.allow_out_of_order;
    auto problems = HistoryProblems(st, v, &code);
    ThrowProblems(code, problems);
    for (const auto& e : st.entries) {
      if (e.state == "failed" && e.applied->no_transaction) {
        Fail("partial", fmt::format("{} failed part-way on {} and ran without a transaction, so some of it may be "
                                    "applied: check the database, then drop the record with migrate.repair(db, {{ "
                                    "reason = \"...\" }}) to apply it again. Its error: {}",
                                    e.label, e.applied->applied_at, e.applied->error));
      }
    }
    std::vector<const MigrationFile*> todo;
    for (const auto& e : st.entries) {
      bool wanted = e.state == "pending" || (e.state == "failed" && e.file) ||
                    (e.state == "out_of_order" && o.allow_out_of_order);
      if (!wanted || !e.file) continue;
      if (o.to && e.version > *o.to) continue;
      todo.push_back(&*e.file);
    }
    return todo;
  };

  if (o.dry_run) {
    auto st = ReadStatus(conn, dir, files);
    result.from = result.to = st.current;
    for (const auto* m : plan(st)) result.plan.push_back(PlanEntry(*m, DialectOf(conn), true));
    LogPlan(env, result.plan, "apply");
    return result;
  }

  Applier applier(conn, env);
  const double wait_start = sys::Monotonic();
  conn.Lock(kMigrateLockName, env.lock, [&] {
    result.lock_wait_seconds = sys::Monotonic() - wait_start;
    EnsureTable(conn);
    auto st = ReadStatus(conn, dir, files);
    result.from = st.current;
    std::optional<int64_t> current = st.current;
    try {
      for (const auto* m : plan(st)) applier.Apply(*m, o, current, result);
    } catch (...) {
      result.to = current;
      throw;
    }
    result.to = current;
  });
  return result;
}

json DownResult::ToJson() const {
  json a = json::array();
  for (const auto& s : rolled_back) a.push_back({{"version", s.version}, {"file", s.file}, {"seconds", s.seconds}});
  return {{"from", from ? json(*from) : json(nullptr)},
          {"to", to ? json(*to) : json(nullptr)},
          {"rolled_back", a},
          {"dry_run", dry_run},
          {"plan", plan}};
}

DownResult Down(Connection& conn, const DownOptions& o, const MigrateEnv& env) {
  if (o.steps && *o.steps < 1) Fail("invalid", "steps must be at least 1");
  if (o.steps && o.to) Fail("invalid", "pass either steps or to, not both");
  DownResult result;
  result.dry_run = o.dry_run;
  auto body = [&] {
    if (!TableExists(conn)) {
      Fail("not_tracked", conn.redacted() + " has no hoist_schema_migrations table: hoist has applied nothing there");
    }
    auto rows = ReadApplied(conn);
    std::vector<AppliedMigration> applied;
    for (auto& r : rows) {
      if (r.success) applied.push_back(r);
    }
    std::sort(applied.begin(), applied.end(), [](const auto& a, const auto& b) { return a.version > b.version; });
    if (!applied.empty()) result.from = applied.front().version;
    std::vector<AppliedMigration> targets;
    if (o.to) {
      for (const auto& a : applied) {
        if (a.version > *o.to) targets.push_back(a);
      }
    } else {
      int64_t steps = o.steps.value_or(1);
      if (static_cast<size_t>(steps) > applied.size()) {
        Fail("invalid", fmt::format("cannot roll back {} migration{}: only {} {} applied", steps, steps == 1 ? "" : "s",
                                    applied.size(), applied.size() == 1 ? "is" : "are"));
      }
      targets.assign(applied.begin(), applied.begin() + steps);
    }
    // Check every target before touching anything.
    std::vector<std::optional<LuaMigrationHost::Info>> infos;
    for (const auto& a : targets) {
      if (a.kind == "baseline") {
        Fail("baseline", fmt::format("cannot roll back {}: it is the baseline (recorded {}{}), the schema up to it "
                                     "predates hoist; nothing was rolled back",
                                     a.file, a.applied_at, a.reason.empty() ? "" : ": " + a.reason));
      }
      std::optional<LuaMigrationHost::Info> info;
      if (a.kind == "lua") {
        if (!env.lua) {
          Fail("needs_lua", fmt::format("{} is a Lua migration: roll it back from a playbook (require "
                                        "\"hoist.migrate\"), which runs Lua; nothing was rolled back",
                                        a.file));
        }
        if (a.down_source) info = env.lua->Inspect(*a.down_source, "@" + a.file + " (as applied)");
        if (!info || !info->has_down) {
          Fail("no_down", fmt::format("cannot roll back {}: its table has no down function (as applied on {}); "
                                      "nothing was rolled back",
                                      a.file, a.applied_at));
        }
      } else if (!a.down_source) {
        Fail("no_down", fmt::format("cannot roll back {}: it has no '-- hoist:down' section (none was stored when it "
                                    "was applied on {}); nothing was rolled back",
                                    a.file, a.applied_at));
      }
      infos.push_back(info);
    }
    std::optional<int64_t> current = result.from;
    auto next_current = [&](int64_t below) {
      std::optional<int64_t> v;
      for (const auto& a : applied) {
        if (a.version < below && (!v || a.version > *v)) v = a.version;
      }
      return v;
    };
    for (const auto& a : targets) {
      MigrationFile m;
      m.version = a.version;
      m.file = a.file;
      m.kind = a.kind == "lua" ? "lua" : "sql";
      m.down = a.down_source.value_or("");
      m.no_transaction = a.no_transaction;
      if (o.dry_run) {
        json p = PlanEntry(m, DialectOf(conn), false);
        result.plan.push_back(p);
        continue;
      }
    }
    if (o.dry_run) {
      result.to = targets.empty() ? result.from : next_current(targets.back().version);
      LogPlan(env, result.plan, "roll back");
      return;
    }
    if (!targets.empty() && env.before_destructive) {
      auto below = next_current(targets.back().version);
      env.before_destructive(fmt::format("rolling back {} migration{} (to {})", targets.size(),
                                         targets.size() == 1 ? "" : "s",
                                         below ? "version " + std::to_string(*below) : std::string("none")));
    }
    for (const auto& a : targets) {
      const double t0 = sys::Monotonic();
      std::vector<Statement> statements;
      std::optional<std::string> lua;
      std::string chunk = "@" + a.file + " (as applied)";
      if (a.kind == "lua") {
        lua = a.down_source;
      } else {
        statements = SplitSql(*a.down_source, DialectOf(conn));
      }
      auto run = [&] {
        if (lua) {
          try {
            env.lua->Run(conn, *lua, chunk, false);
          } catch (const std::exception& e) {
            throw StatementFailure{-1, ErrorText(e)};
          }
          return;
        }
        for (size_t i = 0; i < statements.size(); ++i) {
          try {
            conn.Exec(statements[i].sql);
          } catch (const std::exception& e) {
            throw StatementFailure{static_cast<int>(i), ErrorText(e)};
          }
        }
      };
      try {
        if (a.no_transaction) {
          run();
          conn.Tx([&] { DeleteRow(conn, a.version); });
        } else {
          ForeignKeysOff fk_off(conn, RenameAsideRebuild(statements));
          try {
            conn.Tx([&] {
              run();
              if (std::string broken = ForeignKeyViolations(conn); !broken.empty()) {
                throw StatementFailure{kAtCommit, broken};
              }
              DeleteRow(conn, a.version);
            });
          } catch (const Error& e) {
            if (!IsCommitFailure(e)) throw;
            throw StatementFailure{kAtCommit, "COMMIT: " + ErrorText(e)};
          }
        }
      } catch (const StatementFailure& f) {
        std::string where = f.index == kAtCommit ? "before COMMIT"
                            : f.index < 0         ? "in its down function"
                                                  : fmt::format("at statement {} of its down (line {}: {})", f.index + 1,
                                                                statements[static_cast<size_t>(f.index)].line,
                                                                StatementHead(statements[static_cast<size_t>(f.index)].sql));
        std::string msg = fmt::format("rolling back {} failed {}: {}. {}; the database {}", a.file, where,
                                      Clause(f.message),
                                      a.no_transaction ? "It runs without a transaction: earlier statements of the "
                                                         "down stay applied and it is still recorded as applied"
                                                       : "It was rolled back and stays applied",
                                      VersionText(current));
        if (env.on_event) env.on_event({"fail", a.version, a.file, sys::Monotonic() - t0, {{"error", msg}}});
        result.to = current;
        Fail("failed", msg);
      }
      double seconds = sys::Monotonic() - t0;
      current = next_current(a.version);
      result.rolled_back.push_back({a.version, a.file, seconds, ""});
      if (env.on_event) {
        env.on_event({"rollback", a.version, a.file, seconds, {{"statements", statements.size()}, {"kind", a.kind}}});
      }
    }
    result.to = current;
  };
  if (o.dry_run) {
    body();
  } else {
    conn.Lock(kMigrateLockName, env.lock, body);
  }
  return result;
}

// ---- baseline and imports ---------------------------------------------------

namespace {

struct Imported {
  int64_t version = 0;
  std::string name;
  std::string raw;  // as the other tracker has it
};

// "20240101120000_AddUsers", "001_init.sql", "migrations/0003_x.up.sql" ->
// version and name; false when there is no numeric prefix.
bool ParseImportedName(std::string raw, Imported* out) {
  out->raw = raw;
  if (auto slash = raw.find_last_of('/'); slash != std::string::npos) raw = raw.substr(slash + 1);
  for (const char* ext : {".sql", ".lua", ".js", ".ts", ".py", ".cs"}) {
    if (raw.ends_with(ext)) raw.resize(raw.size() - std::string_view(ext).size());
  }
  for (const char* ext : {".up", ".down"}) {
    if (raw.ends_with(ext)) raw.resize(raw.size() - std::string_view(ext).size());
  }
  size_t i = 0;
  while (i < raw.size() && raw[i] >= '0' && raw[i] <= '9') ++i;
  if (i == 0 || i > 18) return false;
  out->version = std::stoll(raw.substr(0, i));
  size_t start = i;
  while (start < raw.size() && (raw[start] == '_' || raw[start] == '-')) ++start;
  out->name = raw.substr(start);
  return true;
}

std::string QuoteIdent(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

json BaselineResult::ToJson() const {
  json a = json::array();
  for (const auto& s : recorded) a.push_back({{"version", s.version}, {"file", s.file}, {"kind", s.cls}});
  return {{"recorded", a}, {"baseline", baseline ? json(*baseline) : json(nullptr)}, {"source", source}};
}

BaselineResult Baseline(Connection& conn, const BaselineOptions& o, const MigrateEnv& env) {
  if (o.version.has_value() == !o.import.empty()) {
    Fail("invalid", "baseline needs either a version or import = \"efcore\" | \"alembic\" | \"table\"");
  }
  if (!o.import.empty() && o.import != "efcore" && o.import != "alembic" && o.import != "table") {
    Fail("invalid", fmt::format("unknown import '{}' (expected \"efcore\", \"alembic\" or \"table\")", o.import));
  }
  std::vector<MigrationFile> files;
  if (!o.dir.empty()) files = LoadMigrationDir(o.dir);
  std::map<int64_t, const MigrationFile*> by_version;
  for (const auto& f : files) by_version[f.version] = &f;
  BaselineResult result;
  const std::string by = env.applied_by.empty() ? DefaultOperator() : env.applied_by;

  conn.Lock(kMigrateLockName, env.lock, [&] {
    EnsureTable(conn);
    auto rows = ReadApplied(conn);
    for (const auto& r : rows) {
      if (r.success) {
        Fail("already_tracked", fmt::format("{} already has hoist migration records (the latest: {}): baseline is "
                                            "for databases that predate hoist",
                                            conn.redacted(), rows.back().file));
      }
    }
    auto base_row = [&](int64_t version, const std::string& kind, const std::string& reason) {
      AppliedMigration a;
      a.version = version;
      a.kind = kind;
      auto it = by_version.find(version);
      if (it != by_version.end()) {
        const MigrationFile& f = *it->second;
        a.name = f.name;
        a.file = f.file;
        a.checksum = f.checksum;
        a.phase = f.phase;
        a.no_transaction = f.no_transaction;
        if (kind != "baseline") {
          a.kind = f.kind;
          if (f.kind == "lua") a.down_source = f.source;
          else if (f.has_down) a.down_source = StoredDown(f);
        }
      } else {
        a.name = kind == "baseline" ? "baseline" : "";
        a.file = fmt::format("{}_{}", version, a.name);
      }
      a.applied_at = sys::NowIso();
      a.run_id = env.run_id;
      a.hoist_version = HOIST_VERSION;
      a.applied_by = by;
      a.reason = o.reason.empty() ? reason : o.reason + " (" + reason + ")";
      return a;
    };
    std::vector<AppliedMigration> out;
    if (o.version) {
      result.source = "version";
      out.push_back(base_row(*o.version, "baseline", "baseline"));
      result.baseline = *o.version;
    } else if (o.import == "alembic") {
      result.source = "alembic_version";
      if (o.dir.empty()) Fail("invalid", "importing alembic_version needs the migrations dir, to find the file of "
                                         "the recorded revision");
      Result r;
      try {
        r = conn.Query("SELECT version_num FROM alembic_version");
      } catch (const Error& e) {
        Fail("not_found", fmt::format("cannot read alembic_version in {}: {}", conn.redacted(), e.message()));
      }
      if (r.rows.empty()) Fail("not_found", "alembic_version is empty: alembic has applied nothing; nothing to import");
      if (r.rows.size() > 1) {
        std::vector<std::string> heads;
        for (const auto& row : r.rows) heads.push_back(AsText(row[0]));
        Fail("invalid", fmt::format("alembic_version has {} heads ({}): merge them with alembic first, or baseline "
                                    "by version",
                                    heads.size(), Join(heads, ", ")));
      }
      std::string rev = AsText(r.rows[0][0]);
      const MigrationFile* match = nullptr;
      for (const auto& f : files) {
        const std::string& n = f.name;
        if (n == rev || n.rfind(rev + "_", 0) == 0 || n.ends_with("_" + rev) || n.find("_" + rev + "_") != std::string::npos) {
          match = &f;
        }
      }
      if (!match) {
        Fail("not_found", fmt::format("alembic_version says revision {} but no file in {} names it: rename the file "
                                      "that corresponds to it NNNN_{}_<name>.sql, or baseline by version",
                                      rev, o.dir, rev));
      }
      out.push_back(base_row(match->version, "baseline", "imported from alembic_version " + rev));
      result.baseline = match->version;
    } else {
      std::string table = o.import == "efcore" ? "__EFMigrationsHistory" : o.table;
      std::string column = o.import == "efcore" ? "MigrationId" : o.column;
      result.source = table;
      if (column.empty()) {
        std::vector<ColumnInfo> cols;
        try {
          cols = conn.Columns(table);
        } catch (const Error& e) {
          Fail("not_found", fmt::format("no table {} to import in {}", table, conn.redacted()));
        }
        for (const char* cand : {"name", "migration", "filename", "file_name", "file", "version", "id"}) {
          for (const auto& c : cols) {
            if (column.empty() && c.name == cand) column = c.name;
          }
        }
        if (column.empty()) {
          std::vector<std::string> names;
          for (const auto& c : cols) names.push_back(c.name);
          Fail("invalid", fmt::format("cannot tell which column of {} names the migrations ({}): pass column = ...",
                                      table, Join(names, ", ")));
        }
      }
      Result r;
      try {
        r = conn.Query("SELECT " + QuoteIdent(column) + " FROM " + QuoteIdent(table));
      } catch (const Error& e) {
        Fail("not_found", fmt::format("cannot read {} in {}: {}", table, conn.redacted(), e.message()));
      }
      std::vector<Imported> entries;
      std::vector<std::string> bad, unmatched;
      for (const auto& row : r.rows) {
        Imported im;
        if (auto* i = std::get_if<int64_t>(&row[0])) {
          im.version = *i;
          im.raw = std::to_string(*i);
        } else if (!ParseImportedName(AsText(row[0]), &im)) {
          bad.push_back(AsText(row[0]));
          continue;
        }
        if (!o.dir.empty() && !by_version.count(im.version)) unmatched.push_back(im.raw);
        entries.push_back(im);
      }
      if (!bad.empty()) {
        Fail("invalid", fmt::format("{} lists migrations without a numeric prefix ({}): baseline by version instead",
                                    table, Join(bad, ", ")));
      }
      if (!unmatched.empty()) {
        Fail("not_found", fmt::format("{} lists {} that {} no file in {}: add the file{} (named with the same number), "
                                      "or baseline by version",
                                      table, Join(unmatched, ", "), unmatched.size() == 1 ? "has" : "have", o.dir,
                                      unmatched.size() == 1 ? "" : "s"));
      }
      std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
      for (const auto& im : entries) {
        AppliedMigration a = base_row(im.version, "imported", "imported from " + table + " " + im.raw);
        if (o.dir.empty()) {
          a.name = im.name;
          a.file = im.raw;
        }
        out.push_back(std::move(a));
      }
    }
    conn.Tx([&] {
      for (const auto& a : out) Upsert(conn, a);
    });
    for (const auto& a : out) {
      result.recorded.push_back({a.version, a.file, 0, a.kind});
      if (env.on_event) {
        env.on_event({o.version ? "baseline" : "import", a.version, a.file, 0, {{"reason", a.reason}, {"by", by}}});
      }
    }
  });
  return result;
}

json RepairResult::ToJson() const { return {{"accepted", accepted}, {"dropped", dropped}}; }

RepairResult Repair(Connection& conn, const RepairOptions& o, const MigrateEnv& env) {
  if (o.reason.empty()) {
    Fail("invalid", "repair needs a reason: it is recorded with the migration and in the journal");
  }
  std::vector<MigrationFile> files;
  if (!o.dir.empty()) files = LoadMigrationDir(o.dir);
  const std::string by = env.applied_by.empty() ? DefaultOperator() : env.applied_by;
  RepairResult result;
  conn.Lock(kMigrateLockName, env.lock, [&] {
    if (!TableExists(conn)) return;
    auto st = ReadStatus(conn, o.dir, files);
    std::vector<std::pair<std::string, AppliedMigration>> updates;
    std::vector<std::pair<std::string, int64_t>> drops;
    for (const auto& e : st.entries) {
      if (o.version && e.version != *o.version) continue;
      if (e.state == "failed") {
        drops.emplace_back(e.label, e.version);
      } else if (e.state == "changed") {
        AppliedMigration a = *e.applied;
        const MigrationFile& f = *e.file;
        a.checksum = f.checksum;
        a.name = f.name;
        a.file = f.file;
        a.phase = f.phase;
        if (f.kind == "lua") {
          a.down_source = f.source;
        } else if (f.has_down) {
          a.down_source = StoredDown(f);
        } else {
          a.down_source.reset();
        }
        a.repaired_at = sys::NowIso();
        a.repaired_by = by;
        a.reason = o.reason;
        updates.emplace_back(e.label, std::move(a));
      }
    }
    conn.Tx([&] {
      for (const auto& [label, a] : updates) Upsert(conn, a);
      for (const auto& [label, v] : drops) DeleteRow(conn, v);
    });
    for (const auto& [label, a] : updates) {
      result.accepted.push_back(label);
      if (env.on_event) {
        env.on_event({"repair", a.version, label, 0,
                      {{"action", "accept checksum"}, {"checksum", a.checksum}, {"reason", o.reason}, {"by", by}}});
      }
    }
    for (const auto& [label, v] : drops) {
      result.dropped.push_back(label);
      if (env.on_event) {
        env.on_event({"repair", v, label, 0, {{"action", "drop failed record"}, {"reason", o.reason}, {"by", by}}});
      }
    }
  });
  return result;
}

}  // namespace hoist::db

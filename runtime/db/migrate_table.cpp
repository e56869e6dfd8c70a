// The hoist_schema_migrations table: its DDL, reading its rows, recording
// an applied, failed or repaired migration; and the small helpers the
// migrate_*.cpp files share (db/migrate_internal.h).
#include "db/migrate_internal.h"

#include <fmt/format.h>

#include "core/error.h"

namespace hoist::db::migrate_detail {
namespace {

constexpr const char* kColumns =
    "version, name, file, kind, checksum, phase, no_transaction, down_source, applied_at, duration_ms, run_id, "
    "hoist_version, success, error, applied_by, class, reason, repaired_at, repaired_by";
constexpr int kColumnCount = 19;

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

}  // namespace

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

void Upsert(Connection& c, const AppliedMigration& a) { c.Exec(UpsertSql(c), RowValues(a)); }

void DeleteRow(Connection& c, int64_t version) {
  c.Exec("DELETE FROM hoist_schema_migrations WHERE version = " + P(c, 1), {Value(version)});
}


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


// A database message that a sentence of ours follows: PostgreSQL's DETAIL
// and HINT end with a period, and ". It was rolled back" must not double it.
std::string Clause(std::string message) {
  while (!message.empty() && (message.back() == '.' || message.back() == ' ')) message.pop_back();
  return message;
}

std::string LuaChunk(const MigrationFile& m) { return "@" + m.path; }

bool IsCommitFailure(const Error& e) {
  return e.area() == "db" && e.code() != "interrupted" && e.code() != "timeout";
}

void EnsureTable(Connection& c) { c.Exec(CreateTableSql(c)); }

}  // namespace hoist::db::migrate_detail

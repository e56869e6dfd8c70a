// What the migrate_*.cpp files share (not part of the API): the
// hoist_schema_migrations table (migrate_table.cpp), reading the status and
// printing a dry run's plan (migrate_status.cpp), small value helpers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "db/connection.h"
#include "db/migrator.h"
#include "db/sql_split.h"

namespace hoist::db::migrate_detail {

using json = nlohmann::json;

/// Throws Error("migrate", code, message).
[[noreturn]] void Fail(const std::string& code, const std::string& message);

bool IsPg(const Connection& c);
Dialect DialectOf(const Connection& c);
/// Placeholder i (1-based) in the connection's dialect.
std::string P(const Connection& c, int i);

// A column's value as the type the bookkeeping table declares (PostgreSQL
// returns text for some, SQLite integers for booleans).
int64_t AsInt(const Value& v);
double AsDouble(const Value& v);
std::string AsText(const Value& v);
std::optional<std::string> AsOptText(const Value& v);
bool AsBool(const Value& v);
/// NULL for an empty or absent string.
Value Opt(const std::string& s);
Value Opt(const std::optional<std::string>& s);

std::string CreateTableSql(const Connection& c);
/// Creates hoist_schema_migrations when it does not exist.
void EnsureTable(Connection& c);
bool TableExists(Connection& c);
/// Every row, by version.
std::vector<AppliedMigration> ReadApplied(Connection& c);
/// Inserts or replaces the row of a.version.
void Upsert(Connection& c, const AppliedMigration& a);
void DeleteRow(Connection& c, int64_t version);

enum class Recorded { kNone, kFailed, kApplied };
/// What the table holds for a version. kApplied right before applying means
/// another migrator applied it meanwhile: the exactly-once guard.
Recorded RecordOf(Connection& c, int64_t version);
/// Records a successful migration, replacing a failed attempt's row.
void RecordApplied(Connection& c, const AppliedMigration& a, Recorded before);

constexpr int kAtCommit = -2;

/// A statement of a migration failed: which one, and why.
struct StatementFailure {
  int index = -1;  // 0-based; -1 = Lua or no statement; kAtCommit = the checks before COMMIT, or COMMIT
  std::string message;
};

/// A database error that ends a migration's transaction (a deferred
/// constraint at COMMIT, say) rather than Ctrl-C or a step timeout.
bool IsCommitFailure(const Error& e);

/// The first 12 characters of a checksum, for messages.
std::string Short(const std::string& checksum);
/// The down section as stored, at its line in the file.
std::string StoredDown(const MigrationFile& m);
/// "is at version 3" / "has no migration applied".
std::string VersionText(const std::optional<int64_t>& v);
/// A database message without its trailing period, for a sentence to follow.
std::string Clause(std::string message);
/// The Lua chunk name of a migration file ("@path").
std::string LuaChunk(const MigrationFile& m);

/// The files against the table's rows (an untracked database has none).
MigrationStatus ReadStatus(Connection& conn, const std::string& dir, const std::vector<MigrationFile>& files);
/// The history problems validate refuses, and their error code in *code.
std::vector<std::string> HistoryProblems(const MigrationStatus& st, const ValidateOptions& o, std::string* code);
/// Throws Error("migrate", code, ...) listing the problems; none: returns.
void ThrowProblems(const std::string& code, const std::vector<std::string>& problems);

/// A dry run's entry for one migration: its statements as they would run.
json PlanEntry(const MigrationFile& m, Dialect d, bool up);
/// Logs a dry run's plan as SQL, through env.log.
void LogPlan(const MigrateEnv& env, const json& plan, const char* what);

}  // namespace hoist::db::migrate_detail

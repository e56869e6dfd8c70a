// Migration bookkeeping for one database: the hoist_schema_migrations table,
// status and validate, up (each migration in its own transaction, the
// expand policy checked inside it before COMMIT), down from the down
// sources stored at apply time, baseline and imports of other trackers,
// repair. Every mutation runs under the database's "hoist.migrate" lock, so
// migrators started together apply each migration exactly once. Plain C++:
// Lua migrations reach the Lua runtime through LuaMigrationHost
// (bind/migrate.cpp). Errors are hoist::Error{"migrate", code, message}.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/connection.h"
#include "db/migration_files.h"

namespace hoist::db {

inline constexpr const char* kMigrationsTable = "hoist_schema_migrations";
inline constexpr const char* kMigrateLockName = "hoist.migrate";

/// One row of hoist_schema_migrations: the state of one version.
struct AppliedMigration {
  int64_t version = 0;
  std::string name;
  std::string file;           ///< "0003_add_email.sql" (names it after the file is gone)
  std::string kind;           ///< "sql", "lua", "baseline" or "imported"
  std::string checksum;       ///< NormalizedChecksum of the file; "" = unknown (imports)
  std::string phase;          ///< declared: "expand", "contract" or ""
  bool no_transaction = false;
  /// What `down` runs: the SQL down section, or the whole Lua file; nullopt
  /// when the migration had no down section (or is a baseline).
  std::optional<std::string> down_source;
  std::string applied_at;     ///< ISO 8601 UTC
  double duration_ms = 0;
  std::optional<int64_t> run_id;
  std::string hoist_version;
  bool success = true;        ///< false: a failed attempt, see error
  std::string error;
  std::string applied_by;     ///< user@host
  std::string cls;            ///< the class measured at apply time ("" = not checked)
  std::string reason;         ///< baseline, import, repair: why (and by whom: repaired_by)
  std::string repaired_at, repaired_by;
  nlohmann::json ToJson() const;
};

/// The Lua runtime, for NNNN_name.lua migrations.
class LuaMigrationHost {
 public:
  struct Info {
    bool has_down = false;
    std::string phase;                 ///< the table's `phase` ("" = absent)
    std::optional<bool> transaction;   ///< the table's `transaction` (nullopt = absent)
  };
  virtual ~LuaMigrationHost() = default;
  /// Loads source and checks it returns { up = function [, down = function] }.
  /// Throws Error{"migrate","invalid","<chunk>: ..."} otherwise.
  virtual Info Inspect(const std::string& source, const std::string& chunkname) = 0;
  /// Calls its up (or down) function with a hoist.db connection to conn.
  virtual void Run(Connection& conn, const std::string& source, const std::string& chunkname, bool up) = 0;
};

/// Reported after each migration-level action (the binding journals them).
struct MigrationEvent {
  std::string action;  ///< apply, fail, refuse, skip, rollback, baseline, import, repair
  int64_t version = 0;
  std::string file;
  double seconds = 0;
  nlohmann::json data = nlohmann::json::object();
};

/// What every operation shares.
struct MigrateEnv {
  LuaMigrationHost* lua = nullptr;  ///< nullptr: Lua migrations cannot run
  std::optional<int64_t> run_id;    ///< the hoist run applying them
  std::string applied_by;           ///< "" = "$USER@hostname"
  /// The "hoist.migrate" lock: how long to wait for another migrator, and
  /// the SQLite lease length (keep it above the longest single migration).
  LockOptions lock{600, 60, ""};
  std::function<void(const MigrationEvent&)> on_event;
  /// Called (inside the migration lock, outside any transaction) before the
  /// first step of this call that can destroy data: a migrate down, a
  /// migration declared contract, any migration policy "any" applies whose
  /// text drops or deletes (or a Lua one). The host takes a verified safety
  /// backup there (bind: EnsureSafetyBackup); it throws to stop.
  std::function<void(const std::string& what)> before_destructive;
  /// Lines for the operator (dry-run plans).
  std::function<void(const std::string&)> log;
};

struct StatusEntry {
  int64_t version = 0;
  std::string label;  ///< the file name, or the recorded one when the file is gone
  /// applied | pending | changed | missing | failed | out_of_order |
  /// baseline (the baseline row, or a file below it)
  std::string state;
  std::optional<MigrationFile> file;
  std::optional<AppliedMigration> applied;
};

struct MigrationStatus {
  std::string dir;
  bool tracked = false;            ///< hoist_schema_migrations exists
  std::optional<int64_t> current;  ///< highest successfully applied version
  std::optional<int64_t> baseline;
  std::vector<StatusEntry> entries;  ///< by version
  /// Labels of the entries in a state.
  std::vector<std::string> Labels(const std::string& state) const;
  size_t Count(const std::string& state) const;
  /// {dir, tracked, current, baseline, ok, counts, pending, changed, missing,
  /// failed, out_of_order, migrations = [...]}
  nlohmann::json ToJson() const;
  /// The table `hoist migrate status` prints.
  std::string Text() const;
};

/// Read-only: never creates the table or takes the lock.
MigrationStatus Status(Connection& conn, const std::string& dir);

struct ValidateOptions {
  bool allow_changed = false;
  bool allow_missing = false;
  bool allow_out_of_order = false;
};

/// Status, or Error{"migrate", "changed"|"missing"|"out_of_order", ...}
/// naming every problem and what to do about it.
MigrationStatus Validate(Connection& conn, const std::string& dir, const ValidateOptions& options = {});

struct UpOptions {
  std::optional<int64_t> to{};   ///< apply pending versions <= to
  std::string policy = "expand"; ///< "expand" or "any"
  bool allow_contract = false;   ///< expand: let declared contract migrations run
  bool dry_run = false;          ///< plan only: the SQL that would run
  bool allow_missing = false;
  bool allow_out_of_order = false;  ///< apply pending versions below the current one
};

struct UpResult {
  std::optional<int64_t> from, to;
  struct Step {
    int64_t version = 0;
    std::string file;
    double seconds = 0;
    std::string cls;  ///< measured under policy expand, else ""
  };
  std::vector<Step> applied;
  std::vector<std::string> skipped;  ///< applied by another migrator meanwhile
  bool dry_run = false;
  nlohmann::json plan = nlohmann::json::array();  ///< [{version, file, transaction, statements}]
  double lock_wait_seconds = 0;
  nlohmann::json ToJson() const;
};

/// Applies the pending migrations in version order under the lock; stops at
/// the first failure, which is rolled back (unless no-transaction) and
/// recorded (success = false). Throws Error{"migrate", code, ...}: changed,
/// missing, out_of_order (see Validate), failed (a migration failed: names
/// the file, the statement, its line and the database error), refused
/// (policy expand: names the file, the statement and the class), partial
/// (a failed no-transaction migration needs repair first), needs_lua.
UpResult Up(Connection& conn, const std::string& dir, const UpOptions& options, const MigrateEnv& env = {});

struct DownOptions {
  std::optional<int64_t> steps{};  ///< roll back this many (default 1 when to is unset)
  std::optional<int64_t> to{};     ///< roll back every version above this
  bool dry_run = false;
};

struct DownResult {
  std::optional<int64_t> from, to;
  std::vector<UpResult::Step> rolled_back;
  bool dry_run = false;
  nlohmann::json plan = nlohmann::json::array();
  nlohmann::json ToJson() const;
};

/// Runs the stored down sources newest first, each in its own transaction,
/// and deletes their rows. Needs no files. Checks every target first:
/// Error{"migrate","no_down"} names a migration without a down (nothing is
/// rolled back), "baseline" refuses to go below a baseline, "not_tracked".
DownResult Down(Connection& conn, const DownOptions& options, const MigrateEnv& env = {});

struct BaselineOptions {
  std::optional<int64_t> version{};  ///< record this version as the baseline
  std::string dir{};               ///< migrations dir (names, checksums)
  /// Import another tracker instead: "efcore" (__EFMigrationsHistory),
  /// "alembic" (alembic_version), "table" (a plain table of names).
  std::string import{};
  std::string table = "migrations";  ///< import "table": its name
  std::string column{};              ///< and column ("" = name|migration|filename|file|version)
  std::string reason{};
};

struct BaselineResult {
  std::vector<UpResult::Step> recorded;
  std::optional<int64_t> baseline;
  std::string source;  ///< "version" or the imported table
  nlohmann::json ToJson() const;
};

/// For databases that predate hoist: records a baseline version (files at
/// or below it count as applied) or imports an existing tracker. Refuses a
/// database that already has hoist records (Error{"migrate","already_tracked"}).
BaselineResult Baseline(Connection& conn, const BaselineOptions& options, const MigrateEnv& env = {});

struct RepairOptions {
  std::string dir{};               ///< needed to accept changed files
  std::string reason{};            ///< required; recorded with who
  std::optional<int64_t> version{};  ///< only this version
};

struct RepairResult {
  std::vector<std::string> accepted;  ///< changed files whose new checksum (and down) were accepted
  std::vector<std::string> dropped;   ///< failed records removed
  nlohmann::json ToJson() const;
};

/// Accepts changed checksums (the file becomes the truth: checksum, down
/// source and phase are updated, with repaired_at/by and reason) and drops
/// failed records. Error{"migrate","invalid"} without a reason.
RepairResult Repair(Connection& conn, const RepairOptions& options, const MigrateEnv& env = {});

/// OperatorAtHost(): HOIST_OPERATOR (else $USER ...)@hostname, as runs record it.
std::string DefaultOperator();

}  // namespace hoist::db

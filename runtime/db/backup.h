// Verified database backups: create (SQLite snapshot copy, PostgreSQL
// pg_dump), verify, restore into a live database, list, prune and drill.
// Plain C++ (bind/backup.cpp adapts it to Lua). Every backup is one data
// file (or a pg_dump directory) plus a `<name>.sha256` sidecar and a
// `<name>.json` manifest; see docs/backup.md for the guarantees.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hoist::db::backup {

using json = nlohmann::json;

/// Progress of a long phase: label ("copy app.db"), done and total in unit
/// ("bytes"); total 0 = unknown. Called on the calling thread.
using ProgressFn = std::function<void(const std::string& label, double done, double total, const std::string& unit)>;

/// A sandbox's read-only view of the real backups dir ("" = none): its
/// backups count for retention as if they were in the dir being pruned
/// (their source renamed by `source`, the real database -> its copy) and
/// its stale temp files are looked at, but nothing there is ever removed:
/// the prune lists what it would remove there in `removed` and `stale`.
struct ReadOnlyBackups {
  std::string dir;
  std::function<std::string(const std::string&)> source;  ///< null = unchanged
  /// Paths under dir that a prune of this view "removed": List leaves them
  /// out and Prune adds to it (null = not tracked).
  std::set<std::string>* gone = nullptr;
};

/// Options shared by both engines' create.
struct CreateOptions {
  /// Target directory, created 0700 when missing.
  std::string dir;
  /// [A-Za-z0-9._-]{1,64}; part of the file name.
  std::string label = "backup";
  /// After success, prune backups of the same source beyond the newest
  /// `keep` (0 = keep everything). Protected backups never count or go.
  int keep = 0;
  /// Counted by that prune, never touched (a sandbox's view of the real dir).
  ReadOnlyBackups read_only;
  /// SQLite: zstd level (0 = store uncompressed, true in Lua = 3).
  /// PostgreSQL: pg_dump -Z level for custom/directory/plain (default 0).
  int compress = 0;
  /// Never removed by prune (a backup a person wants kept).
  bool protect = false;
  /// A safety backup hoist takes before it changes data (pre-deploy,
  /// pre-migration, pre-restore): protected from keep and older_than, but
  /// pruned by keep_safety so they do not pile up.
  bool safety = false;
  /// After success, prune safety backups of the same source beyond the
  /// newest `keep_safety` (0 = keep them all).
  int keep_safety = 0;
  /// Why this backup exists ("pre-restore", "pre-migration"), kept in the manifest.
  std::string reason;
  std::optional<int64_t> run_id;
  ProgressFn progress;

  // PostgreSQL only.
  /// "custom" (default), "plain", "directory" or "tar".
  std::string format = "custom";
  bool data_only = false;
  bool schema_only = false;
  /// pg_dump -t for each (empty = the whole database).
  std::vector<std::string> tables;
  /// Directory of pg_dump/pg_restore/psql ("" = PATH).
  std::string pg_bin;
};

struct CreateResult {
  std::string path;           ///< the published backup (file or directory)
  std::string manifest_path;  ///< <path>.json
  std::string sha256;
  uint64_t size = 0;          ///< bytes on disk (all files of a directory dump)
  double seconds = 0;
  json manifest;
  std::vector<std::string> pruned;  ///< files removed by keep
};

/// SQLite: a snapshot-consistent online copy that never blocks writers of a
/// WAL database and always finishes. A read transaction pins the snapshot
/// (no checkpoint can pass it, the WAL cannot restart); the WAL's valid
/// committed frames are read first, then the main file is streamed into a
/// hidden temp file in dir with those pages laid over it (what SQLite's own
/// recovery would produce), while another thread hashes the output;
/// quick_check and fsync overlap; then the atomic rename to
/// `<db>-<label>-<YYYYMMDDTHHMMSSZ>.db[.zst]`. The copy holds the state of a
/// transaction committed at or after the moment the read began. A
/// rollback-journal database is copied under its SHARED lock (writers wait
/// for the copy). Throws Error{"backup", code, message}: not_found (no
/// such database), invalid (options), corrupt (quick_check failed on the
/// copy), interrupted/timeout (Ctrl-C, step deadline), failed. Never leaves
/// a file under the final name unless it is complete and verified.
CreateResult CreateSqlite(const std::string& db_path, const CreateOptions& options);

/// PostgreSQL: pg_dump (argv, PGPASSWORD in the environment) into a temp
/// file/dir in options.dir, exit status and stderr checked, then sha256,
/// sidecar, manifest, atomic rename. conninfo is libpq keyword/value text
/// and may hold a password: it never reaches argv, logs or messages.
/// redacted is the printable form used in the manifest and messages.
/// Throws Error{"backup", "version_mismatch"} when pg_dump is older than
/// the server, "unavailable" when pg_dump is missing, "failed" otherwise.
CreateResult CreatePostgres(const std::string& conninfo, const std::string& redacted, const CreateOptions& options);

struct VerifyOptions {
  /// SQLite: integrity_check + foreign_key_check (default quick_check).
  /// PostgreSQL: restore into a scratch database (needs conninfo).
  bool deep = false;
  /// PostgreSQL deep verify: a server to create the scratch database on.
  std::string conninfo;
  std::string pg_bin;
  ProgressFn progress;
};

struct VerifyResult {
  bool ok = false;
  std::string file;
  std::string engine;       ///< "sqlite" | "postgres"
  std::string sha256;       ///< as computed now
  std::string expected_sha256;
  bool checksum_ok = false;
  std::string integrity;    ///< "ok" or the first problems
  std::string method;       ///< "quick_check", "integrity_check", "pg_restore --list", "restore"
  std::vector<std::string> problems;
  double seconds = 0;
  json ToJson() const;
};

/// Checks a backup: size against the manifest (a truncated file is named as
/// such before anything is hashed), sha256 against the sidecar, and, on
/// another thread at the same time, the engine's own check. A damaged
/// backup is an answer (ok = false, problems say exactly what); throws
/// Error{"backup","not_found"} when the file is missing and "invalid" when
/// it has neither sidecar nor manifest.
VerifyResult Verify(const std::string& file, const VerifyOptions& options);

/// Like Verify but throws Error{"backup","corrupt", "<file>: <problem>"}
/// when the backup is not ok.
VerifyResult VerifyOrThrow(const std::string& file, const VerifyOptions& options);

struct RestoreOptions {
  /// Take a protected backup of the target first (into safety_dir).
  bool safety_backup = true;
  /// Where the safety backup goes ("" = the backup file's directory).
  std::string safety_dir;
  std::optional<int64_t> run_id;
  std::string pg_bin;
  ProgressFn progress;
};

struct RestoreResult {
  std::string file;
  std::string target;               ///< path (SQLite) or redacted URL
  std::string safety_backup;        ///< path, "" when none was taken
  VerifyResult verified;
  uint64_t pages = 0;               ///< SQLite: pages written
  double seconds = 0;
  json ToJson() const;
};

/// SQLite: verifies `file`, takes a protected safety backup of target, then
/// copies the backup INTO the live database through sqlite3_backup in one
/// step: one write transaction, so connections that other processes hold
/// open read the restored data at their next transaction; no -wal/-shm is
/// left stale and nothing restarts. Throws Error{"backup", code}: corrupt
/// (verify failed: nothing was touched), not_found (target missing),
/// not_a_database (target is not SQLite), mismatch (a PostgreSQL backup),
/// busy (the target stayed locked), interrupted/timeout, failed.
RestoreResult RestoreSqlite(const std::string& file, const std::string& target_path, const RestoreOptions& options);

/// PostgreSQL: verifies `file`, takes a protected safety backup, then
/// pg_restore --clean --if-exists (custom/directory/tar) or psql
/// -v ON_ERROR_STOP=1 (plain) into the target database.
RestoreResult RestorePostgres(const std::string& file, const std::string& conninfo, const std::string& redacted,
                              const RestoreOptions& options);

struct Entry {
  std::string path;
  std::string name;
  std::string engine;
  std::string source;
  std::string label;
  std::string created_at;  ///< ISO 8601 UTC
  uint64_t size = 0;
  bool verified = false;
  bool is_protected = false;
  bool is_safety = false;  ///< protected, but subject to keep_safety
  bool has_manifest = false;
  json manifest;           ///< {} without one
};

/// Backups in dir, newest first (manifest created_at, then name). Files
/// without a manifest are listed with has_manifest = false; manifests whose
/// data is gone and temp files are not listed. A missing dir is empty.
std::vector<Entry> List(const std::string& dir);
/// List(dir) with the backups of read_only.dir that dir does not shadow
/// (same name), their sources renamed by read_only.source; newest first.
std::vector<Entry> List(const std::string& dir, const ReadOnlyBackups& read_only);

struct PruneOptions {
  /// Keep the newest N unprotected backups of each source (0 = no limit).
  int keep = 0;
  /// Keep the newest N safety backups of each source (0 = keep them all).
  int keep_safety = 0;
  /// Only remove backups older than this many seconds (0 = any age).
  double older_than = 0;
  /// Restrict to backups of this source ("" = every source in dir).
  std::string source;
  bool dry_run = false;
  /// Counted, never touched (a sandbox's view of the real dir).
  ReadOnlyBackups read_only;
};

struct PruneResult {
  std::vector<std::string> removed;  ///< backup paths (with their sidecar and manifest)
  std::vector<std::string> kept;
  std::vector<std::string> stale;    ///< leftover temp files of crashed backups removed
};

/// Removes backups beyond keep and/or older than older_than (both must hold
/// when both are given), and safety backups beyond keep_safety (and older
/// than older_than when given). Never removes a backup a person protected
/// nor the newest verified backup of a source. Throws
/// Error{"backup","invalid"} when none of keep, keep_safety, older_than is
/// given. A backup in dir shadows one of the same name in options.read_only.dir.
PruneResult Prune(const std::string& dir, const PruneOptions& options);

/// "30d", "12h", "90m", "45s", "2w" -> seconds. Throws Error{"backup","invalid"}.
double ParseAge(const std::string& text);

struct DrillOptions {
  /// Statements run against the restored copy; each must succeed. The first
  /// value of the first row of each is recorded.
  std::vector<std::string> smoke_sql;
  /// PostgreSQL: a server to create the scratch database on.
  std::string conninfo;
  std::string pg_bin;
  ProgressFn progress;
  /// Append the result to the backup's manifest (drills, last_drill). Off in
  /// sandbox runs that drill a real backup: a rehearsal writes nothing real.
  bool record = true;
};

struct DrillResult {
  bool ok = false;
  std::string file;
  std::string integrity;       ///< "ok" or the problems
  std::string fingerprint;     ///< of the restored copy
  bool fingerprint_ok = false; ///< equal to the manifest's
  json smoke = json::array();  ///< [{sql, ok, value|error}]
  std::vector<std::string> problems;
  double seconds = 0;
  std::string at;
  json ToJson() const;
};

/// Restores the backup into a sandbox (a temp copy for SQLite, a scratch
/// database for PostgreSQL), runs the full integrity check, compares the
/// schema fingerprint with the manifest, runs smoke_sql, records the result
/// in the manifest ("drills", newest last) and removes the sandbox. A
/// failed drill is an answer (ok = false); throws when it cannot run.
DrillResult Drill(const std::string& file, const DrillOptions& options);

/// The manifest of a backup (`<file>.json`); nullopt when there is none.
std::optional<json> ReadManifest(const std::string& file);

/// Schema fingerprint of a SQLite database file (opened read-only): sha256
/// of its normalized sqlite_master (type, name, tbl_name, sql), sorted.
std::string SqliteFingerprint(const std::string& path);

}  // namespace hoist::db::backup

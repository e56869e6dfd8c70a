// Sandbox runs: a playbook against a real copy of the database and a
// simulated world (`hoist run --sandbox`, and each sb:run of hoist.testing).
// The copy lives in a private temp dir with the run's own journal; the
// result says what the run would change: the world calls in order, the
// schema diff and the row counts per table before and after.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/run.h"
#include "engine/sim_world.h"
#include "engine/state_store.h"

namespace hoist::app {

/// Where the sandbox database comes from.
struct SandboxDb {
  std::string url;        ///< a database to copy online ("" = the environment's)
  std::string sql_file;   ///< or: a fresh SQLite database built from this SQL script
  bool none = false;      ///< or: no database at all
};

struct SandboxOptions {
  RunOptions run;                       ///< playbook, params, env, --yes
  SandboxDb db;
  bool keep = false;                    ///< keep the temp dir (copy, journal) afterwards
  /// null = a SimWorld seeded read-only from this host; a SimWorld gives
  /// the changes and observed state, a ReplayWorld answers from a journal.
  engine::World* world = nullptr;
  /// Where to keep a copy of the database as it was before the run ("" = no copy).
  std::string keep_copy_as;
  /// A lease someone else holds on the environment before the run starts.
  std::optional<engine::Lease> foreign_lease;
};

struct TableCount {
  int64_t before = -1, after = -1;      ///< -1 = the table does not exist
};

struct SandboxResult {
  RunOutcome outcome;
  std::string dir;                      ///< the sandbox dir ("" once removed)
  std::string source;                   ///< redacted source database
  std::string copy_url;                 ///< the copy's URL ("" without a database)
  std::string copy_method;              ///< "sqlite backup", "template", "pg_dump" or "none: ..." (no file yet)
  double copy_seconds = 0, run_seconds = 0;
  nlohmann::json journal = nlohmann::json::object();  ///< the run as `hoist show --json` gives it
  std::vector<engine::SimChange> changes;
  nlohmann::json schema_diff;           ///< db::SchemaDiff::ToJson()
  std::string schema_text;
  std::map<std::string, TableCount> rows;
  std::string fingerprint_before;       ///< schema fingerprint of the copy before the run
  nlohmann::json plan;                  ///< what the plan hash covers
  nlohmann::json observed;              ///< {rows: {table: n}}: seen, not hashed
  std::string plan_hash;
};

/// Runs the playbook in a sandbox. Throws Error{"sandbox", ...} when the
/// sandbox cannot be set up (no such database, PostgreSQL not yet
/// supported); the run's own failures are in the outcome.
SandboxResult RunSandbox(const Project& project, const SandboxOptions& options, engine::Reporter& reporter);

struct ReplayOptions {
  int64_t run_id = 0;
  std::string db_url;       ///< the database to copy ("" = the run's environment's)
  std::string save_test;    ///< write a passing *_test.lua here (plus its .replay.json and .replay.db)
  bool json = false;
};

/// `hoist replay`: re-runs the journaled source of run_id with its params
/// against a sandbox copy, feeding the recorded world responses in order.
/// Prints the result; returns 0 when it matched, 1 on a divergence, 2 when
/// the run cannot be replayed.
int ReplayRun(const Project& project, const ReplayOptions& options);

/// hoist.testing's t.replay: replays the run recorded in a .replay.json
/// (written by --save-test); {status, recorded_status, calls, divergence}.
nlohmann::json ReplayFile(const Project& project, const std::string& path, const std::string& db_url);

/// Removes a kept sandbox dir (hoist.testing does, after each case).
void RemoveSandbox(const std::string& dir);

/// The human report (what --sandbox prints after the run).
std::string SandboxReportText(const SandboxResult& r);
/// The same as one JSON object (the "sandbox_report" event).
nlohmann::json SandboxReportJson(const SandboxResult& r);

/// A line diff of two texts ("- old" / "+ new" lines with a little context).
std::string LineDiff(const std::string& before, const std::string& after, size_t context = 1);

}  // namespace hoist::app

// One playbook run, end to end: find the project and its hoist.lua, resolve
// and validate the playbook, check params, take the lease, run the steps
// through the engine, unwind on failure, journal everything.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/params.h"
#include "engine/reporter.h"
#include "engine/world.h"

namespace hoist::bind {

struct Project {
  std::string root;         // absolute
  std::string config_path;  // root + "/hoist.lua", "" when absent
};

/// Walks up from start_dir to the first dir holding hoist.lua; without
/// one, the project is start_dir itself with no config.
Project FindProject(const std::string& start_dir);

struct PlaybookInfo {
  std::string name, version, summary, requires_hoist;
  std::string origin;        // "project", "canned" or "file"
  std::string display_path;  // "playbooks/deploy.lua"
  std::vector<engine::ParamSpec> params;
  bool lock = true;
  std::string description;   // longer text `hoist describe` prints
};

/// Loads and validates a playbook's description (no run). Throws
/// Error{"playbook", "not_found"|"invalid", ...}.
PlaybookInfo DescribePlaybook(const Project& project, const std::string& ref);

/// Every playbook reachable: the project's playbooks/ first, then canned
/// ones not shadowed. Broken ones are listed with their error as summary.
std::vector<PlaybookInfo> ListPlaybooks(const Project& project);
/// Names only (for "did you mean").
std::vector<std::string> PlaybookNames(const Project& project);

/// The source of a canned playbook, or nullopt.
std::optional<std::string> CannedSource(const std::string& name);

struct RunOptions {
  std::string playbook;      // name or path
  engine::ParamInput params;
  std::string env;           // "" = default
  bool assume_yes = false;
  std::string reason;
  bool verbose = false;

  // Sandbox wiring (bind/sandbox.h fills these; empty = a real run).
  engine::World* world = nullptr;            ///< null = the real world
  std::string state_path;                    ///< journal here instead of hoist.lua's state
  std::string sandbox_dir;                   ///< marks a sandbox run (Context::sandbox_dir)
  std::string sandbox_database;              ///< replaces the environment's `database`
  std::map<std::string, std::string> db_redirects;  ///< Context::db_redirects
  /// A rehearsal of a real environment: its state store starts with the
  /// environment's remembered facts (run:recall) from this store, read-only.
  std::string facts_from;
  /// A replay: the facts the recorded run recalled, as it recalled them
  /// ({key: {value, run_id, updated_at}}), seeded after facts_from.
  nlohmann::json facts = nlohmann::json::object();
  /// hoist.testing: this table (JSON object) is the environment instead of
  /// hoist.lua's; null = from hoist.lua.
  nlohmann::json env_table;
};

struct RunOutcome {
  int exit_code = 0;
  std::string status;        // ok, failed, failed_undo, interrupted, lease_held, invalid
  int64_t run_id = 0;
};

/// Runs a playbook. Never throws for playbook failures: they become the
/// outcome and reporter events. Validation problems are reported and give
/// exit code 2 before anything runs.
RunOutcome RunPlaybook(const Project& project, const RunOptions& options, engine::Reporter& reporter);

/// The state store location for the project (after reading hoist.lua).
std::string StatePath(const Project& project);


/// The environment's `database` URL from hoist.lua ("" when it has none),
/// with a relative SQLite path made absolute against the project root.
std::string EnvironmentDatabase(const Project& project, const std::string& env);
/// The nginx front of an environment, as a sandbox simulates it: (port,
/// include) for each loopback URL among nginx.verify.url and bake.url, so a
/// rehearsal's traffic checks reach a simulated nginx routing by the include.
std::vector<std::pair<int, std::string>> EnvironmentFrontends(const Project& project, const std::string& env);

/// Environment names declared in hoist.lua (sorted).
std::vector<std::string> EnvironmentNames(const Project& project);

}  // namespace hoist::bind

// One playbook run, end to end: load and check hoist.lua, resolve and
// validate the playbook and its params (exit 2: nothing ran), open the
// journal, take the lease, run the steps through the engine, unwind on
// failure, finish the record.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "app/playbook.h"
#include "app/project.h"
#include "engine/params.h"
#include "engine/reporter.h"
#include "engine/world.h"

namespace hoist::app {

struct RunOptions {
  std::string playbook;      // name or path
  engine::ParamInput params;
  std::string env;           // "" = default
  bool assume_yes = false;
  std::string reason;
  bool verbose = false;

  // Sandbox wiring (app/sandbox.h fills these; empty = a real run).
  engine::World* world = nullptr;            ///< null = the real world
  /// The world standing for each of the environment's hosts (a sandbox's
  /// simulated ones, a replay's); null = reach the real hosts over ssh.
  std::function<engine::World*(const std::string& host)> host_world;
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
  std::string error;       // masked; "" when ok
  std::string error_code;  // the error's code (config, unhealthy, ...); "invalid" for exit 2
};

/// Runs a playbook. Never throws for playbook failures: they become the
/// outcome and reporter events. Validation problems are reported and give
/// exit code 2 before anything runs.
RunOutcome RunPlaybook(const Project& project, const RunOptions& options, engine::Reporter& reporter);

/// How a command's events reach the operator.
struct OutputOptions {
  bool json = false;      ///< NDJSON events on stdout
  bool verbose = false;
  bool no_color = false;  ///< also NO_COLOR in the environment; colour only on a TTY
};
std::unique_ptr<engine::Reporter> MakeReporter(const OutputOptions& o);
/// A reporter that prints nothing (an --expect-plan re-rehearsal).
std::unique_ptr<engine::Reporter> MakeQuietReporter();

/// The params of a --params file (a JSON object). Error{"","usage"}
/// naming the file and, for bad JSON, the line and column.
nlohmann::json ReadParamsFile(const std::string& path);


}  // namespace hoist::app

// The project a command runs in: found by walking up to hoist.lua, whose
// table is checked as a whole before anything runs (engine/config_check),
// its environments, and where its state store lives.
#pragma once

#include <lua.hpp>

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/notify.h"
#include "lua/state.h"

namespace hoist::app {

struct Project {
  std::string root;         // absolute
  std::string config_path;  // root + "/hoist.lua", "" when absent
};

/// Walks up from start_dir to the first dir holding hoist.lua; without
/// one, the project is start_dir itself with no config.
Project FindProject(const std::string& start_dir);
/// FindProject for a directory the operator named (-C): one that does not
/// exist would otherwise be searched upwards from, and its .hoist/ created.
/// Error{"","usage"} when it is missing or not a directory.
Project OpenProject(const std::string& dir);

constexpr double kDefaultLeaseTtl = 60;

/// hoist.lua's top level, as a run needs it.
struct Config {
  std::string state_path;
  std::string default_env;
  double lease_ttl = kDefaultLeaseTtl;
  size_t memory_limit = lua::kDefaultMemoryLimit;
  std::vector<std::string> envs;
  /// hoist.lua's `notify` targets (checked; their URLs and headers registered as secrets).
  std::vector<engine::NotifyTarget> notify;
};

/// The VM options of a project: its lib/ on require's path.
lua::StateOptions VmOptions(const Project& p);

/// [-0, +1] Loads hoist.lua (or pushes an empty table), checks every key of
/// it and every database URL (Error{"config","invalid"}: exit 2), registers
/// URL passwords as secrets, and reads its top level.
Config LoadConfig(lua::State& vm, const Project& p);

/// [-0, +1] Picks the environment and pushes its table (with .name set).
/// Error{"config","usage"} for an unknown or ambiguous one.
std::string PushEnvironment(lua_State* L, int config_idx, const Config& c, const std::string& wanted);

/// The password of every URL among the strings of j (params), registered
/// as a secret.
void RegisterJsonUrlSecrets(const nlohmann::json& j);


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

}  // namespace hoist::app

// Playbooks: resolving a name or path (the project's playbooks/, then the
// canned ones), loading a description (no world call may run meanwhile),
// its params spec, and what list and describe show.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/project.h"
#include "engine/params.h"
#include "lua/state.h"

namespace hoist::app {

/// A playbook's source and where it came from.
struct PlaybookRef {
  std::string name;
  std::string display_path;
  std::string source;
  std::string origin;
};

struct PlaybookInfo {
  std::string name, version, summary, requires_hoist;
  std::string origin;        // "project", "canned" or "file"
  std::string display_path;  // "playbooks/deploy.lua"
  std::vector<engine::ParamSpec> params;
  bool lock = true;
  bool on_failed = false, on_done = false;  ///< hooks: on = { failed = fn, done = fn }
  std::string description;   // longer text `hoist describe` prints
};

/// The playbook a name or path names. Error{"playbook","not_found"|"invalid"}.
PlaybookRef Resolve(const Project& p, const std::string& ref);

/// [-0, +1] Runs the playbook chunk (world calls refused) and validates the
/// description it returns, which stays on the stack.
PlaybookInfo LoadDescription(lua::State& vm, const PlaybookRef& ref);

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

/// What `hoist describe` prints, and its --json object.
std::string DescribeText(const PlaybookInfo& p);
nlohmann::json DescribeJson(const PlaybookInfo& p);

/// `hoist playbook export`: writes the canned playbook `name` to output
/// ("" = playbooks/NAME.lua), refusing an existing file unless force.
/// Returns what to print (whether the copy now shadows the canned one).
/// Error{"","usage"} for an unknown name or an existing file.
std::string ExportPlaybook(const Project& project, const std::string& name, std::string output, bool force);

}  // namespace hoist::app

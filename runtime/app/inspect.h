// Read-only views for the commands that look rather than run: the journal
// (history, one run), the deploy leases, a database's migration status,
// and the one write among them, a forced lease release (journaled as a
// run of its own). Each view comes as JSON (--json) and as text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/project.h"

namespace hoist::app {

/// The most recent runs, newest first (env "" = every environment).
std::vector<nlohmann::json> History(const Project& project, const std::string& env, int limit);
/// The table `hoist history` prints.
std::string HistoryText(const std::vector<nlohmann::json>& runs);

/// One run as `hoist show --json` gives it, or nullopt.
std::optional<nlohmann::json> GetRun(const Project& project, int64_t id);
/// What `hoist show` prints: the run, its steps nested, and at verbose >= 1
/// its events (recorded world answers only at verbose >= 2).
std::string RunText(const nlohmann::json& run, int verbose);

/// Every lease in the state store ({env, owner, host, pid, run_id, reason,
/// started_at, heartbeat_at, expires_at, expired}).
std::vector<nlohmann::json> Leases(const Project& project);
std::string LeasesText(const std::vector<nlohmann::json>& leases);

/// Force-releases an environment's lease (env "" = the only environment)
/// and journals who released it and why as a run of its own. Returns what
/// to print. Error{"","usage"} when the environment is ambiguous.
std::string ReleaseLease(const Project& project, const std::string& env, const std::string& reason);

/// `hoist migrate status`: the status of dir's migrations on the database
/// at url, opened read-only. json adds "db" (the redacted URL).
struct MigrationReport {
  nlohmann::json json;
  std::string text;
};
MigrationReport MigrationStatus(const std::string& url, const std::string& dir);

}  // namespace hoist::app

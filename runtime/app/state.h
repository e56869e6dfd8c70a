// `hoist state migrate`: the project's SQLite state store (runs, steps,
// events, facts) copied into a PostgreSQL one, once (docs/fleet.md).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "app/project.h"

namespace hoist::app {

struct StateMigrateOptions {
  std::string to;      ///< postgres:// or postgresql:// URL
  std::string from;    ///< SQLite file ("" = the project's: hoist.lua's state when a file, else .hoist/state.db)
  bool renumber = false;
};

struct StateMigrateReport {
  nlohmann::json json;  ///< {from, to, runs_copied, runs_present, steps, events, facts_copied, facts_kept, renumbered}
  std::string text;
};

/// Copies and reports. Throws Error{"state", "invalid"} when `to` is not a
/// PostgreSQL URL or `from` is one, and what engine::MigrateSqliteStateToPg
/// throws (nothing copied then).
StateMigrateReport MigrateState(const Project& project, const StateMigrateOptions& options);

}  // namespace hoist::app

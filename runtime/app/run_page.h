// HTML pages of the journal: one run as a timeline (`hoist show RUN --html
// FILE`) and the recent runs of each environment linking to theirs
// (`hoist history --html DIR`). Each page is one self-contained file:
// inline CSS and SVG, no script, no URL it would fetch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/project.h"

namespace hoist::app {

/// The page of one run, as GetRun gives it: a summary (id, env,
/// playbook@version, sha256, status, operator, duration, params), a
/// timeline (a bar per step on a time axis, nested under its parent,
/// retries, undos, failures; world calls, health probes, backups and the
/// traffic switch as marks), then tables of the switches, probes, backups
/// and world calls. Every journal string is HTML-escaped and passed
/// through Mask() again; nothing is unmasked.
std::string RunPage(const nlohmann::json& run);

/// The history page: runs (as GetRun gives them, newest first) grouped by
/// environment, each row linking to "run-<id>.html".
std::string HistoryPage(const std::vector<nlohmann::json>& runs);

/// The file name HistoryPage links a run to: "run-<id>.html".
std::string RunPageName(int64_t id);

/// Writes RunPage of run `id` to `file` (0600: it holds the journal's
/// params and hosts). Returns what to print. Throws
/// Error{"show","not_found"} for an unknown run, Error{"show","failed"}
/// naming the file when it cannot be written.
std::string WriteRunPage(const Project& project, int64_t id, const std::string& file);

/// Writes dir/index.html (HistoryPage of the newest `limit` runs, env ""
/// = every environment) and dir/run-<id>.html for each of them, creating
/// dir (0700) when missing; pages are 0600 and replaced atomically.
/// Returns what to print. Throws Error{"history","failed"} naming the
/// path when something cannot be written.
std::string WriteHistoryPages(const Project& project, const std::string& env, int limit, const std::string& dir);

}  // namespace hoist::app

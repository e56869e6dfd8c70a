#include "app/state.h"

#include <fmt/format.h>

#include "core/error.h"
#include "db/url.h"
#include "engine/state_store_pg.h"

namespace hoist::app {

using json = nlohmann::json;

StateMigrateReport MigrateState(const Project& project, const StateMigrateOptions& options) {
  if (!engine::IsPostgresState(options.to)) {
    throw Error("state", "invalid",
                fmt::format("state migrate: --to {} is not a PostgreSQL URL (postgresql://user:password@host/db)",
                            db::RedactUrl(options.to)));
  }
  std::string from = options.from;
  if (from.empty()) {
    from = StatePath(project);
    if (engine::IsPostgresState(from)) from = project.root + "/.hoist/state.db";
  } else if (engine::IsPostgresState(from)) {
    throw Error("state", "invalid", "state migrate: --from takes a SQLite state file, not a URL");
  } else if (from[0] != '/') {
    from = project.root + "/" + from;
  }
  engine::StateMigration m = engine::MigrateSqliteStateToPg(from, options.to, options.renumber);
  StateMigrateReport r;
  json renumbered = json::array();
  for (const auto& [was, now] : m.renumbered) renumbered.push_back({{"from", was}, {"to", now}});
  r.json = {{"from", m.from},           {"to", m.to},        {"runs_copied", m.runs_copied},
            {"runs_present", m.runs_present}, {"steps", m.steps}, {"events", m.events},
            {"facts_copied", m.facts_copied}, {"facts_kept", m.facts_kept}, {"renumbered", renumbered}};
  r.text = fmt::format("copied {} run(s) ({} steps, {} events) and {} fact(s) from {} into {}\n", m.runs_copied,
                       m.steps, m.events, m.facts_copied, m.from, m.to);
  if (m.runs_present > 0) r.text += fmt::format("{} run(s) were there from an earlier migrate: skipped\n", m.runs_present);
  if (m.facts_kept > 0) {
    r.text += fmt::format("{} fact(s) the target already had were kept as they are there\n", m.facts_kept);
  }
  for (const auto& [was, now] : m.renumbered) r.text += fmt::format("run {} is now run {}\n", was, now);
  r.text += fmt::format("point 'state' in hoist.lua at {} to use it (leases are not copied: each run takes its own)\n",
                        m.to);
  return r;
}

}  // namespace hoist::app

// migrate down: rolls applied migrations back, newest first, from the
// down section recorded when each was applied.
#include "db/migrate_internal.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "core/log.h"
#include "core/strings.h"
#include "db/migrate_classify.h"
#include "db/migrate_fk.h"
#include "db/sql_split.h"
#include "sys/clock.h"

namespace hoist::db {

using namespace migrate_detail;

json DownResult::ToJson() const {
  json a = json::array();
  for (const auto& s : rolled_back) a.push_back({{"version", s.version}, {"file", s.file}, {"seconds", s.seconds}});
  return {{"from", from ? json(*from) : json(nullptr)},
          {"to", to ? json(*to) : json(nullptr)},
          {"rolled_back", a},
          {"dry_run", dry_run},
          {"plan", plan}};
}

DownResult Down(Connection& conn, const DownOptions& o, const MigrateEnv& env) {
  if (o.steps && *o.steps < 1) Fail("invalid", "steps must be at least 1");
  if (o.steps && o.to) Fail("invalid", "pass either steps or to, not both");
  DownResult result;
  result.dry_run = o.dry_run;
  auto body = [&] {
    if (!TableExists(conn)) {
      Fail("not_tracked", conn.redacted() + " has no hoist_schema_migrations table: hoist has applied nothing there");
    }
    auto rows = ReadApplied(conn);
    std::vector<AppliedMigration> applied;
    for (auto& r : rows) {
      if (r.success) applied.push_back(r);
    }
    std::sort(applied.begin(), applied.end(), [](const auto& a, const auto& b) { return a.version > b.version; });
    if (!applied.empty()) result.from = applied.front().version;
    std::vector<AppliedMigration> targets;
    if (o.to) {
      for (const auto& a : applied) {
        if (a.version > *o.to) targets.push_back(a);
      }
    } else {
      int64_t steps = o.steps.value_or(1);
      if (static_cast<size_t>(steps) > applied.size()) {
        Fail("invalid", fmt::format("cannot roll back {} migration{}: only {} {} applied", steps, steps == 1 ? "" : "s",
                                    applied.size(), applied.size() == 1 ? "is" : "are"));
      }
      targets.assign(applied.begin(), applied.begin() + steps);
    }
    // Check every target before touching anything.
    std::vector<std::optional<LuaMigrationHost::Info>> infos;
    for (const auto& a : targets) {
      if (a.kind == "baseline") {
        Fail("baseline", fmt::format("cannot roll back {}: it is the baseline (recorded {}{}), the schema up to it "
                                     "predates hoist; nothing was rolled back",
                                     a.file, a.applied_at, a.reason.empty() ? "" : ": " + a.reason));
      }
      std::optional<LuaMigrationHost::Info> info;
      if (a.kind == "lua") {
        if (!env.lua) {
          Fail("needs_lua", fmt::format("{} is a Lua migration: roll it back from a playbook (require "
                                        "\"hoist.migrate\"), which runs Lua; nothing was rolled back",
                                        a.file));
        }
        if (a.down_source) info = env.lua->Inspect(*a.down_source, "@" + a.file + " (as applied)");
        if (!info || !info->has_down) {
          Fail("no_down", fmt::format("cannot roll back {}: its table has no down function (as applied on {}); "
                                      "nothing was rolled back",
                                      a.file, a.applied_at));
        }
      } else if (!a.down_source) {
        Fail("no_down", fmt::format("cannot roll back {}: it has no '-- hoist:down' section (none was stored when it "
                                    "was applied on {}); nothing was rolled back",
                                    a.file, a.applied_at));
      }
      infos.push_back(info);
    }
    std::optional<int64_t> current = result.from;
    auto next_current = [&](int64_t below) {
      std::optional<int64_t> v;
      for (const auto& a : applied) {
        if (a.version < below && (!v || a.version > *v)) v = a.version;
      }
      return v;
    };
    for (const auto& a : targets) {
      MigrationFile m;
      m.version = a.version;
      m.file = a.file;
      m.kind = a.kind == "lua" ? "lua" : "sql";
      m.down = a.down_source.value_or("");
      m.no_transaction = a.no_transaction;
      if (o.dry_run) {
        json p = PlanEntry(m, DialectOf(conn), false);
        result.plan.push_back(p);
        continue;
      }
    }
    if (o.dry_run) {
      result.to = targets.empty() ? result.from : next_current(targets.back().version);
      LogPlan(env, result.plan, "roll back");
      return;
    }
    if (!targets.empty() && env.before_destructive) {
      auto below = next_current(targets.back().version);
      env.before_destructive(fmt::format("rolling back {} migration{} (to {})", targets.size(),
                                         targets.size() == 1 ? "" : "s",
                                         below ? "version " + std::to_string(*below) : std::string("none")));
    }
    for (const auto& a : targets) {
      const double t0 = sys::Monotonic();
      std::vector<Statement> statements;
      std::optional<std::string> lua;
      std::string chunk = "@" + a.file + " (as applied)";
      if (a.kind == "lua") {
        lua = a.down_source;
      } else {
        statements = SplitSql(*a.down_source, DialectOf(conn));
      }
      auto run = [&] {
        if (lua) {
          try {
            env.lua->Run(conn, *lua, chunk, false);
          } catch (const std::exception& e) {
            throw StatementFailure{-1, ErrorText(e)};
          }
          return;
        }
        for (size_t i = 0; i < statements.size(); ++i) {
          try {
            conn.Exec(statements[i].sql);
          } catch (const std::exception& e) {
            throw StatementFailure{static_cast<int>(i), ErrorText(e)};
          }
        }
      };
      try {
        if (a.no_transaction) {
          run();
          conn.Tx([&] { DeleteRow(conn, a.version); });
        } else {
          ForeignKeysOff fk_off(conn, RenameAsideRebuild(statements));
          try {
            conn.Tx([&] {
              run();
              if (std::string broken = ForeignKeyViolations(conn); !broken.empty()) {
                throw StatementFailure{kAtCommit, broken};
              }
              DeleteRow(conn, a.version);
            });
          } catch (const Error& e) {
            if (!IsCommitFailure(e)) throw;
            throw StatementFailure{kAtCommit, "COMMIT: " + ErrorText(e)};
          }
        }
      } catch (const StatementFailure& f) {
        std::string where = f.index == kAtCommit ? "before COMMIT"
                            : f.index < 0         ? "in its down function"
                                                  : fmt::format("at statement {} of its down (line {}: {})", f.index + 1,
                                                                statements[static_cast<size_t>(f.index)].line,
                                                                StatementHead(statements[static_cast<size_t>(f.index)].sql));
        std::string msg = fmt::format("rolling back {} failed {}: {}. {}; the database {}", a.file, where,
                                      Clause(f.message),
                                      a.no_transaction ? "It runs without a transaction: earlier statements of the "
                                                         "down stay applied and it is still recorded as applied"
                                                       : "It was rolled back and stays applied",
                                      VersionText(current));
        if (env.on_event) env.on_event({"fail", a.version, a.file, sys::Monotonic() - t0, {{"error", msg}}});
        result.to = current;
        Fail("failed", msg);
      }
      double seconds = sys::Monotonic() - t0;
      current = next_current(a.version);
      result.rolled_back.push_back({a.version, a.file, seconds, ""});
      if (env.on_event) {
        env.on_event({"rollback", a.version, a.file, seconds, {{"statements", statements.size()}, {"kind", a.kind}}});
      }
    }
    result.to = current;
  };
  if (o.dry_run) {
    body();
  } else {
    conn.Lock(kMigrateLockName, env.lock, body);
  }
  return result;
}


}  // namespace hoist::db

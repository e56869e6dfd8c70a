// migrate repair: accepts edited checksums and drops rows of failed
// attempts, with a reason, so a history problem can be resolved on record.
#include "db/migrate_internal.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/identity.h"
#include "sys/clock.h"

namespace hoist::db {

using namespace migrate_detail;

json RepairResult::ToJson() const { return {{"accepted", accepted}, {"dropped", dropped}}; }

RepairResult Repair(Connection& conn, const RepairOptions& o, const MigrateEnv& env) {
  if (o.reason.empty()) {
    Fail("invalid", "repair needs a reason: it is recorded with the migration and in the journal");
  }
  std::vector<MigrationFile> files;
  if (!o.dir.empty()) files = LoadMigrationDir(o.dir);
  const std::string by = env.applied_by.empty() ? DefaultOperator() : env.applied_by;
  RepairResult result;
  conn.Lock(kMigrateLockName, env.lock, [&] {
    if (!TableExists(conn)) return;
    auto st = ReadStatus(conn, o.dir, files);
    std::vector<std::pair<std::string, AppliedMigration>> updates;
    std::vector<std::pair<std::string, int64_t>> drops;
    for (const auto& e : st.entries) {
      if (o.version && e.version != *o.version) continue;
      if (e.state == "failed") {
        drops.emplace_back(e.label, e.version);
      } else if (e.state == "changed") {
        AppliedMigration a = *e.applied;
        const MigrationFile& f = *e.file;
        a.checksum = f.checksum;
        a.name = f.name;
        a.file = f.file;
        a.phase = f.phase;
        if (f.kind == "lua") {
          a.down_source = f.source;
        } else if (f.has_down) {
          a.down_source = StoredDown(f);
        } else {
          a.down_source.reset();
        }
        a.repaired_at = sys::NowIso();
        a.repaired_by = by;
        a.reason = o.reason;
        updates.emplace_back(e.label, std::move(a));
      }
    }
    conn.Tx([&] {
      for (const auto& [label, a] : updates) Upsert(conn, a);
      for (const auto& [label, v] : drops) DeleteRow(conn, v);
    });
    for (const auto& [label, a] : updates) {
      result.accepted.push_back(label);
      if (env.on_event) {
        env.on_event({"repair", a.version, label, 0,
                      {{"action", "accept checksum"}, {"checksum", a.checksum}, {"reason", o.reason}, {"by", by}}});
      }
    }
    for (const auto& [label, v] : drops) {
      result.dropped.push_back(label);
      if (env.on_event) {
        env.on_event({"repair", v, label, 0, {{"action", "drop failed record"}, {"reason", o.reason}, {"by", by}}});
      }
    }
  });
  return result;
}


}  // namespace hoist::db

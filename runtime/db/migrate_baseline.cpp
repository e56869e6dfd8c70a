// migrate baseline: marks an existing schema as at a version, optionally
// importing the history another tracker kept (EF Core, alembic, a plain
// table of versions).
#include "db/migrate_internal.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"
#include "db/schema.h"
#include "sys/clock.h"

namespace hoist::db {

using namespace migrate_detail;

namespace {

struct Imported {
  int64_t version = 0;
  std::string name;
  std::string raw;  // as the other tracker has it
};

// "20240101120000_AddUsers", "001_init.sql", "migrations/0003_x.up.sql" ->
// version and name; false when there is no numeric prefix.
bool ParseImportedName(std::string raw, Imported* out) {
  out->raw = raw;
  if (auto slash = raw.find_last_of('/'); slash != std::string::npos) raw = raw.substr(slash + 1);
  for (const char* ext : {".sql", ".lua", ".js", ".ts", ".py", ".cs"}) {
    if (raw.ends_with(ext)) raw.resize(raw.size() - std::string_view(ext).size());
  }
  for (const char* ext : {".up", ".down"}) {
    if (raw.ends_with(ext)) raw.resize(raw.size() - std::string_view(ext).size());
  }
  size_t i = 0;
  while (i < raw.size() && raw[i] >= '0' && raw[i] <= '9') ++i;
  if (i == 0 || i > 18) return false;
  out->version = std::stoll(raw.substr(0, i));
  size_t start = i;
  while (start < raw.size() && (raw[start] == '_' || raw[start] == '-')) ++start;
  out->name = raw.substr(start);
  return true;
}

}  // namespace

json BaselineResult::ToJson() const {
  json a = json::array();
  for (const auto& s : recorded) a.push_back({{"version", s.version}, {"file", s.file}, {"kind", s.cls}});
  return {{"recorded", a}, {"baseline", baseline ? json(*baseline) : json(nullptr)}, {"source", source}};
}

BaselineResult Baseline(Connection& conn, const BaselineOptions& o, const MigrateEnv& env) {
  if (o.version.has_value() == !o.import.empty()) {
    Fail("invalid", "baseline needs either a version or import = \"efcore\" | \"alembic\" | \"table\"");
  }
  if (!o.import.empty() && o.import != "efcore" && o.import != "alembic" && o.import != "table") {
    Fail("invalid", fmt::format("unknown import '{}' (expected \"efcore\", \"alembic\" or \"table\")", o.import));
  }
  std::vector<MigrationFile> files;
  if (!o.dir.empty()) files = LoadMigrationDir(o.dir);
  std::map<int64_t, const MigrationFile*> by_version;
  for (const auto& f : files) by_version[f.version] = &f;
  BaselineResult result;
  const std::string by = env.applied_by.empty() ? DefaultOperator() : env.applied_by;

  conn.Lock(kMigrateLockName, env.lock, [&] {
    EnsureTable(conn);
    auto rows = ReadApplied(conn);
    for (const auto& r : rows) {
      if (r.success) {
        Fail("already_tracked", fmt::format("{} already has hoist migration records (the latest: {}): baseline is "
                                            "for databases that predate hoist",
                                            conn.redacted(), rows.back().file));
      }
    }
    auto base_row = [&](int64_t version, const std::string& kind, const std::string& reason) {
      AppliedMigration a;
      a.version = version;
      a.kind = kind;
      auto it = by_version.find(version);
      if (it != by_version.end()) {
        const MigrationFile& f = *it->second;
        a.name = f.name;
        a.file = f.file;
        a.checksum = f.checksum;
        a.phase = f.phase;
        a.no_transaction = f.no_transaction;
        if (kind != "baseline") {
          a.kind = f.kind;
          if (f.kind == "lua") a.down_source = f.source;
          else if (f.has_down) a.down_source = StoredDown(f);
        }
      } else {
        a.name = kind == "baseline" ? "baseline" : "";
        a.file = fmt::format("{}_{}", version, a.name);
      }
      a.applied_at = sys::NowIso();
      a.run_id = env.run_id;
      a.hoist_version = HOIST_VERSION;
      a.applied_by = by;
      a.reason = o.reason.empty() ? reason : o.reason + " (" + reason + ")";
      return a;
    };
    std::vector<AppliedMigration> out;
    if (o.version) {
      result.source = "version";
      out.push_back(base_row(*o.version, "baseline", "baseline"));
      result.baseline = *o.version;
    } else if (o.import == "alembic") {
      result.source = "alembic_version";
      if (o.dir.empty()) Fail("invalid", "importing alembic_version needs the migrations dir, to find the file of "
                                         "the recorded revision");
      Result r;
      try {
        r = conn.Query("SELECT version_num FROM alembic_version");
      } catch (const Error& e) {
        Fail("not_found", fmt::format("cannot read alembic_version in {}: {}", conn.redacted(), e.message()));
      }
      if (r.rows.empty()) Fail("not_found", "alembic_version is empty: alembic has applied nothing; nothing to import");
      if (r.rows.size() > 1) {
        std::vector<std::string> heads;
        for (const auto& row : r.rows) heads.push_back(AsText(row[0]));
        Fail("invalid", fmt::format("alembic_version has {} heads ({}): merge them with alembic first, or baseline "
                                    "by version",
                                    heads.size(), Join(heads, ", ")));
      }
      std::string rev = AsText(r.rows[0][0]);
      const MigrationFile* match = nullptr;
      for (const auto& f : files) {
        const std::string& n = f.name;
        if (n == rev || n.rfind(rev + "_", 0) == 0 || n.ends_with("_" + rev) || n.find("_" + rev + "_") != std::string::npos) {
          match = &f;
        }
      }
      if (!match) {
        Fail("not_found", fmt::format("alembic_version says revision {} but no file in {} names it: rename the file "
                                      "that corresponds to it NNNN_{}_<name>.sql, or baseline by version",
                                      rev, o.dir, rev));
      }
      out.push_back(base_row(match->version, "baseline", "imported from alembic_version " + rev));
      result.baseline = match->version;
    } else {
      std::string table = o.import == "efcore" ? "__EFMigrationsHistory" : o.table;
      std::string column = o.import == "efcore" ? "MigrationId" : o.column;
      result.source = table;
      if (column.empty()) {
        std::vector<ColumnInfo> cols;
        try {
          cols = conn.Columns(table);
        } catch (const Error& e) {
          Fail("not_found", fmt::format("no table {} to import in {}", table, conn.redacted()));
        }
        for (const char* cand : {"name", "migration", "filename", "file_name", "file", "version", "id"}) {
          for (const auto& c : cols) {
            if (column.empty() && c.name == cand) column = c.name;
          }
        }
        if (column.empty()) {
          std::vector<std::string> names;
          for (const auto& c : cols) names.push_back(c.name);
          Fail("invalid", fmt::format("cannot tell which column of {} names the migrations ({}): pass column = ...",
                                      table, Join(names, ", ")));
        }
      }
      Result r;
      try {
        r = conn.Query("SELECT " + QuoteIdent(column) + " FROM " + QuoteIdent(table));
      } catch (const Error& e) {
        Fail("not_found", fmt::format("cannot read {} in {}: {}", table, conn.redacted(), e.message()));
      }
      std::vector<Imported> entries;
      std::vector<std::string> bad, unmatched;
      for (const auto& row : r.rows) {
        Imported im;
        if (auto* i = std::get_if<int64_t>(&row[0])) {
          im.version = *i;
          im.raw = std::to_string(*i);
        } else if (!ParseImportedName(AsText(row[0]), &im)) {
          bad.push_back(AsText(row[0]));
          continue;
        }
        if (!o.dir.empty() && !by_version.count(im.version)) unmatched.push_back(im.raw);
        entries.push_back(im);
      }
      if (!bad.empty()) {
        Fail("invalid", fmt::format("{} lists migrations without a numeric prefix ({}): baseline by version instead",
                                    table, Join(bad, ", ")));
      }
      if (!unmatched.empty()) {
        Fail("not_found", fmt::format("{} lists {} that {} no file in {}: add the file{} (named with the same number), "
                                      "or baseline by version",
                                      table, Join(unmatched, ", "), unmatched.size() == 1 ? "has" : "have", o.dir,
                                      unmatched.size() == 1 ? "" : "s"));
      }
      std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
      for (const auto& im : entries) {
        AppliedMigration a = base_row(im.version, "imported", "imported from " + table + " " + im.raw);
        if (o.dir.empty()) {
          a.name = im.name;
          a.file = im.raw;
        }
        out.push_back(std::move(a));
      }
    }
    conn.Tx([&] {
      for (const auto& a : out) Upsert(conn, a);
    });
    for (const auto& a : out) {
      result.recorded.push_back({a.version, a.file, 0, a.kind});
      if (env.on_event) {
        env.on_event({o.version ? "baseline" : "import", a.version, a.file, 0, {{"reason", a.reason}, {"by", by}}});
      }
    }
  });
  return result;
}

}  // namespace hoist::db

// Migration status and validate: which migrations a directory holds,
// which the database has applied, and what history problems that shows;
// and the dry-run plan the applier and down print.
#include "db/migrate_internal.h"

#include <map>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "core/identity.h"
#include "core/strings.h"
#include "db/sql_split.h"

namespace hoist::db {
namespace migrate_detail {
namespace {

MigrationStatus ComputeStatus(const std::string& dir, bool tracked, const std::vector<MigrationFile>& files,
                              const std::vector<AppliedMigration>& rows) {
  MigrationStatus st;
  st.dir = dir;
  st.tracked = tracked;
  std::map<int64_t, const MigrationFile*> by_file;
  std::map<int64_t, const AppliedMigration*> by_row;
  for (const auto& f : files) by_file[f.version] = &f;
  for (const auto& r : rows) {
    by_row[r.version] = &r;
    if (!r.success) continue;
    if (!st.current || r.version > *st.current) st.current = r.version;
    if (r.kind == "baseline" && (!st.baseline || r.version > *st.baseline)) st.baseline = r.version;
  }
  std::set<int64_t> versions;
  for (const auto& [v, f] : by_file) versions.insert(v);
  for (const auto& [v, r] : by_row) versions.insert(v);
  for (int64_t v : versions) {
    StatusEntry e;
    e.version = v;
    auto fi = by_file.find(v);
    auto ri = by_row.find(v);
    if (fi != by_file.end()) e.file = *fi->second;
    if (ri != by_row.end()) e.applied = *ri->second;
    e.label = e.file ? e.file->file : (e.applied && !e.applied->file.empty() ? e.applied->file : std::to_string(v));
    if (e.applied && !e.applied->success) {
      e.state = "failed";
    } else if (e.applied && e.applied->kind == "baseline") {
      e.state = "baseline";
    } else if (e.applied) {
      if (!e.file) {
        e.state = "missing";
      } else if (!e.applied->checksum.empty() && e.applied->checksum != e.file->checksum) {
        e.state = "changed";
      } else {
        e.state = "applied";
      }
    } else if (st.baseline && v <= *st.baseline) {
      e.state = "baseline";
    } else if (st.current && v < *st.current) {
      e.state = "out_of_order";
    } else {
      e.state = "pending";
    }
    st.entries.push_back(std::move(e));
  }
  return st;
}

}  // namespace

MigrationStatus ReadStatus(Connection& conn, const std::string& dir, const std::vector<MigrationFile>& files) {
  bool tracked = TableExists(conn);
  std::vector<AppliedMigration> rows;
  if (tracked) rows = ReadApplied(conn);
  return ComputeStatus(dir, tracked, files, rows);
}

std::vector<std::string> HistoryProblems(const MigrationStatus& st, const ValidateOptions& o, std::string* code) {
  std::vector<std::string> problems;
  auto note = [&](const char* c, std::string msg) {
    if (code->empty()) *code = c;
    problems.push_back(std::move(msg));
  };
  for (const auto& e : st.entries) {
    if (e.state == "changed" && !o.allow_changed) {
      note("changed", fmt::format("{} was changed after it was applied (applied {} with checksum {}, the file now has "
                                  "{}): restore the file as applied, or accept the change with "
                                  "migrate.repair(db, {{ dir = ..., reason = \"...\" }})",
                                  e.label, e.applied->applied_at, Short(e.applied->checksum),
                                  Short(e.file->checksum)));
    }
  }
  for (const auto& e : st.entries) {
    if (e.state == "missing" && !o.allow_missing) {
      note("missing", fmt::format("{} is applied (since {}) but its file is not in {}: roll it back with migrate.down "
                                  "(its down is stored), restore the file, or pass allow_missing = true",
                                  e.label, e.applied->applied_at, st.dir));
    }
  }
  for (const auto& e : st.entries) {
    if (e.state == "out_of_order" && !o.allow_out_of_order) {
      note("out_of_order", fmt::format("{} is pending but older than the current version {} (it was added after "
                                       "later migrations were applied): renumber it above {}, or apply it with "
                                       "allow_out_of_order = true",
                                       e.label, *st.current, *st.current));
    }
  }
  return problems;
}

void ThrowProblems(const std::string& code, const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  if (problems.size() == 1) Fail(code, problems[0]);
  Fail(code, fmt::format("{} problems with the migration history: {}", problems.size(), Join(problems, "; ")));
}

json PlanEntry(const MigrationFile& m, Dialect d, bool up) {
  json statements = json::array();
  if (m.kind == "lua") {
    statements.push_back(fmt::format("-- Lua: the {} function of {}", up ? "up" : "down", m.file));
  } else {
    for (const auto& s : SplitSql(up ? m.up : m.down, d)) statements.push_back(s.sql);
  }
  return {{"version", m.version}, {"file", m.file}, {"transaction", !m.no_transaction}, {"statements", statements}};
}

void LogPlan(const MigrateEnv& env, const json& plan, const char* what) {
  if (!env.log) return;
  if (plan.empty()) {
    env.log(fmt::format("dry run: nothing to {}", what));
    return;
  }
  for (const auto& p : plan) {
    std::string text = fmt::format("-- {} {}{}\n", what, p["file"].get<std::string>(),
                                   p["transaction"].get<bool>() ? "" : " (no transaction)");
    for (const auto& s : p["statements"]) {
      const auto& sql = s.get_ref<const std::string&>();
      text += sql + (sql.rfind("--", 0) == 0 ? "\n" : ";\n");
    }
    env.log(text);
  }
}

}  // namespace migrate_detail

using namespace migrate_detail;

std::string DefaultOperator() { return OperatorAtHost(); }

json AppliedMigration::ToJson() const {
  auto opt = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  return {{"version", version},
          {"name", name},
          {"file", file},
          {"kind", kind},
          {"checksum", checksum},
          {"phase", opt(phase)},
          {"no_transaction", no_transaction},
          {"has_down", down_source.has_value()},
          {"applied_at", applied_at},
          {"duration_ms", duration_ms},
          {"run_id", run_id ? json(*run_id) : json(nullptr)},
          {"hoist_version", hoist_version},
          {"success", success},
          {"error", opt(error)},
          {"applied_by", applied_by},
          {"class", opt(cls)},
          {"reason", opt(reason)},
          {"repaired_at", opt(repaired_at)},
          {"repaired_by", opt(repaired_by)}};
}

std::vector<std::string> MigrationStatus::Labels(const std::string& state) const {
  std::vector<std::string> out;
  for (const auto& e : entries) {
    if (e.state == state) out.push_back(e.label);
  }
  return out;
}

size_t MigrationStatus::Count(const std::string& state) const {
  return static_cast<size_t>(
      std::count_if(entries.begin(), entries.end(), [&](const StatusEntry& e) { return e.state == state; }));
}

json MigrationStatus::ToJson() const {
  json list = json::array();
  for (const auto& e : entries) {
    json j = {{"version", e.version}, {"file", e.label}, {"state", e.state}};
    if (e.file) {
      j["name"] = e.file->name;
      j["kind"] = e.file->kind;
      j["checksum"] = e.file->checksum;
      j["phase"] = e.file->phase.empty() ? json(nullptr) : json(e.file->phase);
      j["no_transaction"] = e.file->no_transaction;
    }
    if (e.applied) {
      const auto& a = *e.applied;
      if (!e.file) {
        j["name"] = a.name;
        j["kind"] = a.kind;
        j["phase"] = a.phase.empty() ? json(nullptr) : json(a.phase);
        j["no_transaction"] = a.no_transaction;
      }
      j["applied"] = a.ToJson();
      j["applied_at"] = a.applied_at;
      j["applied_checksum"] = a.checksum;
    }
    list.push_back(std::move(j));
  }
  json counts = json::object();
  for (const char* s : {"applied", "pending", "changed", "missing", "failed", "out_of_order", "baseline"}) {
    counts[s] = Count(s);
  }
  bool ok = Count("changed") == 0 && Count("missing") == 0 && Count("failed") == 0 && Count("out_of_order") == 0;
  return {{"dir", dir},
          {"tracked", tracked},
          {"current", current ? json(*current) : json(nullptr)},
          {"baseline", baseline ? json(*baseline) : json(nullptr)},
          {"ok", ok},
          {"counts", counts},
          {"pending", Labels("pending")},
          {"changed", Labels("changed")},
          {"missing", Labels("missing")},
          {"failed", Labels("failed")},
          {"out_of_order", Labels("out_of_order")},
          {"migrations", list}};
}

std::string MigrationStatus::Text() const {
  std::string out;
  std::vector<std::string> parts;
  for (const char* s : {"applied", "pending", "changed", "missing", "failed", "out_of_order", "baseline"}) {
    if (size_t n = Count(s)) parts.push_back(fmt::format("{} {}", n, std::string(s) == "out_of_order" ? "out of order" : s));
  }
  out += fmt::format("current version: {}{}\n", current ? std::to_string(*current) : "none",
                     parts.empty() ? "" : " (" + Join(parts, ", ") + ")");
  if (!tracked) out += "no hoist_schema_migrations table yet: hoist has applied nothing here\n";
  if (entries.empty()) {
    out += "no migrations in " + dir + "\n";
    return out;
  }
  size_t w = 7;
  for (const auto& e : entries) w = std::max(w, std::to_string(e.version).size());
  out += fmt::format("{:>{}}  {:<12}  {:<8}  {:<24}  {}\n", "VERSION", w, "STATE", "PHASE", "APPLIED AT", "FILE");
  for (const auto& e : entries) {
    std::string phase = e.file ? e.file->phase : e.applied ? e.applied->phase : "";
    std::string at = e.applied ? e.applied->applied_at : "";
    std::string state = e.state == "out_of_order" ? "out-of-order" : e.state;
    out += fmt::format("{:>{}}  {:<12}  {:<8}  {:<24}  {}\n", e.version, w, state, phase.empty() ? "-" : phase,
                       at.empty() ? "-" : at, e.label);
    if (e.state == "failed" && e.applied && !e.applied->error.empty()) {
      out += fmt::format("{:>{}}  error: {}\n", "", w, e.applied->error);
    }
  }
  return out;
}

MigrationStatus Status(Connection& conn, const std::string& dir) {
  auto files = LoadMigrationDir(dir);
  return ReadStatus(conn, dir, files);
}

MigrationStatus Validate(Connection& conn, const std::string& dir, const ValidateOptions& options) {
  auto st = Status(conn, dir);
  std::string code;
  auto problems = HistoryProblems(st, options, &code);
  ThrowProblems(code, problems);
  return st;
}

}  // namespace hoist::db

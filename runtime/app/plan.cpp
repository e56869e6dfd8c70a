#include "app/plan.h"

#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "sys/fs.h"

namespace hoist::app {

using json = nlohmann::json;

namespace {

std::string PlanPath(const Project& project, const std::string& hash) {
  return project.root + "/.hoist/plans/" + hash + ".json";
}

// One line per key of a {name: sha256} map that differs.
void MapChanges(const json& was, const json& now, const std::string& what, std::vector<std::string>* out) {
  json w = was.is_object() ? was : json::object(), n = now.is_object() ? now : json::object();
  for (auto& [k, v] : n.items()) {
    if (!w.contains(k)) {
      out->push_back(fmt::format("{}{} is new", what, k));
    } else if (w[k] != v) {
      out->push_back(fmt::format("{}{} changed", what, k));
    }
  }
  for (auto& [k, v] : w.items()) {
    if (!n.contains(k)) out->push_back(fmt::format("{}{} is gone", what, k));
  }
}

std::string PlanChanges(const json& was, const json& now) {
  std::vector<std::string> out;
  for (const char* key : {"source_sha256", "params", "env"}) {
    if (was.value(key, json()) != now.value(key, json())) {
      out.push_back(fmt::format("{} was {} and is now {}", key, was.value(key, json()).dump(), now.value(key, json()).dump()));
    }
  }
  json wdb = was.value("database", json::object()), ndb = now.value("database", json::object());
  if (wdb.value("fingerprint", "") != ndb.value("fingerprint", "")) out.push_back("the database schema changed");
  json wi = was.value("inputs", json::object()), ni = now.value("inputs", json::object());
  if (wi.value("hoist", json()) != ni.value("hoist", json())) out.push_back("hoist's version changed");
  if (wi.value("config", json()) != ni.value("config", json())) out.push_back("hoist.lua changed");
  MapChanges(wi.value("stdlib", json::object()), ni.value("stdlib", json::object()), "stdlib module ", &out);
  MapChanges(wi.value("lib", json::object()), ni.value("lib", json::object()), "lib/", &out);
  json wm = wi.value("migrations", json::object()), nm = ni.value("migrations", json::object());
  for (auto& [dir, files] : nm.items()) {
    MapChanges(wm.value(dir, json::object()), files, "migration file " + dir + "/", &out);
  }
  for (auto& [dir, files] : wm.items()) {
    if (!nm.contains(dir)) out.push_back("migrations dir " + dir + " is no longer used");
  }
  json ww = was.value("world", json::object()), nw = now.value("world", json::object());
  for (auto& [k, v] : nw.items()) {
    if (!ww.contains(k)) {
      out.push_back(k + " was not looked at in the rehearsal");
    } else if (ww[k] != v) {
      out.push_back(k + " changed");
    }
  }
  for (auto& [k, v] : ww.items()) {
    if (!nw.contains(k)) out.push_back(k + " is no longer looked at");
  }
  return Join(out, "; ");
}

// Row counts seen then and now: said, never a reason to refuse.
std::string ObservedChanges(const json& was, const json& now) {
  std::vector<std::string> out;
  json wr = was.value("rows", json::object()), nr = now.value("rows", json::object());
  for (auto& [t, n] : nr.items()) {
    if (wr.contains(t) && wr[t] != n) out.push_back(fmt::format("table {} had {} rows and has {}", t, wr[t].dump(), n.dump()));
  }
  return Join(out, "; ");
}

}  // namespace

void KeepPlan(const Project& project, const SandboxResult& r) {
  try {
    sys::MkdirP(project.root + "/.hoist/plans", 0700);
    json kept = r.plan;
    kept["observed"] = r.observed;  // beside the plan: not part of its hash
    sys::WriteAtomic(PlanPath(project, r.plan_hash), Mask(kept.dump(2, ' ', false, json::error_handler_t::replace)),
                     0600);
  } catch (const Error& e) {
    log::Warn("could not keep the plan for --expect-plan: " + e.message());
  }
}

std::string CheckExpectedPlan(const Project& project, const std::string& expected, const SandboxResult& r) {
  json kept;
  bool have = false;
  try {
    kept = json::parse(sys::ReadFile(PlanPath(project, expected)));
    have = kept.is_object();
  } catch (const std::exception&) {
  }
  if (r.plan_hash != expected) {
    std::string why = have ? PlanChanges(kept, r.plan) : "no rehearsal with that hash is kept in .hoist/plans";
    return fmt::format("the plan changed since the rehearsal (expected {}, now {}){}; rehearse again with --sandbox",
                       expected.substr(0, 12), r.plan_hash.substr(0, 12), why.empty() ? "" : ": " + why);
  }
  if (have) {
    std::string seen = ObservedChanges(kept.value("observed", json::object()), r.observed);
    if (!seen.empty()) log::Info("plan unchanged; observed since the rehearsal (not part of the plan): " + seen);
  }
  return "";
}

}  // namespace hoist::app

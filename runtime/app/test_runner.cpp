#include "app/test_runner.h"

#include <lua.hpp>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "app/sandbox.h"
#include "bind/context.h"
#include "core/error.h"
#include "core/exit_codes.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "engine/lease.h"
#include "engine/reporter.h"
#include "engine/sim_world.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "lua/state.h"
#include "sys/clock.h"

namespace hoist::app {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

[[noreturn]] void Invalid(const std::string& msg) { throw Error("testing", "invalid", msg); }

std::string Str(const json& j, const char* key, const std::string& fallback = "") {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_string()) Invalid(fmt::format("world: '{}' must be a string", key));
  return j[key].get<std::string>();
}

json List(const json& j, const char* key) {
  if (!j.contains(key)) return json::array();
  if (j[key].is_object() && j[key].empty()) return json::array();  // {} reads as an empty object
  if (!j[key].is_array()) Invalid(fmt::format("world: '{}' must be a list", key));
  return j[key];
}

/// The simulated world a test scripted (docs/testing.md lists the keys).
/// Relative paths are the project root's, as the environment's are.
void BuildWorld(engine::SimWorld& w, const json& spec, const std::string& root) {
  auto path = [&](std::string p) { return p.empty() || p[0] == '/' ? p : root + "/" + p; };
  static const std::vector<std::string> kKeys = {"files",     "nginx",     "services", "listening", "frontends",
                                                 "processes", "http",      "behave",   "containers"};
  for (auto& [k, v] : spec.items()) {
    if (std::find(kKeys.begin(), kKeys.end(), k) == kKeys.end()) {
      std::string hint = Suggest(k, kKeys);
      Invalid(fmt::format("world: unknown key '{}'{} (expected: files, nginx, services, listening, frontends, "
                          "processes, http, behave, containers)",
                          k, hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
    }
  }
  if (spec.contains("files")) {
    for (auto& [file, data] : spec["files"].items()) {
      if (!data.is_string()) Invalid("world.files: " + file + " must map to the file's text");
      w.SetFile(path(file), data.get<std::string>());
    }
  }
  if (spec.contains("nginx")) {
    const json& n = spec["nginx"];
    w.AddNginx(path(Str(n, "pid_file", "/run/nginx.pid")), n.value("workers", 2));
    if (Str(n, "reload") == "ignored") w.SetReloadIgnored(true);
  }
  for (const auto& s : List(spec, "services")) {
    w.AddService(Str(s, "name"), path(Str(s, "pid_file")), s.value("port", 0));
  }
  for (const auto& p : List(spec, "listening")) w.Listen(p.get<int>());
  for (const auto& c : List(spec, "containers")) w.AddContainer(Str(c, "name"), Str(c, "image"));
  for (const auto& f : List(spec, "frontends")) w.AddFrontend(f.value("port", 80), path(Str(f, "conf")));
  for (const auto& p : List(spec, "processes")) {
    engine::SimProcessRule r;
    r.match = Str(p, "match");
    if (r.match.empty()) Invalid("world.processes: each rule needs match = \"words of the argv\"");
    r.exit_code = p.value("code", 0);
    r.out = Str(p, "stdout");
    r.err = Str(p, "stderr");
    r.times = p.value("times", -1);
    r.seconds = p.value("seconds", 0.0);
    w.AddProcessRule(r);
  }
  for (const auto& h : List(spec, "http")) {
    engine::SimHttpRule r;
    r.url = Str(h, "url");
    if (r.url.empty()) Invalid("world.http: each rule needs url = \"http://...\" (a prefix)");
    r.method = Str(h, "method");
    r.status = h.value("status", 200);
    r.body = Str(h, "body");
    r.error_code = Str(h, "error");
    r.times = h.value("times", -1);
    r.seconds = h.value("seconds", 0.0);
    w.AddHttpRule(r);
  }
  if (spec.contains("behave")) {
    for (auto& [who, b] : spec["behave"].items()) {
      engine::SimServiceScript s;
      s.behaviour = Str(b, "behaviour", "listens");
      if (s.behaviour != "listens" && s.behaviour != "never_listens" && s.behaviour != "exits") {
        Invalid("world.behave." + who + ": behaviour must be listens, never_listens or exits");
      }
      s.listen_after = b.value("listen_after", 0.0);
      w.ScriptService(who, s);
    }
  }
}

/// Drops null members: Lua has no nil inside tables, and hoist.json.null
/// would make `if r.error then` true.
void StripNulls(json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      if (it->is_null()) {
        it = j.erase(it);
      } else {
        StripNulls(*it);
        ++it;
      }
    }
  } else if (j.is_array()) {
    for (auto& e : j) StripNulls(e);
  }
}

// What hoist.sandbox runs: the sandboxed playbooks of one test file.
class TestSandboxHost : public bind::SandboxHost {
 public:
  explicit TestSandboxHost(Project project) : project_(std::move(project)) {}

  /// sandbox.run{ playbook, params, env, env_table, db = { sql | url } | false,
  ///   world = {...}, lease = { owner, reason }, facts = { key = value }, yes } -> result
  json Run(const json& spec) override {
    const Project& project = project_;
    SandboxOptions o;
    o.keep = true;  // the test queries the copy; hoist.testing removes it after the case
    o.run.playbook = spec.value("playbook", "");
    o.run.env = spec.value("env", "");
    o.run.assume_yes = spec.value("yes", true);
    if (spec.contains("params") && spec["params"].is_object()) o.run.params.file = spec["params"];
    if (spec.contains("env_table")) {
      o.run.env_table = spec["env_table"].is_object() ? spec["env_table"] : json::object();
    }
    if (spec.contains("facts") && spec["facts"].is_object()) {
      for (const auto& [key, value] : spec["facts"].items()) o.run.facts[key] = {{"value", value}};
    }
    if (spec.contains("db")) {
      const json& d = spec["db"];
      if (d.is_boolean() && !d.get<bool>()) {
        o.db.none = true;
      } else if (d.is_object()) {
        o.db.sql_file = d.value("sql", "");
        o.db.url = d.value("url", "");
      }
    }
    engine::SimOptions so;
    so.mode = "sandbox";
    engine::SimWorld world(so);
    if (spec.contains("world") && spec["world"].is_object()) BuildWorld(world, spec["world"], project.root);
    o.world = &world;
    if (spec.contains("lease") && spec["lease"].is_object()) {
      engine::Lease l;
      l.env = o.run.env.empty() ? (o.run.env_table.is_object() ? "test" : "default") : o.run.env;
      l.owner = spec["lease"].value("owner", "someone-else");
      l.host = spec["lease"].value("host", "other-host");
      l.reason = spec["lease"].value("reason", "held by a test");
      l.pid = 1;
      l.token = "test-foreign-lease";
      o.foreign_lease = l;
    }
    auto quiet = engine::MakeNullReporter();
    SandboxResult r = RunSandbox(project, o, *quiet);
    json out = {{"status", r.outcome.status},
                {"exit_code", r.outcome.exit_code},
                {"run_id", r.outcome.run_id},
                {"error", r.outcome.error.empty() ? json() : json(r.outcome.error)},
                {"error_code", r.outcome.error_code.empty() ? json() : json(r.outcome.error_code)},
                {"steps", r.journal.value("steps", json::array())},
                {"events", r.journal.value("events", json::array())},
                {"db_url", r.copy_url},
                {"dir", r.dir},
                {"project_root", project.root},
                {"schema_diff", r.schema_diff},
                {"plan_hash", r.plan_hash}};
    json changes = json::array();
    for (const auto& c : r.changes) {
      changes.push_back({{"kind", c.kind}, {"what", c.what}, {"step", c.step}, {"detail", c.detail}});
    }
    out["changes"] = changes;
    json files = json::object();
    for (const auto& [p, data] : world.files()) files[p] = data ? json(*data) : json(false);
    out["files"] = files;
    json rows = json::object();
    for (const auto& [t, c] : r.rows) rows[t] = {{"before", c.before}, {"after", c.after}};
    out["rows"] = rows;
    StripNulls(out);
    return out;
  }

  json Replay(const std::string& file, const std::string& db_url) override {
    json out = ReplayFile(project_, file, db_url);
    StripNulls(out);
    return out;
  }
  void Remove(const std::string& dir) override { RemoveSandbox(dir); }
  std::string Diff(const std::string& a, const std::string& b) override { return LineDiff(a, b, 2); }

 private:
  Project project_;
};

std::vector<std::string> FindTests(const Project& project, const std::vector<std::string>& paths) {
  std::vector<std::string> roots = paths;
  if (roots.empty()) roots.push_back(project.root + "/tests");
  std::vector<std::string> out;
  for (const auto& p : roots) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) {
      out.push_back(fs::absolute(p).string());
      continue;
    }
    if (!fs::is_directory(p, ec)) throw Error("test", "not_found", "no such test file or directory: " + p);
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(p, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file() && it->path().filename().string().ends_with("_test.lua")) {
        found.push_back(fs::absolute(it->path()).string());
      }
    }
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

// Runs inside the test file's VM: loads the file, then its cases.
constexpr const char* kDriver = R"(
local testing = require "hoist.testing"
local chunk, file = ...
testing._begin(file)
chunk()
return testing._run()
)";

std::string Display(const Project& project, const std::string& file) {
  std::string prefix = project.root + "/";
  return file.rfind(prefix, 0) == 0 ? file.substr(prefix.size()) : file;
}

}  // namespace

int RunTests(const Project& project, const TestOptions& options) {
  std::vector<std::string> files = FindTests(project, options.paths);
  if (files.empty()) {
    fmt::print(stderr, "hoist: no *_test.lua files found{}\n",
               options.paths.empty() ? " under " + project.root + "/tests" : "");
    return kExitUsage;
  }
  int passed = 0, failed = 0;
  double t0 = sys::Monotonic();
  for (const auto& file : files) {
    std::string display = Display(project, file);
    if (!options.json) fmt::print("{}\n", display);
    json results = json::array();
    {
      lua::StateOptions so;
      so.lua_path.push_back(fs::path(file).parent_path().string());
      for (const auto& d : options.lib) so.lua_path.push_back(fs::absolute(d).string());
      so.lua_path.push_back(project.root + "/lib");
      lua::State vm(so);
      // A test's own code runs in a simulated world too: only sandbox.run
      // reaches a database, and only its copy.
      engine::SimOptions wo;
      wo.mode = "sandbox";
      engine::SimWorld world(wo);
      TestSandboxHost host(project);
      bind::Context ctx;
      ctx.sandbox_host = &host;
      ctx.world = &world;
      ctx.project_root = project.root;
      lua_State* L = vm.get();
      bind::SetContext(L, &ctx);
      try {
        vm.LoadChunk(kDriver, "=hoist test");
        vm.LoadFile(file, display);
        lua::PushString(L, file);
        lua::Call(L, 2, 1);
        results = lua::ToJson(L, -1, /*lenient=*/true);
        lua_pop(L, 1);
      } catch (const std::exception& e) {
        results = json::array({{{"name", "(loading the file)"}, {"ok", false}, {"error", e.what()}, {"seconds", 0}}});
      }
    }
    if (!results.is_array()) results = json::array();
    for (const auto& c : results) {
      bool ok = c.value("ok", false);
      ok ? ++passed : ++failed;
      std::string name = c.value("name", "?");
      std::string err = c.contains("error") && c["error"].is_string() ? Mask(c["error"].get<std::string>()) : "";
      double secs = c.value("seconds", 0.0);
      if (options.json) {
        json ev = {{"event", "test_case"}, {"file", display}, {"name", name}, {"ok", ok}, {"seconds", secs}};
        if (!ok) ev["error"] = err;
        fmt::print("{}\n", ev.dump(-1, ' ', false, json::error_handler_t::replace));
        continue;
      }
      fmt::print("  {}  {} ({})\n", ok ? "ok  " : "FAIL", name, engine::FormatDuration(secs));
      if (!ok) {
        std::string indented;
        for (size_t i = 0, j; i <= err.size(); i = j + 1) {
          j = err.find('\n', i);
          if (j == std::string::npos) j = err.size();
          indented += "        " + err.substr(i, j - i) + "\n";
        }
        fmt::print("{}", indented);
      }
    }
  }
  double secs = sys::Monotonic() - t0;
  if (options.json) {
    fmt::print("{}\n", json{{"event", "test_summary"}, {"passed", passed}, {"failed", failed}, {"seconds", secs}}.dump());
  } else {
    fmt::print("\n{} passed, {} failed ({})\n", passed, failed, engine::FormatDuration(secs));
  }
  std::fflush(stdout);
  return failed > 0 ? kExitFailed : kExitOk;
}

}  // namespace hoist::app

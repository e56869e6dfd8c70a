// A generated corpus of bad inputs, run through the real hoist binary: every
// key of a complete hoist.lua misspelt and given the wrong type (at every
// nesting level), params through -e and --params, broken playbook
// descriptions and malformed database URLs. Each must exit 2 with one
// message that names the file/key/param, run no step, and change no file.
#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "support/support.h"
#include "sys/sha256.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// A hoist.lua that sets every key hoist and the canned playbooks read.
json FullConfig() {
  return json::parse(R"({
    "state": ".hoist/state.db",
    "default_env": "prod",
    "lease": { "ttl": 60 },
    "memory_limit_mb": 256,
    "environments": {
      "prod": {
        "database": "sqlite:data/app.db",
        "migrations": "migrations",
        "backups": { "dir": "backups", "keep": 5, "keep_safety": 2, "compress": true, "format": "sqlite" },
        "docker_socket": "/run/docker.sock",
        "app": {
          "kind": "process", "argv": ["bin/api", "--port", "{port}"], "env": { "MODE": "prod" }, "cwd": ".",
          "colours": { "blue": { "port": 5001, "host": "127.0.0.1" }, "green": { "port": 5002 } },
          "run_dir": ".hoist/run", "start_timeout": 30, "stop_grace": 10, "name": "api",
          "image": "api:{version}", "socket": "/run/docker.sock", "network": "host", "binds": ["/srv:/srv"],
          "healthcheck": { "test": ["CMD", "true"], "interval": 1, "timeout": 1, "retries": 3, "start_period": 1 }
        },
        "nginx": {
          "conf": "nginx/api.conf", "upstream": "api", "main_conf": "nginx/nginx.conf", "prefix": "nginx",
          "args": ["-q"], "pid_file": "nginx/nginx.pid", "error_log": "nginx/error.log", "write": "rename",
          "maintenance_conf": "nginx/maint.conf", "maintenance_page": "nginx/503.html", "reload_timeout": 5,
          "verify": { "url": "http://127.0.0.1:8080/health", "method": "GET", "headers": { "Host": "api" },
                      "expect_header": "X-Colour", "expect_status": 200, "timeout": 10, "interval": 0.1,
                      "consecutive": 3, "probe_timeout": 1 }
        },
        "health": { "path": "/health", "expect_status": "200-299", "body_contains": "ok", "sql": "SELECT 1",
                    "timeout": 30, "interval": 0.2, "rollback_timeout": 5 },
        "bake": { "seconds": 1, "url": "http://127.0.0.1:8080/", "interval": 0.5, "max_failures": 0,
                  "expect_status": 200 }
      }
    }
  })");
}

std::string Lua(const json& v) {
  if (v.is_object()) {
    std::string out = "{ ";
    for (const auto& [k, item] : v.items()) out += "[" + json(k).dump() + "] = " + Lua(item) + ", ";
    return out + "}";
  }
  if (v.is_array()) {
    std::string out = "{ ";
    for (const auto& item : v) out += Lua(item) + ", ";
    return out + "}";
  }
  return v.dump();  // strings, numbers and booleans read the same in Lua
}

// "environments.prod.app" for the JSON pointer /environments/prod/app.
std::string Dotted(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ".") + k;
  return out;
}

struct Case {
  std::string name;
  json config;
  std::string must_name;  // what the message must contain
};

// Every key at every level: misspelt (one typo) and given a wrong type.
void Generate(const json& node, std::vector<std::string> keys, const json& root, std::vector<Case>& out) {
  if (!node.is_object()) return;
  for (const auto& [k, item] : node.items()) {
    auto path = keys;
    path.push_back(k);
    json::json_pointer ptr;
    for (const auto& p : path) ptr /= p;
    std::string parent = Dotted(keys);
    // Names of colours and environments are the user's: no typo case there.
    bool named_by_user = parent == "environments" || parent.ends_with(".colours") || parent.ends_with(".headers") ||
                         parent.ends_with("app.env");
    if (!named_by_user) {
      json typo = root;
      std::string bad = k.size() > 3 ? k.substr(0, k.size() - 1) : k + "x";
      json value = typo[ptr];
      typo[ptr.parent_pointer()].erase(k);
      typo[ptr.parent_pointer()][bad] = value;
      auto bad_path = keys;
      bad_path.push_back(bad);
      out.push_back({"typo " + Dotted(path), typo, "hoist.lua: " + Dotted(bad_path) + ": unknown key"});
    }
    json wrong = root;
    // A table where a value belongs, a number where a table belongs.
    wrong[ptr] = item.is_structured() ? json(42) : json{{"nested", {{"deep", true}}}};
    out.push_back({"type " + Dotted(path), wrong, "hoist.lua: " + Dotted(path) + " must be"});
    Generate(item, path, root, out);
  }
}

std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    ::lstat(e.path().c_str(), &st);
    std::string what = std::to_string(st.st_mode) + ":";
    if (e.is_regular_file()) what += sys::Sha256Hex(ReadAll(e.path()));
    out[e.path().string()] = what;
  }
  return out;
}

int CountLines(const std::string& text, const std::string& prefix) {
  int n = 0;
  size_t at = 0;
  while ((at = text.find(prefix, at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') ++n;
    at += prefix.size();
  }
  return n;
}

// A playbook whose step would leave a marker: none may appear.
const char* kMarkerPlaybook = R"lua(local hoist = require "hoist"
local fs = require "hoist.fs"
return hoist.playbook {
  name = "probe",
  version = "1.0.0",
  params = {
    n = { type = "integer", default = 1 },
    ratio = { type = "number", default = 0.5 },
    name = { type = "string", default = "x" },
    flag = { type = "boolean", default = false },
    mode = { type = "enum", values = { "fast", "safe" }, default = "safe" },
    needed = { type = "string", required = true },
  },
  run = function(run, p)
    run:step("mark", function() fs.write_atomic(run.project_root .. "/marker", "ran") end)
  end,
}
)lua";

struct Project {
  TempDir dir{"corpus"};
  Project() {
    WriteFile(dir / "data/.keep", "");
    WriteFile(dir / "migrations/0001_t.sql", "CREATE TABLE t (id INTEGER PRIMARY KEY);\n");
    WriteFile(dir / "playbooks/probe.lua", kMarkerPlaybook);
  }
  void Config(const std::string& lua) { WriteFile(dir / "hoist.lua", lua); }
};

// Runs args on the project; checks exit 2, one error line naming what it
// must, no step run, no file changed.
void ExpectRefused(Project& p, const std::vector<std::string>& args, const std::string& must_name,
                   const std::string& name) {
  CAPTURE(name);
  auto before = Snapshot(p.dir.path);
  auto r = RunHoist(p.dir.path, args);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(must_name) != std::string::npos);
  // One message: a run's "error: ... nothing ran", or the command line's "hoist: ...".
  CHECK(CountLines(r.err, "error: ") + CountLines(r.err, "hoist: ") == 1);
  if (CountLines(r.err, "error: ") == 1) CHECK(r.err.find("nothing ran (exit 2)") != std::string::npos);
  CHECK(r.err.find("json.exception") == std::string::npos);  // the library's own words are not a message
  CHECK(!fs::exists(p.dir / "marker"));
  CHECK(Snapshot(p.dir.path) == before);
}

TEST_SUITE("corpus") {
  TEST_CASE("corpus: every hoist.lua key, misspelt or of the wrong type, at every level: exit 2 before anything runs") {
    Project p;
    json full = FullConfig();
    // The complete config itself is valid: the probe playbook runs.
    p.Config("return " + Lua(full) + "\n");
    auto ok = RunHoist(p.dir.path, {"run", "probe", "-e", "needed=yes"});
    INFO(ok.out << ok.err);
    REQUIRE(ok.exit_code == 0);
    REQUIRE(fs::exists(p.dir / "marker"));
    fs::remove(p.dir / "marker");
    fs::remove_all(p.dir / ".hoist");

    std::vector<Case> cases;
    Generate(full, {}, full, cases);
    CHECK(cases.size() > 100);
    for (const auto& c : cases) {
      p.Config("return " + Lua(c.config) + "\n");
      ExpectRefused(p, {"run", "probe", "-e", "needed=yes"}, c.must_name, c.name);
      // The canned deploy reads these keys: it refuses the same way.
      ExpectRefused(p, {"deploy", "-e", "version=1"}, c.must_name, c.name + " (deploy)");
    }
  }

  TEST_CASE("corpus: environments that are not tables, and a list of environments, are refused") {
    Project p;
    for (const auto& [lua, must] : std::vector<std::pair<std::string, std::string>>{
             {"return { environments = { dev = 5 } }", "hoist.lua: environments.dev must be a table"},
             {"return { environments = { { database = \"sqlite:x.db\" } } }",
              "hoist.lua: environments must be a table keyed by name"},
             {"return { environments = \"prod\" }", "hoist.lua: environments must be"},
             {"return 5", "hoist.lua must return a table"},
             {"return { lease = { tll = 60 } }", "hoist.lua: lease.tll: unknown key (did you mean 'ttl'?)"},
             {"return { default_envv = \"prod\" }", "hoist.lua: default_envv: unknown key (did you mean 'default_env'?)"},
         }) {
      p.Config(lua);
      ExpectRefused(p, {"run", "probe", "-e", "needed=yes"}, must, lua);
    }
  }

  TEST_CASE("corpus: malformed database URLs in hoist.lua are config errors naming the environment, never echoing a password") {
    Project p;
    for (const auto& url : std::vector<std::string>{
             "postgres://app@db1:notaport/app", "mysql://app@db1/app", "postgres://app:pa@ss@db1/app",
             "postgres://app:se:cr/et@db1/app", "postgresql://[::1/app", "sqlite:"}) {
      p.Config("return { environments = { prod = { database = " + json(url).dump() + " } } }");
      ExpectRefused(p, {"migrate"}, "hoist.lua: environments.prod.database: ", url);
      auto r = RunHoist(p.dir.path, {"migrate"});
      CHECK(r.err.find("pa@ss") == std::string::npos);
      CHECK(r.err.find("se:cr/et") == std::string::npos);
    }
  }

  TEST_CASE("corpus: bad params through -e and --params: exit 2 naming the param, the playbook never runs") {
    Project p;
    p.Config("return { environments = { prod = { database = \"sqlite:data/app.db\" } } }");
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"-e", "n=abc"}, "'n'"},
        {{"-e", "n=99999999999999999999"}, "'n'"},
        {{"-e", "n=1.5"}, "'n'"},
        {{"-e", "ratio=fast"}, "'ratio'"},
        {{"-e", "flag=maybe"}, "'flag'"},
        {{"-e", "mode=reckless"}, "'mode'"},
        {{"-e", "nedded=yes"}, "'nedded'"},
        {{}, "'needed'"},
        {{"--params", "{\"n\": 18446744073709551615, \"needed\": \"y\"}"}, "'n'"},
        {{"--params", "{\"n\": 9223372036854775807.0, \"needed\": \"y\"}"}, "'n'"},
        {{"--params", "{\"n\": \"3\", \"needed\": \"y\"}"}, "'n'"},
        {{"--params", "{\"flag\": 1, \"needed\": \"y\"}"}, "'flag'"},
        {{"--params", "{\"needed\": \"y\", \"extra\": 1}"}, "'extra'"},
        {{"--params", "{bad json"}, "--params"},
        {{"--params", "[1, 2]"}, "--params"},
    };
    for (const auto& [extra, must] : cases) {
      std::vector<std::string> args = {"run", "probe"};
      bool has_needed = false;
      for (const auto& a : extra) has_needed = has_needed || a.find("needed") != std::string::npos;
      if (!has_needed && !extra.empty() && extra[0] == "-e") {
        args.push_back("-e");
        args.push_back("needed=y");
      }
      for (const auto& a : extra) {
        // --params takes a file: the JSON is written to one first.
        if (a.starts_with("{") || a.starts_with("[")) {
          WriteFile(p.dir / "params.json", a);
          args.push_back(p.dir / "params.json");
        } else {
          args.push_back(a);
        }
      }
      ExpectRefused(p, args, must, fmt::format("{}", fmt::join(args, " ")));
    }
  }

  TEST_CASE("corpus: broken playbook descriptions: exit 2 naming the file, nothing of them runs") {
    Project p;
    p.Config("return { environments = { prod = { database = \"sqlite:data/app.db\" } } }");
    const std::string head = "local hoist = require \"hoist\"\n";
    const std::string touch = "require(\"hoist.proc\").run({ \"touch\", \"" + (p.dir / "marker") + "\" })\n";
    const std::vector<std::pair<std::string, std::string>> bodies = {
        {"syntax", head + "return hoist.playbook { name = \"bad\", version = \"1.0.0\", run = function( end }\n"},
        {"not a table", head + "return 5\n"},
        {"unknown field", head + "return hoist.playbook { name = \"bad\", version = \"1.0.0\", prams = {}, "
                                 "run = function() end }\n"},
        {"param type", head + "return hoist.playbook { name = \"bad\", version = \"1.0.0\", params = { n = { type = "
                              "\"integr\" } }, run = function() end }\n"},
        {"version", head + "return hoist.playbook { name = \"bad\", version = \"1.x\", run = function() end }\n"},
        {"run", head + "return hoist.playbook { name = \"bad\", version = \"1.0.0\", run = 5 }\n"},
        {"load-time world call", head + touch +
                                     "return hoist.playbook { name = \"bad\", version = \"1.0.0\", run = function() end }\n"},
    };
    for (const auto& [what, body] : bodies) {
      WriteFile(p.dir / "playbooks/bad.lua", body);
      ExpectRefused(p, {"run", "bad"}, "playbooks/bad.lua", what);
    }
    fs::remove(p.dir / "playbooks/bad.lua");
  }
}

}  // namespace
}  // namespace hoist::test

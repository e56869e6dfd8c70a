// CLI smoke tests: the real hoist binary on real temp projects. Each test
// asserts an exit code and the message a user sees, and checks the journal
// through `hoist show --json` rather than trusting the output.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "db/connection.h"
#include "support/support.h"
#include "sys/clock.h"
#include "sys/fs.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// A project with hoist.lua and the given playbooks.
struct Project {
  TempDir dir{"cli"};
  explicit Project(const std::string& config = "") {
    if (!config.empty()) WriteFile(dir / "hoist.lua", config);
  }
  void Playbook(const std::string& name, const std::string& body) { WriteFile(dir / ("playbooks/" + name + ".lua"), body); }
  sys::ProcessResult Run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    return RunHoist(dir.path, std::move(args), std::move(env));
  }
  json Show(int64_t id) {
    auto r = Run({"show", std::to_string(id), "--json"});
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
  }
  std::vector<json> History() {
    auto r = Run({"history", "--json"});
    REQUIRE(r.exit_code == 0);
    std::vector<json> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }
};

const char* kStepsPlaybook = R"lua(local hoist = require "hoist"
return hoist.playbook {
  name = "steps", version = "1.0.0", summary = "three steps, the third may fail",
  params = {
    fail = { type = "boolean", default = false, help = "make the last step fail" },
    undo_fails = { type = "boolean", default = false },
  },
  run = function(run, p)
    run:step("one", function() return "r1" end, { undo = function(r) assert(r == "r1") end })
    run:step("two", function() return { n = 2 } end, {
      undo = function(r)
        assert(r.n == 2)
        if p.undo_fails then error("cannot undo two") end
      end })
    run:step("three", function()
      if p.fail then error("step three broke") end
    end)
  end,
})lua";

TEST_SUITE("cli") {

TEST_CASE("version prints the version") {
  Project p;
  auto r = p.Run({"version"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == std::string("hoist ") + HOIST_VERSION + "\n");
  CHECK(p.Run({"--version"}).out == std::string("hoist ") + HOIST_VERSION + "\n");
}

TEST_CASE("a runtime error in a playbook prints file and line and exits 1") {
  Project p;
  p.Playbook("broken", R"lua(return require("hoist").playbook {
  name = "broken", version = "0.1.0",
  run = function(run)
    local t = nil
    return t.field
  end,
})lua");
  auto r = p.Run({"run", "broken"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("error: playbooks/broken.lua:5: attempt to index a nil value (local 't')") != std::string::npos);
  // The one-line message by default; the traceback only with -v.
  CHECK(r.err.find("stack traceback") == std::string::npos);
  auto v = p.Run({"-v", "run", "broken"});
  CHECK(v.exit_code == 1);
  CHECK(v.err.find("stack traceback") != std::string::npos);
}

TEST_CASE("a syntax error names the file and line and exits 2") {
  Project p;
  p.Playbook("syntax", "return require('hoist').playbook {\n  name = 'syntax',\n  version = = '1',\n}\n");
  auto r = p.Run({"run", "syntax"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("playbooks/syntax.lua:3: unexpected symbol near '='") != std::string::npos);
  CHECK(p.History().empty());
}

TEST_CASE("a failing step runs the earlier undos in reverse order") {
  Project p;
  p.Playbook("steps", kStepsPlaybook);
  auto r = p.Run({"steps", "-e", "fail=true"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("error: playbooks/steps.lua:16: step three broke") != std::string::npos);
  json run = p.Show(1);
  CHECK(run["status"] == "failed");
  CHECK(run["exit_code"] == 1);
  std::vector<std::string> seen;
  for (const auto& s : run["steps"]) seen.push_back(s["kind"].get<std::string>() + ":" + s["name"].get<std::string>() + ":" + s["status"].get<std::string>());
  std::vector<std::string> want = {"step:one:ok", "step:two:ok", "step:three:failed", "undo:undo two:ok",
                                   "undo:undo one:ok"};
  CHECK(seen == want);
  CHECK(run["steps"][0]["result"] == "r1");
  CHECK(run["steps"][1]["result"] == json({{"n", 2}}));
}

TEST_CASE("a journal that cannot be written mid-run ends the run as failed, undos run, the lease is released") {
  Project p;
  p.Playbook("fill", R"lua(local hoist = require "hoist"
local fs = require "hoist.fs"
return hoist.playbook {
  name = "fill", version = "1.0.0",
  run = function(run)
    local root = run.project_root
    run:step("mark", function() fs.write_atomic(root .. "/marker", "x") return true end,
      { undo = function() fs.remove(root .. "/marker") end })
    -- A 4 MB step result: its record cannot be stored under the file-size limit.
    run:step("big", function() return string.rep("x", 4 * 1024 * 1024) end)
    run:step("never", function() fs.write_atomic(root .. "/never", "x") end)
  end,
})lua");
  REQUIRE(p.Run({"history"}).exit_code == 0);  // the state store exists, small
  // A file-size limit makes every write past 2 MB fail (EFBIG), as a full
  // disk would: the step result is the first record that cannot be stored.
  sys::ProcessSpec spec;
  spec.argv = {"prlimit", "--fsize=2000000", "--", HOIST_BINARY, "fill"};
  spec.cwd = p.dir.path;
  spec.env = {{"NO_COLOR", "1"}};
  spec.timeout = std::chrono::milliseconds(60000);
  auto r = sys::RunProcess(spec);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("cannot write the journal in " + (p.dir / ".hoist/state.db")) != std::string::npos);
  CHECK(r.err.find("nothing ran") == std::string::npos);
  CHECK_FALSE(fs::exists(p.dir / "marker"));  // the undo of "mark" ran
  CHECK_FALSE(fs::exists(p.dir / "never"));
  // Space is back: the next run takes the lease at once (it was released).
  p.Playbook("next", R"lua(local hoist = require "hoist"
return hoist.playbook { name = "next", version = "1.0.0", run = function(run) run:step("x", function() end) end })lua");
  auto next = p.Run({"next"});
  INFO(next.out << next.err);
  CHECK(next.exit_code == 0);
  json run = p.Show(1);
  CHECK(run["status"] == "failed");
  CHECK(run["exit_code"] == 1);
}

TEST_CASE("a backup whose manifest cannot be written (a full disk) leaves nothing under a final name") {
  Project p;
  p.Playbook("bk", R"lua(local hoist = require "hoist"
local db = require "hoist.db"
local backup = require "hoist.backup"
return hoist.playbook {
  name = "bk", version = "1.0.0",
  run = function(run)
    local root = run.project_root
    run:step("backup", function()
      local c <close> = db.open("sqlite://" .. root .. "/app.db", { create = true })
      c:exec("CREATE TABLE t (x)")
      -- A 1 MB reason makes the manifest the one file past the size limit.
      return backup.create(c, { dir = root .. "/backups", reason = string.rep("r", 1024 * 1024) }).path
    end)
  end,
})lua");
  REQUIRE(p.Run({"history"}).exit_code == 0);
  sys::ProcessSpec spec;
  spec.argv = {"prlimit", "--fsize=524288", "--", HOIST_BINARY, "bk"};
  spec.cwd = p.dir.path;
  spec.env = {{"NO_COLOR", "1"}};
  spec.timeout = std::chrono::milliseconds(60000);
  auto r = sys::RunProcess(spec);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  REQUIRE(fs::exists(p.dir / "backups"));
  for (const auto& e : fs::directory_iterator(p.dir / "backups")) {
    std::string name = e.path().filename().string();
    CAPTURE(name);
    // Only hidden leftovers (temp files, the lock) may remain; prune sweeps those.
    CHECK(name[0] == '.');
  }
}

TEST_CASE("a failing undo exits 3 and says what is still in effect") {
  Project p;
  p.Playbook("steps", kStepsPlaybook);
  auto r = p.Run({"steps", "-e", "fail=true", "-e", "undo_fails=true"});
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("undo FAILED:  two — playbooks/steps.lua:13: cannot undo two") != std::string::npos);
  CHECK(r.err.find("still in effect: two") != std::string::npos);
  CHECK(r.err.find("still in effect: one") != std::string::npos);
  json run = p.Show(1);
  CHECK(run["status"] == "failed_undo");
  // The undo of "one" was not attempted after "two" failed to undo.
  CHECK(run["steps"].size() == 4);
  CHECK(run["steps"][3]["name"] == "undo two");
  CHECK(run["steps"][3]["status"] == "failed");
}

TEST_CASE("a successful run exits 0 and journals every step") {
  Project p;
  p.Playbook("steps", kStepsPlaybook);
  auto r = p.Run({"steps"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("✓ one") != std::string::npos);
  CHECK(r.out.find("✓ three") != std::string::npos);
  json run = p.Show(1);
  CHECK(run["status"] == "ok");
  CHECK(run["steps"].size() == 3);
  CHECK(run["playbook"] == "steps");
  CHECK(run["version"] == "1.0.0");
  CHECK(run["source"] == kStepsPlaybook);
  CHECK(run["source_sha256"].get<std::string>().size() == 64);
  CHECK(run["params"] == json({{"fail", false}, {"undo_fails", false}}));
}

TEST_CASE("unknown, missing and mistyped params exit 2 with help and run nothing") {
  Project p;
  p.Playbook("deploy", R"lua(return require("hoist").playbook {
  name = "deploy", version = "1.0.0",
  params = {
    version = { type = "string", required = true, help = "release to deploy" },
    replicas = { type = "integer", default = 1, help = "instances per colour" },
    mode = { type = "enum", values = { "fast", "safe" }, default = "safe" },
  },
  run = function(run) run:step("deploy", function() end) end,
})lua");
  auto unknown = p.Run({"deploy", "-e", "version=1", "-e", "replcas=2"});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("param 'replcas' is not declared; did you mean 'replicas'?") != std::string::npos);
  CHECK(unknown.err.find("hint: hoist describe deploy lists its params") != std::string::npos);

  auto missing = p.Run({"deploy"});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("missing required param 'version' (string: release to deploy)") != std::string::npos);

  auto mistyped = p.Run({"deploy", "-e", "version=1", "-e", "replicas=two"});
  CHECK(mistyped.exit_code == 2);
  CHECK(mistyped.err.find("param 'replicas': 'two' is not an integer (integer: instances per colour)") !=
        std::string::npos);

  auto bad_enum = p.Run({"deploy", "-e", "version=1", "-e", "mode=yolo"});
  CHECK(bad_enum.exit_code == 2);
  CHECK(bad_enum.err.find("param 'mode': 'yolo' is not one of fast, safe") != std::string::npos);

  CHECK(p.History().empty());  // nothing ran, nothing journaled
}

TEST_CASE("params come from a JSON file and -e overrides it") {
  Project p;
  p.Playbook("echo", R"lua(return require("hoist").playbook {
  name = "echo", version = "1.0.0", lock = false,
  params = { n = { type = "number" }, tags = { type = "list" }, who = { type = "string" } },
  run = function(run, p)
    run:step("echo", function() return { n = p.n, tags = p.tags, who = p.who } end)
  end,
})lua");
  WriteFile(p.dir / "params.json", R"({"n": 1.5, "tags": ["a", "b"], "who": "file"})");
  auto r = p.Run({"echo", "--params", "params.json", "-e", "who=cli"});
  REQUIRE(r.exit_code == 0);
  CHECK(p.Show(1)["steps"][0]["result"] == json({{"n", 1.5}, {"tags", {"a", "b"}}, {"who", "cli"}}));
  auto bad = p.Run({"echo", "--params", "missing.json"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--params: cannot read missing.json") != std::string::npos);
}

TEST_CASE("a second concurrent run exits 4 naming the holder") {
  Project p;
  p.Playbook("hold", R"lua(local fs = require "hoist.fs"
local time = require "hoist.time"
return require("hoist").playbook {
  name = "hold", version = "1.0.0",
  run = function(run)
    run:step("wait for release file", function()
      while not fs.exists("release") do time.sleep(0.02) end
    end, { timeout = 30 })
  end,
})lua");
  sys::ProcessResult first;
  std::thread holder([&] { first = p.Run({"hold", "--reason", "deploy v2"}, {{"HOIST_OPERATOR", "alice"}}); });
  // Wait (bounded) until the first run holds the lease.
  bool locked = false;
  for (int i = 0; i < 500 && !locked; ++i) {
    locked = p.Run({"lock", "status", "--json"}).out.find("\"owner\":\"alice\"") != std::string::npos;
    if (!locked) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(locked);
  auto second = p.Run({"hold"}, {{"HOIST_OPERATOR", "bob"}});
  WriteFile(p.dir / "release", "");
  holder.join();
  CHECK(second.exit_code == 4);
  CHECK(second.err.find("environment 'default' is locked by alice@") != std::string::npos);
  CHECK(second.err.find("reason: deploy v2") != std::string::npos);
  CHECK(second.err.find("hint: wait for run 1 to finish") != std::string::npos);
  CHECK(first.exit_code == 0);
  // The lease is gone once the holder finished.
  CHECK(p.Run({"lock", "status"}).out == "no environment is locked\n");
}

TEST_CASE("a SIGKILLed run's lease is taken over at once on its host, and marks the run abandoned") {
  Project p("return { lease = { ttl = 60 } }\n");
  p.Playbook("hang", R"lua(local time = require "hoist.time"
return require("hoist").playbook {
  name = "hang", version = "1.0.0",
  run = function(run) run:step("hang", function() time.sleep(60) end) end,
})lua");
  std::thread victim([&] { p.Run({"hang"}); });
  json lease;
  for (int i = 0; i < 500 && lease.is_null(); ++i) {
    auto out = p.Run({"lock", "status", "--json"}).out;
    if (!out.empty()) lease = json::parse(out);
    if (lease.is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(!lease.is_null());
  REQUIRE(::kill(static_cast<pid_t>(lease["pid"].get<int64_t>()), SIGKILL) == 0);
  victim.join();
  // Its pid is gone on this host: provably dead, no need to wait 60 s.
  p.Playbook("quick", "return require('hoist').playbook { name = 'quick', version = '1.0.0', run = function() end }");
  double t0 = sys::NowEpoch();
  auto after = p.Run({"quick"});
  INFO(after.out << after.err);
  CHECK(after.exit_code == 0);
  CHECK(sys::NowEpoch() - t0 < 10);
  json killed = p.Show(1);
  CHECK(killed["status"] == "abandoned");
  CHECK(killed["error"].get<std::string>().find("its process (pid " + std::to_string(lease["pid"].get<int64_t>()) +
                                                ") is gone on ") == 0);
}

TEST_CASE("a killed run that held no lease is marked abandoned by the next run on its host") {
  Project p;
  p.Playbook("watch", R"lua(local time = require "hoist.time"
local fs = require "hoist.fs"
return require("hoist").playbook {
  name = "watch", version = "1.0.0", lock = false,
  run = function(run)
    run:step("watch", function() fs.write_atomic(run.project_root .. "/started", "x") time.sleep(60) end)
  end,
})lua");
  sys::ProcessSpec spec;
  spec.argv = {"sh", "-c", "exec \"$0\" watch >/dev/null 2>&1 & echo $!", HOIST_BINARY};
  spec.cwd = p.dir.path;
  spec.env = {{"NO_COLOR", "1"}};
  auto bg = sys::RunProcess(spec);
  REQUIRE(bg.exit_code == 0);
  pid_t pid = static_cast<pid_t>(std::stol(bg.out));
  for (int i = 0; i < 1000 && !fs::exists(p.dir / "started"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(fs::exists(p.dir / "started"));
  REQUIRE(::kill(pid, SIGKILL) == 0);
  for (int i = 0; i < 500 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(p.Show(1)["status"] == "running");
  p.Playbook("quick", "return require('hoist').playbook { name = 'quick', version = '1.0.0', run = function() end }");
  REQUIRE(p.Run({"quick"}).exit_code == 0);
  json killed = p.Show(1);
  CHECK(killed["status"] == "abandoned");
  CHECK(killed["error"].get<std::string>().find("its process (pid " + std::to_string(pid) + ") is gone on ") == 0);
}

TEST_CASE("a lease held from another host is refused until its TTL passes, then taken over") {
  Project p("return { lease = { ttl = 1 } }\n");
  p.Playbook("quick", "return require('hoist').playbook { name = 'quick', version = '1.0.0', run = function() end }");
  REQUIRE(p.Run({"quick"}).exit_code == 0);  // creates the state store
  // A run on another machine sharing this state store (its pid means nothing here).
  {
    db::OpenOptions o;
    auto conn = db::Open("sqlite://" + (p.dir / ".hoist/state.db"), o);
    double now = sys::NowEpoch();
    conn->Exec("INSERT INTO runs (playbook, version, source, source_sha256, origin, params, operator, host, env, "
               "hoist_version, started_at, status) SELECT playbook, version, source, source_sha256, origin, params, "
               "'bob', 'elsewhere', env, hoist_version, started_at, 'running' FROM runs WHERE id = 1");
    conn->Exec("INSERT INTO leases (env, owner, host, pid, run_id, reason, token, started_at, heartbeat_at, expires_at) "
               "VALUES ('default', 'bob', 'elsewhere', 1, 2, 'deploy', 'tok', " + std::to_string(now) + ", " +
               std::to_string(now) + ", " + std::to_string(now + 1.5) + ")");
  }
  auto refused = p.Run({"quick"});
  CHECK(refused.exit_code == 4);
  CHECK(refused.err.find("is locked by bob@elsewhere (pid 1, run 2, reason: deploy)") != std::string::npos);
  CHECK(refused.err.find("lease expires in ") != std::string::npos);
  double deadline = sys::NowEpoch() + 10;
  sys::ProcessResult after;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    after = p.Run({"quick"});
  } while (after.exit_code == 4 && sys::NowEpoch() < deadline);
  CHECK(after.exit_code == 0);
  json killed = p.Show(2);
  CHECK(killed["status"] == "abandoned");
  CHECK(killed["error"].get<std::string>().find("the run stopped heart-beating (killed or host down)") !=
        std::string::npos);
}

TEST_CASE("lock release --force of a killed run's lease marks that run abandoned, recorded by the operator") {
  Project p;
  p.Playbook("hang", R"lua(local time = require "hoist.time"
return require("hoist").playbook {
  name = "hang", version = "1.0.0",
  run = function(run) run:step("hang", function() time.sleep(60) end) end,
})lua");
  std::thread victim([&] { p.Run({"hang"}); });
  json lease;
  for (int i = 0; i < 500 && lease.is_null(); ++i) {
    auto out = p.Run({"lock", "status", "--json"}).out;
    if (!out.empty()) lease = json::parse(out);
    if (lease.is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(!lease.is_null());
  REQUIRE(::kill(static_cast<pid_t>(lease["pid"].get<int64_t>()), SIGKILL) == 0);
  victim.join();
  auto rel = p.Run({"lock", "release", "--force", "--reason", "it was killed"}, {{"HOIST_OPERATOR", "alice"}});
  INFO(rel.out << rel.err);
  CHECK(rel.exit_code == 0);
  json killed = p.Show(1);
  CHECK(killed["status"] == "abandoned");
  CHECK(killed["error"].get<std::string>().find("its lease was released with --force by alice@") == 0);
  CHECK(killed["error"].get<std::string>().find(": it was killed") != std::string::npos);
  json release = p.Show(2);
  CHECK(release["playbook"] == "lock-release");
  CHECK(release["operator"] == "alice");
}

TEST_CASE("one operator identity: runs, lock releases and applied migrations all say HOIST_OPERATOR") {
  Project p("return { environments = { prod = { database = 'sqlite:app.db', migrations = 'migrations' } } }\n");
  WriteFile(p.dir / "migrations/0001_t.sql", "CREATE TABLE t (x INTEGER);\n");
  std::map<std::string, std::string> alice = {{"HOIST_OPERATOR", "alice"}};
  auto up = p.Run({"migrate", "-e", "action=up", "-e", "create=true", "-e", "backup=false"}, alice);
  INFO(up.out << up.err);
  REQUIRE(up.exit_code == 0);
  REQUIRE(p.Run({"lock", "release", "--env", "prod", "--force", "--reason", "x"}, alice).exit_code == 0);
  auto h = p.History();
  REQUIRE(h.size() == 2);
  for (const auto& run : h) CHECK(run["operator"] == "alice");
  db::OpenOptions o;
  auto conn = db::Open("sqlite://" + (p.dir / "app.db"), o);
  auto applied_by = std::get<std::string>(conn->Query("SELECT applied_by FROM hoist_schema_migrations").rows[0][0]);
  CHECK(applied_by.rfind("alice@", 0) == 0);
}

TEST_CASE("a world call at a playbook's top level is refused at load time, on list, describe and run") {
  Project p;
  p.Playbook("eager", R"lua(local hoist = require "hoist"
local proc = require "hoist.proc"
proc.run({ "touch", "loaded-at-top-level" })
return hoist.playbook { name = "eager", version = "1.0.0", run = function() end })lua");
  auto d = p.Run({"describe", "eager"});
  CHECK(d.exit_code == 2);
  CHECK(d.err.find("playbooks/eager.lua:3: ") != std::string::npos);
  CHECK(d.err.find("proc.run at load time: move it into run") != std::string::npos);
  auto r = p.Run({"eager"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("proc.run at load time: move it into run") != std::string::npos);
  p.Run({"list"});
  CHECK_FALSE(fs::exists(p.dir / "loaded-at-top-level"));
  CHECK(p.History().empty());
}

TEST_CASE("a step that allocates without bound ends at the memory limit with file:line, and the undos run") {
  Project p("return { memory_limit_mb = 64 }\n");
  p.Playbook("hog", R"lua(local hoist = require "hoist"
local fs = require "hoist.fs"
return hoist.playbook { name = "hog", version = "1.0.0",
  run = function(run)
    run:step("mark", function() fs.write_atomic(run.project_root .. "/marker", "x") end,
      { undo = function() fs.remove(run.project_root .. "/marker") end })
    run:step("double", function()
      local s = "x"
      while true do s = s .. s end
    end, { timeout = 20 })
  end })lua");
  double t0 = sys::Monotonic();
  auto r = p.Run({"hog"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("playbooks/hog.lua:9: run: memory limit of 64 MiB reached") != std::string::npos);
  CHECK_FALSE(fs::exists(p.dir / "marker"));
  CHECK(sys::Monotonic() - t0 < 15);
  auto bad = Project("return { memory_limit_mb = 1 }\n");
  bad.Playbook("hog", "return require('hoist').playbook { name = 'hog', version = '1.0.0', run = function() end }");
  auto refused = bad.Run({"hog"});
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("memory_limit_mb must be an integer between 16 and 1048576") != std::string::npos);
}

TEST_CASE("lock release needs force and a reason and is journaled") {
  Project p;
  auto no_force = p.Run({"lock", "release", "--reason", "x"});
  CHECK(no_force.exit_code == 2);
  CHECK(no_force.err.find("lock release needs --force") != std::string::npos);
  auto ok = p.Run({"lock", "release", "--force", "--reason", "holder crashed"});
  CHECK(ok.exit_code == 0);
  auto h = p.History();
  REQUIRE(h.size() == 1);
  CHECK(h[0]["playbook"] == "lock-release");
  CHECK(p.Show(h[0]["id"].get<int64_t>())["params"]["reason"] == "holder crashed");
}

TEST_CASE("--json is valid NDJSON with the documented events") {
  Project p;
  p.Playbook("steps", kStepsPlaybook);
  auto r = p.Run({"--json", "steps", "-e", "fail=true"});
  CHECK(r.exit_code == 1);
  std::istringstream in(r.out);
  std::vector<std::string> kinds;
  for (std::string line; std::getline(in, line);) {
    json ev = json::parse(line);  // throws (fails the test) on invalid JSON
    REQUIRE(ev.contains("event"));
    REQUIRE(ev.contains("ts"));
    kinds.push_back(ev["event"]);
  }
  std::vector<std::string> want = {"run_started",  "step_started",  "step_finished", "step_started",
                                   "step_finished", "step_started", "step_finished", "undo_started",
                                   "undo_finished", "undo_started", "undo_finished", "run_finished"};
  CHECK(kinds == want);
  CHECK(r.err.empty());
}

TEST_CASE("a secret never appears in output, journal or errors") {
  const std::string secret = "s3cr3t-Pa55w0rd";
  Project p(R"lua(local hoist = require "hoist"
return { environments = { prod = { db_password = hoist.secret("APP_DB_PASSWORD") } } }
)lua");
  p.Playbook("leak", R"lua(local hoist = require "hoist"
local log = require "hoist.log"
local proc = require "hoist.proc"
return hoist.playbook {
  name = "leak", version = "1.0.0",
  params = { token = { type = "string", secret = true } },
  run = function(run, p)
    local pw = run.env.db_password
    log.info("connecting with " .. pw)
    run:step("use " .. pw, function()
      proc.run({ "echo", pw, p.token })
      return { password = pw, token = p.token }
    end)
    error("failed with password " .. pw .. " and token " .. p.token)
  end,
})lua");
  auto r = p.Run({"-v", "leak", "--env", "prod", "-e", "token=tok-123456"}, {{"APP_DB_PASSWORD", secret}});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("failed with password *** and token ***") != std::string::npos);
  auto j = p.Run({"--json", "leak", "--env", "prod", "-e", "token=tok-123456"}, {{"APP_DB_PASSWORD", secret}});
  for (const auto& text : {r.out, r.err, j.out, j.err, p.Run({"show", "1", "--json"}).out,
                           p.Run({"-v", "show", "1"}).out}) {
    CHECK(text.find(secret) == std::string::npos);
    CHECK(text.find("tok-123456") == std::string::npos);
  }
  // Not in the state store's bytes either (database and WAL).
  for (const char* f : {".hoist/state.db", ".hoist/state.db-wal"}) {
    std::string bytes = ReadAll(p.dir / f);
    CHECK(bytes.find(secret) == std::string::npos);
    CHECK(bytes.find("tok-123456") == std::string::npos);
  }
  auto missing = p.Run({"leak", "--env", "prod", "-e", "token=x"});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("secret: APP_DB_PASSWORD is not set (set the environment variable APP_DB_PASSWORD or "
                         "APP_DB_PASSWORD_FILE to a file holding it)") != std::string::npos);
}

TEST_CASE("a playbook cannot reach io, os.execute or load") {
  Project p;
  for (const char* expr : {"io.open('/etc/passwd')", "os.execute('true')", "load('return 1')",
                           "dofile('/etc/passwd')", "require('io')", "debug.getinfo(1)", "io.popen('id')"}) {
    p.Playbook("escape", std::string("return require('hoist').playbook { name = 'escape', version = '1.0.0', lock = false,\n"
                                     "  run = function() local r = ") + expr + " end }\n");
    auto r = p.Run({"escape"});
    CAPTURE(expr);
    CHECK(r.exit_code == 1);
    bool blocked = r.err.find("undeclared global") != std::string::npos ||
                   r.err.find("attempt to call a nil value") != std::string::npos ||
                   r.err.find("no module 'io'") != std::string::npos;
    CHECK(blocked);
  }
}

TEST_CASE("Ctrl-C interrupts a step, runs the undos and exits 130") {
  Project p;
  p.Playbook("slow", R"lua(local time = require "hoist.time"
local fs = require "hoist.fs"
return require("hoist").playbook {
  name = "slow", version = "1.0.0",
  run = function(run)
    run:step("prepare", function() end, { undo = function() fs.write_atomic("undone", "yes") end })
    run:step("wait", function()
      fs.write_atomic("waiting", "")
      -- pcall cannot swallow the interrupt
      while true do pcall(function() time.sleep(0.01) end) end
    end)
  end,
})lua");
  sys::ProcessSpec spec;
  spec.argv = {HOIST_BINARY, "slow"};
  spec.cwd = p.dir.path;
  sys::ProcessResult r;
  std::thread t([&] { r = sys::RunProcess(spec); });
  for (int i = 0; i < 500 && !sys::StatPath(p.dir / "waiting").exists; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  json lease = json::parse(p.Run({"lock", "status", "--json"}).out);
  ::kill(static_cast<pid_t>(lease["pid"].get<int64_t>()), SIGINT);
  t.join();
  CHECK(r.exit_code == 130);
  CHECK(ReadAll(p.dir / "undone") == "yes");
  CHECK(p.Show(1)["status"] == "interrupted");
}

TEST_CASE("a step timeout fails the step even when the playbook pcalls") {
  Project p;
  p.Playbook("spin", R"lua(local proc = require "hoist.proc"
return require("hoist").playbook {
  name = "spin", version = "1.0.0", lock = false,
  run = function(run)
    run:step("spin", function() while true do pcall(function() for i = 1, 1000 do end end) end end, { timeout = 0.2 })
  end,
})lua");
  p.Playbook("sleepy", R"lua(local proc = require "hoist.proc"
return require("hoist").playbook {
  name = "sleepy", version = "1.0.0", lock = false,
  run = function(run)
    run:step("sleep", function() proc.run({ "sleep", "30" }) end, { timeout = 0.3 })
  end,
})lua");
  auto start = sys::Monotonic();
  auto spin = p.Run({"spin"});
  CHECK(spin.exit_code == 1);
  CHECK(spin.err.find("run: step timeout reached") != std::string::npos);
  auto sleepy = p.Run({"sleepy"});
  CHECK(sleepy.exit_code == 1);
  CHECK(sleepy.err.find("proc: sleep 30: step timeout reached") != std::string::npos);
  CHECK(sys::Monotonic() - start < 10);
}

TEST_CASE("retries run a step again until it succeeds") {
  Project p;
  p.Playbook("flaky", R"lua(local n = 0
return require("hoist").playbook {
  name = "flaky", version = "1.0.0", lock = false,
  run = function(run)
    run:step("flaky", function() n = n + 1; if n < 3 then error("not yet") end; return n end,
      { retries = 3, retry_delay = 0.01 })
  end,
})lua");
  auto r = p.Run({"flaky"});
  CHECK(r.exit_code == 0);
  auto s = p.Show(1)["steps"][0];
  CHECK(s["attempts"] == 3);
  CHECK(s["result"] == 3);
}

TEST_CASE("unknown commands suggest the nearest command or playbook") {
  Project p;
  p.Playbook("deploy", "return require('hoist').playbook { name = 'deploy', version = '1.0.0', run = function() end }");
  auto r = p.Run({"deplyo"});
  CHECK(r.exit_code == 2);
  CHECK(r.err == "hoist: 'deplyo' is neither a command nor a playbook — did you mean 'deploy'?\n");
  auto h = p.Run({"histroy"});
  CHECK(h.err == "hoist: 'histroy' is neither a command nor a playbook — did you mean 'history'?\n");
  auto pb = p.Run({"run", "deplo"});
  CHECK(pb.exit_code == 2);
  CHECK(pb.err.find("no playbook 'deplo' in") != std::string::npos);
  CHECK(pb.err.find("(did you mean 'deploy'?)") != std::string::npos);
}

TEST_CASE("describe and list show playbooks with their params") {
  Project p;
  p.Playbook("deploy", R"lua(return require("hoist").playbook {
  name = "deploy", version = "1.2.0", summary = "Blue/green deploy",
  requires = { hoist = ">=0.1" },
  params = { version = { type = "string", required = true, help = "release to deploy" } },
  run = function() end,
})lua");
  auto d = p.Run({"describe", "deploy"});
  CHECK(d.exit_code == 0);
  CHECK(d.out.find("deploy 1.2.0 (playbooks/deploy.lua)") != std::string::npos);
  CHECK(d.out.find("-e version=<string>  (required)") != std::string::npos);
  CHECK(d.out.find("release to deploy") != std::string::npos);
  auto l = p.Run({"list"});
  CHECK(l.out.find("deploy") != std::string::npos);
  CHECK(l.out.find("Blue/green deploy") != std::string::npos);
  CHECK(l.out.find("doctor") != std::string::npos);  // a canned playbook
}

TEST_CASE("invalid playbook descriptions are refused before running") {
  Project p;
  p.Playbook("v", "return require('hoist').playbook { name = 'v', version = '1.2', run = function() end }");
  auto r = p.Run({"v"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("playbooks/v.lua: version '1.2' is not semver (expected MAJOR.MINOR.PATCH, e.g. 1.2.0)") !=
        std::string::npos);
  p.Playbook("req", "return require('hoist').playbook { name = 'req', version = '1.0.0', requires = { hoist = '>=9.0' }, run = function() end }");
  auto q = p.Run({"req"});
  CHECK(q.exit_code == 2);
  CHECK(q.err.find(std::string("playbooks/req.lua: requires hoist >=9.0 but this is hoist ") + HOIST_VERSION) !=
        std::string::npos);
  p.Playbook("typo", "return require('hoist').playbook { name = 'typo', version = '1.0.0', prams = {}, run = function() end }");
  auto t = p.Run({"typo"});
  CHECK(t.err.find("playbooks/typo.lua: unknown playbook field 'prams' (did you mean 'params'?)") != std::string::npos);
  p.Playbook("plain", "return { name = 'plain' }");
  CHECK(p.Run({"plain"}).err.find("playbooks/plain.lua: must return hoist.playbook{ ... } (got a table)") !=
        std::string::npos);
}

TEST_CASE("environments come from hoist.lua and --env picks one") {
  Project p(R"lua(return {
  environments = {
    staging = { port = 5001 },
    prod = { port = 6001 },
  },
})lua");
  p.Playbook("port", R"lua(return require("hoist").playbook {
  name = "port", version = "1.0.0",
  run = function(run) run:step("port", function() return run.env.name .. ":" .. run.env.port end) end,
})lua");
  auto none = p.Run({"port"});
  CHECK(none.exit_code == 2);
  CHECK(none.err.find("hoist.lua defines several environments (prod, staging): choose one with --env NAME") !=
        std::string::npos);
  auto typo = p.Run({"port", "--env", "prdo"});
  CHECK(typo.err.find("unknown environment 'prdo' (did you mean 'prod'?)") != std::string::npos);
  REQUIRE(p.Run({"port", "--env", "prod"}).exit_code == 0);
  CHECK(p.Show(1)["steps"][0]["result"] == "prod:6001");
  CHECK(p.Show(1)["env"] == "prod");
}

TEST_CASE("the state store is private to its owner") {
  Project p;
  p.Playbook("noop", "return require('hoist').playbook { name = 'noop', version = '1.0.0', run = function() end }");
  REQUIRE(p.Run({"noop"}).exit_code == 0);
  struct stat st {};
  REQUIRE(::stat((p.dir / ".hoist").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat((p.dir / ".hoist/state.db").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("playbook export writes a canned playbook that then takes precedence") {
  Project p;
  auto r = p.Run({"playbook", "export", "doctor"});
  CHECK(r.exit_code == 0);
  CHECK(sys::StatPath(p.dir / "playbooks/doctor.lua").exists);
  auto again = p.Run({"playbook", "export", "doctor"});
  CHECK(again.exit_code == 2);
  CHECK(again.err.find("exists; pass --force to overwrite it") != std::string::npos);
  CHECK(p.Run({"describe", "doctor"}).out.find("(playbooks/doctor.lua)") != std::string::npos);
  auto missing = p.Run({"playbook", "export", "nope"});
  CHECK(missing.exit_code == 2);
}

TEST_CASE("confirm refuses without a terminal and accepts --yes") {
  Project p;
  p.Playbook("ask", R"lua(return require("hoist").playbook {
  name = "ask", version = "1.0.0", lock = false,
  run = function(run) run:step("ask", function() return run:confirm("Restore over prod?") end) end,
})lua");
  auto no = p.Run({"ask"});
  CHECK(no.exit_code == 1);
  CHECK(no.err.find("cannot ask \"Restore over prod?\": no terminal to answer on; pass --yes to confirm") !=
        std::string::npos);
  auto yes = p.Run({"ask", "--yes"});
  CHECK(yes.exit_code == 0);
  CHECK(p.Show(2)["steps"][0]["result"] == true);
}

TEST_CASE("a project forks a Lua stdlib module: export writes it to lib/, runs use it and say so") {
  Project p("return { environments = { prod = {} } }");
  p.Playbook("which", R"lua(local hoist = require "hoist"
local health = require "hoist.health"
return hoist.playbook { name = "which", version = "1.0.0", lock = false,
  run = function(run) run:step("which", function() return health.forked == true end) end })lua");
  auto exp = p.Run({"playbook", "export", "hoist.health"});
  REQUIRE(exp.exit_code == 0);
  CHECK(exp.out.find("this project's fork of hoist.health") != std::string::npos);
  std::string fork = p.dir / "lib/hoist/health.lua";
  REQUIRE(sys::StatPath(fork).exists);
  // The export is hoist's own module, byte for byte; edit it.
  std::string src = sys::ReadFile(fork);
  CHECK(src.find("local M = {}") != std::string::npos);
  std::string edited = src;
  edited.replace(edited.rfind("return M"), 8, "M.forked = true\nreturn M");
  WriteFile(fork, edited);
  auto r = p.Run({"which"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("require \"hoist.health\": the project's fork " + fork + " replaces hoist's own") != std::string::npos);
  CHECK(p.Show(1)["steps"][0]["result"] == true);
  // Without the fork, the embedded module again, and nothing said.
  fs::remove(fork);
  auto back = p.Run({"which"});
  CHECK(back.exit_code == 0);
  CHECK(back.err.find("fork") == std::string::npos);
  CHECK(p.Show(2)["steps"][0]["result"] == false);
  // Exports never overwrite; unknown and native modules are refused with the list.
  REQUIRE(p.Run({"playbook", "export", "hoist.health"}).exit_code == 0);
  CHECK(p.Run({"playbook", "export", "hoist.health"}).err.find("exists; pass --force") != std::string::npos);
  auto typo = p.Run({"playbook", "export", "hoist.helth"});
  CHECK(typo.exit_code == 2);
  CHECK(typo.err.find("did you mean 'hoist.health'?") != std::string::npos);
  auto native = p.Run({"playbook", "export", "hoist.fs"});
  CHECK(native.exit_code == 2);
  CHECK(native.err.find("the others are C++ and cannot be forked") != std::string::npos);
}

TEST_CASE("a Lua file named after a native module is refused, not silently ignored") {
  Project p("return { environments = { prod = {} } }");
  p.Playbook("usesfs", R"lua(local hoist = require "hoist"
local fs = require "hoist.fs"
return hoist.playbook { name = "usesfs", version = "1.0.0", lock = false,
  run = function(run) run:step("x", function() return fs.exists("/") end) end })lua");
  WriteFile(p.dir / "lib/hoist/fs.lua", "return { exists = function() return 'mine' end }\n");
  auto r = p.Run({"usesfs"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("lib/hoist/fs.lua: hoist.fs is one of hoist's native (C++) modules and cannot be replaced by a "
                   "Lua file") != std::string::npos);
}

TEST_CASE("hoist show counts every world call of a step, reads and sleeps too") {
  Project p;
  p.Playbook("look", R"lua(local hoist = require "hoist"
local fs = require "hoist.fs"
local time = require "hoist.time"
return hoist.playbook { name = "look", version = "1.0.0", lock = false,
  run = function(run)
    run:step("look", function()
      fs.list(run.project_root)
      fs.read(run.project_root .. "/playbooks/look.lua")
      time.sleep(0.001)
    end)
    run:step("nothing", function() return 1 end)
  end })lua");
  REQUIRE(p.Run({"look"}).exit_code == 0);
  int calls = 0;
  json run = p.Show(1);
  for (const auto& e : run["events"]) calls += e["kind"] == "call" && e["step"] == 1;
  CHECK(calls >= 3);  // the list, the read, the sleep (and any clock reads)
  auto show = p.Run({"show", "1"});
  REQUIRE(show.exit_code == 0);
  CHECK(show.out.find("look (") != std::string::npos);
  CHECK(show.out.find(fmt::format(", {} world calls)", calls)) != std::string::npos);
  auto nothing = show.out.find("nothing (");
  REQUIRE(nothing != std::string::npos);
  CHECK(show.out.find("world call", nothing) == std::string::npos);
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test

namespace hoist::test {
namespace {

TEST_CASE("hoist hosts: a host without ssh, a bad name or a typo'd key is exit 2 naming it, and no hosts says so") {
  Project none("return { environments = { prod = {} } }");
  auto n = none.Run({"hosts"});
  CHECK(n.exit_code == 0);
  CHECK(n.out.find("environment prod has no hosts: it deploys where hoist runs") != std::string::npos);

  Project no_ssh("return { environments = { prod = { hosts = { web1 = { roles = { 'app' } } } } } }");
  auto a = no_ssh.Run({"hosts"});
  CHECK(a.exit_code == 2);
  CHECK(a.err.find("hoist.lua: environments.prod.hosts.web1.ssh must be \"user@host\" (or an ~/.ssh/config alias), "
                   "or false for this machine") != std::string::npos);

  Project bad_name("return { environments = { prod = { hosts = { ['web 1'] = { ssh = 'x@y' } } } } }");
  auto b = bad_name.Run({"hosts"});
  CHECK(b.exit_code == 2);
  CHECK(b.err.find("host name \"web 1\" must be 1 to 40 letters") != std::string::npos);

  Project typo("return { environments = { prod = { hosts = { web1 = { shh = 'x@y' } } } } }");
  auto t = typo.Run({"hosts"});
  CHECK(t.exit_code == 2);
  CHECK(t.err.find("environments.prod.hosts.web1.shh: unknown key (did you mean 'ssh'?)") != std::string::npos);

  Project option("return { environments = { prod = { hosts = { web1 = { ssh = '-oProxyCommand=x' } } } } }");
  auto o = option.Run({"hosts"});
  CHECK(o.exit_code == 2);
  CHECK(o.err.find("hosts.web1.ssh must not start with '-'") != std::string::npos);
}

}  // namespace
}  // namespace hoist::test

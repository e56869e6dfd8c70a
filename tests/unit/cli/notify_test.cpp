// Notifications and hooks through the real binary: hoist.lua's notify
// targets reach a real loopback receiver in this process with the
// documented payloads, and neither a failing receiver nor a failing hook
// changes a run's exit code or its error message.
#include <doctest/doctest.h>

#include <mutex>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/support.h"
#include "unit/net/test_server.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;

// Answers with `statuses` in turn (the last repeats; 0 = never answer) and
// keeps every request.
struct Receiver {
  std::mutex mu;
  std::vector<ServedRequest> got;
  std::vector<int> statuses;
  TestServer server;
  explicit Receiver(std::vector<int> s = {200})
      : statuses(std::move(s)), server([this](const ServedRequest& r) {
          int status;
          {
            std::lock_guard lock(mu);
            got.push_back(r);
            status = statuses[std::min(got.size(), statuses.size()) - 1];
          }
          return status == 0 ? std::string() : HttpAnswer(status, "ok");
        }) {}
  std::vector<json> Bodies() {
    std::lock_guard lock(mu);
    std::vector<json> out;
    for (const auto& r : got) out.push_back(json::parse(r.body));
    return out;
  }
  std::vector<std::string> Events() {
    std::vector<std::string> out;
    for (const auto& b : Bodies()) out.push_back(b["event"].get<std::string>());
    return out;
  }
};

// A playbook whose second step fails (its first is undone) unless -e ok=true,
// whose error carries the secret param `token`, with optional hooks.
std::string Playbook(const std::string& hooks = "") {
  return R"lua(local hoist = require "hoist"
return hoist.playbook {
  name = "ship", version = "2.1.0",
  params = {
    version = { type = "string", default = "7.3.0" },
    ok = { type = "boolean", default = false },
    token = { type = "string", default = "", secret = true },
  },
  )lua" + hooks + R"lua(
  run = function(run, p)
    run:step("prepare", function() return true end, { undo = function() end })
    run:step("go", function()
      if not p.ok then error("go broke with token " .. p.token, 0) end
    end)
  end,
})lua";
}

std::string Config(const std::string& targets) {
  return "local hoist = require \"hoist\"\nreturn {\n  notify = {\n" + targets + "\n  },\n}\n";
}

struct Project {
  TempDir dir{"notify"};
  Project(const std::string& config, const std::string& playbook) {
    WriteFile(dir / "hoist.lua", config);
    WriteFile(dir / "playbooks/ship.lua", playbook);
  }
  std::map<std::string, std::string> env;  // for every command (hoist.secret in hoist.lua)
  sys::ProcessResult Run(std::vector<std::string> args) { return RunHoist(dir.path, std::move(args), env); }
  json Show(int64_t id) {
    auto r = Run({"show", std::to_string(id), "--json"});
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
  }
  std::vector<json> Notifications(int64_t id) {
    std::vector<json> out;
    json run = Show(id);
    for (const auto& e : run["events"]) {
      if (e["kind"] == "notify" && e["data"].contains("url")) out.push_back(e);
    }
    return out;
  }
};

// The last line of `hoist run --json`: its run_finished event.
json Finished(const std::string& out) {
  std::istringstream in(out);
  json last;
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line);
    if (j["event"] == "run_finished") last = j;
  }
  return last;
}

}  // namespace

TEST_SUITE("cli/notify") {

TEST_CASE("a failed run notifies started, failed and undone with the documented payload") {
  Receiver rx;
  Project p(Config("    { url = hoist.secret(\"HOOK_URL\"), on = { \"run.*\" } },"), Playbook());
  p.env = {{"HOOK_URL", rx.server.Url("/services/T0/B0/s3cretpath")}};
  auto r = p.Run({"run", "ship", "-e", "version=7.3.1", "-e", "token=tok-5ecret-77"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("error: go broke with token ***") != std::string::npos);
  REQUIRE(rx.Events() == std::vector<std::string>{"run.started", "run.failed", "run.undone"});
  auto bodies = rx.Bodies();
  json failed = bodies[1];
  CHECK(failed["hoist"] == HOIST_VERSION);
  CHECK(failed["at"].get<std::string>().size() == 24);
  json run = failed["run"];
  CHECK(run["id"] == 1);
  CHECK(run["env"] == "default");
  CHECK(run["playbook"] == "ship");
  CHECK(run["version"] == "2.1.0");
  CHECK(run["release"] == "7.3.1");
  CHECK(run["status"] == "failed");
  CHECK(run["exit_code"] == 1);
  CHECK(run["error"] == "go broke with token ***");
  CHECK(run["sandbox"] == false);
  CHECK(run["operator"].is_string());
  CHECK(run["host"].is_string());
  json steps = failed["steps"];
  CHECK(steps["total"] == 2);
  CHECK(steps["ok"] == 1);
  CHECK(steps["failed"] == 1);
  CHECK(steps["failed_step"] == "go");
  CHECK(steps["undone"] == json::array({"prepare"}));
  CHECK(steps["list"].size() == 2);
  CHECK(steps["list"][1]["name"] == "go");
  CHECK(steps["list"][1]["status"] == "failed");
  CHECK(bodies[0]["run"]["status"] == "running");
  CHECK(bodies[0]["run"]["exit_code"].is_null());
  CHECK(bodies[2]["event"] == "run.undone");
  // The secret param never reaches the receiver, the URL never the output or the journal.
  for (const auto& req : rx.got) CHECK(req.body.find("tok-5ecret-77") == std::string::npos);
  CHECK(rx.got[0].target == "/services/T0/B0/s3cretpath");
  auto shown = p.Run({"show", "1", "-v"});
  for (const auto* text : {&r.out, &r.err, &shown.out, &shown.err}) {
    CHECK(text->find("s3cretpath") == std::string::npos);
  }
  auto n = p.Notifications(1);
  REQUIRE(n.size() == 3);
  CHECK(n[1]["name"] == "run.failed -> " + rx.server.Url("") + "/***");
  CHECK(n[1]["data"]["delivered"] == true);
  CHECK(n[1]["data"]["attempts"].size() == 1);
  CHECK(shown.out.find("notify run.failed -> http://127.0.0.1:") != std::string::npos);
}

TEST_CASE("a succeeded run notifies run.succeeded to a target that wants it and nothing to one that does not") {
  Receiver all, failures;
  Project p(Config("    { url = \"" + all.server.Url("/all") + "\", on = { \"run.succeeded\" } },\n" +
                   "    { url = \"" + failures.server.Url("/f") + "\", on = { \"run.failed\" }, format = \"slack\" },"),
            Playbook());
  auto r = p.Run({"run", "ship", "-e", "ok=true"});
  CHECK(r.exit_code == 0);
  REQUIRE(all.Events() == std::vector<std::string>{"run.succeeded"});
  CHECK(all.Bodies()[0]["run"]["status"] == "ok");
  CHECK(all.Bodies()[0]["run"]["error"].is_null());
  CHECK(all.Bodies()[0]["steps"]["ok"] == 2);
  CHECK(failures.got.empty());
  // The slack target's text, once it fails.
  auto f = p.Run({"run", "ship"});
  CHECK(f.exit_code == 1);
  REQUIRE(failures.got.size() == 1);
  CHECK(failures.Bodies()[0] ==
        json{{"text", "hoist: ship 2.1.0 failed on default (run 2, release 7.3.0): go broke with token "}});
}

TEST_CASE("a receiver that answers 500 then 200 gets the event on the second attempt, journaled") {
  Receiver rx({500, 200});
  Project p(Config("    { url = \"" + rx.server.Url("/h") +
                   "\", on = { \"run.failed\" }, retries = 3, retry_delay = 0.05 },"),
            Playbook());
  auto r = p.Run({"run", "ship"});
  CHECK(r.exit_code == 1);
  CHECK(rx.got.size() == 2);
  CHECK(r.err.find("warning: notification") == std::string::npos);
  auto n = p.Notifications(1);
  REQUIRE(n.size() == 1);
  CHECK(n[0]["data"]["delivered"] == true);
  REQUIRE(n[0]["data"]["attempts"].size() == 2);
  CHECK(n[0]["data"]["attempts"][0]["status"] == 500);
  CHECK(n[0]["data"]["attempts"][1]["status"] == 200);
}

TEST_CASE("a receiver that always fails gets bounded attempts and the run's exit code and error stay") {
  Receiver rx({503});
  Project p(Config("    { url = \"" + rx.server.Url("/h") +
                   "\", on = { \"run.failed\" }, retries = 2, retry_delay = 0.01 },"),
            Playbook());
  auto r = p.Run({"--json", "run", "ship"});
  CHECK(r.exit_code == 1);
  CHECK(rx.got.size() == 3);
  json fin = Finished(r.out);
  CHECK(fin["status"] == "failed");
  CHECK(fin["exit_code"] == 1);
  CHECK(fin["error"] == "go broke with token ");
  auto n = p.Notifications(1);
  REQUIRE(n.size() == 1);
  CHECK(n[0]["data"]["delivered"] == false);
  CHECK(n[0]["data"]["error"] == "HTTP 503");
  CHECK(p.Show(1)["status"] == "failed");
}

TEST_CASE("a receiver that hangs is given up on after its timeout, and the run's exit code and error stay") {
  Receiver rx({0});
  Project p(Config("    { url = \"" + rx.server.Url("/h") + "\", on = { \"run.failed\" }, timeout = 0.5, retries = 0 },"),
            Playbook());
  auto r = p.Run({"run", "ship"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("error: go broke with token \n") != std::string::npos);
  CHECK(r.err.find("warning: notification run.failed to " + rx.server.Url("") +
                   "/*** not delivered after 1 attempt: timed out") != std::string::npos);
  CHECK(r.seconds < 10);
  // The outcome is printed before the notification is tried.
  CHECK(r.err.find("✗ failed") < r.err.find("warning: notification"));
}

TEST_CASE("a receiver that refuses connections changes nothing of a run that succeeded") {
  Project p(Config("    { url = \"http://127.0.0.1:" + std::to_string(RefusedPort()) +
                   "/h\", on = { \"*\" }, retries = 1, retry_delay = 0.01 },"),
            Playbook());
  auto r = p.Run({"run", "ship", "-e", "ok=true"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("✓ done") != std::string::npos);
  CHECK(r.err.find("not delivered after 2 attempts: cannot connect") != std::string::npos);
  CHECK(p.Show(1)["status"] == "ok");
}

TEST_CASE("a rehearsal sends nothing and journals it") {
  Receiver rx;
  Project p(Config("    { url = \"" + rx.server.Url("/h") + "\", on = { \"*\" } },"), Playbook());
  auto r = p.Run({"run", "ship", "--sandbox"});
  CHECK(r.exit_code == 1);
  CHECK(rx.got.empty());
}

TEST_CASE("a bad notify in hoist.lua stops every run before it starts, exit 2") {
  Receiver rx;
  Project p(Config("    { url = \"" + rx.server.Url("/h") + "\", on = { \"run.faild\" } },"), Playbook());
  auto r = p.Run({"run", "ship", "-e", "ok=true"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("hoist.lua: notify[1].on[1]: unknown event \"run.faild\" (did you mean \"run.failed\"?)") !=
        std::string::npos);
  CHECK(rx.got.empty());
}

TEST_CASE("an on.failed hook that errors is reported beside the original error, exit code unchanged") {
  Receiver rx;
  Project p(Config("    { url = \"" + rx.server.Url("/h") + "\", on = { \"run.failed\" } },"),
            Playbook(R"lua(on = {
    failed = function(run, s)
      assert(s.run.status == "failed" and s.steps.failed_step == "go" and s.steps.undone[1] == "prepare")
      error("pager is down", 0)
    end,
  },)lua"));
  auto r = p.Run({"run", "ship"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("error: go broke with token \nerror in the on.failed hook (the run's outcome stands): pager is down") !=
        std::string::npos);
  auto j = p.Run({"--json", "run", "ship"});
  json fin = Finished(j.out);
  CHECK(fin["exit_code"] == 1);
  CHECK(fin["error"] == "go broke with token ");
  CHECK(fin["hook"] == "on.failed");
  CHECK(fin["hook_error"] == "pager is down");
  // The notification carries both, the run's error first.
  auto b = rx.Bodies();
  REQUIRE(b.size() == 2);
  CHECK(b[1]["run"]["error"] == "go broke with token ");
  CHECK(b[1]["run"]["hook_error"] == "pager is down");
  CHECK(p.Show(2)["error"] == "go broke with token ");
}

TEST_CASE("an on.done hook runs after success with the summary and its error leaves exit 0") {
  Project p(Config(""), Playbook(R"lua(on = {
    done = function(run, s)
      require("hoist.log").info("done hook saw " .. s.run.status .. " after " .. s.steps.total .. " steps")
      error("chat is down", 0)
    end,
    failed = function() error("not me") end,
  },)lua"));
  auto r = p.Run({"run", "ship", "-e", "ok=true"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("done hook saw ok after 2 steps") != std::string::npos);
  CHECK(r.err.find("error in the on.done hook (the run's outcome stands): chat is down") != std::string::npos);
  CHECK(p.Show(1)["status"] == "ok");
}

TEST_CASE("a hook may not run steps, and a misspelt hook is refused before the run") {
  Project p(Config(""), Playbook(R"lua(on = { done = function(run) run:step("late", function() end) end },)lua"));
  auto r = p.Run({"run", "ship", "-e", "ok=true"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("run:step in the on.done hook: the run's steps are over") != std::string::npos);
  Project bad(Config(""), Playbook(R"lua(on = { fail = function() end },)lua"));
  auto b = bad.Run({"run", "ship"});
  CHECK(b.exit_code == 2);
  CHECK(b.err.find("unknown hook 'on.fail' (did you mean 'on.failed'?); on takes: failed, done") != std::string::npos);
}

TEST_CASE("a backup that fails raises backup.failed before the run's own end, with what failed") {
  Receiver rx;
  Project p(Config("    { url = \"" + rx.server.Url("/h") + "\", on = { \"backup.*\", \"run.failed\" } },"),
            R"lua(local hoist = require "hoist"
local db = require "hoist.db"
local backup = require "hoist.backup"
local fs = require "hoist.fs"
return hoist.playbook {
  name = "ship", version = "1.0.0",
  run = function(run)
    run:step("backup", function()
      local c <close> = db.open("sqlite://" .. run.project_root .. "/app.db", { create = true })
      c:exec("CREATE TABLE t (x)")
      fs.write_atomic(run.project_root .. "/blocker", "a file, not a directory")
      return backup.create(c, { dir = run.project_root .. "/blocker/backups", label = "nightly" })
    end)
  end,
})lua");
  auto r = p.Run({"run", "ship"});
  CHECK(r.exit_code == 1);
  REQUIRE(rx.Events() == std::vector<std::string>{"backup.failed", "run.failed"});
  json b = rx.Bodies()[0];
  CHECK(b["data"]["label"] == "nightly");
  CHECK(b["data"]["database"].get<std::string>().find("app.db") != std::string::npos);
  CHECK(b["data"]["error"].get<std::string>().starts_with("backup: "));
  CHECK(b["run"]["status"] == "failed");
  CHECK(b["run"]["error"] == rx.Bodies()[1]["run"]["error"]);
}

TEST_CASE("events the stdlib raises reach the receiver in order with their data, and a made-up one is refused") {
  Receiver rx;
  Project p(Config("    { url = \"" + rx.server.Url("/h") + "\", on = { \"*\" }, playbooks = { \"ship\" } },"),
            R"lua(local hoist = require "hoist"
local core = require "hoist.core"
return hoist.playbook {
  name = "ship", version = "1.0.0",
  run = function(run)
    run:step("switch", function() core.event("switch.done", { upstream = "api", from = "blue", to = "green" }) end)
    run:step("rollback", function() core.event("rollback.done", { from = "green", to = "blue", release = "1.0" }) end)
    local ok, e = pcall(core.event, "deploy.done", {})
    assert(not ok and e.code == "invalid", tostring(e))
    assert(not pcall(core.event, "run.failed", {}))
  end,
})lua");
  auto r = p.Run({"run", "ship"});
  CHECK(r.exit_code == 0);
  REQUIRE(rx.Events() == std::vector<std::string>{"run.started", "switch.done", "rollback.done", "run.succeeded"});
  auto b = rx.Bodies();
  CHECK(b[1]["data"] == json{{"upstream", "api"}, {"from", "blue"}, {"to", "green"}});
  CHECK(b[2]["data"]["release"] == "1.0");
  CHECK(b[1]["run"]["status"] == "ok");
  // Millisecond stamps: two events of one fast run may share one.
  CHECK(b[1]["at"] <= b[3]["at"]);
}

}  // TEST_SUITE

}  // namespace hoist::test

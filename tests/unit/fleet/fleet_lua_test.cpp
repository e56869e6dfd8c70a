// hoist.fleet through the real VM: the batch arithmetic of serial, the
// tolerance of max_fail, what each on_fail rule decides, the batch driver
// (run:step per batch, rollbacks, per-host statuses) on a recording run,
// hoist.project's fleet accessor and the `fleet` keys of hoist.lua.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "engine/config_check.h"
#include "support/lua_eval.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;

json Fleet(const std::string& code) { return RunLua("local fleet = require 'hoist.fleet'\n" + code); }

// The message of the error a fleet call raises (area and code checked).
std::string FleetError(const std::string& code, const std::string& area = "fleet") {
  auto e = LuaError("local fleet = require 'hoist.fleet'\n" + code);
  CHECK(e.area() == area);
  CHECK(e.code() == "invalid");
  return e.message();
}

// hosts h01..hN as a Lua list.
std::string Hosts(int n) {
  std::string out = "{";
  for (int i = 1; i <= n; ++i) out += (i > 1 ? ", " : " ") + std::string("'h") + (i < 10 ? "0" : "") + std::to_string(i) + "'";
  return out + " }";
}

// The batch sizes of fleet.batches(hN, serial), after checking that every
// host is in exactly one batch, in the fleet's order, and no batch is empty.
std::vector<int> Sizes(int n, const std::string& serial) {
  json batches = Fleet("return fleet.batches(" + Hosts(n) + ", " + serial + ")");
  std::vector<int> sizes;
  std::vector<std::string> seen;
  for (const auto& b : batches) {
    CHECK(b.is_array());
    CHECK(!b.empty());
    sizes.push_back(static_cast<int>(b.size()));
    for (const auto& h : b) seen.push_back(h.get<std::string>());
  }
  std::vector<std::string> want;
  json all = RunLua("return " + Hosts(n));
  for (const auto& h : all) want.push_back(h.get<std::string>());
  CHECK(seen == want);
  return sizes;
}

using V = std::vector<int>;

// A run whose run:step journals name and outcome, as the runner does (an
// error leaves the step failed and propagates out of run:step).
const char* kRecordingRun = R"LUA(
local steps, calls = {}, {}
local run = { step = function(self, name, fn)
  local ok, r = pcall(fn)
  steps[#steps + 1] = { name = name, ok = ok, error = (not ok) and (type(r) == "table" and r.message or tostring(r)) or nil,
    code = (not ok and type(r) == "table") and r.code or nil }
  if not ok then error(r, 0) end
  return r
end }
local function host_fn(fails)
  return function(host, k)
    calls[#calls + 1] = ("work %s (batch %d)"):format(host, k)
    if fails[host] then error(require("hoist").error("deploy", "unhealthy", host .. " never became healthy")) end
  end
end
local function rollback_fn(fails)
  return function(host)
    calls[#calls + 1] = "rollback " .. host
    if fails and fails[host] then error(require("hoist").error("deploy", "failed", "cannot stop the idle colour on " .. host)) end
  end
end
local function plain(status)
  local out = {}
  for h, s in pairs(status) do
    out[h] = s.status .. " " .. s.batch
  end
  return out
end
)LUA";

// Runs six hosts web1..web6 in batches of 2 with the given rules and failing hosts.
json RunSix(const std::string& rules, const std::string& fails, const std::string& rollback_fails = "nil") {
  return Fleet(std::string(kRecordingRun) +
               "local status, outcome = fleet.run_batches(run, { 'web1', 'web2', 'web3', 'web4', 'web5', 'web6' }, " +
               rules + ", host_fn(" + fails + "), rollback_fn(" + rollback_fails + "))\n" +
               "return { steps = steps, calls = calls, status = plain(status), raw = status, outcome = outcome }");
}

std::vector<std::string> StepLines(const json& r) {
  std::vector<std::string> out;
  for (const auto& s : r["steps"]) out.push_back((s["ok"].get<bool>() ? "ok " : "failed ") + s["name"].get<std::string>());
  return out;
}

using S = std::vector<std::string>;

TEST_SUITE("fleet/batches") {
  TEST_CASE("serial arithmetic for fleets of 1, 2, 3, 4 and 10 hosts, every host exactly once") {
    // A count: that many hosts per batch.
    CHECK(Sizes(1, "1") == V{1});
    CHECK(Sizes(2, "1") == V{1, 1});
    CHECK(Sizes(3, "1") == V{1, 1, 1});
    CHECK(Sizes(4, "1") == V{1, 1, 1, 1});
    CHECK(Sizes(10, "1") == V{1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
    // "25%": floor(N * 25 / 100) hosts of the whole fleet, never below 1.
    CHECK(Sizes(1, "'25%'") == V{1});
    CHECK(Sizes(2, "'25%'") == V{1, 1});
    CHECK(Sizes(3, "'25%'") == V{1, 1, 1});
    CHECK(Sizes(4, "'25%'") == V{1, 1, 1, 1});
    CHECK(Sizes(10, "'25%'") == V{2, 2, 2, 2, 2});
    // "33%": floor(3 * 33 / 100) = 0 -> 1; floor(10 * 33 / 100) = 3, the rest in a last, smaller batch.
    CHECK(Sizes(1, "'33%'") == V{1});
    CHECK(Sizes(2, "'33%'") == V{1, 1});
    CHECK(Sizes(3, "'33%'") == V{1, 1, 1});
    CHECK(Sizes(4, "'33%'") == V{1, 1, 1, 1});
    CHECK(Sizes(10, "'33%'") == V{3, 3, 3, 1});
    // "100%": the whole fleet at once.
    CHECK(Sizes(1, "'100%'") == V{1});
    CHECK(Sizes(2, "'100%'") == V{2});
    CHECK(Sizes(3, "'100%'") == V{3});
    CHECK(Sizes(4, "'100%'") == V{4});
    CHECK(Sizes(10, "'100%'") == V{10});
    // A list: successive sizes (percentages of the whole fleet), the last repeating, clamped to what is left.
    CHECK(Sizes(1, "{ 1, '50%', '100%' }") == V{1});
    CHECK(Sizes(2, "{ 1, '50%', '100%' }") == V{1, 1});
    CHECK(Sizes(3, "{ 1, '50%', '100%' }") == V{1, 1, 1});
    CHECK(Sizes(4, "{ 1, '50%', '100%' }") == V{1, 2, 1});
    CHECK(Sizes(10, "{ 1, '50%', '100%' }") == V{1, 5, 4});
    CHECK(Sizes(10, "{ 1, 2 }") == V{1, 2, 2, 2, 2, 1});
    CHECK(Sizes(10, "{ '10%', '30%' }") == V{1, 3, 3, 3});
    CHECK(Sizes(10, "3") == V{3, 3, 3, 1});
    CHECK(Sizes(3, "20") == V{3});
    CHECK(Sizes(5, "' 40 % '") == V{2, 2, 1});
    // The default is one host at a time.
    CHECK(Sizes(3, "nil") == V{1, 1, 1});
  }

  TEST_CASE("the exact batches: a list keeps its order, a table keyed by name is sorted, no hosts give no batches") {
    CHECK(Fleet("return fleet.batches({ 'web3', 'web1', 'web2' }, 2)") == json::parse(R"([["web3","web1"],["web2"]])"));
    CHECK(Fleet("return fleet.batches({ web3 = {}, web1 = {}, web10 = {}, web2 = {} }, { 1, '100%' })") ==
          json::parse(R"([["web1"],["web10","web2","web3"]])"));
    CHECK(Fleet("return #fleet.batches({}, '25%')") == 0);
  }

  TEST_CASE("bad serial specs and host lists are refused naming the key, with an example") {
    const std::string forms =
        "it takes a host count (serial = 1), a percentage of the fleet (serial = \"25%\"), or a list of batch sizes "
        "(serial = { 1, \"50%\", \"100%\" })";
    CHECK(FleetError("fleet.batches({ 'a' }, 0)") == "fleet.serial must be at least 1 host (got 0); " + forms);
    CHECK(FleetError("fleet.batches({ 'a' }, -2)") == "fleet.serial must be at least 1 host (got -2); " + forms);
    CHECK(FleetError("fleet.batches({ 'a' }, '0%')") ==
          "fleet.serial must be a percentage from 1% to 100% (got \"0%\"), e.g. serial = \"25%\"");
    CHECK(FleetError("fleet.batches({ 'a' }, '150%')") ==
          "fleet.serial must be a percentage from 1% to 100% (got \"150%\"), e.g. serial = \"25%\"");
    CHECK(FleetError("fleet.batches({ 'a' }, 'all')") ==
          "fleet.serial must be a whole percentage such as \"25%\" or a host count (got \"all\"); " + forms);
    CHECK(FleetError("fleet.batches({ 'a' }, '12.5%')") ==
          "fleet.serial must be a whole percentage such as \"25%\" or a host count (got \"12.5%\"); " + forms);
    CHECK(FleetError("fleet.batches({ 'a' }, 1.5)") ==
          "fleet.serial must be a whole number of hosts (got 1.5), e.g. serial = 2");
    CHECK(FleetError("fleet.batches({ 'a' }, true)") == "fleet.serial must be a host count (serial = 1), a percentage "
          "of the fleet (serial = \"25%\"), or a list of batch sizes (serial = { 1, \"50%\", \"100%\" }) (got boolean)");
    CHECK(FleetError("fleet.batches({ 'a' }, {})") ==
          "fleet.serial is an empty list: give at least one batch size, e.g. serial = { 1, \"50%\", \"100%\" }");
    CHECK(FleetError("fleet.batches({ 'a' }, { 1, '0%' })") ==
          "fleet.serial[2] must be a percentage from 1% to 100% (got \"0%\"), e.g. serial[2] = \"25%\"");
    CHECK(FleetError("fleet.batches({ 'a' }, { 1, x = 2 })") ==
          "fleet.serial must be a list of batch sizes, e.g. serial = { 1, \"50%\", \"100%\" } (it has a key x)");
    CHECK(FleetError("fleet.batches({ 'a' }, 0, 'hoist.lua: environments.prod.fleet')") ==
          "hoist.lua: environments.prod.fleet.serial must be at least 1 host (got 0); " + forms);
    CHECK(FleetError("fleet.batches({ 'a', 'b', 'a' }, 1)") == "fleet: host a is listed twice (hosts[1] and hosts[3])");
    CHECK(FleetError("fleet.batches({ 'a', 7 }, 1)") == "fleet: hosts[2] must be a host name (got number)");
    CHECK(FleetError("fleet.batches('web1', 1)") == "fleet: hosts must be a list of host names (got string)");
  }
}

TEST_SUITE("fleet/max_fail") {
  TEST_CASE("max_fail arithmetic: N hosts, or P percent of a batch of n rounded down") {
    json r = Fleet(R"(
      local m = fleet.max_fail
      return { m(0, 4), m(2, 4), m(5, 2), m(nil, 3), m('0%', 5), m('10%', 4), m('10%', 10), m('25%', 4),
               m('25%', 3), m('33%', 3), m('34%', 3), m('50%', 3), m('50%', 5), m('100%', 3) })");
    CHECK(r == json::parse("[0, 2, 5, 0, 0, 0, 1, 1, 0, 0, 1, 1, 2, 3]"));
  }

  TEST_CASE("bad max_fail specs name the key with an example") {
    CHECK(FleetError("fleet.max_fail(-1, 3)") == "fleet.max_fail must be 0 or more hosts (got -1), e.g. max_fail = 1");
    CHECK(FleetError("fleet.max_fail('101%', 3)") ==
          "fleet.max_fail must be a percentage from 0% to 100% (got \"101%\"), e.g. max_fail = \"10%\"");
    CHECK(FleetError("fleet.max_fail('some', 3)") == "fleet.max_fail must be a number of hosts (max_fail = 1) or a "
          "whole percentage of a batch (max_fail = \"10%\"), got \"some\"");
    CHECK(FleetError("fleet.max_fail(0.5, 3)") == "fleet.max_fail must be a number of hosts (max_fail = 1) or a "
          "whole percentage of a batch (max_fail = \"10%\"), got 0.5");
    CHECK(FleetError("fleet.max_fail(1, 0)") == "fleet.max_fail: batch_size must be an integer of at least 1 (got 0)");
  }
}

TEST_SUITE("fleet/decide") {
  const char* kBatch2 = R"(
    local r = { { host = 'web3', ok = false, error = require('hoist').error('deploy', 'unhealthy', 'web3 never became healthy') },
                { host = 'web4', ok = true } }
    local function batch(rules) return fleet.decide({ index = 2, count = 3, results = r, done = { 'web1', 'web2' },
      later = { 'web5', 'web6' } }, rules) end
  )";

  TEST_CASE("a batch without failures continues") {
    json d = Fleet("return fleet.decide({ index = 1, count = 2, results = { { host = 'a', ok = true }, "
                   "{ host = 'b', ok = true } } }, {})");
    CHECK(d["action"] == "continue");
    CHECK(d["message"] == "batch 1/2: all 2 hosts ok");
    CHECK(d["rollback"].empty());
  }

  TEST_CASE("a failure within max_fail continues, and the failed host is not rolled back") {
    json d = Fleet(std::string(kBatch2) + "return batch({ max_fail = 1, on_fail = 'rollback_all' })");
    CHECK(d["action"] == "continue");
    CHECK(d["tolerated"] == 1);
    CHECK(d["failed"] == json::parse(R"(["web3"])"));
    CHECK(d["message"] == "batch 2/3: 1 of 2 hosts failed (web3: web3 never became healthy); max_fail = 1 "
                          "tolerates 1 in a batch of 2: carrying on");
    d = Fleet(std::string(kBatch2) + "return batch({ max_fail = '50%' })");
    CHECK(d["action"] == "continue");
  }

  TEST_CASE("halt keeps what is done and skips the later batches") {
    json d = Fleet(std::string(kBatch2) + "return batch({ max_fail = 0, on_fail = 'halt' })");
    CHECK(d["action"] == "halt");
    CHECK(d["rollback"].empty());
    CHECK(d["skip"] == json::parse(R"(["web5","web6"])"));
    CHECK(d["message"] == "batch 2/3: 1 of 2 hosts failed (web3: web3 never became healthy); max_fail = 0 "
                          "tolerates 0 in a batch of 2. on_fail = \"halt\": stopping here, keeping web1, web2, web4 as "
                          "they are; skipping web5, web6");
    // The default rules are max_fail = 0, on_fail = "halt".
    CHECK(Fleet(std::string(kBatch2) + "return batch(nil).action") == "halt");
  }

  TEST_CASE("rollback_batch rolls back this batch's done hosts only") {
    json d = Fleet(std::string(kBatch2) + "return batch({ on_fail = 'rollback_batch' })");
    CHECK(d["action"] == "rollback_batch");
    CHECK(d["rollback"] == json::parse(R"(["web4"])"));
    CHECK(d["message"] == "batch 2/3: 1 of 2 hosts failed (web3: web3 never became healthy); max_fail = 0 "
                          "tolerates 0 in a batch of 2. on_fail = \"rollback_batch\": rolling back web4, keeping web1, "
                          "web2 (earlier batches); skipping web5, web6");
  }

  TEST_CASE("rollback_all rolls back every done host, newest first") {
    json d = Fleet(std::string(kBatch2) + "return batch({ on_fail = 'rollback_all' })");
    CHECK(d["action"] == "rollback_all");
    CHECK(d["rollback"] == json::parse(R"(["web4","web2","web1"])"));
    CHECK(d["message"] == "batch 2/3: 1 of 2 hosts failed (web3: web3 never became healthy); max_fail = 0 "
                          "tolerates 0 in a batch of 2. on_fail = \"rollback_all\": rolling back web4, web2, web1; "
                          "skipping web5, web6");
  }

  TEST_CASE("a batch whose every host failed triggers on_fail whatever max_fail tolerates") {
    json d = Fleet("return fleet.decide({ index = 1, count = 1, results = { { host = 'a', ok = false, error = 'boom' } } },"
                   " { max_fail = '100%', on_fail = 'rollback_batch' })");
    CHECK(d["action"] == "rollback_batch");
    CHECK(d["rollback"].empty());
    CHECK(d["message"] == "batch 1/1: 1 of 1 host failed (a: boom); every host of the batch failed, which triggers "
                          "on_fail whatever max_fail tolerates. on_fail = \"rollback_batch\": rolling back nothing (no "
                          "host of it succeeded)");
  }

  TEST_CASE("bad rules are refused before a decision") {
    CHECK(FleetError("fleet.decide({ index = 1, results = { { host = 'a', ok = true } } }, { on_fail = 'rollback' })") ==
          "fleet.on_fail must be one of \"halt\", \"rollback_batch\", \"rollback_all\" (got \"rollback\"), e.g. "
          "on_fail = \"halt\"");
    CHECK(FleetError("fleet.decide({ index = 1, results = { { host = 'a', ok = true } } }, { max_fails = 1 })") ==
          "unknown option 'max_fails' for fleet.decide rules (expected one of: serial, max_fail, on_fail)");
    CHECK(FleetError("fleet.decide({ index = 1, results = {} }, {})") ==
          "fleet.decide: a batch has at least one host (results is empty)");
  }
}

TEST_SUITE("fleet/run_batches") {
  TEST_CASE("every batch within its rules: one step per batch, every host done") {
    json r = RunSix("{ serial = 2 }", "{}");
    CHECK(StepLines(r) == S{"ok batch 1/3: web1, web2", "ok batch 2/3: web3, web4", "ok batch 3/3: web5, web6"});
    CHECK(r["status"] == json::parse(R"({"web1":"done 1","web2":"done 1","web3":"done 2","web4":"done 2",
                                         "web5":"done 3","web6":"done 3"})"));
    CHECK(r["outcome"]["ok"] == true);
    CHECK(r["outcome"]["message"] == "6 hosts in 3 batches: every batch within its rules");
  }

  TEST_CASE("a long batch's step name lists four hosts and a count") {
    json r = RunSix("{ serial = '100%' }", "{}");
    CHECK(StepLines(r) == S{"ok batch 1/1: web1, web2, web3, web4 and 2 more"});
  }

  TEST_CASE("halt, a host failing in batch 1: the batch's other host stays done, later batches are skipped") {
    json r = RunSix("{ serial = 2, on_fail = 'halt' }", "{ web1 = true }");
    CHECK(StepLines(r) == S{"failed batch 1/3: web1, web2"});
    CHECK(r["calls"] == json::parse(R"J(["work web1 (batch 1)","work web2 (batch 1)"])J"));
    CHECK(r["status"] == json::parse(R"({"web1":"failed 1","web2":"done 1","web3":"skipped 2","web4":"skipped 2",
                                         "web5":"skipped 3","web6":"skipped 3"})"));
    CHECK(r["raw"]["web1"]["error"]["message"] == "web1 never became healthy");
    CHECK(r["outcome"]["ok"] == false);
    CHECK(r["outcome"]["action"] == "halt");
    CHECK(r["outcome"]["batch"] == 1);
    CHECK(r["steps"][0]["code"] == "batch_failed");
    CHECK(r["steps"][0]["error"] == r["outcome"]["message"]);
  }

  TEST_CASE("halt, a host failing in batch 2: nothing is rolled back, batch 3 is skipped") {
    json r = RunSix("{ serial = 2, on_fail = 'halt' }", "{ web3 = true }");
    CHECK(StepLines(r) == S{"ok batch 1/3: web1, web2", "failed batch 2/3: web3, web4"});
    CHECK(r["status"] == json::parse(R"({"web1":"done 1","web2":"done 1","web3":"failed 2","web4":"done 2",
                                         "web5":"skipped 3","web6":"skipped 3"})"));
    CHECK(r["outcome"]["message"] == "batch 2/3: 1 of 2 hosts failed (web3: web3 never became healthy); "
                                     "max_fail = 0 tolerates 0 in a batch of 2. on_fail = \"halt\": stopping here, "
                                     "keeping web1, web2, web4 as they are; skipping web5, web6");
  }

  TEST_CASE("rollback_batch, a host failing in batch 1: its batch's done host is rolled back") {
    json r = RunSix("{ serial = 2, on_fail = 'rollback_batch' }", "{ web1 = true }");
    CHECK(StepLines(r) == S{"failed batch 1/3: web1, web2"});
    CHECK(r["calls"] == json::parse(R"J(["work web1 (batch 1)","work web2 (batch 1)","rollback web2"])J"));
    CHECK(r["status"] == json::parse(R"({"web1":"failed 1","web2":"rolled_back 1","web3":"skipped 2",
                                         "web4":"skipped 2","web5":"skipped 3","web6":"skipped 3"})"));
    CHECK(r["outcome"]["action"] == "rollback_batch");
  }

  TEST_CASE("rollback_batch, a host failing in batch 2: only batch 2 is rolled back, batch 1 stays done") {
    json r = RunSix("{ serial = 2, on_fail = 'rollback_batch' }", "{ web3 = true }");
    CHECK(StepLines(r) == S{"ok batch 1/3: web1, web2", "failed batch 2/3: web3, web4"});
    CHECK(r["calls"] == json::parse(R"J(["work web1 (batch 1)","work web2 (batch 1)","work web3 (batch 2)",
                                        "work web4 (batch 2)","rollback web4"])J"));
    CHECK(r["status"] == json::parse(R"({"web1":"done 1","web2":"done 1","web3":"failed 2","web4":"rolled_back 2",
                                         "web5":"skipped 3","web6":"skipped 3"})"));
  }

  TEST_CASE("rollback_all, a host failing in batch 1: as rollback_batch, there is nothing earlier") {
    json r = RunSix("{ serial = 2, on_fail = 'rollback_all' }", "{ web1 = true }");
    CHECK(r["calls"] == json::parse(R"J(["work web1 (batch 1)","work web2 (batch 1)","rollback web2"])J"));
    CHECK(r["status"] == json::parse(R"({"web1":"failed 1","web2":"rolled_back 1","web3":"skipped 2",
                                         "web4":"skipped 2","web5":"skipped 3","web6":"skipped 3"})"));
    CHECK(r["outcome"]["action"] == "rollback_all");
  }

  TEST_CASE("rollback_all, a host failing in batch 2: every done host is rolled back, newest first") {
    json r = RunSix("{ serial = 2, on_fail = 'rollback_all' }", "{ web3 = true }");
    CHECK(StepLines(r) == S{"ok batch 1/3: web1, web2", "failed batch 2/3: web3, web4"});
    CHECK(r["calls"] == json::parse(R"J(["work web1 (batch 1)","work web2 (batch 1)","work web3 (batch 2)",
                                        "work web4 (batch 2)","rollback web4","rollback web2","rollback web1"])J"));
    CHECK(r["status"] == json::parse(R"({"web1":"rolled_back 1","web2":"rolled_back 1","web3":"failed 2",
                                         "web4":"rolled_back 2","web5":"skipped 3","web6":"skipped 3"})"));
  }

  TEST_CASE("a failure within max_fail carries on, and rollback_all later leaves the tolerated host failed") {
    json r = RunSix("{ serial = 2, max_fail = 1, on_fail = 'rollback_all' }", "{ web1 = true }");
    CHECK(StepLines(r) == S{"ok batch 1/3: web1, web2", "ok batch 2/3: web3, web4", "ok batch 3/3: web5, web6"});
    CHECK(r["outcome"]["ok"] == true);
    CHECK(r["status"]["web1"] == "failed 1");
    r = RunSix("{ serial = 2, max_fail = 1, on_fail = 'rollback_all' }", "{ web1 = true, web3 = true, web4 = true }");
    CHECK(StepLines(r) == S{"ok batch 1/3: web1, web2", "failed batch 2/3: web3, web4"});
    CHECK(r["status"] == json::parse(R"({"web1":"failed 1","web2":"rolled_back 1","web3":"failed 2","web4":"failed 2",
                                         "web5":"skipped 3","web6":"skipped 3"})"));
  }

  TEST_CASE("a rollback that fails is reported beside the original failure, and the other hosts are still rolled back") {
    json r = RunSix("{ serial = 2, on_fail = 'rollback_all' }", "{ web3 = true }", "{ web2 = true }");
    CHECK(r["calls"] == json::parse(R"J(["work web1 (batch 1)","work web2 (batch 1)","work web3 (batch 2)",
                                        "work web4 (batch 2)","rollback web4","rollback web2","rollback web1"])J"));
    CHECK(r["status"] == json::parse(R"({"web1":"rolled_back 1","web2":"rollback_failed 1","web3":"failed 2",
                                         "web4":"rolled_back 2","web5":"skipped 3","web6":"skipped 3"})"));
    CHECK(r["raw"]["web2"]["rollback_error"]["message"] == "cannot stop the idle colour on web2");
    CHECK(r["raw"]["web3"]["error"]["message"] == "web3 never became healthy");
    CHECK(r["steps"][1]["code"] == "rollback_failed");
    CHECK(r["outcome"]["message"] ==
          "batch 2/3: 1 of 2 hosts failed (web3: web3 never became healthy); max_fail = 0 tolerates 0 in a "
          "batch of 2. on_fail = \"rollback_all\": rolling back web4, web2, web1; skipping web5, web6; rollback failed "
          "on 1 host (web2: cannot stop the idle colour on web2): check it by hand");
    CHECK(r["outcome"]["rollback_errors"][0]["host"] == "web2");
  }

  // docs/fleet.md, "Worked examples": the statuses it lists, exactly.
  json Worked(const std::string& hosts, const std::string& rules, const std::string& fails) {
    return Fleet(std::string(kRecordingRun) + "local status = fleet.run_batches(run, " + hosts + ", " + rules +
                 ", host_fn(" + fails + "), rollback_fn())\nreturn { status = plain(status), calls = calls }");
  }

  TEST_CASE("the worked examples of docs/fleet.md, 3 hosts and 10 hosts") {
    const std::string three = "{ 'web1', 'web2', 'web3' }";
    for (const char* rule : {"halt", "rollback_batch"}) {
      CAPTURE(rule);
      CHECK(Worked(three, std::string("{ on_fail = '") + rule + "' }", "{ web2 = true }")["status"] ==
            json::parse(R"({"web1":"done 1","web2":"failed 2","web3":"skipped 3"})"));
    }
    CHECK(Worked(three, "{ on_fail = 'rollback_all' }", "{ web2 = true }")["status"] ==
          json::parse(R"({"web1":"rolled_back 1","web2":"failed 2","web3":"skipped 3"})"));

    const std::string ten = Hosts(10), rules = "serial = { 1, '50%', '100%' }, max_fail = '25%'";
    json one = Worked(ten, "{ " + rules + ", on_fail = 'halt' }", "{ h03 = true }");
    CHECK(one["status"] == json::parse(R"({"h01":"done 1","h02":"done 2","h03":"failed 2","h04":"done 2",
      "h05":"done 2","h06":"done 2","h07":"done 3","h08":"done 3","h09":"done 3","h10":"done 3"})"));
    json halt = Worked(ten, "{ " + rules + ", on_fail = 'halt' }", "{ h03 = true, h05 = true }");
    CHECK(halt["status"] == json::parse(R"({"h01":"done 1","h02":"done 2","h03":"failed 2","h04":"done 2",
      "h05":"failed 2","h06":"done 2","h07":"skipped 3","h08":"skipped 3","h09":"skipped 3","h10":"skipped 3"})"));
    json batch = Worked(ten, "{ " + rules + ", on_fail = 'rollback_batch' }", "{ h03 = true, h05 = true }");
    CHECK(batch["status"] == json::parse(R"({"h01":"done 1","h02":"rolled_back 2","h03":"failed 2",
      "h04":"rolled_back 2","h05":"failed 2","h06":"rolled_back 2","h07":"skipped 3","h08":"skipped 3",
      "h09":"skipped 3","h10":"skipped 3"})"));
    std::vector<std::string> calls = batch["calls"];
    CHECK(std::vector<std::string>(calls.end() - 3, calls.end()) == S{"rollback h06", "rollback h04", "rollback h02"});
    json all = Worked(ten, "{ " + rules + ", on_fail = 'rollback_all' }", "{ h03 = true, h05 = true }");
    CHECK(all["status"]["h01"] == "rolled_back 1");
    calls = all["calls"].get<std::vector<std::string>>();
    CHECK(std::vector<std::string>(calls.end() - 4, calls.end()) ==
          S{"rollback h06", "rollback h04", "rollback h02", "rollback h01"});
  }

  TEST_CASE("Ctrl-C in a host's work stops the run, it is not a failed host") {
    auto e = LuaError(std::string("local fleet = require 'hoist.fleet'\n") + kRecordingRun +
                      "fleet.run_batches(run, { 'a', 'b' }, {}, function(h) if h == 'a' then "
                      "error(require('hoist').error('run', 'interrupted', 'interrupted (Ctrl-C)')) end end)");
    CHECK(e.area() == "run");
    CHECK(e.code() == "interrupted");
  }

  TEST_CASE("bad rules and arguments are refused before any host is worked") {
    CHECK(FleetError("fleet.run_batches({}, { 'a' }, { serail = 1 }, function() end)") ==
          "unknown option 'serail' for fleet rules (expected one of: serial, max_fail, on_fail)");
    CHECK(FleetError("fleet.run_batches({}, { 'a' }, { on_fail = 'rollback_all' }, function() end)") ==
          "fleet.run_batches: on_fail = \"rollback_all\" needs a rollback_fn(host)");
    CHECK(FleetError("fleet.run_batches({}, { 'a' }, { serial = '0%' }, function() end)") ==
          "fleet.serial must be a percentage from 1% to 100% (got \"0%\"), e.g. serial = \"25%\"");
    CHECK(FleetError("fleet.run_batches({}, { 'a' }, {}, nil)") ==
          "fleet.run_batches: per_host_fn must be a function(host, batch)");
  }
}

TEST_SUITE("fleet/config") {
  json Env(const std::string& fleet) {
    return RunLua("local project = require 'hoist.project'\n"
                  "return project.fleet({ env = { name = 'prod', fleet = " + fleet + " } })");
  }

  TEST_CASE("hoist.project's fleet: the defaults, and the keys as given") {
    CHECK(Env("nil") == json::parse(R"({"serial":1,"max_fail":0,"on_fail":"halt"})"));
    CHECK(Env("{ serial = { 1, '50%', '100%' }, max_fail = '10%', on_fail = 'rollback_all' }") ==
          json::parse(R"({"serial":[1,"50%","100%"],"max_fail":"10%","on_fail":"rollback_all"})"));
  }

  TEST_CASE("hoist.project's fleet: a bad key is a config error naming it in hoist.lua") {
    auto e = LuaError("local project = require 'hoist.project'\n"
                      "return project.fleet({ env = { name = 'prod', fleet = { serial = '150%' } } })");
    CHECK(e.area() == "config");
    CHECK(e.message() == "hoist.lua: environments.prod.fleet.serial must be a percentage from 1% to 100% (got \"150%\"),"
                         " e.g. serial = \"25%\"");
  }

  std::string ConfigError(const std::string& fleet) {
    json config = json::parse(R"({"environments":{"prod":{"fleet":)" + fleet + "}}}");
    try {
      engine::CheckConfig(config);
    } catch (const Error& e) {
      return e.message();
    }
    return "";
  }

  TEST_CASE("hoist.lua's fleet keys are checked with the rest of the config") {
    CHECK(ConfigError(R"({"serial":1,"max_fail":0,"on_fail":"halt"})") == "");
    CHECK(ConfigError(R"({"serial":[1,"50%","100%"],"max_fail":"10%","on_fail":"rollback_batch"})") == "");
    CHECK(ConfigError(R"({"serial":"25%","max_fail":"0%"})") == "");
    CHECK(ConfigError(R"({"seriel":1})") == "hoist.lua: environments.prod.fleet.seriel: unknown key (did you mean "
                                            "'serial'?); fleet takes: serial, max_fail, on_fail");
    CHECK(ConfigError(R"({"serial":0})") == "hoist.lua: environments.prod.fleet.serial must be an integer at least 1");
    CHECK(ConfigError(R"({"serial":"0%"})") == "hoist.lua: environments.prod.fleet.serial must be a percentage from 1% "
                                              "to 100% (\"25%\"), an integer or a list, e.g. serial = { 1, \"50%\", \"100%\" }");
    CHECK(ConfigError(R"({"serial":[1,"150%"]})") == "hoist.lua: environments.prod.fleet.serial[2] must be a percentage "
                                                    "from 1% to 100% (\"25%\") or an integer, e.g. serial[2] = \"50%\"");
    CHECK(ConfigError(R"({"max_fail":"101%"})") == "hoist.lua: environments.prod.fleet.max_fail must be a percentage "
                                                  "from 0% to 100% (\"25%\") or an integer, e.g. max_fail = \"10%\"");
    CHECK(ConfigError(R"({"max_fail":-1})") == "hoist.lua: environments.prod.fleet.max_fail must be an integer at least 0");
    CHECK(ConfigError(R"({"on_fail":"rollback"})") == "hoist.lua: environments.prod.fleet.on_fail must be one of "
                                                      "\"halt\", \"rollback_batch\", \"rollback_all\"");
    CHECK(ConfigError(R"(3)") == "hoist.lua: environments.prod.fleet must be a table (got an integer), e.g. fleet = "
                                 "{ serial = 1, max_fail = 0, on_fail = \"halt\" }");
  }
}

}  // namespace
}  // namespace hoist::test

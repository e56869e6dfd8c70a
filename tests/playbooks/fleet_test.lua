-- hoist.fleet's batch driver in a real run: one journaled step per batch,
-- the failing batch a failed step carrying the rule's sentence, later
-- batches never started, and hoist.lua's fleet key read through hoist.project.
local t = require "hoist.testing"
local case = t.case

local hosts = { web1 = { ssh = "web1" }, web2 = { ssh = "web2" }, web3 = { ssh = "web3" },
  web4 = { ssh = "web4" }, web5 = { ssh = "web5" }, web6 = { ssh = "web6" } }

local function sandbox(rules)
  return t.sandbox { db = false, env = { hosts = hosts, fleet = rules } }
end

case("fleet: every batch within its rules is one ok step per batch", function()
  local r = sandbox({ serial = "34%" }):run("fleet_batches.lua", {})   -- floor(6 * 34 / 100) = 2 hosts
  t.status(r, "ok")
  t.step_ok(r, "batch 1/3: web1, web2")
  t.step_ok(r, "batch 2/3: web3, web4")
  t.step_ok(r, "batch 3/3: web5, web6")
  t.eq(r:step("fleet status").result, { web1 = "done 1", web2 = "done 1", web3 = "done 2", web4 = "done 2",
    web5 = "done 3", web6 = "done 3" })
end)

case("fleet: rollback_batch fails the run at batch 2, rolls back its done host and skips batch 3", function()
  local r = sandbox({ serial = 2, on_fail = "rollback_batch" }):run("fleet_batches.lua", { fail = "web3" })
  t.status(r, "failed")
  t.step_ok(r, "batch 1/3: web1, web2")
  t.step_failed(r, "batch 2/3: web3, web4", 'on_fail = "rollback_batch": rolling back web4, keeping web1, web2')
  t.no_step(r, "batch 3/3: web5, web6")
  t.eq(r:step("fleet status").result, { web1 = "done 1", web2 = "done 1", web3 = "failed 2",
    web4 = "rolled_back 2", web5 = "skipped 3", web6 = "skipped 3" })
end)

case("fleet: a failing rollback is reported beside the host's failure", function()
  local r = sandbox({ serial = 2, on_fail = "rollback_all" }):run("fleet_batches.lua",
    { fail = "web3", rollback_fail = "web1" })
  t.status(r, "failed")
  local st = t.step_failed(r, "batch 2/3: web3, web4", "web3: web3 never became healthy")
  t.contains(st.error, "rollback failed on 1 host (web1: cannot stop the idle colour on web1): check it by hand")
  t.eq(r:step("fleet status").result, { web1 = "rollback_failed 1", web2 = "rolled_back 1", web3 = "failed 2",
    web4 = "rolled_back 2", web5 = "skipped 3", web6 = "skipped 3" })
end)

case("fleet: a bad fleet key stops the run before any batch, naming it", function()
  local r = sandbox({ serial = "150%" }):run("fleet_batches.lua", {})
  t.status(r, "config")
  t.contains(r.error, "fleet.serial must be a percentage from 1% to 100%")
  t.no_step(r, "batch 1/1: web1, web2, web3, web4 and 2 more")
end)

-- Works the environment's hosts in batches with hoist.fleet and the rules of
-- its `fleet` key; a host in -e fail= fails its work, one in -e
-- rollback_fail= fails its rollback (fleet_test).
local hoist = require "hoist"
local fleet = require "hoist.fleet"
local project = require "hoist.project"

local function set(csv)
  local s = {}
  for name in (csv or ""):gmatch("[^,]+") do s[name] = true end
  return s
end

return hoist.playbook {
  name = "fleet-batches",
  version = "1.0.0",
  params = {
    fail = { type = "string", default = "" },
    rollback_fail = { type = "string", default = "" },
  },
  run = function(run, p)
    local fails, rollback_fails = set(p.fail), set(p.rollback_fail)
    local status, outcome = fleet.run_batches(run, run.env.hosts, project.fleet(run),
      function(host)
        if fails[host] then error(hoist.error("deploy", "unhealthy", host .. " never became healthy")) end
      end,
      function(host)
        if rollback_fails[host] then error(hoist.error("deploy", "failed", "cannot stop the idle colour on " .. host)) end
      end)
    local plain = {}
    for host, s in pairs(status) do plain[host] = s.status .. " " .. s.batch end
    run:step("fleet status", function() return plain end)
    if not outcome.ok then error(hoist.error("fleet", outcome.action, outcome.message)) end
  end,
}

-- The simulated Docker engine under a playbook: containers, health, undo.
local t = require "hoist.testing"
local case = t.case

local function sandbox(behave)
  return t.sandbox { world = { containers = { { name = "api-blue", image = "api:1.0.0" } }, behave = behave } }
end

case("a healthy container replaces the old one", function()
  local r = sandbox():run("docker_deploy.lua", { image = "api:1.4.2" })
  t.status(r, "ok")
  t.order(r, { "create api-green (api:1.4.2)", "start api-green", "remove api-blue" })
end)

case("a container that never becomes healthy is removed and the old one kept", function()
  local r = sandbox { ["api-green"] = { behaviour = "never_listens", listen_after = 5 } }
    :run("docker_deploy.lua", { image = "api:1.4.2" })
  t.status(r, "failed")
  t.step_failed(r, "healthy", "container api-green is unhealthy")
  t.changed(r, "remove api-green")
  t.unchanged(r, "remove api-blue")
end)

case("a slow container becomes healthy within the retries", function()
  local r = sandbox { ["api-green"] = { listen_after = 20 } }:run("docker_deploy.lua", { image = "api:1.4.2" })
  t.status(r, "ok")
end)

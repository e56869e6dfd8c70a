-- A container deploy for the sandbox tests: start the new colour's
-- container, wait for Docker's own health status, remove the old one.
local hoist = require "hoist"
local docker = require "hoist.docker"
local health = require "hoist.health"

return hoist.playbook {
  name = "docker-deploy",
  version = "1.0.0",
  params = { image = { type = "string", required = true } },
  run = function(run, p)
    -- Not <close>: the undo below runs after run() has returned.
    local d = docker.connect { socket = "/var/run/docker.sock" }
    run:step("start api-green", function()
      d:create { name = "api-green", image = p.image,
        healthcheck = { test = { "CMD", "/app/healthcheck" }, interval = 2, timeout = 1, retries = 3 } }
      d:start("api-green")
    end, { undo = function() d:remove("api-green", { force = true }) end })
    run:step("healthy", function()
      local r = health.container { docker = d, name = "api-green", retries = 15, interval = 2 }
      if not r.ok then error(hoist.error("health", "failed", r.error)) end
    end)
    run:step("remove api-blue", function() d:remove("api-blue", { force = true }) end)
  end,
}

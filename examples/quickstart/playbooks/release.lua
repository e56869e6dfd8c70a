--- release: stage a release, smoke-test it, activate it, verify it.
-- Shows steps, undo and the journal without any external service: the
-- "activation" is an atomic write of the ./current pointer file, and its undo
-- puts the previous release back when a later step fails.
local hoist = require "hoist"
local fs = require "hoist.fs"
local proc = require "hoist.proc"
local json = require "hoist.json"
local log = require "hoist.log"

return hoist.playbook {
  name = "release",
  version = "1.0.0",
  summary = "Stage, smoke-test and activate a release (undone if verification fails)",
  params = {
    version = { type = "string", required = true, help = "release version, e.g. 1.2.0" },
    simulate_failure = { type = "boolean", default = false, help = "make verification fail to show the undo" },
  },
  run = function(run, p)
    local env = run.env
    local dir = env.releases_dir .. "/" .. p.version

    run:step("stage release " .. p.version, function()
      fs.mkdir_p(dir)
      fs.write_atomic(dir .. "/release.json", json.encode({ version = p.version }))
      return dir
    end, { undo = function(staged) fs.remove(staged, { recursive = true }) end })

    run:step("smoke test", function()
      local r = proc.run({ "cat", dir .. "/release.json" }, { check = true })
      local got = json.decode(r.stdout).version
      if got ~= p.version then error("staged release says " .. got) end
      return got
    end)

    run:step("activate", function()
      local previous = fs.exists(env.current_file) and fs.read(env.current_file) or nil
      fs.write_atomic(env.current_file, p.version)
      log.info("active release: " .. p.version .. (previous and (" (was " .. previous .. ")") or ""))
      return { previous = previous }
    end, {
      undo = function(r)
        if r.previous then
          fs.write_atomic(env.current_file, r.previous)
        else
          fs.remove(env.current_file)
        end
      end,
    })

    run:step("verify", function()
      if p.simulate_failure then error("verification failed: release " .. p.version .. " answers 500") end
      return fs.read(env.current_file)
    end, { retries = 1, retry_delay = 0.2 })
  end,
}

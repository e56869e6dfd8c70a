--- doctor: checks that this host and project are ready for hoist.
-- Read-only (lock = false): safe to run at any time, e.g. before a deploy.
local hoist = require "hoist"
local fs = require "hoist.fs"
local log = require "hoist.log"

local GiB = 1024 * 1024 * 1024

-- The absolute path of an executable found in PATH, or nil.
local function which(tool)
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local path = dir .. "/" .. tool
    local st = fs.stat(path)
    if st and st.type == "file" then return path end
  end
  return nil
end

return hoist.playbook {
  name = "doctor",
  version = "1.0.0",
  summary = "Check this host and project: state dir, free disk, tools on PATH",
  lock = false,
  params = {
    min_free_gib = { type = "number", default = 1, help = "warn below this much free disk (GiB)" },
    tools = { type = "list", default = { "nginx", "docker", "sqlite3", "pg_dump", "pg_restore" },
              help = "tools to look for on PATH (comma-separated)" },
  },
  run = function(run, p)
    run:step("project", function()
      local root = run.project_root
      local cfg = fs.stat(root .. "/hoist.lua")
      if not cfg then log.warn("no hoist.lua in " .. root .. ": using defaults (one environment, 'default')") end
      return { root = root, config = cfg ~= nil, env = run.env.name }
    end)
    run:step("free disk", function()
      local d = fs.disk_free(run.project_root)
      local free_gib = d.available / GiB
      if free_gib < p.min_free_gib then
        log.warn(string.format("only %.1f GiB free under %s: backups may not fit", free_gib, run.project_root))
      end
      return { available_gib = math.floor(free_gib * 10) / 10, total_gib = math.floor(d.total / GiB * 10) / 10 }
    end)
    run:step("tools", function()
      local found = {}
      for _, tool in ipairs(p.tools) do
        local path = which(tool)
        found[tool] = path or false
        if not path then log.info(tool .. ": not on PATH") end
      end
      return found
    end)
  end,
}

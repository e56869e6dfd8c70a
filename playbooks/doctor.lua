--- doctor: checks that this host and project are ready for hoist.
-- Read-only (lock = false): safe to run at any time, e.g. before a deploy.
local hoist = require "hoist"
local fs = require "hoist.fs"
local log = require "hoist.log"

local GiB = 1024 * 1024 * 1024

-- What a missing tool or library costs; a bare host (the .deb with only
-- libc6) lacks all of them, and hoist still runs: doctor says what won't.
local NEEDED_FOR = {
  nginx = "to switch traffic (hoist.nginx)",
  docker = "for docker compose (hoist.docker.compose)",
  sqlite3 = "only to open a SQLite database by hand",
  pg_dump = "for PostgreSQL backups",
  pg_restore = "for PostgreSQL backups and restores",
}

-- The shared libraries hoist loads at first use (sys/dynlib.h): soname
-- alternatives, the Debian package, what needs it.
local LIBRARIES = {
  { sonames = { "libcurl.so.4", "libcurl-gnutls.so.4" }, package = "libcurl4",
    needed_for = "for HTTP: health checks, hoist.http, the Docker Engine API" },
  { sonames = { "libpq.so.5" }, package = "libpq5", needed_for = "for PostgreSQL databases and state" },
  { sonames = { "libzstd.so.1" }, package = "libzstd1", needed_for = "for compressed backups" },
}

-- Where the dynamic loader looks on Debian amd64 (and LD_LIBRARY_PATH first).
local function library_dirs()
  local dirs = {}
  for dir in (os.getenv("LD_LIBRARY_PATH") or ""):gmatch("[^:]+") do dirs[#dirs + 1] = dir end
  for _, dir in ipairs({ "/usr/local/lib/x86_64-linux-gnu", "/usr/local/lib", "/lib/x86_64-linux-gnu",
                         "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib" }) do
    dirs[#dirs + 1] = dir
  end
  return dirs
end

local function find_library(sonames)
  for _, dir in ipairs(library_dirs()) do
    for _, soname in ipairs(sonames) do
      local path = dir .. "/" .. soname
      local st = fs.stat(path)
      if st and (st.type == "file" or st.type == "link") then return path end
    end
  end
  return nil
end

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
  version = "1.1.0",
  summary = "Check this host and project: state dir, free disk, tools on PATH, libraries hoist loads",
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
        if not path then
          local why = NEEDED_FOR[tool]
          log.info(tool .. ": not on PATH" .. (why and (": needed " .. why) or ""))
        end
      end
      return found
    end)
    run:step("libraries", function()
      local found = {}
      for _, lib in ipairs(LIBRARIES) do
        local path = find_library(lib.sonames)
        found[lib.package] = path or false
        if not path then
          log.info(string.format("%s: not installed: needed %s (apt-get install %s)",
            lib.sonames[1], lib.needed_for, lib.package))
        end
      end
      return found
    end)
  end,
}

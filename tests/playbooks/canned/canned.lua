-- Shared setup for the canned playbooks' tests: an environment shaped like
-- examples/sqlite-bluegreen (app.colours, nginx.verify, health, bake) and a
-- simulated host where blue runs and nginx routes to it.
local t = require "hoist.testing"

local M = {}

M.CONF = "/etc/nginx/conf.d/api-upstream.conf"
M.BLUE_LIVE = "upstream api {\n    server 127.0.0.1:5001;\n}\n"
M.GREEN_LIVE = "upstream api {\n    server 127.0.0.1:5002;\n}\n"
M.HEALTH = "http://127.0.0.1/api/health"

local root = t.path(".")
M.dir = root

--- The canned playbook `name` (playbooks/NAME.lua of this repository).
function M.playbook(name)
  return root .. "/../../../playbooks/" .. name .. ".lua"
end

function M.env(over)
  local e = {
    database = "sqlite:data/app.db",  -- the sandbox replaces it with the fixture's copy
    migrations = root .. "/fixtures/releases/{version}/migrations",
    backups = { dir = "/var/backups/api", keep = 2 },
    app = {
      argv = { "/srv/api/bin/api", "--db", "{database_path}", "--port", "{port}", "--colour", "{colour}",
        "--release", "{version}" },
      colours = { blue = { port = 5001 }, green = { port = 5002 } },
      run_dir = "/srv/api/run",
      start_timeout = 15,
    },
    nginx = { conf = M.CONF, upstream = "api", pid_file = "/run/nginx.pid",
      verify = { url = M.HEALTH, expect_header = "X-Colour", timeout = 5 } },
    health = { path = "/api/health", json = { status = "ok" }, sql = "SELECT count(*) FROM notes", timeout = 10 },
    bake = { seconds = 3, url = M.HEALTH, interval = 0.5 },
  }
  for k, v in pairs(over or {}) do e[k] = v end
  return e
end

--- A sandbox: blue runs and is live behind nginx, green is idle.
-- world: world keys replacing the defaults; extra: other sandbox keys (lease, env).
function M.sandbox(world, extra)
  local w = {
    files = { [M.CONF] = M.BLUE_LIVE },
    nginx = { pid_file = "/run/nginx.pid", workers = 2 },
    services = { { name = "app-blue", pid_file = "/srv/api/run/blue.pid", port = 5001 } },
    frontends = { { port = 80, conf = M.CONF } },
  }
  for k, v in pairs(world or {}) do w[k] = v end
  local spec = { db = { sql = root .. "/fixtures/app.sql" }, env = M.env(), world = w }
  for k, v in pairs(extra or {}) do
    if k == "env" then spec.env = M.env(v) else spec[k] = v end
  end
  return t.sandbox(spec)
end

--- Whether the run's database copy has column col in table tbl.
function M.has_column(r, tbl, col)
  for _, row in ipairs(r:query("SELECT name FROM pragma_table_info(?)", tbl)) do
    if row.name == col then return true end
  end
  return false
end

return M

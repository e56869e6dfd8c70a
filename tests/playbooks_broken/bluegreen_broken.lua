-- A deliberately broken copy of tests/playbooks/bluegreen.lua: the start
-- step has no undo and the health check probes the live colour. Its test
-- (bluegreen_broken.cases.lua) must fail exactly the cases that catch that;
-- tests/unit/cli/sandbox_cli_test.cpp checks it does.
local hoist = require "hoist"
local project = require "hoist.project"
local backup = require "hoist.backup"
local migrate = require "hoist.migrate"
local proc = require "hoist.proc"
local health = require "hoist.health"
local nginx = require "hoist.nginx"

return hoist.playbook {
  name = "bluegreen-broken",
  version = "1.0.0",
  summary = "Blue/green deploy of a process service behind nginx",
  params = {
    version = { type = "string", required = true, help = "release to start" },
  },
  run = function(run, p)
    local env = run.env
    local app, ngx = env.service, env.nginx
    local db <close> = project.database(run)
    local site = nginx.site {
      conf = ngx.conf, upstream = ngx.upstream, pid_file = ngx.pid_file,
      servers = { blue = "127.0.0.1:" .. app.ports.blue, green = "127.0.0.1:" .. app.ports.green },
    }
    -- Proof by traffic through nginx when the environment names a URL.
    local verify = ngx.verify_url and { url = ngx.verify_url, expect_header = "X-Colour" } or false
    local live = site:active()
    local idle = live == "blue" and "green" or "blue"
    local port = app.ports[idle]
    local svc = proc.service {
      name = "api-" .. idle, argv = { app.bin, "--version", p.version, "--port", tostring(port) }, port = port,
      pid_file = app.run_dir .. "/" .. idle .. ".pid", log_file = app.run_dir .. "/" .. idle .. ".log",
    }

    run:step("backup", function()
      local b = project.backups(run)
      return backup.create(db, { dir = b.dir, keep = b.keep, label = "pre-deploy" }).path
    end)
    run:step("expand migrations", function()
      return migrate.up(db, project.migrations(run), { policy = "expand" }).applied
    end)
    run:step("start " .. idle, function()
      -- A colour that failed to come up is never left half-started.
      local ok, started = pcall(svc.start, svc, { wait = 30 })
      if not ok then
        svc:stop()
        error(started, 0)
      end
      return started.pid
    end, {})  -- BUG: no undo, a failed deploy leaves green running
    run:step("health " .. idle, function()
      local r = health.http { url = "http://127.0.0.1:" .. app.ports[live] .. "/health" }  -- BUG: checks the live colour
      if not r.ok then error(hoist.error("health", "failed", idle .. " is unhealthy: " .. r.error)) end
      return r.attempts
    end)
    run:step("switch to " .. idle, function() return site:switch(idle, { verify = verify }).seconds end,
      { undo = function() site:switch(live, { verify = false }) end })
    run:step("record release", function()
      return db:exec("INSERT INTO releases (version, colour) VALUES (?, ?)", p.version, idle)
    end)
  end,
}

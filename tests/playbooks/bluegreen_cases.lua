-- The cases every blue/green playbook must pass, shared by
-- bluegreen_test.lua (the good playbook: all pass) and
-- ../playbooks_broken/bluegreen_broken_test.lua (a deliberately broken one:
-- the cases that catch its bugs fail). Call it with the playbook's path.
local t = require "hoist.testing"
local case = t.case

local CONF = "/etc/nginx/conf.d/api.conf"

local BLUE_LIVE = [[
upstream api {
    server 127.0.0.1:5001 max_fails=3;
}
]]

local GREEN_LIVE = [[
upstream api {
    server 127.0.0.1:5002 max_fails=3;
}
]]

return function(dir, playbook)
  local function env()
    return {
      database = "sqlite:data/app.db",  -- the sandbox replaces it with the fixture's copy
      migrations = dir .. "/migrations",
      backups = "/var/backups/api",
      nginx = { conf = CONF, upstream = "api", pid_file = "/run/nginx.pid", verify_url = "http://127.0.0.1/health" },
      service = { bin = "/srv/api/bin/api", run_dir = "/srv/api/run", ports = { blue = 5001, green = 5002 } },
    }
  end

  -- blue live and healthy behind nginx; green idle. extra: more world keys.
  local function sandbox(world, extra)
    local w = {
      files = { [CONF] = BLUE_LIVE, ["/srv/api/run/.keep"] = "" },
      nginx = { pid_file = "/run/nginx.pid", workers = 2 },
      services = { { name = "api-blue", pid_file = "/srv/api/run/blue.pid", port = 5001 } },
      frontends = { { port = 80, conf = CONF } },
    }
    for k, v in pairs(world or {}) do w[k] = v end
    local spec = { db = { sql = dir .. "/fixtures/app.sql" }, env = env(), world = w }
    for k, v in pairs(extra or {}) do spec[k] = v end
    return t.sandbox(spec)
  end

  case("deploy: backup, migrate, start green, health, switch, record", function()
    local r = sandbox():run(playbook, { version = "1.4.2" })
    t.status(r, "ok")
    for _, s in ipairs { "backup", "expand migrations", "start green", "health green", "switch to green",
      "record release" } do
      t.step_ok(r, s)
    end
    t.contains(t.file(r, CONF), "server 127.0.0.1:5002 max_fails=3;")
    t.order(r, { "start api-green", "write " .. CONF, "kill -1" })
  end)

  case("deploy: the database copy is migrated and the release recorded", function()
    local r = sandbox():run(playbook, { version = "1.4.2" })
    t.status(r, "ok")
    t.rows(r, "releases", 2)
    t.rows(r, "users", 3)
    t.eq(r:query("SELECT version, colour FROM releases ORDER BY id DESC")[1], { version = "1.4.2", colour = "green" })
    t.eq(#r:query("SELECT email FROM users"), 3, "the expand migration added users.email")
  end)

  case("deploy: the backup is made, inside the sandbox", function()
    local r = sandbox():run(playbook, { version = "1.4.2" })
    local call = t.called(r, "backup", "create")
    t.ok(not call.name:find("/var/backups/api/", 1, true) or call.name:find("hoist-sandbox-", 1, true),
      "the backup went to the real backups dir: " .. call.name)
  end)

  case("green never listens: the run fails, green is stopped, nginx untouched", function()
    local r = sandbox { behave = { ["api-green"] = { behaviour = "never_listens" } } }:run(playbook, { version = "1.4.2" })
    t.status(r, "failed")
    t.step_failed(r, "start green", "not listening")
    t.no_step(r, "switch to green")
    t.eq(t.file(r, CONF), BLUE_LIVE, "the nginx include")
    t.changed(r, "stop api-green")
  end)

  case("green listens but answers 500: no switch", function()
    local r = sandbox { http = { { url = "http://127.0.0.1:5002/health", status = 500, body = "db down" } } }
      :run(playbook, { version = "1.4.2" })
    t.status(r, "failed")
    t.step_failed(r, "health green", "green is unhealthy")
    t.unchanged(r, "write " .. CONF)
    t.changed(r, "stop api-green")
  end)

  case("nginx -t fails: the include is restored and green stopped", function()
    local r = sandbox { processes = { { match = "nginx -t", code = 1,
      stderr = "nginx: [emerg] unknown directive \"keepalive_bogus\" in /etc/nginx/conf.d/api.conf:3\n" } } }
      :run(playbook, { version = "1.4.2" })
    t.status(r, "failed")
    t.step_failed(r, "switch to green", "nginx -t rejected the configuration")
    t.eq(t.file(r, CONF), BLUE_LIVE, "the nginx include after the rollback")
    t.changed(r, "stop api-green")
  end)

  case("HTTP 500 through nginx after the switch: reverted to blue", function()
    local r = sandbox { http = { { url = "http://127.0.0.1/health", status = 500 } } }
      :run(playbook, { version = "1.4.2" })
    t.status(r, "failed")
    t.step_failed(r, "switch to green")
    t.eq(t.file(r, CONF), BLUE_LIVE, "the nginx include after the revert")
    t.changed(r, "stop api-green")
    t.no_step(r, "record release")
    t.rows(r, "releases", 1)
  end)

  case("slow start: green listens after 20 s and the deploy still passes, on the virtual clock", function()
    local time = require "hoist.time"
    local t0 = time.monotonic()
    local r = sandbox { behave = { ["api-green"] = { listen_after = 20 } } }:run(playbook, { version = "1.4.2" })
    t.status(r, "ok")
    t.ok(time.monotonic() - t0 < 5, "a 20 s simulated wait took real time")
  end)

  case("too slow: green listens only after 60 s, past the 30 s start wait", function()
    local r = sandbox { behave = { ["api-green"] = { listen_after = 60 } } }:run(playbook, { version = "1.4.2" })
    t.status(r, "failed")
    t.step_failed(r, "start green", "not listening on 127.0.0.1:5002 after 30 s")
  end)

  case("a lease held by someone else: nothing runs", function()
    local r = sandbox(nil, { lease = { owner = "alice", reason = "hotfix 1.4.1" } }):run(playbook, { version = "1.4.2" })
    t.status(r, "lease_held")
    t.contains(r.error, "alice")
    t.eq(#r.steps, 0, "steps run")
    t.eq(#r.changes, 0, "world changes")
  end)

  case("green live: the deploy goes to blue", function()
    local r = sandbox {
      files = { [CONF] = GREEN_LIVE, ["/srv/api/run/.keep"] = "" },
      services = { { name = "api-green", pid_file = "/srv/api/run/green.pid", port = 5002 } },
    }:run(playbook, { version = "1.4.2" })
    t.status(r, "ok")
    t.changed(r, "start api-blue")
    t.contains(t.file(r, CONF), "server 127.0.0.1:5001 max_fails=3;")
  end)

  case("a missing param is refused before anything runs", function()
    local r = sandbox():run(playbook, {})
    t.status(r, "invalid")
    t.eq(#r.changes, 0, "world changes")
  end)
end

-- The canned deploy (playbooks/deploy.lua, hoist.bluegreen.deploy): its
-- happy path and each way it must fail safely.
local t = require "hoist.testing"
local c = require "canned"
local case = t.case
local DEPLOY = c.playbook("deploy")
local has_column = c.has_column

case("deploy: backup, expand migrations, start green, health gate, switch, bake", function()
  local r = c.sandbox():run(DEPLOY, { version = "2" })
  t.status(r, "ok")
  local names = {}
  for _, s in ipairs(r.steps) do names[#names + 1] = s.name .. ":" .. s.status end
  t.eq(names, { "backup:ok", "expand migrations:ok", "stop standby green:ok", "start green:ok",
    "health gate green:ok", "switch blue -> green:ok", "bake:ok" })
  t.order(r, { "start app-green", "write " .. c.CONF, "nginx -t", "kill -1" })
  t.eq(t.file(r, c.CONF), c.GREEN_LIVE, "the include routes to green")
  t.unchanged(r, "stop app-blue")
end)

case("deploy: the copy is migrated, the backup made inside the sandbox, the release recorded", function()
  local r = c.sandbox():run(DEPLOY, { version = "2" })
  t.status(r, "ok")
  t.eq(#r:query("SELECT author_name FROM notes"), 3, "0001 added notes.author_name")
  t.eq(r:query("SELECT version FROM hoist_schema_migrations")[1].version, 1, "the applied migration is recorded")
  local b = t.called(r, "backup", "create")
  t.contains(b.name, "/hoist-sandbox-", "the predeploy backup stays in the sandbox")
  t.called(r, "backup", "verify")
  t.called(r, "state", "remember colours")
  t.called(r, "state", "remember last_deploy")
  t.eq(r.rows.notes, { before = 3, after = 3 }, "notes rows")
end)

case("green never listens: the start fails, green is stopped, traffic stays on blue", function()
  local r = c.sandbox { behave = { ["app-green"] = { behaviour = "never_listens" } } }:run(DEPLOY, { version = "2" })
  t.status(r, "failed")
  t.step_failed(r, "start green", "not listening on 127.0.0.1:5002 after 15 s")
  t.no_step(r, "switch blue -> green")
  t.order(r, { "start app-green", "stop app-green" })
  t.unchanged(r, "write " .. c.CONF)
  t.eq(t.file(r, c.CONF), c.BLUE_LIVE, "the include")
end)

case("green answers 500 on its own port: the health gate fails, green stopped, no switch", function()
  local r = c.sandbox { http = { { url = "http://127.0.0.1:5002/api/health", status = 500, body = "db locked" } } }
    :run(DEPLOY, { version = "2" })
  t.status(r, "failed")
  t.step_failed(r, "health gate green", "green (release 2) did not become healthy")
  t.unchanged(r, "write " .. c.CONF)
  t.order(r, { "start app-green", "stop app-green" })
  t.eq(t.file(r, c.CONF), c.BLUE_LIVE, "the include")
end)

local function warnings(r)
  local out = {}
  for _, e in ipairs(r:calls("log")) do
    if e.name == "warn" then out[#out + 1] = tostring(e.data and e.data.message) end
  end
  return table.concat(out, "\n")
end

local UNHEALTHY = { http = { { url = "http://127.0.0.1:5002/api/health", status = 500, body = "db locked" } } }

case("a failed deploy without --yes keeps its expand migration and names the command that removes it", function()
  local r = c.sandbox(UNHEALTHY):run(DEPLOY, { version = "2" })
  t.status(r, "failed")
  t.ok(has_column(r, "notes", "author_name"), "the expand migration is kept (the old colour runs on it)")
  t.contains(warnings(r), "kept the 1 expand migration(s)")
  t.contains(warnings(r), "hoist migrate -e action=down -e steps=1")
end)

case("a failed deploy with --yes undoes its expand migration and says which one it removed", function()
  local r = c.sandbox(UNHEALTHY):run(DEPLOY, { version = "2" }, { yes = true })
  t.status(r, "failed")
  t.ok(not has_column(r, "notes", "author_name"), "the expand migration is gone")
  t.contains(warnings(r), "undid 1 expand migration(s) (0001_add_author_name.sql): the database is back at")
end)

case("nginx -t rejects the new include: it is restored, nginx not reloaded, green stopped", function()
  local r = c.sandbox { processes = { { match = "nginx -t", code = 1,
    stderr = "nginx: [emerg] invalid number of arguments in \"server\" directive in " .. c.CONF .. ":2\n" } } }
    :run(DEPLOY, { version = "2" })
  t.status(r, "failed")
  t.step_failed(r, "switch blue -> green", "nginx -t")
  t.eq(t.file(r, c.CONF), c.BLUE_LIVE, "the include after the failed switch")
  t.unchanged(r, "kill -1")
  t.order(r, { "start app-green", "write " .. c.CONF, "run nginx -t", "write " .. c.CONF, "stop app-green" })
end)

case("HTTP 500 through nginx right after the switch: switched back to blue, green stopped", function()
  local r = c.sandbox { http = { { url = c.HEALTH, status = 500 } } }:run(DEPLOY, { version = "2" })
  t.status(r, "failed")
  t.step_failed(r, "switch blue -> green")
  t.no_step(r, "bake")
  t.eq(t.file(r, c.CONF), c.BLUE_LIVE, "the include after the revert")
  t.changed(r, "stop app-green")
  t.not_called(r, "state", "remember last_deploy")
end)

case("probes fail during the bake: switched back to blue, green stopped, no deploy recorded", function()
  -- The switch proves traffic through nginx.verify.url; the bake probes its
  -- own url, so the two can be scripted apart.
  local r = c.sandbox({ http = { { url = "http://127.0.0.1/api/ready", status = 503 } } },
    { env = { bake = { seconds = 3, url = "http://127.0.0.1/api/ready", interval = 0.5 } } })
    :run(DEPLOY, { version = "2" })
  t.status(r, "failed")
  t.step_ok(r, "switch blue -> green")
  t.step_failed(r, "bake", "failed 1 of 1 probes through nginx during the bake")
  t.eq(t.file(r, c.CONF), c.BLUE_LIVE, "the include after the bake failed")
  t.order(r, { "write " .. c.CONF, "kill -1", "write " .. c.CONF, "kill -1", "stop app-green" })
  t.not_called(r, "state", "remember last_deploy")
end)

case("a destructive migration declared expand: refused before anything changes", function()
  local r = c.sandbox():run(DEPLOY, { version = "bad" })
  t.status(r, "failed")
  t.step_failed(r, "expand migrations", "refused")
  t.no_step(r, "start green")
  t.eq(#r.changes, 0, "world changes")
  t.eq(r.schema_diff.equal, true, "the schema is unchanged")
  t.ok(r:query("SELECT author FROM notes"), "notes.author is still there")
end)

case("a contract migration waits for hoist contract: only the expand one is applied", function()
  local r = c.sandbox():run(DEPLOY, { version = "3" })
  t.status(r, "ok")
  local m = r:step("expand migrations").result
  t.eq(m.held, "0002_drop_author.sql", "the held migration")
  t.eq(#m.applied, 1, "applied migrations")
  t.eq(#r:query("SELECT author, author_name FROM notes"), 3, "both columns exist")
end)

case("a lease held by someone else: exit 4, no step, no change", function()
  local r = c.sandbox(nil, { lease = { owner = "alice", reason = "hotfix 1.4.1" } }):run(DEPLOY, { version = "2" })
  t.status(r, "lease_held")
  t.eq(r.exit_code, 4, "exit code")
  t.contains(r.error, "alice")
  t.eq(#r.steps, 0, "steps run")
  t.eq(#r.changes, 0, "world changes")
end)

case("green live, blue still running as the standby: the deploy replaces blue", function()
  local r = c.sandbox {
    files = { [c.CONF] = c.GREEN_LIVE },
    services = { { name = "app-blue", pid_file = "/srv/api/run/blue.pid", port = 5001 },
                 { name = "app-green", pid_file = "/srv/api/run/green.pid", port = 5002 } },
  }:run(DEPLOY, { version = "2" })
  t.status(r, "ok")
  t.step_ok(r, "stop standby blue")
  t.order(r, { "stop app-blue", "start app-blue", "write " .. c.CONF })
  t.eq(t.file(r, c.CONF), c.BLUE_LIVE, "the include routes to blue")
  t.unchanged(r, "stop app-green")
end)

case("no version: refused before anything changes", function()
  local r = c.sandbox():run(DEPLOY, {})
  t.status(r, "config")
  t.contains(r.error, "deploy needs -e version=RELEASE")
  t.eq(#r.changes, 0, "world changes")
end)

-- Green runs release 1 as the standby (remembered by the deploy that left it there).
local function with_standby(world)
  local w = {
    services = { { name = "app-blue", pid_file = "/srv/api/run/blue.pid", port = 5001 },
                 { name = "app-green", pid_file = "/srv/api/run/green.pid", port = 5002 } },
  }
  for k, v in pairs(world or {}) do w[k] = v end
  return c.sandbox(w, { facts = { colours = { blue = { release = "2" }, green = { release = "1" } } } })
end

case("a failed deploy puts the standby back and health-checks it before calling the undo done", function()
  local r = with_standby { processes = { { match = "nginx -t", code = 1, stderr = "nginx: [emerg] bad\n" } } }
    :run(DEPLOY, { version = "3" })
  t.status(r, "failed")
  t.step_failed(r, "switch blue -> green", "nginx -t")
  -- The standby (release 1) stopped, release 3 started, stopped by the undo, release 1 started again.
  t.order(r, { "stop app-green", "start app-green", "stop app-green", "start app-green" })
  local last_start
  for i, e in ipairs(r.events) do
    if e.kind == "service" and tostring(e.name):find("start app-green", 1, true) then last_start = i end
  end
  local checked = false
  for i, e in ipairs(r.events) do
    if i > last_start and e.kind == "http" and tostring(e.name):find("127.0.0.1:5002/api/health", 1, true) then
      checked = true
    end
  end
  t.ok(checked, "the restarted standby's health was checked")
  t.eq(t.file(r, c.CONF), c.BLUE_LIVE, "the include")
end)

case("a standby that comes back unhealthy makes the undo fail loudly (exit 3)", function()
  local r = with_standby { http = { { url = "http://127.0.0.1:5002/api/health", status = 500, body = "db locked" } } }
    :run(DEPLOY, { version = "3" })
  t.status(r, "failed_undo")
  t.eq(r.exit_code, 3, "exit code")
  t.step_failed(r, "health gate green", "green (release 3) did not become healthy")
  t.step_failed(r, "undo stop standby green", "green (release 1) did not become healthy")
  t.eq(t.file(r, c.CONF), c.BLUE_LIVE, "the include")
end)

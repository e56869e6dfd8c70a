-- The canned rollback, contract and status playbooks (hoist.bluegreen).
local t = require "hoist.testing"
local c = require "canned"
local case = t.case

-- After a deploy to green: green live, blue still running as the standby.
local function after_deploy(world)
  local w = {
    files = { [c.CONF] = c.GREEN_LIVE },
    services = { { name = "app-blue", pid_file = "/srv/api/run/blue.pid", port = 5001 },
                 { name = "app-green", pid_file = "/srv/api/run/green.pid", port = 5002 } },
  }
  for k, v in pairs(world or {}) do w[k] = v end
  return c.sandbox(w)
end

case("rollback: the standby is healthy, traffic switches back to it, the database is untouched", function()
  local r = after_deploy():run(c.playbook("rollback"))
  t.status(r, "ok")
  t.step_ok(r, "check blue")
  t.step_ok(r, "switch green -> blue")
  t.eq(t.file(r, c.CONF), c.BLUE_LIVE, "the include routes to blue")
  t.order(r, { "write " .. c.CONF, "run nginx -t", "kill -1" })
  t.unchanged(r, "stop app-")
  t.unchanged(r, "start app-")
  t.eq(r.schema_diff.equal, true, "the schema")
  t.not_called(r, "backup", "restore")
  -- Fresh state: no release is remembered for blue, so its migrations dir
  -- ({version}) is unknown. The rollback happened and must say so, not fail.
  local warned = false
  for _, e in ipairs(r.events) do
    if e.kind == "log" and e.name == "warn" and tostring((e.data or {}).message):find("schema version was not recorded", 1, true) then
      warned = true
    end
  end
  t.ok(warned, "a warning that the schema version was not recorded")
end)

case("rollback: the standby is not running, refused with nothing changed", function()
  local r = c.sandbox { files = { [c.CONF] = c.GREEN_LIVE },
    services = { { name = "app-green", pid_file = "/srv/api/run/green.pid", port = 5002 } } }
    :run(c.playbook("rollback"))
  t.status(r, "failed")
  -- Refused before any step, naming where traffic stays and what to do.
  t.contains(r.error, "blue (the standby) is not running, so there is nothing to switch back to; traffic stays on green")
  t.contains(r.error, "hoist deploy -e version=")
  t.ok(not r.error:find("unknown", 1, true), "no unknown release in: " .. r.error)
  t.eq(#r.steps, 0, "steps run")
  t.eq(#r.changes, 0, "world changes")
  t.eq(t.file(r, c.CONF), c.GREEN_LIVE, "the include")
end)

case("rollback: the standby runs but answers 500, refused with nothing changed", function()
  local r = after_deploy { http = { { url = "http://127.0.0.1:5001/api/health", status = 500 } } }
    :run(c.playbook("rollback"))
  t.status(r, "failed")
  t.step_failed(r, "check blue", "did not become healthy")
  t.eq(#r.changes, 0, "world changes")
end)

case("contract: refused before a baked deploy, nothing stopped, nothing migrated", function()
  local r = after_deploy():run(c.playbook("contract"))
  t.status(r, "failed")
  t.contains(r.error, "contract migrations run only after a deploy that passed its bake")
  t.eq(#r.steps, 0, "steps run")
  t.eq(#r.changes, 0, "world changes")
  t.eq(r.schema_diff.equal, true, "the schema")
end)

case("status: reports the live colour and each colour's state, changing nothing", function()
  local r = after_deploy():run(c.playbook("status"))
  t.status(r, "ok")
  t.eq(#r.changes, 0, "world changes")
  t.eq(r.schema_diff.equal, true, "the schema")
  local report
  for _, e in ipairs(r.events) do
    if e.kind == "print" and e.data and tostring(e.data.text):find("active colour", 1, true) then report = e.data.text end
  end
  t.ok(report, "the status report is printed (stdout), not logged")
  t.contains(report, "active colour: green")
  t.ok(report:find("blue%s+release %-%s+running"), "blue runs as the standby:\n" .. report)
  t.ok(report:find("green%s+LIVE%s+release %-%s+running"), "green is live:\n" .. report)
  t.contains(report, "last backup: none")
end)

case("status before any deploy: the active colour from nginx, and why the schema was not read", function()
  local r = c.sandbox():run(c.playbook("status"))
  t.status(r, "ok")
  t.eq(#r.changes, 0, "world changes")
  local report = ""
  for _, e in ipairs(r:calls("print")) do report = report .. tostring(e.data and e.data.text) .. "\n" end
  t.contains(report, "active colour: blue")
  -- The migrations directory is releases/{version}/migrations and no release is recorded yet.
  t.contains(report, "schema: not read: no release is recorded as live, and the migrations directory (" ..
    c.dir .. "/fixtures/releases/{version}/migrations) is named by it")
end)

case("status with no nginx include yet: says what the include must hold, once, without internal paths", function()
  local r = c.sandbox { files = {}, frontends = {} }:run(c.playbook("status"))
  t.status(r, "ok")
  local report = ""
  for _, e in ipairs(r:calls("print")) do report = report .. tostring(e.data and e.data.text) .. "\n" end
  t.contains(report, "active colour: unknown: " .. c.CONF .. " does not exist: it is the nginx include hoist switches, "
    .. "and it must already name the upstream")
  t.ok(not report:find("cannot read .*cannot read"), "the reason is given once:\n" .. report)
end)

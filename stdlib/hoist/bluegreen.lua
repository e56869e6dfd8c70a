--- hoist.bluegreen: the blue/green procedures the canned deploy, rollback,
-- status and contract playbooks run, for custom playbooks to reuse.
--
--     local bluegreen = require "hoist.bluegreen"
--     run = function(run, p) return bluegreen.deploy(run, { version = p.version }) end
--
-- It reads the environment's `app`, `nginx`, `health` and `bake` keys
-- (docs/config.md, "Blue/green keys") next to `database`, `migrations` and
-- `backups` (hoist.project). Every step that changes something registers
-- its undo, so a failure anywhere leaves traffic on the colour that served
-- before and the database as good as before. What each colour runs is
-- remembered in the state store (run:remember "colours").
local hoist = require "hoist"
local core = require "hoist.core"
local project = require "hoist.project"
local nginx = require "hoist.nginx"
local health = require "hoist.health"
local proc = require "hoist.proc"
local fs = require "hoist.fs"
local log = require "hoist.log"
local time = require "hoist.time"
local backup = require "hoist.backup"
local migrate = require "hoist.migrate"
local fleet = require "hoist.fleet"

local type, pairs, ipairs, tostring, tonumber, pcall, error = type, pairs, ipairs, tostring, tonumber, pcall, error
local setmetatable = setmetatable
local fmt, concat, sort = string.format, table.concat, table.sort

local M = {}

local function fail(code, msg)
  error(hoist.error("bluegreen", code, msg))
end

local function message(e)
  if type(e) == "table" then return tostring(e.message or e) end
  return tostring(e)
end

local function code_of(e)
  return type(e) == "table" and e.code or nil
end

---------------------------------------------------------------------------
-- Reading the configuration.

--- "{name}" placeholders: version, colour, port, database_path, project_root, image.
local function expand(s, vars)
  return (s:gsub("{([%w_]+)}", function(k)
    local v = vars[k]
    if v == nil then return "{" .. k .. "}" end
    return tostring(v)
  end))
end

--- The SQLite file behind `database`, or nil for PostgreSQL.
local function sqlite_path(run)
  local url = project.database_url(run)
  local p = url:match("^sqlite://(/[^?]*)")
  return p
end

--- The blue/green setting of this run's environment, validated: an error
-- names the key and what to write instead, before anything changes.
-- @return table cfg with colours (sorted names), app, site (hoist.nginx site), health, bake
function M.config(run, opts)
  local env = run.env
  local where = "environment '" .. tostring(env.name) .. "'"
  local app = env.app
  if type(app) ~= "table" then
    fail("config", where .. " has no 'app' table (add app = { argv = {...}, colours = { blue = { port = 5001 }, "
      .. "green = { port = 5002 } } } to it in hoist.lua; docs/config.md, \"Blue/green keys\")")
  end
  hoist.check_options("bluegreen", app, "environment key app", { "kind", "argv", "env", "cwd", "colours",
    "run_dir", "start_timeout", "stop_grace", "name",
    "image", "socket", "network", "binds", "healthcheck" })
  local kind = app.kind or "process"
  if kind ~= "process" and kind ~= "docker" then
    fail("config", fmt("%s: app.kind must be \"process\" or \"docker\", got %q", where, tostring(kind)))
  end
  local image = opts and opts.image
  if image and kind ~= "docker" then
    fail("config", fmt("%s: -e image=%s needs app.kind = \"docker\" (this environment runs processes: deploy with "
      .. "-e version=...)", where, image))
  end
  if kind == "docker" and not image and (type(app.image) ~= "string" or app.image == "") then
    fail("config", where .. ": app.kind = \"docker\" needs app.image, e.g. \"registry.local/api:{version}\" "
      .. "(or deploy with -e image=...)")
  end
  if kind == "process" and (type(app.argv) ~= "table" or #app.argv == 0) then
    fail("config", where .. ": app.argv must be a list like { \"/srv/api/bin/api\", \"--port\", \"{port}\" }")
  end
  if type(app.colours) ~= "table" then
    fail("config", where .. ": app.colours must be { blue = { port = 5001 }, green = { port = 5002 } }")
  end
  local colours, servers = {}, {}
  for name, c in pairs(app.colours) do
    if type(c) ~= "table" or math.type(c.port) ~= "integer" then
      fail("config", fmt("%s: app.colours.%s needs an integer port, e.g. { port = 5001 }", where, tostring(name)))
    end
    colours[#colours + 1] = name
    servers[name] = (c.host or "127.0.0.1") .. ":" .. c.port
  end
  sort(colours)
  if #colours ~= 2 then
    fail("config", fmt("%s: app.colours must name exactly two colours (got %d)", where, #colours))
  end
  -- A fleet: hosts with role "app" run the colours; nginx on the "lb"
  -- host(s) lists every app host's address per colour.
  local fleet_cfg
  local app_hosts = type(run.hosts) == "function" and run:hosts("app") or {}
  if #app_hosts > 0 then
    local lbs = run:hosts("lb")
    if #lbs == 0 then
      fail("config", where .. " has app hosts but no host with roles = { \"lb\" }: the nginx that switches colours "
        .. "runs there (docs/fleet.md)")
    end
    fleet_cfg = { app = {}, lb = {}, address = {}, rules = fleet.rules(env.fleet, "environment key fleet") }
    for _, h in ipairs(app_hosts) do
      fleet_cfg.app[#fleet_cfg.app + 1] = h.name
      fleet_cfg.address[h.name] = h.address
    end
    for _, h in ipairs(lbs) do fleet_cfg.lb[#fleet_cfg.lb + 1] = h.name end
    for _, name in ipairs(colours) do
      local list = {}
      for _, h in ipairs(app_hosts) do list[#list + 1] = h.address .. ":" .. app.colours[name].port end
      servers[name] = list
    end
  end
  local n = env.nginx
  if type(n) ~= "table" or type(n.conf) ~= "string" then
    fail("config", where .. " has no nginx = { conf = \"/etc/nginx/conf.d/api-upstream.conf\", upstream = \"api\", "
      .. "... } (docs/config.md, \"Blue/green keys\")")
  end
  local spec = {}
  for k, v in pairs(n) do spec[k] = v end
  spec.upstream = spec.upstream or "api"
  spec.servers = servers
  for _, k in ipairs({ "conf", "main_conf", "prefix", "pid_file", "error_log", "maintenance_conf" }) do
    if spec[k] then spec[k] = project.path(run, spec[k]) end
  end
  -- nginx -t opens its compiled-in error log before reading the config:
  -- point it at the site's own, so a private prefix needs no root.
  if spec.args == nil and spec.error_log then spec.args = { "-e", spec.error_log } end
  local sites = {}
  for i, lb in ipairs(fleet_cfg and fleet_cfg.lb or { false }) do
    local one = {}
    for k, v in pairs(spec) do one[k] = v end
    one.host = lb or nil
    sites[i] = nginx.site(one)
  end
  local cfg = {
    run = run, app = app, kind = kind, colours = colours, servers = servers,
    site = sites[1], sites = sites, fleet = fleet_cfg, site_spec = spec,
    health = env.health or {},
    bake = env.bake or {},
    run_dir = project.path(run, app.run_dir or ".hoist/run"),
    name = app.name or "app",
  }
  hoist.check_options("bluegreen", cfg.health, "environment key health", { "path", "url", "expect_status",
    "json", "body_contains", "sql", "timeout",
    "interval", "rollback_timeout" })
  hoist.check_options("bluegreen", cfg.bake, "environment key bake", { "seconds", "url", "interval",
    "max_failures", "expect_status", "json" })
  return cfg
end

--- The other colour.
function M.other(cfg, colour)
  return cfg.colours[1] == colour and cfg.colours[2] or cfg.colours[1]
end

--- What each colour runs, as remembered: { blue = { release, run_id, started_at }, ... }.
function M.colours(run)
  return run:recall("colours") or {}
end

local function remember_colour(run, colour, entry)
  local all = M.colours(run)
  all[colour] = entry
  run:remember("colours", all)
end

--- The migrations directory of a release (`migrations` may hold {version}).
function M.migrations_dir(run, release)
  local dir = project.migrations(run)
  return expand(dir, { version = release or "" })
end

---------------------------------------------------------------------------
-- Docker colours: a container per colour, with the same start/stop/status
-- as a proc.service, so the procedures below do not care which it is.

local Container = {}
Container.__index = Container

--- The environment's Docker client (one per config, closed with the VM).
function M.docker(cfg)
  if not cfg._docker then
    local docker = require "hoist.docker"
    cfg._docker = docker.connect { socket = cfg.app.socket or cfg.run.env.docker_socket }
  end
  return cfg._docker
end

function Container:status()
  local d = M.docker(self.cfg)
  local ok, info = pcall(d.inspect, d, self.name)
  if not ok then
    if code_of(info) == "not_found" then return { name = self.name, alive = false, up = false, state = "down" } end
    error(info, 0)
  end
  local st = info.State or {}
  local alive = st.Running == true
  return { name = self.name, pid = alive and st.Pid or nil, alive = alive, up = alive,
    state = alive and "running" or "down", container = info.Id }
end

--- Raises service/conflict when the colour's port answers while its
-- container is down (with host networking, another process holds it), as
-- proc.service's check_port does for a process.
function Container:check_port()
  if self:status().alive then return true end
  if require("hoist.traffic").tcp(self.host, self.port, 0.5).ok then
    error(hoist.error("service", "conflict", fmt("container %s: port %s:%d already accepts connections, but %s is "
      .. "not running: another process holds the port. Find it with `ss -ltnp 'sport = :%d'`, stop it, then run "
      .. "again", self.name, self.host, self.port, self.name, self.port)), 0)
  end
  return true
end

function Container:start(opts)
  local d = M.docker(self.cfg)
  self:check_port()
  if d:exists(self.name) then
    if self:status().alive then
      fail("conflict", fmt("container %s is already running (stop it first)", self.name))
    end
    d:remove(self.name, { force = true })   -- a stopped leftover of an earlier run
  end
  d:create(self.spec)
  d:start(self.name)
  local wait, t0 = opts and opts.wait or 0, time.monotonic()
  local traffic = require "hoist.traffic"
  while wait > 0 do
    local st = self:status()
    if not st.alive then
      local logs = d:logs(self.name, { stdout = true, stderr = true, tail = 5 })
      fail("failed", fmt("container %s exited before listening on port %d; log: %s", self.name, self.port,
        ((logs.stderr or "") .. (logs.stdout or "")):gsub("%s+$", "")))
    end
    if traffic.tcp(self.host, self.port, 0.5).ok then break end
    if time.monotonic() - t0 > wait then
      fail("timeout", fmt("container %s does not listen on %s:%d after %g s", self.name, self.host, self.port, wait))
    end
    time.sleep(0.05)
  end
  return { name = self.name }
end

--- Whether the container runs this release: unknown (nil) from here; its
-- status names the image.
function Container:argv_matches()
  return nil
end

function Container:stop()
  local d = M.docker(self.cfg)
  if not d:exists(self.name) then return { how = "not_running" } end
  local t0 = time.monotonic()
  local was = d:stop(self.name, { timeout = self.cfg.app.stop_grace or 10 })
  d:remove(self.name, { force = true })
  return { how = was and "term" or "not_running", seconds = time.monotonic() - t0 }
end

local function container(cfg, colour, release, vars, argv, env, image)
  local app = cfg.app
  local binds = {}
  for i, b in ipairs(app.binds or {}) do binds[i] = expand(b, vars) end
  local self = setmetatable({ cfg = cfg, name = cfg.name .. "-" .. colour, port = vars.port,
    host = app.colours[colour].host or "127.0.0.1" }, Container)
  self.spec = {
    image = image or expand(app.image, vars), name = self.name, cmd = #argv > 0 and argv or nil, env = env, binds = binds,
    -- host networking: the colour's port is the container's own, on the
    -- host's loopback, exactly where nginx's upstream points.
    network = app.network or "host",
    -- hoist.port: where it answers, which host networking leaves Docker
    -- no record of (a sandbox's simulated engine routes traffic by it).
    labels = { ["hoist.colour"] = colour, ["hoist.release"] = tostring(release), ["hoist.port"] = tostring(vars.port) },
    healthcheck = app.healthcheck,
  }
  return self
end

--- The instance of colour running release: a proc.service (app.kind
-- "process") or a container (app.kind "docker"), with start/stop/status.
function M.service(cfg, colour, release, image)
  local run, app = cfg.run, cfg.app
  local port = app.colours[colour].port
  local vars = { version = release, colour = colour, port = port, database_path = sqlite_path(run) or "",
    project_root = run.project_root, host = cfg.host or "local" }
  local argv = {}
  for i, a in ipairs(app.argv or {}) do argv[i] = expand(tostring(a), vars) end
  local env = {}
  for k, v in pairs(app.env or {}) do env[k] = expand(tostring(v), vars) end
  if cfg.kind == "docker" then return container(cfg, colour, release, vars, argv, env, image) end
  local run_dir = expand(cfg.run_dir, vars)
  fs.mkdir_p(run_dir, { mode = "0700" })
  return proc.service {
    name = cfg.name .. "-" .. colour, argv = argv, env = env,
    cwd = app.cwd and project.path(run, expand(app.cwd, vars)) or nil,
    port = port, host = app.colours[colour].host,
    pid_file = run_dir .. "/" .. colour .. ".pid",
    log_file = run_dir .. "/" .. colour .. ".log",
    stop_grace = app.stop_grace,
  }
end

--- The health checks for colour (its own port, not through nginx).
local function health_checks(cfg, colour, conn)
  local h = cfg.health
  local port = cfg.app.colours[colour].port
  local url = h.url and expand(h.url, { port = port, colour = colour })
    or fmt("http://%s%s", cfg.servers[colour], h.path or "/")
  local checks = {
    { http = { url = url, expect_status = h.expect_status, json = h.json, body_contains = h.body_contains,
      timeout = 2 } },
  }
  if h.sql and conn then checks[#checks + 1] = { sql = { db = conn, query = h.sql } } end
  if cfg.kind == "docker" then
    checks[#checks + 1] = { container = { docker = M.docker(cfg), name = cfg.name .. "-" .. colour } }
  end
  return checks, url
end

--- Waits until colour passes its checks; raises `unhealthy` naming the failure.
function M.gate(cfg, colour, release, conn, timeout)
  local checks, url = health_checks(cfg, colour, conn)
  local r = health.wait(checks, { timeout = timeout or cfg.health.timeout or 30, interval = cfg.health.interval or 0.2 })
  if not r.ok then
    fail("unhealthy", fmt("%s (release %s) did not become healthy: %s", colour, tostring(release), r.error))
  end
  return { url = url, rounds = r.rounds, seconds = r.seconds }
end

--- Waits until nginx's old workers finished the requests they carry (so
-- the colour they proxied to may stop). A stopped nginx carries nothing;
-- a drain that times out raises: stopping then would fail requests.
function M.drain(site)
  if not site.pid_file then return nil end
  local ok, e = pcall(site.drained, site, { timeout = 60 })
  if ok then return e end
  if code_of(e) == "not_running" then return nil end
  error(e, 0)
end

--- Stops colour's instance once nginx no longer sends it anything.
function M.stop_after_drained(cfg, colour, release, image)
  -- The release it runs, so the journaled stop names the real argv.
  local svc = M.service(cfg, colour, release or "", image)
  if not svc:status().alive then return { how = "not_running" } end
  M.drain(cfg.site)
  return svc:stop()
end

---------------------------------------------------------------------------
-- Database steps.

local function open_db(run, create)
  if create then
    local path = sqlite_path(run)
    local dir = path and path:match("^(.*)/[^/]+$")
    if dir and dir ~= "" and not fs.exists(dir) then fs.mkdir_p(dir, { mode = "0700" }) end
  end
  return project.database(run, create and { create = true } or nil)
end

--- Verified safety backup of the database (nil when it does not exist yet).
function M.backup(run, label)
  local path = sqlite_path(run)
  if path and not fs.exists(path) then
    log.info("no database at " .. path .. " yet: nothing to back up")
    return nil
  end
  local b = project.backups(run)
  local conn <close> = open_db(run)
  local made = backup.create(conn, { dir = b.dir, label = label, keep = b.keep, keep_safety = b.keep_safety,
    compress = b.compress, safety = true, reason = run.playbook .. " run " .. run.id })
  local v = backup.verify(made.path)
  if not v.ok then
    core.event("backup.failed", { label = label, path = made.path,
      error = "verification failed: " .. tostring(v.message), code = "backup_unverified" })
    fail("backup_unverified", fmt("the %s backup %s failed verification: %s; nothing was changed", label, made.path,
      tostring(v.message)))
  end
  local rec = { path = made.path, sha256 = made.sha256, size = made.size, verified = true, at = time.iso(time.now()),
    run_id = run.id }
  run:remember("last_backup", rec)
  return rec
end

--- Pending expand migrations of dir, up to (not including) the first
-- pending contract one, which must wait for `hoist contract`.
local function expand_plan(conn, dir)
  local st = migrate.status(conn, dir)
  local to, held = nil, nil
  for _, m in ipairs(st.migrations or {}) do
    if m.state == "pending" then
      if m.phase == "contract" then
        held = m.file
        break
      end
      to = m.version
    end
  end
  return { current = st.current, to = to, held = held, pending = st.pending or {} }
end

---------------------------------------------------------------------------
-- deploy

--- The live colour: what nginx serves when the site's verify can tell (the
-- include alone can name a colour nginx never loaded: a switch killed between
-- its write and its reload). When the two disagree, the include is put back
-- to what nginx serves, as a step, before anything is stopped or started.
local function live_colour(run, site)
  local named = site:active()
  local serving = site:serving()
  if not serving or serving == named then return named end
  log.warn(fmt("nginx serves %s but %s names %s (a switch interrupted before its reload?): putting the include "
    .. "back to %s before anything else", serving, site.conf, named, serving))
  run:step(fmt("repair include: %s -> %s (what nginx serves)", named, serving), function()
    return site:switch(serving)
  end)
  return serving
end

-- The deploy's "expand migrations" step: applies the release's pending
-- expand migrations (rehearsed on a copy first); its undo asks before
-- running their downs, and falls back to the pre-deploy backup `b`.
local function expand_step(run, release, b)
  local dir = M.migrations_dir(run, release)
  return run:step("expand migrations", function()
    local conn <close> = open_db(run, true)
    local plan = expand_plan(conn, dir)
    if plan.held then log.info(fmt("%s is a contract migration: it waits for hoist contract", plan.held)) end
    if not plan.to then return { from = plan.current, to = plan.current, applied = {}, held = plan.held } end
    -- Rehearse on a copy first: a refusal then changes nothing at all,
    -- where up would already have applied the migrations before it.
    local lint = migrate.lint(conn, dir)
    if not lint.ok then
      fail("refused", "migration lint (a rehearsal on a copy of the database) refused the pending migrations; "
        .. "nothing was applied:\n" .. tostring(lint.text))
    end
    local r = migrate.up(conn, dir, { policy = "expand", to = plan.to })
    r.held = plan.held
    return r
  end, { undo = function(r)
    if not r or #(r.applied or {}) == 0 then return end
    -- Expand migrations are what the old colour runs on: keeping them is
    -- safe. Running their downs could drop data the new colour wrote, so
    -- it happens only when the operator says so.
    local ok, yes = pcall(run.confirm, run, fmt("undo the %d expand migration(s) just applied (back to %s)?",
      #r.applied, r.from and ("version " .. tostring(r.from)) or "an empty schema"))
    if not (ok and yes) then
      log.warn(fmt("kept the %d expand migration(s) (the database is at version %s; the old colour runs on it); "
        .. "to remove them (traffic untouched): hoist migrate -e action=down -e steps=%d", #r.applied,
        tostring(r.to), #r.applied))
      return
    end
    local conn <close> = open_db(run)
    local down_ok, e = pcall(migrate.down, conn, { to = r.from or 0 })
    if down_ok then
      local names = {}
      for _, m in ipairs(e.rolled_back or {}) do names[#names + 1] = m.file ~= "" and m.file or tostring(m.version) end
      log.warn(fmt("undid %d expand migration(s) (%s): the database is back at %s", #names, concat(names, ", "),
        (e.to and e.to ~= 0) and ("version " .. tostring(e.to)) or "an empty schema"))
      return
    end
    -- A migration without a down section (or a down that fails): the
    -- pre-deploy backup is the way back, at the price of the writes
    -- since it was taken, so it needs its own yes.
    if not b or code_of(e) == "interrupted" then error(e, 0) end
    log.warn("migrate down failed: " .. message(e))
    local rok, ryes = pcall(run.confirm, run, fmt("restore the pre-deploy backup %s instead (writes since %s are "
      .. "lost; a safety backup is taken first)?", b.path, b.at))
    if not (rok and ryes) then error(e, 0) end
    local res = backup.restore(b.path, conn, { confirm = true })
    log.warn(fmt("restored the pre-deploy backup %s (safety backup of what it replaced: %s)", b.path,
      tostring(res.safety_backup)))
  end })
end

--- Refuses a standby that runs another release than the one remembered for
-- it: a deploy interrupted after it restarted the idle colour leaves the
-- new release there, and switching to it would be a deploy, not a rollback.
function M.check_standby(svc, colour, release)
  if release == nil then return end  -- nothing remembered to compare with
  local matches, cmdline = svc:argv_matches()
  if matches == false then
    fail("no_standby", fmt("%s runs `%s`, not release %s (the standby the last deploy left): a deploy interrupted "
      .. "after it restarted %s? Deploy the release you want instead: hoist deploy -e version=%s", colour,
      tostring(cmdline), tostring(release or "not recorded"), colour, tostring(release or "<release>")))
  end
end

---------------------------------------------------------------------------
-- fleet: the colours on every app host, nginx on the lb host(s)

--- cfg as one app host sees it: its colours' own addresses (health checks
-- run there, through its agent) and {host} in run_dir, argv and env.
function M.on_host(cfg, host)
  local hc = setmetatable({ host = host, servers = {} }, { __index = cfg })
  for c, conf in pairs(cfg.app.colours) do hc.servers[c] = (conf.host or "127.0.0.1") .. ":" .. conf.port end
  return hc
end

-- cfg with lb sites whose upstream for colour lists only `hosts` (the app
-- hosts that run it: a failed host that max_fail tolerated gets no traffic).
local function serving_only(cfg, colour, hosts)
  local c = setmetatable({ sites = {} }, { __index = cfg })
  for i, lb in ipairs(cfg.fleet.lb) do
    local spec = {}
    for k, v in pairs(cfg.site_spec) do spec[k] = v end
    spec.servers = {}
    for name, list in pairs(cfg.servers) do spec.servers[name] = list end
    local port = cfg.app.colours[colour].port
    spec.servers[colour] = {}
    for _, h in ipairs(hosts) do spec.servers[colour][#spec.servers[colour] + 1] = cfg.fleet.address[h] .. ":" .. port end
    spec.host = lb
    c.sites[i] = nginx.site(spec)
  end
  c.site = c.sites[1]
  return c
end

-- Switches every lb host's site to colour, in order; one that fails puts
-- the ones before it back, so the lbs never disagree for long.
local function switch_all(cfg, colour)
  local done, out = {}, {}
  for _, site in ipairs(cfg.sites) do
    local ok, r = pcall(site.switch, site, colour)
    if not ok then
      for i = #done, 1, -1 do
        local back_ok, e = pcall(done[i].site.switch, done[i].site, done[i].from)
        if not back_ok then log.warn(fmt("could not switch %s back to %s: %s", tostring(done[i].site), done[i].from, message(e))) end
      end
      error(r, 0)
    end
    done[#done + 1] = { site = site, from = r.previous or M.other(cfg, colour) }
    out[#out + 1] = r
  end
  return #out == 1 and out[1] or out
end

-- "web1, web2 and web3"
local function names_text(list)
  if #list <= 1 then return list[1] or "no host" end
  return concat(list, ", ", 1, #list - 1) .. " and " .. list[#list]
end

--- What each app host runs, as remembered: { web1 = { blue = { release, run_id }, green = ... }, ... }.
function M.fleet_hosts(run)
  return run:recall("fleet_hosts") or {}
end

-- The blue/green deploy across the fleet (M.deploy with app hosts): the
-- same steps as on one host, with the idle colour started and gated on the
-- app hosts in batches (fleet.run_batches: serial, max_fail, on_fail) and
-- one switch on the lb host(s) whose upstream lists every app host.
-- at: where M.deploy found things (live, idle, live_release, idle_before).
local function fleet_deploy(run, opts, cfg, release, image, at)
  local f, site = cfg.fleet, cfg.site
  local live, idle, live_release, idle_before = at.live, at.idle, at.live_release, at.idle_before
  local r = f.rules
  log.info(fmt("deploying release %s to %s on %s (serial = %s, max_fail = %s, on_fail = %s); %s (release %s) keeps "
    .. "serving through %s until the switch", release, idle, names_text(f.app),
    type(r.serial) == "table" and "{ " .. concat(r.serial, ", ") .. " }" or tostring(r.serial), tostring(r.max_fail),
    r.on_fail, live, tostring(live_release), names_text(f.lb)))

  local b = run:step("backup", function() return M.backup(run, "predeploy") end)
  local migrated
  if opts.migrate ~= false then migrated = expand_step(run, release, b) end

  local hosts_fact = M.fleet_hosts(run)
  local function record(host, colour, entry)
    hosts_fact[host] = hosts_fact[host] or {}
    hosts_fact[host][colour] = entry
  end
  local entry = { release = release, image = image, run_id = run.id }
  local status
  run:step(fmt("start %s on %s", idle, names_text(f.app)), function()
    -- Old nginx workers may still carry requests to the idle colour's
    -- standby (a switch just before): they finish before it stops.
    M.drain(site)
    local conn <close> = open_db(run)
    local outcome
    status, outcome = fleet.run_batches(run, f.app, r, function(h)
      local hc = M.on_host(cfg, h)
      local svc = M.service(hc, idle, release, image)
      -- A deploy of this release that was interrupted may have started it
      -- here already: when it is healthy it is kept, not restarted.
      if svc:argv_matches() == true and pcall(M.gate, hc, idle, release, conn, 5) then
        log.info(fmt("%s: %s already runs release %s and is healthy: kept", h, idle, release))
        return "kept"
      end
      local old = M.service(hc, idle, idle_before and idle_before.release or "", idle_before and idle_before.image)
      if old:status().alive then old:stop() end
      M.service(hc, idle, ""):check_port()
      local ok, e = pcall(svc.start, svc, { wait = cfg.app.start_timeout or 30 })
      if ok then ok, e = pcall(M.gate, hc, idle, release, conn) end
      if not ok then
        -- A failed host cleans up after itself: nothing of the new release runs there.
        pcall(svc.stop, svc)
        error(e, 0)
      end
      return true
    end, function(h)
      M.service(M.on_host(cfg, h), idle, release, image):stop()
    end)
    for host, st in pairs(status) do record(host, idle, st.status == "done" and entry or nil) end
    run:remember("fleet_hosts", hosts_fact)
    if not outcome.ok then error(hoist.error("fleet", "batch_failed", outcome.message, { where = "" }), 0) end
    return { hosts = f.app, message = outcome.message }
  end, { undo = function()
    M.drain(site)
    local failed = {}
    for _, res in ipairs(run:each(f.app, function(h)
      local svc = M.service(M.on_host(cfg, h.name), idle, release, image)
      if svc:status().alive then svc:stop() end
    end)) do
      if res.ok then record(res.host, idle, nil) else failed[#failed + 1] = res.host .. ": " .. message(res.error) end
    end
    run:remember("fleet_hosts", hosts_fact)
    if #failed > 0 then fail("undo_failed", fmt("could not stop %s on %s", idle, concat(failed, "; "))) end
  end })

  -- Hosts that failed within max_fail run no new release: the switch leaves them out.
  local serving, left_out = {}, {}
  for _, h in ipairs(f.app) do
    if status[h] and status[h].status == "done" then serving[#serving + 1] = h else left_out[#left_out + 1] = h end
  end
  local sw = cfg
  if #left_out > 0 then
    log.warn(fmt("%s failed within max_fail = %s: %s gets no traffic until a deploy succeeds there", names_text(left_out),
      tostring(r.max_fail), #left_out == 1 and "it" or "they"))
    sw = serving_only(cfg, idle, serving)
  end
  run:step(fmt("switch %s -> %s on %s", live, idle, names_text(f.lb)), function() return switch_all(sw, idle) end,
    { undo = function() switch_all(sw, live) end })

  -- The bake probes through nginx from the (first) lb host, as the switch's verify does.
  local baked = run:step("bake", function() return run:on(f.lb[1], M.bake, cfg, idle, release, opts.bake) end)

  local conn <close> = open_db(run)
  local schema = migrate.status(conn, M.migrations_dir(run, release)).current
  project.record_database(run, conn)
  run:remember("schema_version", schema)
  remember_colour(run, idle, { release = release, image = image, run_id = run.id, started_at = time.iso(time.now()) })
  run:remember("last_deploy", { release = release, colour = idle, previous = live, previous_release = live_release,
    run_id = run.id, baked = true, at = time.iso(time.now()), hosts = f.app })
  log.info(fmt("release %s serves on %s on %s; %s stays running where it ran, as the standby (hoist rollback "
    .. "switches back)", release, idle, names_text(serving), live))
  return { colour = idle, previous = live, release = release, backup = b and b.path or nil,
    migrations = migrated and #(migrated.applied or {}) or 0, schema_version = schema, bake = baked, hosts = status }
end

-- The fleet's rollback: the standby colour must run and pass its health
-- checks on every app host; then one switch on the lb host(s).
local function fleet_rollback(run, opts, cfg)
  local f = cfg.fleet
  if (opts.migrate_down or 0) > 0 or opts.restore then
    fail("invalid", "a fleet rollback switches traffic only; move the database separately, after it: "
      .. "hoist migrate -e action=down -e steps=N, or hoist restore")
  end
  local site = cfg.site
  local live = live_colour(run, site)
  local target = M.other(cfg, live)
  local colours = M.colours(run)
  local rel = function(c) return colours[c] and colours[c].release or nil end
  log.info(fmt("rollback: switch traffic on %s %s%s -> %s (release %s) on %s", names_text(f.lb), live,
    rel(live) and fmt(" (release %s)", rel(live)) or "", target, rel(target) or "not recorded", names_text(f.app)))
  run:step(fmt("check %s on %s", target, names_text(f.app)), function()
    local conn <close> = open_db(run)
    local bad = {}
    for _, res in ipairs(run:each(f.app, function(h)
      local hc = M.on_host(cfg, h.name)
      local standby = M.service(hc, target, rel(target) or "")
      if not standby:status().alive then fail("no_standby", fmt("%s (the standby) is not running", target)) end
      M.check_standby(standby, target, rel(target))
      return M.gate(hc, target, rel(target) or "not recorded", conn, cfg.health.rollback_timeout or 5)
    end)) do
      if not res.ok then bad[#bad + 1] = res.host .. ": " .. message(res.error) end
    end
    if #bad > 0 then
      fail("no_standby", fmt("cannot roll back: %s; traffic stays on %s. Deploy the previous release instead: "
        .. "hoist deploy -e version=%s", concat(bad, "; "), live, tostring(rel(target) or "<release>")))
    end
  end)
  run:step(fmt("switch %s -> %s on %s", live, target, names_text(f.lb)), function() return switch_all(cfg, target) end)
  run:remember("last_rollback", { from = live, to = target, release = rel(target), run_id = run.id,
    at = time.iso(time.now()), hosts = f.app })
  local last = run:recall("last_deploy")
  if last then
    last.baked = false
    run:remember("last_deploy", last)
  end
  core.event("rollback.done", { from = live, to = target, release = rel(target), previous_release = rel(live) })
  log.info(fmt("rolled back: traffic is on %s (release %s) on %s; %s is still running there, out of traffic", target,
    tostring(rel(target) or "not recorded"), names_text(f.app), live))
  return { from = live, to = target, release = rel(target), migrated_down = 0, hosts = f.app }
end

--- The whole blue/green deploy of `opts.version` as steps of `run`.
-- @param opts table: version (the release; fills {version}), migrate (true),
--   bake (seconds; overrides the environment's bake.seconds)
-- @return table { colour, previous, release, backup, migrations, bake }
-- @raise the failing step's error, after the undos ran
function M.deploy(run, opts)
  local image = opts.image
  -- -e image=registry/api:1.4.2 alone: the tag names the release.
  local release = opts.version or (image and (image:match(":([^:/]+)$") or image))
  if not release then
    fail("invalid", "deploy needs -e version=RELEASE (or -e image=IMAGE for Docker colours)")
  end
  local cfg = M.config(run, { image = image })
  -- A typo'd database path must not switch live traffic to a new, empty database.
  project.check_database(run, { new_database = opts.new_database, what = "deploy" })
  local site = cfg.site
  local live = live_colour(run, site)
  local idle = M.other(cfg, live)
  local colours = M.colours(run)
  local live_release = colours[live] and colours[live].release or "unknown"
  local idle_before = colours[idle]
  if cfg.fleet then
    return fleet_deploy(run, opts, cfg, release, image,
      { live = live, idle = idle, live_release = live_release, idle_before = idle_before })
  end
  if M.service(cfg, live, ""):status().alive then
    log.info(fmt("deploying release %s to %s (idle); %s (release %s) keeps serving until the switch", release, idle,
      live, tostring(live_release)))
  else
    log.info(fmt("deploying release %s to %s; nginx routes to %s, where nothing runs yet", release, idle, live))
  end

  -- Before anything changes: a port the idle colour would start on that
  -- answers while nothing of ours runs there is another process's.
  M.service(cfg, idle, ""):check_port()

  local b = run:step("backup", function() return M.backup(run, "predeploy") end)

  local migrated
  if opts.migrate ~= false then migrated = expand_step(run, release, b) end

  run:step("stop standby " .. idle, function()
    local old = M.service(cfg, idle, idle_before and idle_before.release or "")
    if not old:status().alive then return { stopped = false } end
    -- The idle colour still runs the previous standby: stop it only once
    -- nginx sends it nothing (it may have served before the last switch).
    M.drain(site)
    local r = old:stop()
    remember_colour(run, idle, nil)
    return { stopped = true, release = idle_before and idle_before.release or nil, how = r and r.how }
  end, { undo = function(r)
    if not (r and r.stopped and r.release) then return end
    -- Put the standby back so an instant rollback stays possible; an undo
    -- that leaves it unhealthy fails, so the operator hears of it.
    M.service(cfg, idle, r.release, idle_before and idle_before.image):start { wait = cfg.app.start_timeout or 30 }
    remember_colour(run, idle, idle_before)
    local conn <close> = open_db(run)
    M.gate(cfg, idle, r.release, conn)
  end })

  run:step("start " .. idle, function()
    local svc = M.service(cfg, idle, release, image)
    local ok, e = pcall(svc.start, svc, { wait = cfg.app.start_timeout or 30 })
    if not ok then
      -- A start that timed out leaves the process running: this step's undo
      -- is not registered (it failed), so clean up here.
      pcall(svc.stop, svc)
      error(e, 0)
    end
    remember_colour(run, idle, { release = release, image = image, run_id = run.id,
      started_at = time.iso(time.now()) })
    return { release = release }
  end, { undo = function()
    -- When the switch was undone just before, old nginx workers may still
    -- carry requests to this colour: let them finish first.
    M.drain(site)
    M.service(cfg, idle, release):stop()
    remember_colour(run, idle, nil)
  end })

  run:step("health gate " .. idle, function()
    local conn <close> = open_db(run)
    return M.gate(cfg, idle, release, conn)
  end)

  run:step("switch " .. live .. " -> " .. idle, function() return site:switch(idle) end,
    { undo = function() site:switch(live) end })

  local baked = run:step("bake", function() return M.bake(cfg, idle, release, opts.bake) end)

  local conn <close> = open_db(run)
  local schema = migrate.status(conn, M.migrations_dir(run, release)).current
  project.record_database(run, conn)
  run:remember("schema_version", schema)
  run:remember("last_deploy", { release = release, colour = idle, previous = live, previous_release = live_release,
    run_id = run.id, baked = true, at = time.iso(time.now()) })
  if M.service(cfg, live, ""):status().alive then
    log.info(fmt("release %s serves on %s; %s (release %s) stays running as the standby (hoist rollback switches back)",
      release, idle, live, tostring(live_release)))
  else
    log.info(fmt("release %s serves on %s; nothing runs on %s, so there is no standby yet (the next deploy makes one)",
      release, idle, live))
  end
  return { colour = idle, previous = live, release = release, backup = b and b.path or nil,
    migrations = migrated and #(migrated.applied or {}) or 0, schema_version = schema, bake = baked }
end

--- Probes through nginx for `seconds` (the switch already proved traffic
-- reaches colour): more than `bake.max_failures` answers that fail
-- `bake.expect_status`/`bake.json` raise `bake_failed`, and the deploy's
-- undo switches back.
function M.bake(cfg, colour, release, seconds)
  local b = cfg.bake
  seconds = seconds or b.seconds or 10
  local url = b.url or (cfg.site.verify and cfg.site.verify.url)
  if seconds <= 0 or not url then
    if not url then log.warn("no bake.url (nor nginx.verify.url): skipping the bake") end
    return { seconds = 0, probes = 0, failures = 0 }
  end
  local max_failures, interval = b.max_failures or 0, b.interval or 0.5
  local t0, probes, failures, last = time.monotonic(), 0, 0, nil
  while time.monotonic() - t0 < seconds do
    local r = health.http { url = url, expect_status = b.expect_status, json = b.json, timeout = 2 }
    probes = probes + 1
    if not r.ok then
      failures = failures + 1
      last = r.error
    end
    if failures > max_failures then
      fail("bake_failed", fmt("release %s on %s failed %d of %d probes through nginx during the bake (last: %s at %s)",
        tostring(release), colour, failures, probes, tostring(last), url))
    end
    time.sleep(interval)
  end
  return { seconds = time.monotonic() - t0, probes = probes, failures = failures }
end

---------------------------------------------------------------------------
-- rollback

--- Switches traffic back to the standby colour after checking its health.
-- @param opts table: migrate_down (steps, 0), restore (backup file), yes
-- @return table { from, to, release, migrated_down, restored }
function M.rollback(run, opts)
  opts = opts or {}
  local cfg = M.config(run)
  project.check_database(run, { what = "rollback" })
  if cfg.fleet then return fleet_rollback(run, opts, cfg) end
  local site = cfg.site
  local live = live_colour(run, site)
  local target = M.other(cfg, live)
  local colours = M.colours(run)
  local last = run:recall("last_deploy")
  -- A colour's release is what hoist started it with; a stopped colour has none.
  local rel = function(c) return colours[c] and colours[c].release or nil end
  if not M.service(cfg, target, rel(target) or ""):status().alive then
    local previous = rel(target) or (last and last.colour == live and last.previous_release ~= "unknown"
      and last.previous_release) or nil
    fail("no_standby", fmt("%s (the standby) is not running, so there is nothing to switch back to; traffic stays on "
      .. "%s%s. Deploy the previous release instead: hoist deploy -e version=%s", target, live,
      rel(live) and fmt(" (release %s)", rel(live)) or "", previous and tostring(previous) or "<release>"))
  end
  local plan = fmt("rollback: switch traffic %s%s -> %s (release %s)", live,
    rel(live) and fmt(" (release %s)", rel(live)) or "", target, rel(target) or "not recorded")
  if (opts.migrate_down or 0) > 0 then plan = plan .. fmt(", then migrate down %d step(s)", opts.migrate_down) end
  if opts.restore then plan = plan .. ", then restore " .. opts.restore .. " (after a safety backup)" end
  if (opts.migrate_down or 0) == 0 and not opts.restore then plan = plan .. "; the database is not touched" end
  log.info(plan)

  if (opts.migrate_down or 0) > 0 or opts.restore then
    run:step("confirm", function()
      if not run:confirm(plan .. " — go ahead?") then fail("not_confirmed", "rollback not confirmed: nothing was changed") end
    end)
  end

  run:step("check " .. target, function()
    local standby = M.service(cfg, target, rel(target) or "")
    if not standby:status().alive then
      fail("no_standby", fmt("%s (the standby) stopped before the switch; traffic stays on %s", target, live))
    end
    M.check_standby(standby, target, rel(target))
    local conn <close> = open_db(run)
    return M.gate(cfg, target, rel(target) or "not recorded", conn, cfg.health.rollback_timeout or 5)
  end)

  -- No undo: the database steps below are what the target colour can run
  -- on, while a partly migrated-down schema may break the colour we leave.
  -- If one of them fails, traffic stays where the operator asked for it.
  run:step("switch " .. live .. " -> " .. target, function() return site:switch(target) end)

  local down, restored
  if (opts.migrate_down or 0) > 0 then
    down = run:step("migrate down " .. opts.migrate_down, function()
      local conn <close> = open_db(run)
      return migrate.down(conn, { steps = opts.migrate_down })
    end)
  end
  if opts.restore then
    restored = run:step("restore", function()
      local file = opts.restore
      if not file:find("/", 1, true) then file = project.backups(run).dir .. "/" .. file end
      local conn <close> = open_db(run)
      return backup.restore(file, conn, { confirm = true })
    end)
  end
  -- Traffic has moved: nothing below may fail the run. The target's
  -- migrations directory may be unknown ({version} with no remembered
  -- release, e.g. a fresh state store) or gone; the version is then left
  -- unrecorded rather than reporting a rollback that happened as failed.
  local conn <close> = open_db(run)
  local sok, st = pcall(migrate.status, conn, M.migrations_dir(run, rel(target)))
  local schema = sok and st.current or nil
  if sok then
    run:remember("schema_version", schema)
  else
    log.warn("rolled back, but the schema version was not recorded: " .. message(st))
  end
  run:remember("last_rollback", { from = live, to = target, release = rel(target), run_id = run.id,
    at = time.iso(time.now()) })
  if last then
    last.baked = false
    run:remember("last_deploy", last)
  end
  core.event("rollback.done", { from = live, to = target, release = rel(target), previous_release = rel(live) })
  log.info(fmt("rolled back: traffic is on %s (release %s); %s (release %s) is still running, out of traffic%s%s",
    target, tostring(rel(target) or "not recorded"), live, tostring(rel(live) or "not recorded"),
    down and fmt("; migrated down %s -> %s", tostring(down.from), tostring(down.to)) or "",
    restored and ("; restored " .. opts.restore .. ", safety backup " .. tostring(restored.safety_backup)) or ""))
  return { from = live, to = target, release = rel(target), migrated_down = down and #(down.rolled_back or {}) or 0,
    restored = restored and opts.restore or nil, schema_version = schema }
end

---------------------------------------------------------------------------
-- contract

--- Stops the standby (after nginx drained it), then applies contract
-- migrations. Refused unless the last deploy baked and is still live.
function M.contract(run, opts)
  opts = opts or {}
  local cfg = M.config(run)
  project.check_database(run, { what = "contract" })
  local live = live_colour(run, cfg.site)
  local standby = M.other(cfg, live)
  local last = run:recall("last_deploy")
  if not last or last.colour ~= live or not last.baked then
    fail("not_baked", fmt("contract migrations run only after a deploy that passed its bake and is still live "
      .. "(live: %s; last deploy: %s); deploy first, or roll forward", live,
      last and fmt("release %s to %s, %s", tostring(last.release), tostring(last.colour),
        last.baked and "baked" or "rolled back") or "none recorded"))
  end
  local dir = M.migrations_dir(run, last.release)
  -- Rehearsed on a copy first: a contract migration that fails on the live
  -- data is found before the standby stops or anything changes.
  run:step("lint contract migrations", function()
    local conn <close> = open_db(run)
    local r = migrate.lint(conn, dir, {})
    if not r.ok then
      fail("lint", fmt("the pending migrations fail their rehearsal on a copy of the database; nothing was changed "
        .. "and %s keeps running:\n%s", standby, tostring(r.text)))
    end
    return { migrations = #(r.migrations or {}) }
  end)
  -- The data a contract drops exists in no earlier backup once it runs.
  run:step("backup", function() return M.backup(run, "pre-contract") end)
  log.info(fmt("contract: stop %s (the standby) once drained, then apply contract migrations for release %s; "
    .. "after this, rollback to the previous release is no longer possible", standby, tostring(last.release)))
  local standby_was = M.colours(run)[standby]
  run:step("stop " .. standby, function()
    local r = M.stop_after_drained(cfg, standby, standby_was and standby_was.release,
      standby_was and standby_was.image)
    remember_colour(run, standby, nil)
    return { how = r and r.how, release = standby_was and standby_was.release or nil }
  end, { undo = function(r)
    -- A failed contract leaves the standby as it was: running, so an
    -- instant rollback stays possible.
    if not (r and r.release and r.how ~= "not_running") then return end
    M.service(cfg, standby, r.release, standby_was and standby_was.image):start { wait = cfg.app.start_timeout or 30 }
    remember_colour(run, standby, standby_was)
    local conn <close> = open_db(run)
    M.gate(cfg, standby, r.release, conn)
  end })
  local r = run:step("contract migrations", function()
    local conn <close> = open_db(run)
    return migrate.up(conn, dir, { policy = "expand", allow_contract = true })
  end)
  run:remember("schema_version", r.to)
  log.info(fmt("contract done: database at version %s (%d migration(s) applied); %s is stopped", tostring(r.to),
    #(r.applied or {}), standby))
  return { stopped = standby, from = r.from, to = r.to, applied = #(r.applied or {}) }
end

---------------------------------------------------------------------------
-- status

--- Everything an operator asks first, as data (and printed by the status playbook).
function M.status(run)
  local cfg = M.config(run)
  local out = { colours = {} }
  local ok, active = pcall(cfg.site.active, cfg.site)
  out.active = ok and active or nil
  out.active_error = not ok and message(active) or nil
  local colours = M.colours(run)
  if cfg.fleet then
    -- Every app host at once; one that cannot be reached says why.
    local fh = M.fleet_hosts(run)
    out.hosts = {}
    local alive = {}
    for _, res in ipairs(run:each(cfg.fleet.app, function(h)
      local hc, cs = M.on_host(cfg, h.name), {}
      for _, c in ipairs(cfg.colours) do
        local rec = fh[h.name] and fh[h.name][c]
        local rel = rec and rec.release or (colours[c] and colours[c].release)
        local st = M.service(hc, c, rel or ""):status()
        cs[c] = { release = rel, state = st.state, pid = st.pid, live = out.active == c }
      end
      return cs
    end)) do
      out.hosts[#out.hosts + 1] = { name = res.host, colours = res.ok and res.value or nil,
        error = (not res.ok) and message(res.error) or nil }
      for c, e in pairs(res.ok and res.value or {}) do
        if e.pid then alive[c] = (alive[c] or 0) + 1 end
      end
    end
    for _, c in ipairs(cfg.colours) do
      out.colours[c] = { release = colours[c] and colours[c].release,
        state = fmt("running on %d of %d hosts", alive[c] or 0, #cfg.fleet.app),
        address = concat(cfg.servers[c], ", "), live = out.active == c }
    end
  else
    for _, c in ipairs(cfg.colours) do
      local rel = colours[c] and colours[c].release
      local st = M.service(cfg, c, rel or ""):status()
      out.colours[c] = { release = rel, state = st.state, pid = st.pid, address = cfg.servers[c],
        live = out.active == c }
    end
  end
  local release = out.active and colours[out.active] and colours[out.active].release
  local template = run.env.migrations or "migrations"
  local dok, derr = pcall(function()
    if not release and template:find("{version}", 1, true) then
      out.schema = { error = "not read: no release is recorded as live, and the migrations directory (" ..
        template .. ") is named by it" }
      return
    end
    local path = sqlite_path(run)
    if path and not fs.exists(path) then
      out.schema = { error = "no database yet" }
      return
    end
    local conn <close> = project.database(run, { readonly = true })
    local st = migrate.status(conn, M.migrations_dir(run, release))
    out.schema = { version = st.current, pending = st.pending or {}, ahead = project.migrations_ahead(st) }
  end)
  if not dok then out.schema = { error = message(derr) } end
  local settings = project.backups(run)
  local list = backup.list(settings.dir)
  if list[1] then
    out.last_backup = { path = list[1].path, created_at = list[1].created_at, verified = list[1].verified,
      protected = list[1].protected }
  end
  out.backups = project.backup_totals(list)
  out.backups.dir, out.backups.keep_safety = settings.dir, settings.keep_safety
  out.lease = run:lease()
  out.last_deploy = run:recall("last_deploy")
  out.runs = run:history(6)
  return out
end

return M

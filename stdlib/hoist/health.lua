--- hoist.health: health checks whose results are data, not exceptions.
--
--     local health = require "hoist.health"
--     local r = health.http{ url = "http://127.0.0.1:5002/api/health", expect_status = "200-299",
--                            json = { status = "ok", ["checks.db"] = "up" }, retries = 5, backoff = 2 }
--     if not r.ok then error("green is unhealthy: " .. r.error) end
--
--     local all = health.wait({
--       { http = { url = "http://127.0.0.1:5002/api/health" } },
--       { tcp = { host = "127.0.0.1", port = 5432 } },
--       { sql = { db = db, query = "SELECT count(*) FROM users", expect = function(n) return n > 0 end } },
--     }, { timeout = 60 })
--
-- Every check returns { ok, kind, target, attempts, latency, status, error,
-- ... } and is recorded in the run's journal. A failing check never raises;
-- a malformed check (a typo in an option) and Ctrl-C / step timeouts do.
local time = require "hoist.time"
local traffic = require "hoist.traffic"
local core = require "hoist.core"
local hoist = require "hoist"

local type, pairs, ipairs, tostring, tonumber, pcall, error = type, pairs, ipairs, tostring, tonumber, pcall, error
local concat, sort = table.concat, table.sort
local math_type = math.type
local fmt = string.format

local M = {}

local function fail(code, message)
  error(hoist.error("health", code, message))
end

local function check_keys(t, where, allowed)
  if type(t) ~= "table" then fail("invalid", where .. " expects a table") end
  hoist.check_options("health", t, where, allowed)
end

--- Errors that must stop the run rather than fail a check.
local function is_stop(e)
  return type(e) == "table" and (e.area == "run" or e.code == "interrupted")
end

local RETRY_KEYS = { "retries", "interval", "backoff", "name" }

local function with_retry_keys(list)
  local out = {}
  for _, k in ipairs(list) do out[#out + 1] = k end
  for _, k in ipairs(RETRY_KEYS) do out[#out + 1] = k end
  return out
end

--- Runs once(), up to 1 + retries times, sleeping interval * backoff^(n-1)
-- between attempts; returns the last result with attempts and seconds.
local function attempt(spec, kind, target, once)
  local retries = spec.retries or 0
  local interval = spec.interval or 1
  local backoff = spec.backoff or 1
  if retries < 0 or interval < 0 or backoff < 1 then
    fail("invalid", kind .. " check: retries and interval must be >= 0, backoff >= 1")
  end
  local t0 = time.monotonic()
  local r
  local delay = interval
  for n = 1, retries + 1 do
    local ok, res = pcall(once)
    if not ok then
      if is_stop(res) then error(res) end
      res = { ok = false, error = type(res) == "table" and tostring(res.message) or tostring(res),
              code = type(res) == "table" and res.code or nil }
    end
    r = res
    r.attempts = n
    if r.ok or n == retries + 1 then break end
    time.sleep(delay)
    delay = delay * backoff
  end
  r.kind, r.target, r.name = kind, target, spec.name
  r.seconds = time.monotonic() - t0
  core.record("health", fmt("%s %s: %s", kind, target, r.ok and "ok" or "failed"), r, r.seconds)
  return r
end

---------------------------------------------------------------------------
-- Assertions on HTTP answers.

--- Does status match expect (a number, "200-299", "2xx", or a list of those)?
local function status_matches(expect, status)
  if type(expect) == "number" then return status == expect end
  if type(expect) == "string" then
    local lo, hi = expect:match("^(%d+)%s*%-%s*(%d+)$")
    if lo then return status >= tonumber(lo) and status <= tonumber(hi) end
    local class = expect:match("^(%d)[xX][xX]$")
    if class then return status // 100 == tonumber(class) end
    return status == tonumber(expect)
  end
  if type(expect) == "table" then
    for _, e in ipairs(expect) do
      if status_matches(e, status) then return true end
    end
    return false
  end
  fail("invalid", "expect_status must be a number, a range like \"200-299\" or a list")
end

local function describe_status(expect)
  if type(expect) == "table" then
    local parts = {}
    for _, e in ipairs(expect) do parts[#parts + 1] = tostring(e) end
    return concat(parts, " or ")
  end
  return tostring(expect)
end

--- Walks "a.b.1.c" into a decoded JSON value.
local function json_path(value, path)
  for part in path:gmatch("[^%.]+") do
    if type(value) ~= "table" then return nil, false end
    local v = value[part]
    if v == nil and tonumber(part) then v = value[tonumber(part)] end
    if v == nil then return nil, false end
    value = v
  end
  return value, true
end

local function same(a, b)
  if a == b then return true end
  if type(a) == "number" or type(b) == "number" then return tonumber(a) ~= nil and tonumber(a) == tonumber(b) end
  return false
end

local function show(v)
  if type(v) == "string" then return fmt("%q", v) end
  return tostring(v)
end

--- HTTP check: one request per attempt.
-- @param spec table: url (required), method ("GET"), headers, body,
--   expect_status (number, "200-299", "2xx" or a list; default "200-299"),
--   body_contains (string), json ({["path.to.field"] = value or
--   function(v) -> bool}), timeout (seconds per attempt, 5), retries (0),
--   interval (1 s), backoff (multiplier of the interval, 1), name
-- @return table {ok, kind = "http", target, status, latency, attempts, seconds, error, body}
-- @raise health/invalid for a malformed spec (a failing check is data)
function M.http(spec)
  check_keys(spec, "health.http", with_retry_keys({ "url", "method", "headers", "body", "expect_status",
    "body_contains", "json", "timeout" }))
  if type(spec.url) ~= "string" then fail("invalid", "health.http: url is required") end
  local http = require "hoist.http"
  local expect = spec.expect_status or "200-299"
  local method = spec.method or "GET"
  return attempt(spec, "http", method .. " " .. spec.url, function()
    -- A probe keeps no connection open: the colour it checks may be stopped
    -- next, and an idle keep-alive would hold that stop for its whole grace.
    local headers = { Connection = "close" }
    for k, v in pairs(spec.headers or {}) do headers[k] = v end
    local ok, res = pcall(http.request, { method = method, url = spec.url, headers = headers,
      body = spec.body, timeout = spec.timeout or 5 })
    if not ok then
      if is_stop(res) then error(res) end
      return { ok = false, error = type(res) == "table" and tostring(res.message) or tostring(res),
               code = type(res) == "table" and res.code or "failed" }
    end
    local r = { ok = false, status = res.status, latency = res.seconds }
    local body = res.body or ""
    if #body <= 512 then r.body = body else r.body = body:sub(1, 512) .. "…" end
    if not status_matches(expect, res.status) then
      r.error = fmt("status %d, expected %s", res.status, describe_status(expect))
      return r
    end
    if spec.body_contains and not body:find(spec.body_contains, 1, true) then
      r.error = fmt("body does not contain %q", spec.body_contains)
      return r
    end
    if spec.json then
      local jok, doc = pcall(res.json, res)
      if not jok then
        r.error = "body is not JSON: " .. (type(doc) == "table" and tostring(doc.message) or tostring(doc))
        return r
      end
      local paths = {}
      for path in pairs(spec.json) do paths[#paths + 1] = path end
      sort(paths)
      for _, path in ipairs(paths) do
        local want = spec.json[path]
        local got, found = json_path(doc, path)
        if not found then
          r.error = fmt("JSON has no %s", path)
          return r
        end
        local pass
        if type(want) == "function" then pass = want(got) else pass = same(got, want) end
        if not pass then
          r.error = type(want) == "function" and fmt("JSON %s = %s is not accepted", path, show(got))
            or fmt("JSON %s = %s, expected %s", path, show(got), show(want))
          return r
        end
      end
    end
    r.ok = true
    return r
  end)
end

--- TCP check: the port accepts a connection.
-- @param spec table: host ("127.0.0.1"), port (required), timeout (seconds, 2), retries, interval, backoff, name
-- @return table {ok, kind = "tcp", target, latency, attempts, seconds, error, code}
function M.tcp(spec)
  check_keys(spec, "health.tcp", with_retry_keys({ "host", "port", "timeout" }))
  local host = spec.host or "127.0.0.1"
  if math_type(spec.port) ~= "integer" then fail("invalid", "health.tcp: port (an integer) is required") end
  return attempt(spec, "tcp", fmt("%s:%d", host, spec.port), function()
    local t = traffic.tcp(host, spec.port, spec.timeout or 2)
    return { ok = t.ok, latency = t.seconds, error = t.error, code = t.code }
  end)
end

--- SQL check: a query answers, and its first column of the first row
-- matches `expect` (a value, or function(v) -> bool; absent: any answer).
-- @param spec table: db (a hoist.db connection), query, expect, retries, interval, backoff, name
-- @return table {ok, kind = "sql", target, value, latency, attempts, seconds, error}
function M.sql(spec)
  check_keys(spec, "health.sql", with_retry_keys({ "db", "query", "expect" }))
  if spec.db == nil then fail("invalid", "health.sql: db (a connection from hoist.db) is required") end
  if type(spec.query) ~= "string" then fail("invalid", "health.sql: query is required") end
  return attempt(spec, "sql", spec.query, function()
    local t = time.monotonic()
    local value = spec.db:scalar(spec.query)
    local r = { latency = time.monotonic() - t }
    if type(value) ~= "table" then r.value = value end
    local want = spec.expect
    if want == nil then
      r.ok = true
    elseif type(want) == "function" then
      r.ok = want(value) and true or false
      if not r.ok then r.error = fmt("%s gave %s, which is not accepted", spec.query, show(value)) end
    else
      r.ok = same(value, want)
      if not r.ok then r.error = fmt("%s gave %s, expected %s", spec.query, show(value), show(want)) end
    end
    return r
  end)
end

--- Container check: Docker's own health status (HEALTHCHECK); a container
-- without a healthcheck passes while it is running.
-- @param spec table: docker (a client from hoist.docker.connect), name, retries, interval, backoff, name
-- @return table {ok, kind = "container", target, status ("healthy", "unhealthy", "starting", "running", "exited"...)}
function M.container(spec)
  check_keys(spec, "health.container", { "docker", "name", "container", "retries", "interval", "backoff" })
  local id = spec.container or spec.name
  if spec.docker == nil or type(id) ~= "string" then
    fail("invalid", "health.container: docker (a client) and name are required")
  end
  local s = { retries = spec.retries, interval = spec.interval, backoff = spec.backoff }
  return attempt(s, "container", id, function()
    local t = time.monotonic()
    local info = spec.docker:inspect(id)
    local state = info.State or {}
    local r = { latency = time.monotonic() - t }
    local health = state.Health
    if type(health) == "table" and health.Status then
      r.status = health.Status
      r.ok = health.Status == "healthy"
      if not r.ok then
        local logs = health.Log
        local last = type(logs) == "table" and logs[#logs]
        r.error = fmt("container %s is %s%s", id, health.Status,
          last and last.Output and (": " .. tostring(last.Output):gsub("%s+$", "")) or "")
      end
    else
      r.status = state.Status or (state.Running and "running" or "unknown")
      r.ok = state.Running == true
      if not r.ok then r.error = fmt("container %s is %s", id, r.status) end
    end
    return r
  end)
end

local KINDS = { http = M.http, tcp = M.tcp, sql = M.sql, container = M.container }

--- A check description -> a function running it once (no retries: wait retries).
local function runner(c, i)
  if type(c) == "function" then return c end
  if type(c) ~= "table" then fail("invalid", fmt("health.wait: check #%d must be a table or a function", i)) end
  if c.kind then
    local fn = KINDS[c.kind]
    if not fn then fail("invalid", fmt("health.wait: check #%d has unknown kind %s", i, tostring(c.kind))) end
    local spec = {}
    for k, v in pairs(c) do if k ~= "kind" then spec[k] = v end end
    return function() return fn(spec) end
  end
  for kind, fn in pairs(KINDS) do
    if c[kind] ~= nil then return function() return fn(c[kind]) end end
  end
  fail("invalid", fmt("health.wait: check #%d needs one of http, tcp, sql, container (or kind = ...)", i))
end

--- Runs every check until all pass in the same round, or the timeout.
-- @param checks list: { http = {...} } / { tcp = {...} } / { sql = {...} } /
--   { container = {...} } / { kind = "http", ... } / function() -> result
-- @param opts table: timeout (seconds, 60), interval (seconds between rounds, 1)
-- @return table {ok, rounds, seconds, results = {last result of each check}, error}
function M.wait(checks, opts)
  if type(checks) ~= "table" or #checks == 0 then fail("invalid", "health.wait expects a non-empty list of checks") end
  opts = opts or {}
  check_keys(opts, "health.wait", { "timeout", "interval" })
  local runners = {}
  for i, c in ipairs(checks) do runners[i] = runner(c, i) end
  local timeout, interval = opts.timeout or 60, opts.interval or 1
  local t0 = time.monotonic()
  local rounds = 0
  while true do
    rounds = rounds + 1
    local results, failed = {}, nil
    for i, run in ipairs(runners) do
      results[i] = run()
      if not results[i].ok and not failed then failed = results[i] end
    end
    local elapsed = time.monotonic() - t0
    if not failed or elapsed + interval > timeout then
      local r = { ok = failed == nil, rounds = rounds, seconds = elapsed, results = results }
      if failed then
        r.error = fmt("%s %s: %s (still failing after %.1f s)", failed.kind or "check", tostring(failed.target),
          tostring(failed.error), elapsed)
      end
      core.record("health", "wait: " .. (r.ok and "ok" or "failed"), { ok = r.ok, rounds = rounds, error = r.error },
        elapsed)
      return r
    end
    time.sleep(interval)
  end
end

return M

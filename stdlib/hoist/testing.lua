--- hoist.testing: tests for playbooks, run by `hoist test`.
--
--     local t = require "hoist.testing"
--     local case = t.case
--
--     case("a deploy switches to green", function()
--       local sb = t.sandbox{ db = { sql = "fixtures/app.sql" }, world = { ... }, env = { ... } }
--       local r = sb:run("../playbooks/deploy.lua", { version = "1.4.2" })
--       t.status(r, "ok")
--       t.step_ok(r, "switch to green")
--       t.rows(r, "users", 3)
--     end)
--
-- Each sb:run runs the playbook for real against a copy of the fixture
-- database, in a simulated world scripted by the test (docs/testing.md).
-- Assertions raise with the test file's line and a readable difference.
local sandbox = require "hoist.sandbox"
local db = require "hoist.db"
local time = require "hoist.time"

local fmt, concat, sort = string.format, table.concat, table.sort
local type, pairs, ipairs, tostring, error, pcall, xpcall, setmetatable =
  type, pairs, ipairs, tostring, error, pcall, xpcall, setmetatable

local M = {}

local cases, current_dir, open_dirs = {}, ".", {}

-- Raises an assertion failure located at the test line that called the
-- assertion (level 3: fail <- assertion <- test function).
local function fail(msg, level)
  error(msg, level or 3)
end

---------------------------------------------------------------------------
-- Rendering values for messages: sorted keys, one field per line for tables.

local function render(v, indent, seen)
  indent = indent or ""
  if type(v) == "string" then return fmt("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  seen = seen or {}
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  if #keys == 0 then return "{}" end
  sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  local lines = {}
  for _, k in ipairs(keys) do
    local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. render(k) .. "]")
    lines[#lines + 1] = indent .. "  " .. key .. " = " .. render(v[k], indent .. "  ", seen)
  end
  seen[v] = nil
  return "{\n" .. concat(lines, ",\n") .. "\n" .. indent .. "}"
end
M.render = render

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function where(msg) return msg and (msg .. ": ") or "" end

---------------------------------------------------------------------------
-- Cases.

function M._begin(file)
  cases, open_dirs = {}, {}
  current_dir = file:match("^(.*)/[^/]*$") or "."
end

--- Registers a test case.
-- @param name string shown in the output
-- @param fn function run with no arguments; raising fails the case
function M.case(name, fn)
  if type(name) ~= "string" or type(fn) ~= "function" then
    error("case(name, fn): expected a name and a function", 2)
  end
  cases[#cases + 1] = { name = name, fn = fn }
end

--- A path relative to the test file's directory (absolute paths unchanged).
function M.path(p)
  if p:sub(1, 1) == "/" then return p end
  return current_dir .. "/" .. p
end

local function message_of(e)
  if type(e) == "table" and e.message then return tostring(e) end
  return tostring(e)
end

function M._run()
  local results = {}
  for _, c in ipairs(cases) do
    local t0 = time.monotonic()
    local ok, err = xpcall(c.fn, function(e) return e end)
    for _, d in ipairs(open_dirs) do sandbox.remove(d) end
    open_dirs = {}
    local r = { name = c.name, ok = ok, seconds = time.monotonic() - t0 }
    if not ok then
      r.error = message_of(err)
    end
    results[#results + 1] = r
  end
  return results
end

---------------------------------------------------------------------------
-- Plain assertions.

--- Fails unless actual equals expected (deeply, for tables).
function M.eq(actual, expected, msg)
  if deep_equal(actual, expected) then return actual end
  local e, a = render(expected), render(actual)
  local text = fmt("%sexpected %s, got %s", where(msg), e, a)
  if e:find("\n") or a:find("\n") then
    text = fmt("%svalues differ (- expected, + got):\n%s", where(msg), sandbox.diff(e, a))
  end
  fail(text)
end

--- Fails unless v is truthy.
function M.ok(v, msg)
  if v then return v end
  fail(msg or fmt("expected a true value, got %s", render(v)))
end

--- Fails unless the string s contains needle (plain text).
function M.contains(s, needle, msg)
  if type(s) == "string" and s:find(needle, 1, true) then return s end
  fail(fmt("%sexpected %s to contain %q", where(msg), render(s), needle))
end

--- Fails unless fn raises; returns the error. needle: text its message must contain.
function M.raises(fn, needle)
  local ok, e = pcall(fn)
  if ok then fail("expected an error, but the function returned normally") end
  local m = type(e) == "table" and tostring(e.message or e) or tostring(e)
  if needle and not m:find(needle, 1, true) then fail(fmt("expected an error containing %q, got: %s", needle, m)) end
  return e
end

---------------------------------------------------------------------------
-- The sandbox builder and run results.

local Sandbox, Result = {}, {}
Sandbox.__index, Result.__index = Sandbox, Result

--- A sandbox: a database from a fixture and a scripted simulated world.
-- @param spec table: db ({ sql = "fixture.sql" } | { sqlite = "fixture.db" } |
--   { url = "postgres://..." } | false), env (the environment table the
--   playbook sees as run.env; its `database` is the copy), world (files,
--   nginx, services, listening, frontends, processes, http, behave), lease
--   ({ owner, reason }: held by someone else), facts ({ key = value }: what
--   earlier runs remembered, for run:recall)
function M.sandbox(spec)
  spec = spec or {}
  if type(spec) ~= "table" then error("sandbox(spec): spec must be a table", 2) end
  for k in pairs(spec) do
    if k ~= "db" and k ~= "env" and k ~= "world" and k ~= "lease" and k ~= "facts" then
      error(fmt("sandbox: unknown key '%s' (expected: db, env, world, lease, facts)", tostring(k)), 2)
    end
  end
  return setmetatable({ spec = spec }, Sandbox)
end

--- Runs a playbook (a name, or a path relative to the test file) in the sandbox.
-- @return the result: status, exit_code, error, steps, events, changes, files, rows
-- opts: { yes = true } runs it as with --yes; by default, as on the CLI,
-- nothing is confirmed (run:confirm answers no).
function Sandbox:run(playbook, params, opts)
  local s = self.spec
  local pb = playbook
  if pb:find("/", 1, true) or pb:match("%.lua$") then pb = M.path(pb) end
  local dbspec = s.db
  if type(dbspec) == "table" then
    if dbspec.sql then dbspec = { sql = M.path(dbspec.sql) }
    elseif dbspec.sqlite then dbspec = { url = "sqlite://" .. M.path(dbspec.sqlite) } end
  elseif dbspec == nil then
    dbspec = false
  end
  local r = sandbox.run { playbook = pb, params = params or {}, env_table = s.env or {}, db = dbspec,
    world = s.world, lease = s.lease, facts = s.facts, yes = (opts and opts.yes) == true }
  if r.dir and r.dir ~= "" then open_dirs[#open_dirs + 1] = r.dir end
  return setmetatable(r, Result)
end

--- Replays a recorded run (a .replay.json written by `hoist replay
-- --save-test`) against a copy of opts.db ({ sqlite = "x.db" } | { url = ... }).
-- @return { status, recorded_status, calls, divergence = { index, step, expected, actual, text } | nil }
function M.replay(recording, opts)
  opts = opts or {}
  local url
  if type(opts.db) == "table" then
    url = opts.db.url or (opts.db.sqlite and ("sqlite://" .. M.path(opts.db.sqlite)))
  end
  local r = sandbox.replay(M.path(recording), url)
  if r.divergence then r.divergence_text = r.divergence.text end
  return r
end

--- The first step named name, or nil.
function Result:step(name)
  for _, st in ipairs(self.steps or {}) do
    if st.name == name then return st end
  end
  return nil
end

--- World calls of kind ("proc", "http", "service", "nginx", "health", ...)
-- whose name contains needle (all of that kind without one).
function Result:calls(kind, needle)
  local out = {}
  for _, e in ipairs(self.events or {}) do
    if e.kind == kind and (needle == nil or tostring(e.name):find(needle, 1, true)) then out[#out + 1] = e end
  end
  return out
end

--- Runs a query on the database copy as the run left it.
function Result:query(sql, ...)
  if not self.db_url or self.db_url == "" then fail("this sandbox has no database", 3) end
  local conn <close> = db.open(self.db_url, { readonly = true })
  return conn:query(sql, ...)
end

local function step_lines(r)
  local lines = {}
  for _, st in ipairs(r.steps or {}) do
    local mark = st.status == "ok" and "ok" or st.status
    lines[#lines + 1] = fmt("    %-6s %s%s", mark, st.name, st.error and (": " .. st.error) or "")
  end
  return #lines > 0 and concat(lines, "\n") or "    (no steps)"
end

-- A run that died on its configuration (hoist.lua, the environment table,
-- params) failed before the playbook did anything: a test expecting a
-- failed step must not pass on a typo in its own fixture.
local function died_on_config(r)
  return r.status == "invalid" or (r.status == "failed" and (r.error_code == "config" or r.error_code == "invalid"))
end

--- Fails unless the run ended with status ("ok", "failed", "failed_undo",
-- "lease_held", "invalid"), or "config" for a run that died on its
-- configuration. "failed" does not match a configuration death.
function M.status(r, expected)
  local got = died_on_config(r) and "config" or r.status
  if got == expected or (expected == "invalid" and r.status == "invalid") then return r end
  fail(fmt("run status: expected %s, got %s%s%s\n  steps:\n%s", expected, tostring(got),
    got == "config" and " (the run died on its configuration before any step could run; t.status(r, \"config\") "
      .. "expects that)" or "",
    r.error and ("\n  error: " .. r.error) or "", step_lines(r)))
end

--- Fails unless the step ran and succeeded.
function M.step_ok(r, name)
  local st = r:step(name)
  if st and st.status == "ok" then return st end
  fail(fmt("step %q: expected ok, got %s\n  steps:\n%s", name, st and st.status or "no such step", step_lines(r)))
end

--- Fails unless the step ran and failed (with an error containing needle).
function M.step_failed(r, name, needle)
  local st = r:step(name)
  if st and st.status == "failed" and (needle == nil or (st.error or ""):find(needle, 1, true)) then return st end
  fail(fmt("step %q: expected failed%s, got %s\n  steps:\n%s", name,
    needle and fmt(" with %q", needle) or "", st and (st.status .. (st.error and (": " .. st.error) or ""))
    or "no such step", step_lines(r)))
end

--- Fails if the step ran at all.
function M.no_step(r, name)
  local st = r:step(name)
  if not st then return true end
  fail(fmt("step %q: expected it not to run, but it ran (%s)", name, st.status))
end

local function names(list)
  local out = {}
  for _, e in ipairs(list) do out[#out + 1] = "    " .. tostring(e.name or e.what) end
  return #out > 0 and concat(out, "\n") or "    (none)"
end

--- Fails unless a world call of kind whose name contains needle was made; returns it.
function M.called(r, kind, needle)
  local found = r:calls(kind, needle)
  if #found > 0 then return found[1] end
  fail(fmt("expected a %s call containing %q; the %s calls were:\n%s", kind, needle, kind, names(r:calls(kind))))
end

--- Fails if a world call of kind whose name contains needle was made.
function M.not_called(r, kind, needle)
  local found = r:calls(kind, needle)
  if #found == 0 then return true end
  fail(fmt("expected no %s call containing %q, but there were:\n%s", kind, needle, names(found)))
end

--- Fails unless the run changed the world in a way whose description
-- contains needle ("start api-green", "write /etc/nginx/conf.d/api.conf").
function M.changed(r, needle)
  for i, c in ipairs(r.changes or {}) do
    if c.what:find(needle, 1, true) then return c, i end
  end
  fail(fmt("expected a world change containing %q; the changes were:\n%s", needle, names(r.changes or {})))
end

--- Fails if the run changed the world in a way containing needle.
function M.unchanged(r, needle)
  for _, c in ipairs(r.changes or {}) do
    if c.what:find(needle, 1, true) then
      fail(fmt("expected no world change containing %q, but the run made: %s", needle, c.what))
    end
  end
  return true
end

--- Fails unless the changes containing each needle happened in this order.
function M.order(r, needles)
  local last, last_needle = 0, nil
  for _, n in ipairs(needles) do
    local at
    for i, c in ipairs(r.changes or {}) do
      if i > last and c.what:find(n, 1, true) then at = i break end
    end
    if not at then
      fail(fmt("expected a change containing %q%s; the changes were:\n%s", n,
        last_needle and fmt(" after %q", last_needle) or "", names(r.changes or {})))
    end
    last, last_needle = at, n
  end
  return true
end

--- The text of a file as the run left it in the simulated world (nil if removed or never there).
function M.file(r, path)
  -- A relative path is the project root's, as in the world and env tables.
  if path:sub(1, 1) ~= "/" and r.project_root then path = r.project_root .. "/" .. path end
  local f = (r.files or {})[path]
  if f == false then return nil end
  return f
end

--- Fails unless the table has n rows after the run.
function M.rows(r, tbl, n)
  local c = (r.rows or {})[tbl]
  local got = c and c.after
  if got == n then return true end
  fail(fmt("table %s: expected %d rows after the run, got %s (before: %s)", tbl, n,
    got == nil and "no such table" or (got < 0 and "no such table" or tostring(got)),
    c and tostring(c.before) or "-"))
end

return M

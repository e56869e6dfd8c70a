--- hoist.nginx: the blue/green traffic switch as a transaction.
--
-- A site is the nginx include file that holds one `upstream` block, the
-- address of each colour, and how to test and reload nginx:
--
--     local nginx = require "hoist.nginx"
--     local site = nginx.site {
--       conf      = "/etc/nginx/conf.d/api-upstream.conf",
--       upstream  = "api",
--       servers   = { blue = "127.0.0.1:5001", green = "127.0.0.1:5002" },
--       main_conf = "/etc/nginx/nginx.conf",
--       pid_file  = "/run/nginx.pid",
--       verify    = { url = "http://127.0.0.1/api/health", expect_header = "X-Colour" },
--     }
--     site:switch("green")          -- render, write, nginx -t, reload, verify; else revert
--     site:drained{ timeout = 60 }  -- the old workers are gone: now stop blue
--
-- site:switch either fully happens, proven by traffic through nginx, or puts
-- the file back byte for byte, reloads nginx with it, and raises. The
-- restore runs in C++ (hoist.traffic.guarded) so Ctrl-C or a step timeout
-- in the middle cannot leave a half-done switch behind. docs/nginx.md
-- spells out the guarantees.
local fs = require "hoist.fs"
local proc = require "hoist.proc"
local time = require "hoist.time"
local log = require "hoist.log"
local traffic = require "hoist.traffic"
local core = require "hoist.core"
local hosts = require "hoist.hosts"
local hoist = require "hoist"

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local setmetatable, error, pcall, next = setmetatable, error, pcall, next
local concat, sort, insert = table.concat, table.sort, table.insert
local fmt = string.format

local M = {}

local Site = {}
Site.__index = Site

-- A site on another host (nginx.site{ host = "lb1" }): every method runs
-- there (its files, nginx -t, reload signals and verify probes).
local OnHost = {
  __index = function(self, k)
    local f = Site[k]
    if type(f) ~= "function" then return f end
    return function(site, ...) return hosts.on(site.host, f, site, ...) end
  end,
  __tostring = function(self) return Site.__tostring(self) .. " on " .. self.host end,
}

local DEFAULTS = {
  nginx = "nginx",
  write = "rename",
  reload_timeout = 5,     -- seconds for a new worker generation to appear
  verify_timeout = 10,    -- seconds for traffic to come from the new colour
  verify_interval = 0.05, -- seconds between failed probes
  consecutive = 2,        -- matching answers in a row that prove the switch
  probe_timeout = 2,      -- seconds per probe request
  drain_timeout = 60,
}

local function fail(code, message, fields)
  error(hoist.error("nginx", code, message, fields))
end

local function check_keys(t, where, allowed)
  hoist.check_options("nginx", t, where, allowed)
end

local function list_of(v)
  if type(v) == "table" then return v end
  return { v }
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

---------------------------------------------------------------------------
-- Reading nginx configuration: a tokenizer that keeps byte positions, so a
-- render can change the few bytes that matter and nothing else.

--- Tokens {kind = "word"|"{"|"}"|";", text, s, e} (s..e: bytes in text).
local function tokenize(text)
  local toks, i, n = {}, 1, #text
  while i <= n do
    local c = text:sub(i, i)
    if c:find("^%s") then
      i = text:find("[^%s]", i) or n + 1
    elseif c == "#" then
      i = (text:find("\n", i, true) or n) + 1
    elseif c == "{" or c == "}" or c == ";" then
      toks[#toks + 1] = { kind = c, s = i, e = i }
      i = i + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = text:sub(j, j)
        if d == "\\" then
          j = j + 2
        elseif d == c then
          break
        else
          j = j + 1
        end
      end
      if j > n then return nil, fmt("unterminated string starting at byte %d", i) end
      toks[#toks + 1] = { kind = "word", text = text:sub(i + 1, j - 1), s = i, e = j }
      i = j + 1
    else
      local j = i
      while j <= n do
        local d = text:sub(j, j)
        if d == "$" and text:sub(j + 1, j + 1) == "{" then
          j = (text:find("}", j, true) or n) + 1
        elseif d:find("^[%s;{}]") then
          break
        else
          j = j + 1
        end
      end
      toks[#toks + 1] = { kind = "word", text = text:sub(i, j - 1), s = i, e = j - 1 }
      i = j
    end
  end
  return toks
end

--- Finds `upstream <name> { ... }` and its server directives.
-- @return block {servers = {{addr, flags = {down=tok, backup=tok}, semi, first, last_arg}}} or nil, why
local function parse_upstream(text, name)
  local toks, why = tokenize(text)
  if not toks then return nil, why end
  local block
  local depth, stmt_start = 0, true
  local i = 1
  while i <= #toks do
    local t = toks[i]
    if t.kind == "{" then
      depth = depth + 1
      stmt_start = true
    elseif t.kind == "}" then
      depth = depth - 1
      if depth < 0 then return nil, fmt("unbalanced '}' at byte %d", t.s) end
      stmt_start = true
    elseif t.kind == ";" then
      stmt_start = true
    else
      if stmt_start and t.text == "upstream" and toks[i + 1] and toks[i + 1].text == name
          and toks[i + 2] and toks[i + 2].kind == "{" then
        if block then return nil, fmt("upstream %s is defined twice", name) end
        block = { open = toks[i + 2], servers = {} }
        local j, d = i + 3, 1
        local dir = {}
        while j <= #toks do
          local u = toks[j]
          if u.kind == "{" then
            d = d + 1
          elseif u.kind == "}" then
            d = d - 1
            if d == 0 then break end
          elseif u.kind == ";" and d == 1 then
            if dir[1] and dir[1].text == "server" and dir[2] then
              local srv = { first = dir[1], addr = dir[2], semi = u, flags = {}, args = {} }
              for k = 3, #dir do
                local w = dir[k].text
                srv.args[#srv.args + 1] = dir[k]
                if w == "down" or w == "backup" then srv.flags[w] = { tok = dir[k], prev = dir[k - 1] } end
              end
              block.servers[#block.servers + 1] = srv
            end
            dir = {}
          elseif d == 1 then
            dir[#dir + 1] = u
          end
          j = j + 1
        end
        if j > #toks then return nil, fmt("upstream %s: missing '}'", name) end
        block.close = toks[j]
        i = j
        -- the loop's own '}' handling must not see the block's braces
        stmt_start = true
        goto continue
      end
      stmt_start = false
    end
    ::continue::
    i = i + 1
  end
  if not block then return nil, fmt("no 'upstream %s { ... }' block", name) end
  return block
end

---------------------------------------------------------------------------
-- The site object.

--- Declares a site.
-- @param spec table: conf (path of the include holding the upstream),
--   upstream (its name), servers ({blue = "host:port" or {...}, green = ...}),
--   nginx ("nginx", or an argv prefix such as {"docker","exec","web","nginx"}),
--   main_conf (nginx.conf for `nginx -t -c`), prefix (`-p`), args (extra nginx
--   arguments), pid_file (the master's; enables signal reloads, worker
--   generation checks and drained()), error_log (quoted when a reload fails),
--   write ("rename" = atomic replace | "inplace" = keep the inode, for files
--   bind-mounted into a container), backup (in-place backup path, default
--   conf .. ".hoist-prev"), maintenance_conf (a server-level include for
--   maintenance mode), maintenance_page (where the 503 page is written),
--   verify (default verification, see switch), reload_timeout, template
--   (the whole conf file as a template: a line holding {{address}} is
--   repeated for each address of the colour, {{colour}} names it; without
--   one, switch edits only the server lines of the existing upstream block).
-- @return site
-- @raise nginx/invalid for a malformed spec
function M.site(spec)
  if type(spec) ~= "table" then fail("invalid", "nginx.site expects a table") end
  check_keys(spec, "nginx.site", { "conf", "upstream", "servers", "nginx", "main_conf", "prefix", "args",
    "pid_file", "error_log", "write", "backup", "maintenance_conf", "maintenance_page", "verify",
    "reload_timeout", "template", "host" })
  if type(spec.conf) ~= "string" or spec.conf == "" then fail("invalid", "nginx.site: conf (a path) is required") end
  if type(spec.upstream) ~= "string" or spec.upstream == "" then
    fail("invalid", "nginx.site: upstream (the upstream block's name) is required")
  end
  if type(spec.servers) ~= "table" or next(spec.servers) == nil then
    fail("invalid", "nginx.site: servers = { blue = \"host:port\", green = \"host:port\" } is required")
  end
  local self = setmetatable({}, Site)
  self.conf, self.upstream = spec.conf, spec.upstream
  self.colours, self.by_addr = {}, {}
  for colour, addrs in pairs(spec.servers) do
    if type(colour) ~= "string" then fail("invalid", "nginx.site: servers must be keyed by colour name") end
    local list = list_of(addrs)
    if #list == 0 then fail("invalid", fmt("nginx.site: servers.%s is empty", colour)) end
    for _, a in ipairs(list) do
      if type(a) ~= "string" or a == "" then fail("invalid", fmt("nginx.site: servers.%s must be \"host:port\"", colour)) end
      local key = a:lower()
      if self.by_addr[key] then
        fail("invalid", fmt("nginx.site: %s is listed for both %s and %s", a, self.by_addr[key], colour))
      end
      self.by_addr[key] = colour
    end
    self.colours[colour] = list
  end
  self.nginx = list_of(spec.nginx or DEFAULTS.nginx)
  self.main_conf, self.prefix, self.args = spec.main_conf, spec.prefix, spec.args or {}
  self.pid_file, self.error_log = spec.pid_file, spec.error_log
  self.write = spec.write or DEFAULTS.write
  if self.write ~= "rename" and self.write ~= "inplace" then
    fail("invalid", "nginx.site: write must be \"rename\" or \"inplace\", got " .. tostring(self.write))
  end
  self.backup = spec.backup or (self.conf .. ".hoist-prev")
  self.maintenance_conf = spec.maintenance_conf
  self.maintenance_page = spec.maintenance_page
    or (spec.maintenance_conf and (spec.maintenance_conf:gsub("%.conf$", "") .. ".503.html"))
  self.verify = spec.verify
  if spec.template ~= nil and type(spec.template) ~= "string" then
    fail("invalid", "nginx.site: template must be a string")
  end
  self.template = spec.template
  self.reload_timeout = spec.reload_timeout or DEFAULTS.reload_timeout
  if spec.host ~= nil then
    if type(spec.host) ~= "string" or spec.host == "" then
      fail("invalid", "nginx.site: host must be the name of a host in hoist.lua (\"lb1\")")
    end
    self.host = spec.host
    return setmetatable(self, OnHost)
  end
  return self
end

function Site:__tostring()
  return fmt("nginx.site(%s, upstream %s)", self.conf, self.upstream)
end

local function colour_names(self)
  local names = {}
  for c in pairs(self.colours) do names[#names + 1] = c end
  sort(names)
  return names
end

function Site:_check_colour(colour)
  if type(colour) ~= "string" or not self.colours[colour] then
    fail("invalid", fmt("unknown colour %s (this site has: %s)", tostring(colour), concat(colour_names(self), ", ")))
  end
end

function Site:_read()
  local ok, text = pcall(fs.read, self.conf)
  if not ok then
    local code = type(text) == "table" and text.code or "failed"
    if code == "not_found" then
      fail(code, fmt("%s does not exist: it is the nginx include hoist switches, and it must already name the "
        .. "upstream %s with one colour's address (see docs/runbook.md, first deploy)", self.conf, self.upstream))
    end
    -- fs.read's message already names the path
    fail(code, type(text) == "table" and text.message or fmt("cannot read %s: %s", self.conf, tostring(text)))
  end
  return text
end

function Site:_parse(text)
  local block, why = parse_upstream(text, self.upstream)
  if not block then fail("parse", fmt("%s: %s", self.conf, why)) end
  return block
end

--- What the parsed block routes to: {colour = c} or {code, message}.
function Site:_state(block)
  local live, unknown = {}, {}
  for _, srv in ipairs(block.servers) do
    if not srv.flags.down and not srv.flags.backup then
      local colour = self.by_addr[srv.addr.text:lower()]
      if colour then
        live[colour] = true
      else
        unknown[#unknown + 1] = srv.addr.text
      end
    end
  end
  local colours = {}
  for c in pairs(live) do colours[#colours + 1] = c end
  sort(colours)
  if #unknown > 0 then
    return { code = "unknown", live = colours, message = fmt("upstream %s in %s routes to %s, which is not one of %s",
      self.upstream, self.conf, concat(unknown, ", "), self:_describe_colours()) }
  end
  if #colours == 0 then
    return { code = "unknown", live = colours,
      message = fmt("upstream %s in %s has no live server (every server is down or backup)", self.upstream, self.conf) }
  end
  if #colours > 1 then
    return { code = "ambiguous", live = colours,
      message = fmt("upstream %s in %s routes to several colours at once: %s", self.upstream, self.conf,
        concat(colours, " and ")) }
  end
  return { colour = colours[1], live = colours }
end

function Site:_describe_colours()
  local parts = {}
  for _, c in ipairs(colour_names(self)) do
    parts[#parts + 1] = fmt("%s (%s)", c, concat(self.colours[c], ", "))
  end
  return concat(parts, ", ")
end

--- Which colour the conf file routes to.
-- @return string colour
-- @raise nginx/unknown when the live servers are not a known colour (or
--   none is live), nginx/ambiguous when several colours are live,
--   nginx/parse when the upstream block cannot be found
function Site:active()
  local st = self:_state(self:_parse(self:_read()))
  if not st.colour then fail(st.code, st.message, { live = st.live }) end
  return st.colour
end

--- The template's text for colour.
function Site:_render_template(colour)
  local out = {}
  for line in (self.template .. (self.template:sub(-1) == "\n" and "" or "\n")):gmatch("(.-\n)") do
    if line:find("{{address}}", 1, true) then
      for _, a in ipairs(self.colours[colour]) do
        out[#out + 1] = (line:gsub("{{address}}", (a:gsub("%%", "%%%%"))):gsub("{{colour}}", colour))
      end
    else
      out[#out + 1] = (line:gsub("{{colour}}", colour))
    end
  end
  local text = concat(out)
  if self.template:sub(-1) ~= "\n" then text = text:sub(1, -2) end
  return text
end

--- The new file text routing upstream to `colour`; only server directives
-- of the block change, every other byte stays (or the template's text).
function Site:_render(text, block, colour)
  if self.template then
    local out = self:_render_template(colour)
    local check = self:_state(self:_parse(out))
    if check.colour ~= colour then
      fail("render", fmt("the template for upstream %s renders a file routing to %s, not %s", self.upstream,
        tostring(check.colour or check.message), colour))
    end
    return out
  end
  local target = self.colours[colour]
  local want = {}
  for _, a in ipairs(target) do want[a:lower()] = true end
  local present = {}
  for _, srv in ipairs(block.servers) do
    local key = srv.addr.text:lower()
    if want[key] then present[key] = true end
  end
  local all_present = true
  for _, a in ipairs(target) do
    if not present[a:lower()] then all_present = false end
  end
  local edits = {}
  if all_present then
    -- One line per colour: the target's lose down/backup, the others get down.
    for _, srv in ipairs(block.servers) do
      local c = self.by_addr[srv.addr.text:lower()]
      if c == colour then
        for _, flag in pairs(srv.flags) do
          edits[#edits + 1] = { s = flag.prev.e + 1, e = flag.tok.e, text = "" }
        end
      elseif c and not srv.flags.down then
        edits[#edits + 1] = { s = srv.semi.s, e = srv.semi.s - 1, text = " down" }
      end
    end
  else
    -- One colour at a time: the live colour's server lines get the target's address(es).
    local current = {}
    for _, srv in ipairs(block.servers) do
      if self.by_addr[srv.addr.text:lower()] and not srv.flags.down and not srv.flags.backup then
        current[#current + 1] = srv
      end
    end
    if #current == 0 then
      fail("unknown", fmt("upstream %s in %s has no live %s server to replace", self.upstream, self.conf,
        concat(colour_names(self), "/")))
    end
    if #current == 1 and #target == 1 then
      edits[1] = { s = current[1].addr.s, e = current[1].addr.e, text = target[1] }
    else
      local first, last = current[1], current[#current]
      local line_start = text:sub(1, first.first.s - 1):match(".*\n()") or 1
      local indent = text:sub(line_start, first.first.s - 1)
      if indent:find("[^ \t]") then indent = "" end
      local params = text:sub(first.addr.e + 1, first.semi.s - 1)
      local lines = {}
      for _, a in ipairs(target) do lines[#lines + 1] = "server " .. a .. params .. ";" end
      -- every server line between the first and the last must be one we replace
      local ours = {}
      for _, srv in ipairs(current) do ours[srv] = true end
      for _, srv in ipairs(block.servers) do
        if srv.first.s > first.first.s and srv.first.s < last.first.s and not ours[srv] then
          fail("unsupported", fmt("upstream %s: cannot replace the live servers around %s in %s", self.upstream,
            srv.addr.text, self.conf))
        end
      end
      edits[1] = { s = first.first.s, e = last.semi.e, text = concat(lines, "\n" .. indent) }
    end
  end
  sort(edits, function(a, b) return a.s > b.s end)
  local out = text
  for _, ed in ipairs(edits) do
    out = out:sub(1, ed.s - 1) .. ed.text .. out:sub(ed.e + 1)
  end
  local check = self:_state(self:_parse(out))
  if check.colour ~= colour then
    fail("render", fmt("rendering upstream %s for %s gave a file routing to %s", self.upstream, colour,
      check.colour or check.message))
  end
  return out
end

--- The file text switch(colour) would write, without writing anything
-- (for dry runs, sandboxes and tests).
-- @return string
-- @raise nginx/parse, nginx/unknown, nginx/render
function Site:render(colour)
  self:_check_colour(colour)
  local before = self:_read()
  local block = (not self.template) and self:_parse(before) or nil
  return self:_render(before, block, colour)
end

---------------------------------------------------------------------------
-- nginx itself: test, master, reload.

function Site:_argv(...)
  local argv = {}
  for _, a in ipairs(self.nginx) do argv[#argv + 1] = a end
  if self.prefix then argv[#argv + 1] = "-p"; argv[#argv + 1] = self.prefix end
  if self.main_conf then argv[#argv + 1] = "-c"; argv[#argv + 1] = self.main_conf end
  for _, a in ipairs(self.args) do argv[#argv + 1] = a end
  for _, a in ipairs({ ... }) do argv[#argv + 1] = a end
  return argv
end

--- nginx's own complaint from `nginx -t` output.
local function nginx_message(out)
  local lines = {}
  for line in out:gmatch("[^\n]+") do
    if line:find("%[emerg%]") or line:find("%[alert%]") or line:find("%[crit%]") or line:find("%[error%]") then
      lines[#lines + 1] = trim(line)
    end
  end
  if #lines == 0 then
    for line in out:gmatch("[^\n]+") do
      if not line:find("test failed") then lines[#lines + 1] = trim(line) end
    end
  end
  return concat(lines, "; ")
end

--- Runs `nginx -t` on the full configuration.
-- @raise nginx/test_failed with nginx's own message
function Site:test()
  local r = proc.run(self:_argv("-t"), { timeout = 60 })
  if not r.ok then
    local msg = nginx_message((r.stderr or "") .. "\n" .. (r.stdout or ""))
    fail("test_failed", "nginx -t rejected the configuration: " .. (msg ~= "" and msg or
      fmt("exit code %s", tostring(r.code))))
  end
  return true
end

--- The live master pid, or nil when the site has no pid_file.
-- @raise nginx/not_running when the pid file names no live process
function Site:master()
  if not self.pid_file then return nil end
  local pid = traffic.read_pid(self.pid_file)
  if not pid or not traffic.alive(pid) then
    fail("not_running", fmt("nginx is not running: %s", pid and fmt("pid %d from %s is gone", pid, self.pid_file)
      or ("no pid in " .. self.pid_file)))
  end
  return pid
end

local function pids_of(workers)
  local out = {}
  for _, w in ipairs(workers) do out[#out + 1] = w.pid end
  return out
end

function Site:_error_log_tail()
  if not self.error_log then return "" end
  local ok, text = pcall(fs.read, self.error_log)
  if not ok then return "" end
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    if line:find("%[emerg%]") or line:find("%[alert%]") then lines[#lines + 1] = line end
  end
  if #lines == 0 then return "" end
  return "; error log: " .. lines[#lines]
end

--- Reloads nginx and confirms that a new worker generation took the
-- configuration (with a pid_file), or runs `nginx -s reload` (without).
-- @return old worker pids, new worker pids (nil, nil without a pid_file)
-- @raise nginx/reload_failed, nginx/not_running
function Site:reload(master, mark)
  if master == nil then master = self:master() end
  if not master then
    if mark then mark() end
    local r = proc.run(self:_argv("-s", "reload"), { timeout = 60 })
    if not r.ok then
      fail("reload_failed", "nginx -s reload failed: " .. nginx_message((r.stderr or "") .. (r.stdout or "")))
    end
    return nil, nil
  end
  local old = pids_of(traffic.workers(master))
  if mark then mark() end
  traffic.signal(master, "HUP")
  local fresh = traffic.await_generation(master, old, self.reload_timeout)
  if not fresh then
    fail("reload_failed", fmt("nginx (master pid %d) started no new workers within %g s of SIGHUP: it kept the old "
      .. "configuration%s", master, self.reload_timeout, self:_error_log_tail()))
  end
  return old, fresh
end

---------------------------------------------------------------------------
-- Verification through nginx.

local function in_status(expect, status)
  if expect == nil then return status >= 200 and status < 400 end
  if type(expect) == "number" then return status == expect end
  if type(expect) == "string" then
    local lo, hi = expect:match("^(%d+)%-(%d+)$")
    if lo then return status >= tonumber(lo) and status <= tonumber(hi) end
    return status == tonumber(expect)
  end
  for _, e in ipairs(expect) do
    if in_status(e, status) then return true end
  end
  return false
end

local function names_colour(value, colour)
  if type(value) ~= "string" then return false end
  return value:lower():find("%f[%w]" .. colour:lower():gsub("%p", "%%%0") .. "%f[^%w]") ~= nil
end

function Site:_verify_spec(v, where)
  if v == false then return nil end
  v = v or self.verify
  if v == false then return nil end   -- the site's own verify = false
  if v == nil then
    fail("invalid", where .. ": give verify = { url = ..., expect_header | expect_body | expect = ... } "
      .. "(or verify = false to skip the proof by traffic)")
  end
  check_keys(v, where .. " verify", { "url", "method", "headers", "expect_header", "expect_body", "expect",
    "expect_status", "timeout", "interval", "consecutive", "probe_timeout" })
  if type(v.url) ~= "string" then fail("invalid", where .. ": verify.url is required") end
  return v
end

--- One probe: true, or false and what was seen.
local function probe(http, v, check, left)
  local headers = { Connection = "close" }
  for k, val in pairs(v.headers or {}) do headers[k] = val end
  local per = v.probe_timeout or DEFAULTS.probe_timeout
  if left < per then per = left > 0.1 and left or 0.1 end
  local ok, res = pcall(http.request, { method = v.method or "GET", url = v.url, headers = headers, timeout = per })
  if not ok then
    if type(res) == "table" and res.area == "run" then error(res) end  -- Ctrl-C / step timeout
    return false, "no answer: " .. (type(res) == "table" and tostring(res.message) or tostring(res))
  end
  return check(res)
end

--- Probes v.url until `consecutive` answers in a row pass check.
function Site:_prove(v, check, what)
  local http = require "hoist.http"
  local timeout = v.timeout or DEFAULTS.verify_timeout
  local need = v.consecutive or DEFAULTS.consecutive
  local t0 = time.monotonic()
  local good, attempts, last = 0, 0, nil
  while true do
    attempts = attempts + 1
    local ok, seen = probe(http, v, check, timeout - (time.monotonic() - t0))
    if ok then
      good = good + 1
      if good >= need then return { probes = attempts, seconds = time.monotonic() - t0 } end
    else
      good, last = 0, seen
      if time.monotonic() - t0 >= timeout then
        fail("verify_failed", fmt("traffic through %s did not %s within %g s (%d probes; last: %s)", v.url, what,
          timeout, attempts, tostring(last)))
      end
      time.sleep(v.interval or DEFAULTS.verify_interval)
    end
  end
end

--- A check for "the answer comes from colour".
local function colour_check(v, colour)
  if not (v.expect_header or v.expect_body ~= nil or v.expect) then
    fail("invalid", "verify needs expect_header, expect_body or expect to tell the colours apart")
  end
  return function(res)
    if not in_status(v.expect_status, res.status) then
      local from = v.expect_header and res.headers[v.expect_header:lower()]
      return false, fmt("status %d%s", res.status, from and (" from " .. from) or "")
    end
    if v.expect_header then
      local value = res.headers[v.expect_header:lower()]
      if not names_colour(value, colour) then
        return false, fmt("%s: %s", v.expect_header, value and ("\"" .. value .. "\"") or "(absent)")
      end
    end
    if v.expect_body ~= nil then
      local body = res.body or ""
      local hit
      if v.expect_body == true then
        hit = names_colour(body, colour)
      else
        hit = body:find(tostring(v.expect_body), 1, true) ~= nil
      end
      if not hit then return false, fmt("body %q", body:sub(1, 80)) end
    end
    if v.expect then
      local ok, why = v.expect(res, colour)
      if not ok then return false, why or "expect() said no" end
    end
    return true
  end
end

---------------------------------------------------------------------------
-- The transaction.

--- Writes `after`, tests, reloads and runs prove(); on any failure puts
-- `before` back (C++ side) and raises. Returns the step's record.
function Site:_transact(path, before, after, prove)
  local master = self:master()
  local st = fs.stat(path)
  local state = {
    path = path, previous = before, write = self.write, mode = st and st.mode or 420,
    pid = master, confirm_timeout = self.reload_timeout,
    reload_argv = (not master) and self:_argv("-s", "reload") or nil,
  }
  local rec = { timings = {} }
  local ok, err, restore = traffic.guarded(function()
    local t = time.monotonic()
    if self.write == "inplace" then
      fs.write_atomic(path == self.conf and self.backup or (path .. ".hoist-prev"), before, { mode = state.mode })
      state.written = true
      fs.write_inplace(path, after)
    else
      state.written = true
      fs.write_atomic(path, after, { mode = state.mode })
    end
    rec.timings.write = time.monotonic() - t
    t = time.monotonic()
    self:test()
    rec.timings.test = time.monotonic() - t
    t = time.monotonic()
    rec.old_workers, rec.new_workers = self:reload(master, function() state.reloaded = true end)
    rec.timings.reload = time.monotonic() - t
    if prove then
      t = time.monotonic()
      local p = prove()
      rec.probes = p.probes
      rec.timings.verify = time.monotonic() - t
    end
  end, state)
  if ok then return rec end
  local e = err
  if type(e) ~= "table" then
    e = hoist.error("nginx", "failed", tostring(e))
  end
  if restore.ok then
    local what = restore.restored_file and fmt("%s restored byte for byte", path) or "nothing had been written"
    if restore.reloaded then what = what .. " and nginx reloaded with it" end
    e.message = fmt("%s (rolled back: %s)", tostring(e.message), what)
    e.reverted = true
  else
    e = hoist.error("nginx", "revert_failed", fmt("%s; then the rollback failed too: %s — check %s by hand",
      tostring(e.message), tostring(restore.error), path), { cause = e.code })
  end
  error(e)
end

--- Switches traffic to `colour` as one transaction: render the upstream
-- (only its server lines change), write it (atomic rename, or in place
-- after a byte-exact backup), `nginx -t` the full configuration, reload
-- and confirm a new worker generation, then probe through nginx until
-- `consecutive` answers in a row come from the new colour. Any failure
-- (Ctrl-C and step timeouts included) restores the previous bytes, reloads
-- nginx with them if it had been reloaded, and raises.
-- @param colour string
-- @param opts table: verify = { url, expect_header (a header whose value
--   names the colour) | expect_body (true: the body names the colour; a
--   string: the body contains it) | expect (function(res, colour) -> ok, why),
--   expect_status (default "200-399"), method, headers, timeout (10 s),
--   interval, consecutive (2), probe_timeout } or false to skip the proof;
--   defaults to the site's verify.
-- @return table {colour, previous, changed, seconds, timings, probes, old_workers, new_workers}
-- @raise nginx/test_failed (nginx's message), nginx/reload_failed,
--   nginx/verify_failed, nginx/not_running, nginx/revert_failed, nginx/invalid
function Site:switch(colour, opts)
  check_keys(opts, "site:switch", { "verify" })
  opts = opts or {}
  self:_check_colour(colour)
  local v = self:_verify_spec(opts.verify, "site:switch")
  local check = v and colour_check(v, colour)
  local t0 = time.monotonic()
  local before = self:_read()
  local block, previous
  if self.template then
    -- the template replaces the whole file: a current file we cannot read is no obstacle
    block = parse_upstream(before, self.upstream)
    previous = block and self:_state(block).colour
  else
    block = self:_parse(before)
    previous = self:_state(block).colour
  end
  local after = self:_render(before, block, colour)
  local prove = v and function() return self:_prove(v, check, "come from " .. colour) end
  local rec
  if after == before then
    rec = { timings = {} }
    if prove then rec.probes = prove().probes end
    rec.changed = false
  else
    rec = self:_transact(self.conf, before, after, prove)
    rec.changed = true
    if rec.old_workers then self._draining = rec.old_workers end
  end
  rec.colour, rec.previous, rec.verified = colour, previous, v ~= nil
  rec.seconds = time.monotonic() - t0
  core.record("nginx", fmt("switch %s -> %s", tostring(previous), colour), rec, rec.seconds)
  -- For hoist.lua's notify targets: traffic moved (an undo's switch back too).
  if rec.changed then core.event("switch.done", { upstream = self.upstream, from = previous, to = colour }) end
  log.info(fmt("nginx: %s now routes to %s%s (%.0f ms)", self.upstream, colour,
    rec.changed and "" or " (already did)", rec.seconds * 1000))
  return rec
end

--- Which colour nginx actually serves, asked by traffic (the site's verify
-- url, a few probes): the include names what nginx will serve after its next
-- reload, which is not what it serves if a switch was killed between the
-- write and the reload.
-- @return string colour, or nil when the site has no verify that tells the
--   colours apart, nothing answers, or the answers disagree (a drain)
function Site:serving()
  local v = self.verify
  if type(v) ~= "table" or type(v.url) ~= "string" or not (v.expect_header or v.expect_body ~= nil or v.expect) then
    return nil
  end
  local http = require "hoist.http"
  local names = {}
  for c in pairs(self.colours) do names[#names + 1] = c end
  sort(names)
  local checks = {}
  for _, c in ipairs(names) do checks[c] = colour_check(v, c) end
  local seen
  for _ = 1, 3 do
    local from
    for _, c in ipairs(names) do
      if probe(http, v, checks[c], v.probe_timeout or DEFAULTS.probe_timeout) then
        from = c
        break
      end
    end
    if not from or (seen and seen ~= from) then return nil end
    seen = from
  end
  return seen
end

--- Waits until the worker generation that served before the last switch
-- (and any worker still "shutting down") has exited: only then is it safe
-- to stop the old colour. Needs the site's pid_file.
-- @param opts table: timeout (seconds, default 60)
-- @return table {seconds, waited_for = {pids}}
-- @raise nginx/timeout naming the workers still draining, nginx/unsupported
function Site:drained(opts)
  check_keys(opts, "site:drained", { "timeout" })
  opts = opts or {}
  if not self.pid_file then
    fail("unsupported", "drained() needs the site's pid_file to see nginx's worker generations")
  end
  local timeout = opts.timeout or DEFAULTS.drain_timeout
  local master = self:master()
  local pending = {}
  for _, pid in ipairs(self._draining or {}) do pending[pid] = true end
  local t0 = time.monotonic()
  local first
  while true do
    local waiting = {}
    for _, w in ipairs(traffic.workers(master)) do
      if pending[w.pid] or w.title:find("shutting down", 1, true) then waiting[#waiting + 1] = w.pid end
    end
    first = first or waiting
    if #waiting == 0 then
      self._draining = nil
      local rec = { seconds = time.monotonic() - t0, waited_for = first }
      core.record("nginx", "drained", rec, rec.seconds)
      return rec
    end
    if time.monotonic() - t0 >= timeout then
      local list = {}
      for _, p in ipairs(waiting) do list[#list + 1] = tostring(p) end
      fail("timeout", fmt("old nginx workers still draining after %g s (pids %s): long-lived connections? "
        .. "nginx's worker_shutdown_timeout bounds this", timeout, concat(list, ", ")))
    end
    time.sleep(0.005)
  end
end

local MAINT_MARK = "# Managed by hoist.nginx: maintenance mode is ON"

--- The maintenance include: every request answers 503 with the page.
function Site:_maintenance_text(page_path)
  local dir, file = page_path:match("^(.*)/([^/]+)$")
  if not dir then fail("invalid", "maintenance_page must be an absolute path, got " .. page_path) end
  return concat({
    MAINT_MARK .. " (site:maintenance(false) turns it off).",
    "error_page 503 @hoist_maintenance;",
    "location @hoist_maintenance {",
    "    root " .. dir .. ";",
    "    default_type text/html;",
    "    rewrite ^ /" .. file .. " break;",
    "    add_header X-Hoist-Maintenance on always;",
    "    add_header Retry-After 120 always;",
    "}",
    "return 503;",
    "",
  }, "\n")
end

--- Is maintenance mode on (per the maintenance include)?
function Site:in_maintenance()
  if not self.maintenance_conf then return false end
  local ok, text = pcall(fs.read, self.maintenance_conf)
  return ok and text:find(MAINT_MARK, 1, true) ~= nil
end

--- Turns maintenance mode on (every request through this server answers
-- 503 with `page`) or off, through the same transaction as switch: write,
-- nginx -t, reload, prove by traffic, or restore and raise. Needs the
-- site's maintenance_conf: an include inside the nginx server block.
-- @param on boolean
-- @param opts table: page (HTML, default a short notice), verify (as for
--   switch; when turning on only url/timeout matter: the proof is a 503
--   carrying X-Hoist-Maintenance; when turning off the answers must come
--   from the active colour again)
-- @return table {maintenance, changed, seconds, timings, probes}
-- @raise as switch
function Site:maintenance(on, opts)
  check_keys(opts, "site:maintenance", { "page", "verify" })
  opts = opts or {}
  if not self.maintenance_conf then
    fail("invalid", "site:maintenance needs maintenance_conf: a file included inside the nginx server block")
  end
  local v = self:_verify_spec(opts.verify, "site:maintenance")
  local t0 = time.monotonic()
  local ok, before = pcall(fs.read, self.maintenance_conf)
  if not ok then before = nil end
  if before == nil then fail("not_found", "maintenance_conf " .. self.maintenance_conf .. " does not exist "
    .. "(create it empty and include it in the server block)") end
  local after, check, what
  if on then
    local page = opts.page or "<!doctype html><title>Maintenance</title><h1>Down for maintenance</h1>"
      .. "<p>We'll be back shortly.</p>\n"
    fs.write_atomic(self.maintenance_page, page, { mode = "0644" })
    after = self:_maintenance_text(self.maintenance_page)
    what = "answer 503 (maintenance)"
    check = function(res)
      if res.status ~= 503 or res.headers["x-hoist-maintenance"] ~= "on" then
        return false, fmt("status %d without the maintenance page", res.status)
      end
      return true
    end
  else
    after = "# hoist.nginx: maintenance mode is off.\n"
    local colour = self:active()
    what = "come from " .. colour .. " again"
    check = v and colour_check(v, colour)
  end
  local rec
  local unchanged = (on and before == after) or (not on and not before:find(MAINT_MARK, 1, true))
  if unchanged then
    rec = { timings = {}, changed = false }
    if v then rec.probes = self:_prove(v, check, what).probes end
  else
    rec = self:_transact(self.maintenance_conf, before, after, v and function() return self:_prove(v, check, what) end)
    rec.changed = true
    if rec.old_workers then self._draining = rec.old_workers end
  end
  rec.maintenance, rec.verified = on and true or false, v ~= nil
  rec.seconds = time.monotonic() - t0
  core.record("nginx", "maintenance " .. (on and "on" or "off"), rec, rec.seconds)
  return rec
end

--- What the site looks like now (data, never raises for an unclear state).
-- @return table {colour | error, live, maintenance, master, workers}
function Site:status()
  local out = {}
  local ok, text = pcall(fs.read, self.conf)
  if ok then
    local block, why = parse_upstream(text, self.upstream)
    if block then
      local st = self:_state(block)
      out.colour, out.live, out.error = st.colour, st.live, st.message
    else
      out.error = why
    end
  else
    out.error = type(text) == "table" and text.message or tostring(text)
  end
  out.maintenance = self:in_maintenance()
  if self.pid_file then
    local pid = traffic.read_pid(self.pid_file)
    if pid and traffic.alive(pid) then
      out.master = pid
      out.workers = traffic.workers(pid)
    end
  end
  return out
end

-- For tests and tools: the upstream parser ({servers = {{addr = {text}, flags}}}).
M._parse_upstream = parse_upstream

return M

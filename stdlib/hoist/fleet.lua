--- hoist.fleet: which hosts a fleet deploy works, in which batches, and what
-- it does when some of them fail. Pure rules (no world calls): the fleet
-- deploy calls them with the hosts it reaches; tests call them with names.
--
--     local fleet = require "hoist.fleet"
--     fleet.batches({ "web1", "web2", "web3" }, { 1, "50%", "100%" })
--       --> { { "web1" }, { "web2" }, { "web3" } }
--     local status, outcome = fleet.run_batches(run, hosts,
--       { serial = "25%", max_fail = 0, on_fail = "rollback_batch" },
--       function(host, batch) --[[ start the idle colour on host, gate it ]] end,
--       function(host) --[[ stop the idle colour on host again ]] end)
--
-- The arithmetic, every on_fail rule and the per-host statuses are in
-- docs/fleet.md ("Batches and failure rules"); the keys of hoist.lua that
-- feed them (environments.NAME.fleet) in docs/config.md.
local hoist = require "hoist"
local log = require "hoist.log"

local type, ipairs, pairs, tostring, tonumber, pcall, error = type, ipairs, pairs, tostring, tonumber, pcall, error
local concat, sort, floor, math_type = table.concat, table.sort, math.floor, math.type
local fmt = string.format

local M = {}

--- The defaults of a fleet's rules: one host at a time, no failure
-- tolerated, and a failing batch stops the deploy where it is.
M.defaults = { serial = 1, max_fail = 0, on_fail = "halt" }

--- The on_fail rules, in the order the docs list them.
M.on_fail_rules = { "halt", "rollback_batch", "rollback_all" }

local function fail(code, msg)
  error(hoist.error("fleet", code, msg))
end

-- A rule's key as the message names it: `where` is the caller's prefix
-- ("hoist.lua: environments.prod.fleet"), else "fleet".
local function key(where, k)
  return (where or "fleet") .. "." .. k
end

-- "25%" -> 25 (a whole number), or nil when s is not a percentage.
local function percent(s)
  if type(s) ~= "string" then return nil end
  local digits = s:match("^%s*(%d+)%s*%%%s*$")
  return digits and tonumber(digits) or nil
end

local SERIAL_FORMS = "a host count (serial = 1), a percentage of the fleet (serial = \"25%\"), "
  .. "or a list of batch sizes (serial = { 1, \"50%\", \"100%\" })"

-- One batch size of a serial spec, checked: { count = n } or { percent = p }.
local function serial_size(v, k)
  if math_type(v) == "integer" then
    if v < 1 then fail("invalid", fmt("%s must be at least 1 host (got %d); it takes %s", k, v, SERIAL_FORMS)) end
    return { count = v }
  end
  if type(v) == "number" then
    fail("invalid", fmt("%s must be a whole number of hosts (got %s), e.g. %s = 2", k, tostring(v), k:match("[^.]+$")))
  end
  local p = percent(v)
  if p then
    if p < 1 or p > 100 then
      fail("invalid", fmt("%s must be a percentage from 1%% to 100%% (got %q), e.g. %s = \"25%%\"", k, v, k:match("[^.]+$")))
    end
    return { percent = p }
  end
  if type(v) == "string" then
    fail("invalid", fmt("%s must be a whole percentage such as \"25%%\" or a host count (got %q); it takes %s", k, v,
      SERIAL_FORMS))
  end
  fail("invalid", fmt("%s must be %s (got %s)", k, SERIAL_FORMS, type(v)))
end

--- Checks a serial spec without a fleet: 1, "25%" or { 1, "50%", "100%" }.
-- @param serial the spec (nil: the default, 1)
-- @param where string|nil the key's prefix for messages (default "fleet")
-- @return a list of sizes ({ count = n } | { percent = p }), one per element
-- @raise fleet/invalid naming the key (and its index in a list) with an example
function M.check_serial(serial, where)
  local k = key(where, "serial")
  if serial == nil then serial = M.defaults.serial end
  if type(serial) ~= "table" then return { serial_size(serial, k) } end
  local n = #serial
  for kk in pairs(serial) do
    if math_type(kk) ~= "integer" or kk < 1 or kk > n then
      fail("invalid", fmt("%s must be a list of batch sizes, e.g. %s = { 1, \"50%%\", \"100%%\" } (it has a key %s)",
        k, k:match("[^.]+$"), tostring(kk)))
    end
  end
  if n == 0 then
    fail("invalid", fmt("%s is an empty list: give at least one batch size, e.g. serial = { 1, \"50%%\", \"100%%\" }", k))
  end
  local out = {}
  for i = 1, n do out[i] = serial_size(serial[i], fmt("%s[%d]", k, i)) end
  return out
end

-- The number of hosts a checked size stands for in a fleet of total hosts:
-- a count as given; P% = floor(total * P / 100), but never below 1.
local function size_of(s, total)
  if s.count then return s.count end
  local n = (total * s.percent) // 100
  return n < 1 and 1 or n
end

-- The host names, in order: a list keeps its order (duplicates refused), a
-- table keyed by name (hoist.lua's hosts) is sorted by name.
local function host_names(hosts)
  if type(hosts) ~= "table" then fail("invalid", fmt("fleet: hosts must be a list of host names (got %s)", type(hosts))) end
  local names, seen = {}, {}
  local n = #hosts
  if n > 0 then
    for i = 1, n do
      local h = hosts[i]
      if type(h) ~= "string" or h == "" then
        fail("invalid", fmt("fleet: hosts[%d] must be a host name (got %s)", i, h == "" and "\"\"" or type(h)))
      end
      if seen[h] then fail("invalid", fmt("fleet: host %s is listed twice (hosts[%d] and hosts[%d])", h, seen[h], i)) end
      seen[h] = i
      names[i] = h
    end
    for kk in pairs(hosts) do
      if math_type(kk) ~= "integer" or kk < 1 or kk > n then
        fail("invalid", "fleet: hosts must be a list of names or a table keyed by name, not both")
      end
    end
    return names
  end
  for h in pairs(hosts) do
    if type(h) ~= "string" or h == "" then
      fail("invalid", fmt("fleet: hosts must be a list of host names or a table keyed by name (got a key %s)", tostring(h)))
    end
    names[#names + 1] = h
  end
  sort(names)
  return names
end
M.host_names = host_names

--- Splits hosts into batches.
-- Sizes: a count is that many hosts; "P%" is floor(N * P / 100) hosts of
-- the whole fleet of N (not of what is left), but never fewer than 1. A list
-- gives successive batch sizes and its last one repeats until every host is
-- in a batch; a size larger than what is left takes what is left.
-- @param hosts a list of host names (kept in that order), or a table keyed by
--   host name such as hoist.lua's `hosts` (sorted by name)
-- @param serial 1 | "25%" | { 1, "50%", "100%" } (nil: 1)
-- @param where string|nil the key's prefix for messages (default "fleet")
-- @return a list of batches, each a non-empty list of host names; every host
--   is in exactly one; no hosts give no batches
-- @raise fleet/invalid for a bad spec, naming the key with an example
function M.batches(hosts, serial, where)
  local sizes = M.check_serial(serial, where)
  local names = host_names(hosts)
  local total, out, i, next_size = #names, {}, 1, 1
  while i <= total do
    local n = size_of(sizes[next_size], total)
    if next_size < #sizes then next_size = next_size + 1 end
    local batch = {}
    for j = i, math.min(i + n - 1, total) do batch[#batch + 1] = names[j] end
    out[#out + 1] = batch
    i = i + #batch
  end
  return out
end

--- Checks a max_fail spec: a number of hosts (0 or more) or "P%" (0% to
-- 100%) of a batch.
-- @return { count = n } | { percent = p }
-- @raise fleet/invalid naming the key with an example
function M.check_max_fail(spec, where)
  local k = key(where, "max_fail")
  if spec == nil then spec = M.defaults.max_fail end
  if math_type(spec) == "integer" then
    if spec < 0 then fail("invalid", fmt("%s must be 0 or more hosts (got %d), e.g. max_fail = 1", k, spec)) end
    return { count = spec }
  end
  local p = percent(spec)
  if p then
    if p > 100 then fail("invalid", fmt("%s must be a percentage from 0%% to 100%% (got %q), e.g. max_fail = \"10%%\"", k, spec)) end
    return { percent = p }
  end
  local got = type(spec) == "string" and fmt("%q", spec) or type(spec) == "number" and tostring(spec) or type(spec)
  fail("invalid", fmt("%s must be a number of hosts (max_fail = 1) or a whole percentage of a batch "
    .. "(max_fail = \"10%%\"), got %s", k, got))
end

--- How many failed hosts a batch of batch_size tolerates: N hosts for
-- max_fail = N; floor(batch_size * P / 100) for "P%". A batch in which every
-- host failed triggers on_fail whatever this says (see decide).
-- @param spec 0 | 2 | "10%" (nil: 0)
-- @param batch_size integer >= 1
-- @return integer >= 0
function M.max_fail(spec, batch_size, where)
  local s = M.check_max_fail(spec, where)
  if math_type(batch_size) ~= "integer" or batch_size < 1 then
    fail("invalid", fmt("fleet.max_fail: batch_size must be an integer of at least 1 (got %s)", tostring(batch_size)))
  end
  if s.count then return s.count end
  return (batch_size * s.percent) // 100
end

--- Checks a fleet's rules and fills in the defaults.
-- @param rules { serial, max_fail, on_fail } (nil: every default)
-- @param where string|nil the key's prefix for messages (default "fleet")
-- @return { serial, max_fail, on_fail } with defaults
-- @raise fleet/invalid naming the first bad key, with an example
function M.rules(rules, where)
  if rules == nil then rules = {} end
  if type(rules) ~= "table" then
    fail("invalid", fmt("%s must be a table, e.g. fleet = { serial = 1, max_fail = 0, on_fail = \"halt\" } (got %s)",
      where or "fleet rules", type(rules)))
  end
  hoist.check_options("fleet", rules, where or "fleet rules", { "serial", "max_fail", "on_fail" })
  local out = {
    serial = rules.serial == nil and M.defaults.serial or rules.serial,
    max_fail = rules.max_fail == nil and M.defaults.max_fail or rules.max_fail,
    on_fail = rules.on_fail == nil and M.defaults.on_fail or rules.on_fail,
  }
  M.check_serial(out.serial, where)
  M.check_max_fail(out.max_fail, where)
  local known = false
  for _, r in ipairs(M.on_fail_rules) do known = known or r == out.on_fail end
  if not known then
    fail("invalid", fmt("%s must be one of \"halt\", \"rollback_batch\", \"rollback_all\" (got %s), e.g. on_fail = \"halt\"",
      key(where, "on_fail"), type(out.on_fail) == "string" and fmt("%q", out.on_fail) or type(out.on_fail)))
  end
  return out
end

-- The first line of an error value, for a log sentence.
local function reason(e)
  if type(e) == "table" and e.message ~= nil then
    local m = tostring(e.message)
    return (m:match("^[^\n]*"))
  end
  return (tostring(e):match("^[^\n]*"))
end
M.reason = reason

-- "web1, web2" for a list of names ("none" for none).
local function list(names)
  return #names > 0 and concat(names, ", ") or "none"
end

local function spec_text(v)
  return type(v) == "string" and fmt("%q", v) or tostring(v)
end

--- Decides what happens after one batch.
-- A batch passes when its failed hosts are no more than max_fail tolerates
-- for its size, and not all of its hosts failed. Otherwise on_fail decides:
--   halt           : nothing is rolled back; later batches are skipped;
--   rollback_batch : this batch's hosts that succeeded are rolled back;
--                    earlier batches stay done; later batches are skipped;
--   rollback_all   : every host that succeeded so far (this batch's, then the
--                    earlier batches', newest first) is rolled back; later
--                    batches are skipped.
-- Failed hosts are never rolled back: the per-host work cleans up after
-- itself, as a failed step registers no undo.
-- @param batch_result { index = k, count = total batches (optional),
--   results = { { host = "web1", ok = true }, { host = "web2", ok = false, error = e }, ... },
--   done = hosts of earlier batches that are done (in completion order),
--   later = hosts of later batches (optional, for the sentence) }
-- @param rules { max_fail, on_fail } (defaults: 0, "halt")
-- @return { action = "continue" | "halt" | "rollback_batch" | "rollback_all",
--   failed = { names }, ok = { names }, tolerated = n, rollback = { names, in order },
--   skip = { names }, message = "a sentence for the log" }
function M.decide(batch_result, rules)
  if type(batch_result) ~= "table" or type(batch_result.results) ~= "table" then
    fail("invalid", "fleet.decide: batch_result must be { index = k, results = { { host = \"web1\", ok = true }, ... } }")
  end
  hoist.check_options("fleet", batch_result, "fleet.decide batch_result", { "index", "count", "results", "done", "later" })
  rules = rules or {}
  if type(rules) ~= "table" then fail("invalid", "fleet.decide: rules must be a table such as { max_fail = 0, on_fail = \"halt\" }") end
  hoist.check_options("fleet", rules, "fleet.decide rules", { "serial", "max_fail", "on_fail" })
  local r = M.rules(rules)
  local results = batch_result.results
  if #results == 0 then fail("invalid", "fleet.decide: a batch has at least one host (results is empty)") end
  local ok, failed, reasons = {}, {}, {}
  for i, res in ipairs(results) do
    if type(res) ~= "table" or type(res.host) ~= "string" then
      fail("invalid", fmt("fleet.decide: results[%d] must be { host = \"web1\", ok = true|false, error = ... }", i))
    end
    if res.ok then
      ok[#ok + 1] = res.host
    else
      failed[#failed + 1] = res.host
      reasons[#reasons + 1] = fmt("%s: %s", res.host, res.error ~= nil and reason(res.error) or "failed")
    end
  end
  local n = #results
  local tolerated = M.max_fail(r.max_fail, n)
  local label = batch_result.count and fmt("batch %d/%d", batch_result.index or 0, batch_result.count)
    or fmt("batch %d", batch_result.index or 0)
  local later = batch_result.later or {}
  local d = { failed = failed, ok = ok, tolerated = tolerated, rollback = {}, skip = {} }
  if #failed == 0 then
    d.action = "continue"
    d.message = fmt("%s: %s ok", label, n == 1 and results[1].host or ("all " .. n .. " hosts"))
    return d
  end
  local within = fmt("max_fail = %s tolerates %d in a batch of %d", spec_text(r.max_fail), tolerated, n)
  local what = fmt("%d of %d host%s failed (%s)", #failed, n, n == 1 and "" or "s", concat(reasons, "; "))
  if #failed <= tolerated and #failed < n then
    d.action = "continue"
    d.message = fmt("%s: %s; %s: carrying on", label, what, within)
    return d
  end
  d.action = r.on_fail
  for _, h in ipairs(later) do d.skip[#d.skip + 1] = h end
  local why = #failed <= tolerated
    and "every host of the batch failed, which triggers on_fail whatever max_fail tolerates"
    or within
  local skipped = #later > 0 and fmt("; skipping %s", list(later)) or ""
  if r.on_fail == "halt" then
    local kept = {}
    for _, h in ipairs(batch_result.done or {}) do kept[#kept + 1] = h end
    for _, h in ipairs(ok) do kept[#kept + 1] = h end
    d.message = fmt("%s: %s; %s. on_fail = \"halt\": stopping here, keeping %s as they are%s", label, what, why,
      #kept > 0 and list(kept) or "nothing done", skipped)
    return d
  end
  -- Newest first, as the runner undoes steps: this batch in reverse, then
  -- (rollback_all) the earlier batches' hosts in reverse.
  for i = #ok, 1, -1 do d.rollback[#d.rollback + 1] = ok[i] end
  local kept = {}
  if r.on_fail == "rollback_all" then
    local done = batch_result.done or {}
    for i = #done, 1, -1 do d.rollback[#d.rollback + 1] = done[i] end
  else
    for _, h in ipairs(batch_result.done or {}) do kept[#kept + 1] = h end
  end
  d.message = fmt("%s: %s; %s. on_fail = %q: rolling back %s%s%s", label, what, why, r.on_fail,
    #d.rollback > 0 and list(d.rollback) or "nothing (no host of it succeeded)",
    #kept > 0 and fmt(", keeping %s (earlier batches)", list(kept)) or "", skipped)
  return d
end

-- Errors a pcall must not keep: Ctrl-C and a step's timeout stop the run.
local function is_stop(e)
  return type(e) == "table" and e.area == "run" and (e.code == "interrupted" or e.code == "timeout")
end

-- fn(host) for each host: at once, each acting on its host (run:each),
-- when the environment has hosts; one after another otherwise (a run
-- object without hosts, e.g. in unit tests). Results in the hosts' order:
-- { host, ok, value | error }. Ctrl-C and step timeouts propagate once
-- every host has stopped.
local function each(run, hosts, fn)
  local out
  if type(run.each) == "function" and #run:hosts() > 0 then
    out = run:each(hosts, function(h) return fn(h.name) end)
  else
    out = {}
    for _, h in ipairs(hosts) do
      local ok, v = pcall(fn, h)
      out[#out + 1] = { host = h, ok = ok, value = ok and v or nil, error = (not ok) and v or nil }
      if not ok and is_stop(v) then break end
    end
  end
  for _, res in ipairs(out) do
    if not res.ok and is_stop(res.error) then error(res.error, 0) end
  end
  return out
end

-- "web1, web2, web3, web4 and 6 more": a step name stays readable.
local function step_hosts(batch)
  if #batch <= 4 then return concat(batch, ", ") end
  return fmt("%s and %d more", concat(batch, ", ", 1, 4), #batch - 4)
end

--- Works hosts in batches, one `run:step` per batch, applying the rules.
-- Each step is named "batch K/N: web3, web4" (at most four names, then
-- "and M more"). Within a batch, per_host_fn(host, k) runs for every host at
-- once, its world calls acting on that host (run:each; one after another
-- when the environment has no hosts); an error marks that host failed.
-- Then `decide` rules on the batch; rollback_fn(host) runs for each host it
-- names, again at once (one failing does not stop the others: hosts are
-- independent). A batch that triggered on_fail is a failed
-- step whose error is decide's sentence, with every rollback error beside
-- it; its rollbacks are journaled inside it; later batches are skipped.
-- @param run the run object (run:step, and run:hosts / run:each when it has them)
-- @param hosts a list of host names, or a table keyed by name (sorted)
-- @param rules { serial, max_fail, on_fail } (defaults 1, 0, "halt")
-- @param per_host_fn function(host, batch_index): does one host's work; raises on failure
-- @param rollback_fn function(host): undoes a done host's work; raises on failure
--   (may be nil when on_fail = "halt")
-- @return status: host -> { status = "done" | "failed" | "rolled_back" |
--   "rollback_failed" | "skipped", batch = k, error = the host's error (failed),
--   rollback_error = rollback_fn's error (rollback_failed) }
-- @return outcome: { ok = true when no batch triggered on_fail, action, batch
--   = the batch that triggered it, batches = their count, message (decide's
--   sentence, plus the rollback errors), rollback_errors = { { host, error } } }
-- @raise fleet/invalid for bad rules or arguments (before any host is worked);
--   Ctrl-C and step timeouts propagate
function M.run_batches(run, hosts, rules, per_host_fn, rollback_fn)
  if type(run) ~= "table" and type(run) ~= "userdata" then fail("invalid", "fleet.run_batches: run must be the run object") end
  local r = M.rules(rules)
  if type(per_host_fn) ~= "function" then fail("invalid", "fleet.run_batches: per_host_fn must be a function(host, batch)") end
  if rollback_fn ~= nil and type(rollback_fn) ~= "function" then
    fail("invalid", "fleet.run_batches: rollback_fn must be a function(host) or nil")
  end
  if rollback_fn == nil and r.on_fail ~= "halt" then
    fail("invalid", fmt("fleet.run_batches: on_fail = %q needs a rollback_fn(host)", r.on_fail))
  end
  local batches = M.batches(hosts, r.serial)
  local status, done = {}, {}
  for k, batch in ipairs(batches) do
    for _, h in ipairs(batch) do status[h] = { status = "skipped", batch = k } end
  end
  local outcome = { ok = true, action = "continue", batches = #batches, rollback_errors = {} }
  for k, batch in ipairs(batches) do
    local later = {}
    for j = k + 1, #batches do
      for _, h in ipairs(batches[j]) do later[#later + 1] = h end
    end
    local decision
    local step_ok, step_err = pcall(run.step, run, fmt("batch %d/%d: %s", k, #batches, step_hosts(batch)), function()
      local results = {}
      for _, res in ipairs(each(run, batch, function(h) return per_host_fn(h, k) end)) do
        local h, ok, e = res.host, res.ok, res.error
        results[#results + 1] = { host = h, ok = ok, error = (not ok) and e or nil }
        status[h] = ok and { status = "done", batch = k } or { status = "failed", batch = k, error = e }
      end
      decision = M.decide({ index = k, count = #batches, results = results, done = done, later = later }, r)
      if decision.action == "continue" then
        for _, res in ipairs(results) do
          if res.ok then done[#done + 1] = res.host end
        end
        -- Failed hosts within max_fail: the run goes on, the operator hears of them.
        if #decision.failed > 0 then log.warn(decision.message) end
        return { action = "continue", failed = decision.failed, message = decision.message }
      end
      local errors = {}
      for _, res in ipairs(each(run, decision.rollback, rollback_fn)) do
        local h, ok, e = res.host, res.ok, res.error
        if ok then
          status[h].status = "rolled_back"
        else
          status[h].status = "rollback_failed"
          status[h].rollback_error = e
          errors[#errors + 1] = { host = h, error = e }
          outcome.rollback_errors[#outcome.rollback_errors + 1] = { host = h, error = e }
        end
      end
      local message = decision.message
      if #errors > 0 then
        local parts = {}
        for _, x in ipairs(errors) do parts[#parts + 1] = fmt("%s: %s", x.host, reason(x.error)) end
        message = fmt("%s; rollback failed on %d host%s (%s): check %s by hand", message, #errors,
          #errors == 1 and "" or "s", concat(parts, "; "), #errors == 1 and "it" or "them")
      end
      outcome.message = message
      error(hoist.error("fleet", #errors > 0 and "rollback_failed" or "batch_failed", message, { where = "" }), 0)
    end)
    if not step_ok then
      if is_stop(step_err) or decision == nil or decision.action == "continue" then error(step_err, 0) end
      outcome.ok, outcome.action, outcome.batch = false, decision.action, k
      outcome.message = outcome.message or decision.message
      return status, outcome
    end
  end
  outcome.message = fmt("%d host%s in %d batch%s: every batch within its rules", #host_names(hosts),
    #host_names(hosts) == 1 and "" or "s", #batches, #batches == 1 and "" or "es")
  return status, outcome
end

return M

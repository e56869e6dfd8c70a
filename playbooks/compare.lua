--- compare: do two databases have the same schema and migration history?
-- Each side is an environment of hoist.lua (its `database`) or a database
-- URL. Prints what turns the first into the second; exits 1 when they
-- differ (error code `differs`), so CI can gate on it. Read-only.
local hoist = require "hoist"
local db = require "hoist.db"
local log = require "hoist.log"
local project = require "hoist.project"

-- "dev" (an environment) or "sqlite:..."/"postgres://..." (a URL).
local function resolve(run, side)
  if side:find(":") or side:find("=") then return project.database_url(run, side) end
  local env = (run.environments or {})[side]
  if env == nil then
    local names = {}
    for name in pairs(run.environments or {}) do names[#names + 1] = name end
    table.sort(names)
    error(hoist.error("config", "not_found", ("'%s' is neither an environment of hoist.lua (%s) nor a database URL")
      :format(side, #names > 0 and table.concat(names, ", ") or "it defines none")))
  end
  if env.database == nil then
    error(hoist.error("config", "missing", ("environment '%s' has no 'database' in hoist.lua"):format(side)))
  end
  return project.database_url(run, env.database)
end

-- version -> checksum of the successfully applied migrations (none: {}).
local function history(conn)
  for _, t in ipairs(conn:tables()) do
    if t == "hoist_schema_migrations" then
      local out = {}
      for _, r in ipairs(conn:query("SELECT version, name, checksum, success FROM hoist_schema_migrations ORDER BY version")) do
        if r.success == true or r.success == 1 then out[r.version] = { name = r.name, checksum = r.checksum } end
      end
      return out
    end
  end
  return {}
end

local function history_diff(ha, hb, na, nb)
  local versions, seen = {}, {}
  for v in pairs(ha) do if not seen[v] then seen[v] = true; versions[#versions + 1] = v end end
  for v in pairs(hb) do if not seen[v] then seen[v] = true; versions[#versions + 1] = v end end
  table.sort(versions)
  local lines = {}
  for _, v in ipairs(versions) do
    local x, y = ha[v], hb[v]
    if x and not y then
      lines[#lines + 1] = ("- migration %d %s: applied in %s only"):format(v, x.name, na)
    elseif y and not x then
      lines[#lines + 1] = ("+ migration %d %s: applied in %s only"):format(v, y.name, nb)
    elseif x.checksum ~= y.checksum then
      lines[#lines + 1] = ("~ migration %d %s: applied from different files (checksum %s vs %s)")
        :format(v, x.name, tostring(x.checksum):sub(1, 12), tostring(y.checksum):sub(1, 12))
    end
  end
  return lines
end

return hoist.playbook {
  name = "compare",
  version = "1.0.0",
  summary = "Compare the schemas and migration histories of two environments or database URLs; exit 1 when they differ",
  lock = false,
  params = {
    a = { type = "string", required = true, help = "first database: an environment of hoist.lua (e.g. dev) or a database URL" },
    b = { type = "string", required = true, help = "second database: an environment (e.g. prod) or a database URL" },
    history = { type = "boolean", default = true, help = "also compare the applied migrations (hoist_schema_migrations)" },
  },
  run = function(run, p)
    local url_a, url_b = resolve(run, p.a), resolve(run, p.b)
    local ca <close> = db.open(url_a, { readonly = true })
    local cb <close> = db.open(url_b, { readonly = true })
    local r = run:step("compare " .. p.a .. " with " .. p.b, function()
      -- hoist's own bookkeeping is compared as a history below, not as schema.
      local sa, sb = ca:schema(), cb:schema()
      sa.tables.hoist_schema_migrations, sb.tables.hoist_schema_migrations = nil, nil
      local d = db.diff(sa, sb)
      local hist = p.history and history_diff(history(ca), history(cb), p.a, p.b) or {}
      return { equal = d.equal and #hist == 0, schema_equal = d.equal, text = d.text, history = hist,
               changes = #d.changes, fingerprint_a = ca:fingerprint(), fingerprint_b = cb:fingerprint() }
    end)
    local header = ("%s (%s) vs %s (%s)"):format(p.a, ca:url(), p.b, cb:url())
    if r.equal then
      log.info(("%s: same schema (fingerprint %s)%s"):format(header, r.fingerprint_a:sub(1, 16),
        p.history and " and the same migration history" or ""))
      return { equal = true, fingerprint = r.fingerprint_a }
    end
    local parts = {}
    if not r.schema_equal then
      parts[#parts + 1] = ("schema: %d difference(s), what turns %s into %s:\n%s"):format(r.changes, p.a, p.b, r.text)
    end
    if #r.history > 0 then
      parts[#parts + 1] = "migration history:\n" .. table.concat(r.history, "\n")
    end
    error(hoist.error("compare", "differs", header .. " differ\n" .. table.concat(parts, "\n")))
  end,
}

--- consolidate: move colours that drifted onto separate SQLite files back
-- onto one shared database, without losing anything.
--
-- Run it in the target environment (`--env shared`). It backs up every
-- source (protected), refuses with the diff when their schemas or
-- migration histories disagree, verifies the chosen source's backup, copies
-- it into the target (a new file: an existing one is never overwritten) and
-- checks the copy. Nothing is deleted: the sources stay as they are and
-- their backups are protected from pruning.
local hoist = require "hoist"
local backup = require "hoist.backup"
local crypto = require "hoist.crypto"
local db = require "hoist.db"
local fs = require "hoist.fs"
local json = require "hoist.json"
local log = require "hoist.log"
local project = require "hoist.project"

local function fail(code, msg) error(hoist.error("consolidate", code, msg)) end

-- The SQLite file of environment `name`.
local function sqlite_file(run, name)
  local env = run.environments[name]
  if env == nil then fail("invalid", ("no environment '%s' in hoist.lua"):format(name)) end
  if env.database == nil then fail("invalid", ("environment '%s' has no 'database'"):format(name)) end
  local url = project.database_url(run, env.database)
  local path = url:match("^sqlite://(/.*)$")
  if path == nil then fail("invalid", ("environment '%s' is not a SQLite file (%s): this playbook consolidates SQLite files"):format(name, url)) end
  return path
end

-- version -> checksum of the applied migrations.
local function history(conn)
  local out = {}
  for _, t in ipairs(conn:tables()) do
    if t == "hoist_schema_migrations" then
      for _, r in ipairs(conn:query("SELECT version, name, checksum FROM hoist_schema_migrations WHERE success = 1")) do
        out[r.version] = r.name .. " " .. r.checksum
      end
    end
  end
  return out
end

local function history_diff(ha, hb, a, b)
  local lines, seen = {}, {}
  local versions = {}
  for v in pairs(ha) do seen[v] = true; versions[#versions + 1] = v end
  for v in pairs(hb) do if not seen[v] then versions[#versions + 1] = v end end
  table.sort(versions)
  for _, v in ipairs(versions) do
    if ha[v] ~= hb[v] then
      lines[#lines + 1] = ("  migration %d: %s has %s, %s has %s"):format(v, a, ha[v] or "nothing", b, hb[v] or "nothing")
    end
  end
  return lines
end

-- Per table: its row count and a digest of its rows — what the copy must
-- match, and how far the sources drifted. Reads every row: fine for the
-- small databases this example is about; a large one wants a cheaper probe.
local function row_counts(conn)
  local out = {}
  for _, t in ipairs(conn:tables()) do
    local rows = conn:query('SELECT * FROM "' .. t:gsub('"', '""') .. '" ORDER BY 1')
    out[t] = ("%d rows, digest %s"):format(#rows, crypto.sha256(json.encode(json.array(rows))):sub(1, 12))
  end
  return out
end

return hoist.playbook {
  name = "consolidate",
  version = "1.0.0",
  summary = "Back up blue and green, compare them, and consolidate them onto the shared database (nothing deleted)",
  params = {
    from = { type = "string", required = true, help = "the environment whose data the shared database starts from (e.g. blue)" },
    sources = { type = "list", default = { "blue", "green" }, help = "the environments that drifted onto their own files" },
  },
  run = function(run, p)
    local target = sqlite_file(run, run.env.name)
    local files, chosen = {}, false
    for _, name in ipairs(p.sources) do
      files[name] = sqlite_file(run, name)
      if files[name] == target then fail("invalid", ("source '%s' already uses %s, the target"):format(name, target)) end
      chosen = chosen or name == p.from
    end
    if not chosen then fail("invalid", ("from = '%s' is not one of the sources (%s)"):format(p.from, table.concat(p.sources, ", "))) end
    if fs.exists(target) then
      fail("exists", ("%s already exists: consolidate never overwrites a database. If it is the result of an earlier run, point the colours at it; otherwise move it aside first"):format(target))
    end
    local settings = project.backups(run)

    local backups = {}
    for _, name in ipairs(p.sources) do
      backups[name] = run:step("back up " .. name, function()
        local conn <close> = db.open("sqlite://" .. files[name], { readonly = true })
        local b = backup.create(conn, { dir = settings.dir, label = "pre-consolidate-" .. name, protect = true,
          reason = "before consolidating " .. table.concat(p.sources, " and ") .. " onto " .. target })
        return { path = b.path, fingerprint = b.manifest.schema_fingerprint }
      end)
    end

    run:step("compare schemas and migration histories", function()
      local first = p.sources[1]
      local ca <close> = db.open("sqlite://" .. files[first], { readonly = true })
      local base_hist, base_rows = history(ca), row_counts(ca)
      for i = 2, #p.sources do
        local other = p.sources[i]
        local cb <close> = db.open("sqlite://" .. files[other], { readonly = true })
        local d = db.diff(ca, cb)
        local hist = history_diff(base_hist, history(cb), first, other)
        if not d.equal or #hist > 0 then
          fail("differs", ("refusing to consolidate: %s and %s disagree; nothing was changed (protected backups: %s, %s)\n%s%s%s")
            :format(first, other, backups[first].path, backups[other].path,
              d.equal and "" or ("schema, what turns " .. first .. " into " .. other .. ":\n" .. d.text .. "\n"),
              #hist > 0 and "migration history:\n" or "", table.concat(hist, "\n")))
        end
        for t, n in pairs(row_counts(cb)) do
          if base_rows[t] ~= n and not t:match("^hoist_") then
            log.warn(("the data drifted: %s.%s has %s, %s.%s has %s; what is not in %s stays in %s and its backup")
              :format(first, t, tostring(base_rows[t]), other, t, n, p.from, files[p.from == first and other or first]))
          end
        end
      end
      return "same schema and migration history"
    end)

    local chosen_backup = backups[p.from].path
    run:step("verify backup of " .. p.from, function()
      local v = backup.verify(chosen_backup, { deep = true })
      if not v.ok then fail("corrupt", ("the backup of %s does not verify: %s; nothing was changed"):format(p.from, v.message)) end
      return v.sha256
    end)

    if not run:confirm(("Create %s from %s's data (%s)?"):format(target, p.from, files[p.from])) then
      fail("not_confirmed", "not confirmed: nothing was changed")
    end

    run:step("create " .. target .. " from " .. p.from, function()
      fs.mkdir_p(target:match("^(.*)/[^/]*$"), { mode = "0700" })
      local conn <close> = db.open("sqlite://" .. target, { create = true })
      backup.restore(chosen_backup, conn, { confirm = true, safety_backup = false })
      conn:journal_mode("wal")
      return target
    end, { undo = function(path)
      -- Only the file this run created goes; the sources were never written.
      for _, suffix in ipairs({ "", "-wal", "-shm" }) do fs.remove(path .. suffix) end
    end })

    run:step("check " .. target, function()
      local src <close> = db.open("sqlite://" .. files[p.from], { readonly = true })
      local dst <close> = db.open("sqlite://" .. target)
      local integ = dst:integrity({ quick = false })
      if not integ.ok then fail("corrupt", target .. " fails its integrity check: " .. integ.summary) end
      if dst:fingerprint() ~= backups[p.from].fingerprint then
        fail("mismatch", target .. "'s schema differs from the backup of " .. p.from)
      end
      local want = row_counts(src)
      for t, n in pairs(row_counts(dst)) do
        if want[t] ~= n then fail("mismatch", ("%s.%s has %s, %s has %s"):format(target, t, n, p.from, tostring(want[t]))) end
      end
      return integ.summary
    end)

    local kept = {}
    for _, name in ipairs(p.sources) do kept[#kept + 1] = ("%s (%s, backup %s)"):format(files[name], name, backups[name].path) end
    log.info(("consolidated onto %s from %s. Point every colour at it: database = \"%s\". Kept untouched: %s")
      :format(target, p.from, run.env.database, table.concat(kept, "; ")))
    return { target = target, from = p.from }
  end,
}

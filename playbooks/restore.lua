--- restore: put a backup back into the environment's live database.
-- Verifies the backup before asking, takes a protected safety backup of the
-- current database, restores in one transaction, then checks the result
-- (and puts the previous contents back when the check fails).
-- Without a confirmation (a 'y' on the terminal, or --yes) nothing changes.
local hoist = require "hoist"
local backup = require "hoist.backup"
local log = require "hoist.log"
local project = require "hoist.project"
local null = require("hoist.db").null

-- A manifest value for humans: JSON null and nil read "none".
local function show(v) if v == nil or v == null then return "none" end return tostring(v) end

local function fail(code, msg) error(hoist.error("restore", code, msg)) end

return hoist.playbook {
  name = "restore",
  version = "1.1.1",
  summary = "Restore a verified backup (named, or the newest) into the live database, after a safety backup",
  params = {
    backup = { type = "string", default = "latest", help = "backup file name (or path) in the backups directory; latest = the newest backup of this database" },
    label = { type = "string", default = "", help = "with backup=latest: the newest backup with this label (e.g. predeploy)" },
  },
  run = function(run, p)
    project.check_database(run, { what = "restore" })
    local conn <close> = project.database(run)
    local settings = project.backups(run)
    local entry = run:step("choose backup", function()
      local e
      if p.label ~= "" and p.backup == "latest" then
        for _, b in ipairs(project.backups_of(run, conn)) do
          if b.label == p.label then e = b; break end
        end
        if e == nil then
          fail("not_found", ("no backup labelled %s of %s in %s"):format(p.label, conn:url(), settings.dir))
        end
      else
        e = project.find_backup(run, conn, p.backup)
      end
      return { path = e.path, name = e.name, created_at = e.created_at, label = e.label, manifest = e.manifest,
               target = conn:url() }
    end)
    local v = run:step("verify " .. entry.name, function()
      -- SQLite: the full integrity_check; PostgreSQL: checksum + archive listing
      -- (a deep check would restore it twice).
      return backup.verify(entry.path, { deep = conn:kind() == "sqlite" })
    end)
    if not v.ok then
      -- v.message names the backup file in each problem.
      fail("corrupt", ("refusing to restore: %s. %s was not touched; choose another backup with -e backup=NAME (hoist verify lists them)")
        :format(v.message, conn:url()))
    end
    local m = entry.manifest or {}
    log.info(("will restore %s (taken %s, label %s, migration version %s) into %s, after a protected safety backup of its current contents in %s")
      :format(entry.name, entry.created_at or "?", entry.label or "?", show(m.migration_version),
        conn:url(), settings.dir))
    -- A backup of another schema (before a migration, or of another
    -- database) is said before the question, never restored silently.
    local want = m.schema_fingerprint ~= null and m.schema_fingerprint or nil
    local live_fp = conn:fingerprint()
    local differs = want ~= nil and want ~= live_fp
    if differs then
      local live_version = "?"
      pcall(function() live_version = show(conn:scalar("SELECT max(version) FROM hoist_schema_migrations WHERE success")) end)
      log.warn(("the schema of %s differs from the live database's: schema fingerprint %s (migration version %s) "
        .. "there, %s (migration version %s) in %s now; the restore replaces both data and schema")
        :format(entry.name, want:sub(1, 16), show(m.migration_version), live_fp:sub(1, 16), live_version, conn:url()))
    end
    local question = ("Replace the contents of %s with %s%s?"):format(conn:url(), entry.name,
      differs and " (its schema differs, see above)" or "")
    local asked, answer = pcall(run.confirm, run, question)
    if not asked then
      if type(answer) ~= "table" or answer.code ~= "not_confirmed" then error(answer, 0) end
      fail("not_confirmed", ("no terminal to confirm on: pass --yes to restore %s into %s; nothing was changed"):format(entry.name, conn:url()))
    end
    if not answer then fail("not_confirmed", "not confirmed: " .. conn:url() .. " was not touched") end
    local r = run:step("restore " .. entry.name, function()
      return backup.restore(entry.path, conn, { confirm = true, safety_dir = settings.dir })
    end, { undo = function(res)
      -- A later check failed: the restored data is not what the backup
      -- promised, so the database goes back to what it held before.
      local safety = res.safety_backup ~= null and res.safety_backup or nil
      if safety == nil then
        fail("undo_failed", entry.target .. " was empty before the restore, so there is nothing to put back; it now holds " .. entry.name)
      end
      -- Undos run after run() has returned, when `conn` is already closed.
      local again <close> = project.database(run)
      backup.restore(safety, again, { confirm = true, safety_backup = false })
      log.warn("put the previous contents of " .. again:url() .. " back from " .. safety)
    end })
    run:step("check restored database", function()
      local integ = conn:integrity({ quick = true })
      if not integ.ok then
        fail("corrupt", ("after the restore %s fails its integrity check: %s"):format(conn:url(), integ.summary))
      end
      local fp = conn:fingerprint()
      local want = m.schema_fingerprint ~= null and m.schema_fingerprint or nil
      if want and fp ~= want then
        fail("mismatch", ("after the restore the schema fingerprint of %s is %s, but %s's manifest records %s: the backup is not what its manifest says")
          :format(conn:url(), fp:sub(1, 16), entry.name, want:sub(1, 16)))
      end
      return { integrity = integ.summary, fingerprint = fp }
    end)
    local safety = r.safety_backup ~= null and r.safety_backup or nil
    log.info(("restored %s into %s; %s"):format(entry.name, conn:url(), safety
      and ("the previous contents are in the protected backup " .. safety)
      or "it was empty before, so there was nothing to keep"))
    return { restored = entry.path, safety_backup = safety }
  end,
}

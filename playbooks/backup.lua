--- backup: a verified backup of the environment's database, then retention.
-- SQLite: an online copy that never blocks writers; PostgreSQL: pg_dump.
-- Settings come from the environment's `backups` key (docs/config.md).
local hoist = require "hoist"
local backup = require "hoist.backup"
local log = require "hoist.log"
local project = require "hoist.project"
local null = require("hoist.db").null

-- A manifest value for humans: JSON null and nil read "none".
local function show(v) if v == nil or v == null then return "none" end return tostring(v) end

return hoist.playbook {
  name = "backup",
  version = "1.1.0",
  summary = "Back up the environment's database (verified), then prune to the configured retention",
  params = {
    label = { type = "string", default = "manual", help = "name part of the backup file ([A-Za-z0-9._-], e.g. predeploy)" },
    protect = { type = "boolean", default = false, help = "never prune this backup (and do not count it towards keep)" },
    reason = { type = "string", default = "", help = "why this backup was taken (kept in its manifest)" },
    keep = { type = "integer", default = 0, help = "keep this many unprotected backups of this database (0 = backups.keep from hoist.lua)" },
  },
  run = function(run, p)
    local settings = project.backups(run)
    local keep = p.keep > 0 and p.keep or settings.keep
    local conn <close> = project.database(run)
    local b = run:step("backup " .. conn:url(), function()
      return backup.create(conn, {
        dir = settings.dir, label = p.label, keep = keep, keep_safety = settings.keep_safety, protect = p.protect,
        reason = p.reason ~= "" and p.reason or nil,
        compress = settings.compress, format = settings.format,
      })
    end)
    local m = b.manifest
    log.info(("backup %s: %s, sha256 %s, schema %s, migration version %s%s"):format(
      b.path, hoist.bytes(b.size), b.sha256:sub(1, 16), (m.schema_fingerprint or "?"):sub(1, 16),
      show(m.migration_version),
      p.protect and ", protected" or ""))
    if #b.pruned > 0 then
      log.info(("retention (keep %d): removed %d old backup(s): %s"):format(keep, #b.pruned, table.concat(b.pruned, ", ")))
    end
    return { path = b.path, sha256 = b.sha256, size = b.size, pruned = b.pruned }
  end,
}

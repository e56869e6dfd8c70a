--- prune: apply backup retention to the environment's backups directory.
-- Backups a person protected, the newest verified one and backups without a
-- manifest are never removed; safety backups (pre-deploy, pre-migration,
-- pre-restore) only go by keep_safety (hoist.backup's rules, docs/backup.md).
local hoist = require "hoist"
local backup = require "hoist.backup"
local log = require "hoist.log"
local project = require "hoist.project"

return hoist.playbook {
  name = "prune",
  version = "1.1.0",
  summary = "Remove old backups beyond the retention (keep N, older than an age); dry_run shows what would go",
  params = {
    keep = { type = "integer", default = 0, help = "keep the newest N unprotected backups per database (0 = backups.keep from hoist.lua)" },
    keep_safety = { type = "integer", default = 0,
      help = "keep the newest N safety backups per database (0 = backups.keep_safety from hoist.lua; there, 0 keeps them all)" },
    older_than = { type = "string", default = "", help = "only remove backups older than this (30d, 12h, 2w; empty = any age)" },
    dry_run = { type = "boolean", default = false, help = "list what would be removed, remove nothing" },
  },
  run = function(run, p)
    local settings = project.backups(run)
    local keep = p.keep > 0 and p.keep or settings.keep
    local keep_safety = p.keep_safety > 0 and p.keep_safety or settings.keep_safety
    local r = run:step("prune " .. settings.dir, function()
      return backup.prune(settings.dir, {
        keep = keep, keep_safety = keep_safety, older_than = p.older_than ~= "" and p.older_than or nil,
        dry_run = p.dry_run,
      })
    end)
    local verb = p.dry_run and "would remove" or "removed"
    for _, path in ipairs(r.removed) do log.info(verb .. " " .. path) end
    for _, path in ipairs(r.stale) do log.info(verb .. " leftover temp file " .. path) end
    log.info(("%s %d backup(s), %d remain (keep %d unprotected and %s per database%s)%s"):format(verb, #r.removed,
      #r.kept, keep, keep_safety > 0 and (keep_safety .. " safety backups") or "every safety backup",
      p.older_than ~= "" and (", older than " .. p.older_than) or "",
      p.dry_run and "; dry run: nothing was removed" or ""))
    -- Safety backups are kept forever unless told otherwise: say what they cost.
    local kept = {}
    for _, path in ipairs(r.kept) do kept[path] = true end
    local totals = project.backup_totals(backup.list(settings.dir), kept)
    if keep_safety == 0 and totals.safety > 0 then
      log.info(("%d safety backup(s) (%s) are kept: set backups.keep_safety in hoist.lua (or -e keep_safety=N) "
        .. "to keep only the newest N per database"):format(totals.safety, hoist.bytes(totals.safety_bytes)))
    end
    return { removed = r.removed, kept = #r.kept, safety_kept = totals.safety, dry_run = p.dry_run }
  end,
}

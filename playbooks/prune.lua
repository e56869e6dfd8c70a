--- prune: apply backup retention to the environment's backups directory.
-- Protected backups, the newest verified one and backups without a manifest
-- are never removed (hoist.backup's rules, docs/backup.md).
local hoist = require "hoist"
local backup = require "hoist.backup"
local log = require "hoist.log"
local project = require "hoist.project"

return hoist.playbook {
  name = "prune",
  version = "1.0.0",
  summary = "Remove old backups beyond the retention (keep N, older than an age); dry_run shows what would go",
  params = {
    keep = { type = "integer", default = 0, help = "keep the newest N unprotected backups per database (0 = backups.keep from hoist.lua)" },
    older_than = { type = "string", default = "", help = "only remove backups older than this (30d, 12h, 2w; empty = any age)" },
    dry_run = { type = "boolean", default = false, help = "list what would be removed, remove nothing" },
  },
  run = function(run, p)
    local settings = project.backups(run)
    local keep = p.keep > 0 and p.keep or settings.keep
    local r = run:step("prune " .. settings.dir, function()
      return backup.prune(settings.dir, {
        keep = keep, older_than = p.older_than ~= "" and p.older_than or nil, dry_run = p.dry_run,
      })
    end)
    local verb = p.dry_run and "would remove" or "removed"
    for _, path in ipairs(r.removed) do log.info(verb .. " " .. path) end
    for _, path in ipairs(r.stale) do log.info(verb .. " leftover temp file " .. path) end
    log.info(("%s %d backup(s), %d remain (keep %d unprotected per database%s)%s"):format(verb, #r.removed, #r.kept, keep,
      p.older_than ~= "" and (", older than " .. p.older_than) or "",
      p.dry_run and "; dry run: nothing was removed" or ""))
    return { removed = r.removed, kept = #r.kept, dry_run = p.dry_run }
  end,
}

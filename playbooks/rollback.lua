--- rollback: the canned blue/green rollback (hoist.bluegreen.rollback).
local hoist = require "hoist"
local bluegreen = require "hoist.bluegreen"

return hoist.playbook {
  name = "rollback",
  version = "1.1.0",
  summary = "Switch traffic back to the standby colour after checking its health (no database change by default)",
  description = [[
States what it will do, checks that the standby colour runs and is healthy,
switches nginx to it (nginx -t, reload, verified by traffic) and says what it
did. The database is untouched unless you ask:
  -e migrate_down=N   then run the stored down sections of the newest N migrations
  -e restore=FILE     then restore a backup (a protected safety backup first)
Both need confirmation (--yes, or the prompt). The colour that was live keeps
running out of traffic; the next `hoist deploy` replaces it.]],
  params = {
    migrate_down = { type = "integer", default = 0, help = "also migrate down this many steps (stored downs)" },
    restore = { type = "string", help = "also restore this backup (a file in the backups dir, or a path)" },
  },
  run = function(run, p)
    if p.migrate_down < 0 then error(hoist.error("params", "invalid", "migrate_down must be >= 0")) end
    return bluegreen.rollback(run, { migrate_down = p.migrate_down, restore = p.restore })
  end,
}

-- Prunes the environment's backups dir, then lists it (canned/backup_test: a rehearsal's view).
local hoist = require "hoist"
local backup = require "hoist.backup"
local project = require "hoist.project"

return hoist.playbook {
  name = "prune-then-list",
  version = "1.0.0",
  params = { keep = { type = "integer", default = 1 } },
  run = function(run, p)
    local dir = project.backups(run).dir
    run:step("prune", function() return backup.prune(dir, { keep = p.keep }) end)
    run:step("list", function()
      local names = {}
      for _, e in ipairs(backup.list(dir)) do names[#names + 1] = e.name end
      return names
    end)
  end,
}

-- Opens the database named by a param and counts users (sandbox_guard_test).
local hoist = require "hoist"
local db = require "hoist.db"

return hoist.playbook {
  name = "open-other",
  version = "1.0.0",
  params = { url = { type = "string", required = true } },
  run = function(run, p)
    run:step("open", function()
      local conn <close> = db.open(p.url)
      return conn:scalar("SELECT count(*) FROM users")
    end)
  end,
}

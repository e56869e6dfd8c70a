-- What a sandbox refuses: any database but the copy.
local t = require "hoist.testing"
local case = t.case

case("db.open of a database other than the copy is refused", function()
  local sb = t.sandbox { db = { sql = "fixtures/app.sql" } }
  local r = sb:run("open_other.lua", { url = "sqlite:///tmp/hoist-not-a-sandbox.db" })
  t.status(r, "failed")
  t.step_failed(r, "open", "refused in a sandbox run")
end)

case("the environment's database reaches the copy", function()
  local sb = t.sandbox { db = { sql = "fixtures/app.sql" }, env = { database = "sqlite:///srv/api/data/app.db" } }
  local r = sb:run("open_other.lua", { url = "sqlite:///srv/api/data/app.db" })
  t.status(r, "ok")
  t.eq(r:step("open").result, 3, "users in the copy")
end)

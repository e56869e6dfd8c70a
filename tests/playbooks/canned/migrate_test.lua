-- The canned migrate playbook against the fixture databases: app.sql (no
-- migration applied) and v2.sql (release 2's 0001 applied and recorded).
local t = require "hoist.testing"
local c = require "canned"
local case = t.case
local MIGRATE = c.playbook("migrate")

local function sandbox(release, fixture)
  return c.sandbox(nil, {
    env = { migrations = c.dir .. "/fixtures/releases/" .. release .. "/migrations" },
    db = { sql = c.dir .. "/fixtures/" .. (fixture or "app.sql") },
  })
end

local has_column = c.has_column

case("migrate status: lists what is applied and pending, changes nothing", function()
  local r = sandbox("3", "v2.sql"):run(MIGRATE, { action = "status" })
  t.status(r, "ok")
  local st = r:step("status").result
  t.eq(st.current, 1, "current version")
  t.eq(#st.pending, 1, "pending migrations")
  t.eq(r.schema_diff.equal, true, "the schema")
  t.not_called(r, "backup", "create")
end)

case("migrate plan: names the pending migration and applies nothing", function()
  local r = sandbox("2"):run(MIGRATE, { action = "plan" })
  t.status(r, "ok")
  t.step_ok(r, "plan")
  t.eq(r.schema_diff.equal, true, "the schema")
  t.ok(not has_column(r, "notes", "author_name"), "notes.author_name was added by a plan")
end)

case("migrate up: a backup first, then the expand migration applied and recorded", function()
  local r = sandbox("2"):run(MIGRATE, { action = "up" })
  t.status(r, "ok")
  t.step_ok(r, "backup before migrating")
  t.step_ok(r, "migrate up (policy expand)")
  t.ok(has_column(r, "notes", "author_name"), "notes.author_name")
  t.eq(r:query("SELECT file FROM hoist_schema_migrations")[1].file, "0001_add_author_name.sql")
  local b = t.called(r, "backup", "create")
  t.called(r, "migrate", "apply 0001_add_author_name.sql")
  t.ok(b.seq < t.called(r, "migrate", "apply").seq, "the backup was taken before the migration")
end)

case("migrate up: a destructive migration declared expand is refused and the schema left as it was", function()
  local r = sandbox("bad", "v2.sql"):run(MIGRATE, { action = "up" })
  t.status(r, "failed")
  t.contains(r.error, "0002_drop_author.sql")
  t.eq(r.schema_diff.equal, true, "the schema")
  t.ok(has_column(r, "notes", "author"), "notes.author is still there")
  t.eq(#r:query("SELECT version FROM hoist_schema_migrations WHERE success = 1"), 1, "applied migrations")
end)

case("migrate down: the stored down section runs and the history entry goes", function()
  local r = sandbox("2", "v2.sql"):run(MIGRATE, { action = "down", steps = 1 })
  t.status(r, "ok")
  t.step_ok(r, "migrate down")
  t.ok(not has_column(r, "notes", "author_name"), "notes.author_name was dropped")
  t.eq(#r:query("SELECT version FROM hoist_schema_migrations WHERE success = 1"), 0, "applied migrations")
  t.rows(r, "notes", 3)
end)

case("migrate with per-release migrations ({version}): -e version picks the release's directory", function()
  local sb = c.sandbox(nil, { db = { sql = c.dir .. "/fixtures/app.sql" } })   -- migrations = .../releases/{version}/migrations
  local r = sb:run(MIGRATE, { action = "up", version = "2" })
  t.status(r, "ok")
  t.ok(has_column(r, "notes", "author_name"), "release 2's 0001 was applied")
  local none = sb:run(MIGRATE, { action = "status" })
  t.status(none, "config")
  t.contains(none.error, "-e version=RELEASE")
end)

-- The canned backup, restore, verify, prune and compare playbooks. The
-- backups in fixtures/backups are real ones of v2.sql's database, taken as
-- /srv/api/data/app.db (the environment's database below); the "flipped"
-- one has one bit flipped after its checksum was taken. A sandbox reads
-- them (read-only) and writes new backups into itself.
local t = require "hoist.testing"
local c = require "canned"
local case = t.case

local DAILY = "app-daily-20261121T110449Z.db"
local FLIPPED = "app-flipped-20261121T110450Z.db"
local WEEKLY = "app-weekly-20261121T110448Z.db"

local function sandbox(extra)
  local spec = { env = { database = "sqlite:///srv/api/data/app.db",
    backups = { dir = c.dir .. "/fixtures/backups", keep = 5 } }, db = { sql = c.dir .. "/fixtures/v2.sql" } }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return c.sandbox(nil, spec)
end

case("backup: a verified backup of the copy, inside the sandbox, never in the real backups dir", function()
  local r = sandbox():run(c.playbook("backup"), { label = "manual", protect = true })
  t.status(r, "ok")
  local b = t.called(r, "backup", "create")
  t.contains(b.name, "/hoist-sandbox-")
  t.contains(b.name, "-manual-")
  t.eq(#r.changes, 0, "world changes")
end)

case("prune --dry-run: keep 1 would remove the two older backups and removes nothing", function()
  local r = sandbox():run(c.playbook("prune"), { keep = 1, dry_run = true })
  t.status(r, "ok")
  local removed = r:step("prune " .. c.dir .. "/fixtures/backups").result.removed
  table.sort(removed)
  t.eq(removed, { c.dir .. "/fixtures/backups/" .. DAILY, c.dir .. "/fixtures/backups/" .. WEEKLY })
  t.not_called(r, "backup", "prune")
  -- The files are still there: a second dry run finds the same.
  local again = sandbox():run(c.playbook("prune"), { keep = 1, dry_run = true })
  t.eq(#again:step("prune " .. c.dir .. "/fixtures/backups").result.removed, 2, "backups a second dry run would remove")
end)

case("prune for real in a rehearsal: the real backups it would remove are gone from its later listings only", function()
  -- The real files stay (the ctest that runs this suite checks the fixtures byte for byte).
  local r = sandbox():run(c.dir .. "/../prune_then_list.lua", { keep = 1 })
  t.status(r, "ok")
  local removed = r:step("prune").result.removed
  table.sort(removed)
  t.eq(removed, { c.dir .. "/fixtures/backups/" .. DAILY, c.dir .. "/fixtures/backups/" .. WEEKLY })
  t.eq(r:step("list").result, { FLIPPED }, "what the rehearsal lists after its prune")
end)

case("restore without --yes: refused, the database untouched", function()
  local r = sandbox():run(c.playbook("restore"), { backup = DAILY })  -- as on the CLI: no --yes
  t.status(r, "failed")
  t.contains(r.error, "pass --yes to restore " .. DAILY)
  t.not_called(r, "backup", "restore")
  t.eq(r.schema_diff.equal, true, "the schema")
end)

case("restore of a bit-flipped backup: refused after its verification, the database untouched", function()
  local r = sandbox():run(c.playbook("restore"), { backup = FLIPPED })
  t.status(r, "failed")
  t.contains(r.error, "refusing to restore: " .. FLIPPED .. ": ")
  t.not_called(r, "backup", "restore")
  t.rows(r, "notes", 3)
end)

case("restore --yes of a good backup: a safety backup first, then the copy replaced", function()
  local r = sandbox():run(c.playbook("restore"), { backup = DAILY }, { yes = true })
  t.status(r, "ok")
  local call = t.called(r, "backup", "restore " .. c.dir .. "/fixtures/backups/" .. DAILY)
  t.contains(tostring(call.data.safety_backup), "/hoist-sandbox-", "the safety backup stays in the sandbox")
  t.rows(r, "notes", 3)
end)

case("verify: a good backup passes its checksum, integrity check and restore drill", function()
  local r = sandbox():run(c.playbook("verify"), { backups = { DAILY } })
  t.status(r, "ok")
  t.called(r, "backup", "verify " .. c.dir .. "/fixtures/backups/" .. DAILY)
  t.called(r, "backup", "drill")
end)

case("verify: the bit-flipped backup fails, naming it", function()
  local r = sandbox():run(c.playbook("verify"), { backups = { FLIPPED } })
  t.status(r, "failed")
  t.contains(r.error, FLIPPED)
end)

case("compare: the environment's database with itself is equal", function()
  local r = sandbox():run(c.playbook("compare"), { a = "sqlite:///srv/api/data/app.db", b = "sqlite:///srv/api/data/app.db" })
  t.status(r, "ok")
  t.eq(#r.changes, 0, "world changes")
end)

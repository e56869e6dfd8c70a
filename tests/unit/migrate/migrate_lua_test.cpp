// Lua-level tests of hoist.migrate on SQLite: what a playbook sees — result
// tables, Lua migrations run with the hoist.db connection (up, down from
// the stored source, errors naming file and line), option checking.
#include <doctest/doctest.h>

#include "lua/boundary.h"
#include "lua/state.h"
#include "support/lua_eval.h"
#include "support/support.h"

namespace hoist {
namespace {

using test::TempDir;
using test::WriteFile;

using test::RunLuaError;

struct Fixture {
  TempDir dir{"miglua"};
  std::string migs = dir / "migrations";
  std::string url = "sqlite://" + dir.path + "/app.db";
  Fixture() {
    WriteFile(migs + "/0001_create_users.sql",
              "-- hoist:up\nCREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
              "-- hoist:down\nDROP TABLE users;\n");
    WriteFile(migs + "/0002_seed.lua", R"lua(-- hoist:phase expand
return {
  up = function(db)
    db:exec("INSERT INTO users (id, name) VALUES (?, ?)", 1, "ada")
    db:tx(function() db:exec("INSERT INTO users (id, name) VALUES (2, 'bob')") end)
  end,
  down = function(db)
    db:exec("DELETE FROM users WHERE id IN (1, 2)")
  end,
}
)lua");
  }
  std::string Prelude() const {
    return "local db = require 'hoist.db'\nlocal migrate = require 'hoist.migrate'\n"
           "local c = db.open('" + url + "', { create = true })\nlocal dir = '" + migs + "'\n";
  }
};

TEST_SUITE("migrate/lua") {

TEST_CASE("up status and down from Lua with a Lua data migration") {
  Fixture f;
  CHECK(RunLuaError(f.Prelude() + R"lua(
    local st = migrate.status(c, dir)
    assert(st.current == nil and not st.tracked, "absent values are nil")
    assert(#st.pending == 2 and st.pending[2] == "0002_seed.lua")
    local plan = migrate.up(c, dir, { dry_run = true })
    assert(plan.dry_run and #plan.plan == 2)
    assert(plan.plan[2].statements[1] == "-- Lua: the up function of 0002_seed.lua", plan.plan[2].statements[1])
    local r = migrate.up(c, dir)
    assert(r.from == nil and r.to == 2 and #r.applied == 2, r.to)
    assert(r.applied[2].file == "0002_seed.lua" and r.applied[2].class == "additive")
    assert(c:scalar("SELECT count(*) FROM users") == 2)
    st = migrate.status(c, dir)
    local m = st.migrations[2]
    assert(m.state == "applied" and m.kind == "lua" and m.phase == "expand")
    assert(m.applied.has_down and m.applied.kind == "lua")
    local v = migrate.validate(c, dir)
    assert(v.ok and v.counts.applied == 2)
  )lua") == "");
  // The files go away; down runs the Lua down as it was applied.
  std::filesystem::remove_all(f.migs);
  CHECK(RunLuaError(f.Prelude() + R"lua(
    local d = migrate.down(c, { steps = 1 })
    assert(#d.rolled_back == 1 and d.rolled_back[1].file == "0002_seed.lua" and d.to == 1)
    assert(c:scalar("SELECT count(*) FROM users") == 0)
    local ok, e = pcall(migrate.validate, c, dir)
    assert(not ok and e.code == "not_found", e.message)
  )lua") == "");
}

TEST_CASE("a failing Lua migration names its file and line and is recorded") {
  Fixture f;
  WriteFile(f.migs + "/0003_broken.lua", R"lua(return {
  up = function(db)
    db:exec("INSERT INTO users (id, name) VALUES (3, 'cy')")
    db:exec("INSERT INTO nowhere VALUES (1)")
  end,
}
)lua");
  CHECK(RunLuaError(f.Prelude() + R"lua(
    local ok, e = pcall(migrate.up, c, dir, { policy = "any" })
    assert(not ok)
    assert(e.area == "migrate" and e.code == "failed", e.code)
    local want = "0003_broken.lua failed in its up function: " .. dir ..
      "/0003_broken.lua:4: db: no such table: nowhere. It was rolled back and recorded as failed; the database " ..
      "is at version 2"
    assert(e.message == want, e.message)
    assert(c:scalar("SELECT count(*) FROM users WHERE id = 3") == 0)
    local st = migrate.status(c, dir)
    assert(st.failed[1] == "0003_broken.lua" and st.current == 2)
    -- Without a down function it cannot be rolled back once applied.
  )lua") == "");
  WriteFile(f.migs + "/0003_broken.lua", "return { up = function(db) end }\n");
  CHECK(RunLuaError(f.Prelude() + R"lua(
    assert(#migrate.up(c, dir, { policy = "any" }).applied == 1)
    local ok, e = pcall(migrate.down, c, { steps = 2 })
    assert(not ok and e.code == "no_down", e.code)
    assert(e.message:find("^cannot roll back 0003_broken.lua: its table has no down function %(as applied on "), e.message)
  )lua") == "");
}

TEST_CASE("bad migrations and bad options are refused with exact messages") {
  Fixture f;
  WriteFile(f.migs + "/0003_nothing.lua", "return 42\n");
  CHECK(RunLuaError(f.Prelude() + R"lua(
    local ok, e = pcall(migrate.up, c, dir, { polcy = "any" })
    assert(e.message == "unknown option 'polcy' for migrate.up (expected one of: to, policy, allow_contract, dry_run, "
      .. "allow_missing, allow_out_of_order, lock_timeout, lock_ttl, safety_backup)", e.message)
    ok, e = pcall(migrate.up, c, dir, { policy = "any" })
    assert(e.code == "invalid", e.code)
    assert(e.message == dir .. "/0003_nothing.lua: returned a number (a Lua migration returns { up = function(db) ... "
      .. "end, down = function(db) ... end })", e.message)
    ok, e = pcall(migrate.status, "not a connection", dir)
    assert(e.message == "bad argument #1 (connection): hoist.db connection expected, got string", e.message)
    ok, e = pcall(migrate.repair, c, { dir = dir })
    assert(e.message == "repair needs a reason: it is recorded with the migration and in the journal", e.message)
    ok, e = pcall(migrate.down, c, { steps = 1, to = 0 })
    assert(e.message == "pass either steps or to, not both", e.message)
  )lua") == "");
}

TEST_CASE("a contract Lua migration declared in its table") {
  Fixture f;
  WriteFile(f.migs + "/0003_drop.lua", R"lua(return {
  phase = "contract",
  up = function(db) db:exec("DROP TABLE users") end,
}
)lua");
  CHECK(RunLuaError(f.Prelude() + R"lua(
    local ok, e = pcall(migrate.up, c, dir)
    assert(e.code == "refused" and e.message:find("^0003_drop.lua is declared '%-%- hoist:phase contract'"), e.message)
    local r = migrate.up(c, dir, { allow_contract = true })
    assert(r.applied[1].class == "destructive", r.applied[1].class)
    local lint = migrate.lint(c, dir)
    assert(lint.ok and #lint.migrations == 0)
  )lua") == "");
}

TEST_CASE("lint rehearses Lua migrations on the copy") {
  Fixture f;
  WriteFile(f.migs + "/0003_rename.lua", R"lua(return {
  up = function(db) db:exec("ALTER TABLE users RENAME COLUMN name TO full_name") end,
}
)lua");
  CHECK(RunLuaError(f.Prelude() + R"lua(
    local r = migrate.lint(c, dir)
    assert(not r.ok)
    assert(#r.migrations == 3)
    assert(r.migrations[2].class == "additive")
    assert(r.migrations[3].class == "incompatible", r.migrations[3].class)
    assert(r.migrations[3].changes[1].what == "rename column users.name to full_name", r.migrations[3].changes[1].what)
    assert(r.problems[1]:find("^0003_rename.lua is incompatible"), r.problems[1])
    assert(not migrate.status(c, dir).tracked, "lint only reads the real database")
  )lua") == "");
}

TEST_CASE("baseline and repair from Lua") {
  Fixture f;
  CHECK(RunLuaError(f.Prelude() + R"lua(
    c:exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    local b = migrate.baseline(c, 1)
    assert(b.baseline == 1 and b.source == "version")
    local st = migrate.status(c, dir)
    assert(st.baseline == 1 and st.pending[1] == "0002_seed.lua")
    local r = migrate.repair(c, dir, { reason = "nothing to repair" })
    assert(#r.accepted == 0 and #r.dropped == 0)
  )lua") == "");
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist

// Lua-level tests of hoist.backup on SQLite: what a playbook sees (result
// tables, errors as {area, code, message}, the confirmation rule, progress
// reaching the reporter).
#include <doctest/doctest.h>

#include <filesystem>

#include "backup_test_util.h"
#include "bind/context.h"
#include "engine/reporter.h"
#include "lua/boundary.h"
#include "lua/state.h"
#include "support/support.h"

namespace hoist {
namespace {

using test::TempDir;

struct CountingReporter : engine::Reporter {
  int progress = 0;
  std::string last_label;
  void Emit(const engine::json&) override {}
  void Progress(const std::string& label, double, double, const std::string&) override {
    ++progress;
    last_label = label;
  }
};

/// Runs a chunk with `dir` as the global-free upvalue DIR; "" or the error.
std::string RunLua(const std::string& dir, const std::string& source, bind::Context* ctx = nullptr) {
  lua::State vm;
  if (ctx) bind::SetContext(vm.get(), ctx);
  try {
    vm.LoadChunk("local DIR = ...\n" + source, "=test");
    lua_pushstring(vm.get(), dir.c_str());
    lua::Call(vm.get(), 1, 0);
  } catch (const lua::ScriptError& e) {
    return e.Display();
  }
  return "";
}

TEST_SUITE("db/backup/lua") {
  TEST_CASE("create, list, verify, drill, prune from a playbook") {
    TempDir t("bklua");
    test::backup::MakeDb(t / "app.db", 100);
    CountingReporter reporter;
    bind::Context ctx;
    ctx.reporter = &reporter;
    CHECK(RunLua(t.path, R"lua(
      local db = require "hoist.db"
      local backup = require "hoist.backup"
      local c <close> = db.open("sqlite://" .. DIR .. "/app.db")
      local b = backup.create(c, { dir = DIR .. "/backups", label = "predeploy", keep = 3 })
      assert(b.path:match("/app%-predeploy%-%d+T%d+Z%.db$"), b.path)
      assert(#b.sha256 == 64)
      assert(b.manifest.engine == "sqlite" and b.manifest.verified == true)
      assert(b.manifest.schema_fingerprint == c:fingerprint(), "the manifest's fingerprint is conn:fingerprint()")
      assert(b.manifest.migration_version == db.null)
      assert(#b.pruned == 0)
      local z = backup.create(c, { dir = DIR .. "/backups", label = "z", compress = true, protect = true })
      assert(z.path:match("%.db%.zst$") and z.manifest.protected == true)

      local list = backup.list(DIR .. "/backups")
      assert(#list == 2 and list[1].path == z.path and list[2].path == b.path, "newest first")
      assert(list[2].verified == true and list[1].protected == true and list[2].label == "predeploy")

      local v = backup.verify(b.path)
      assert(v.ok == true and v.message == "ok" and v.integrity == "ok", v.message)
      assert(backup.verify(z.path, { deep = true }).ok)

      local d = backup.drill(b.path, { smoke_sql = "SELECT count(*) FROM t" })
      assert(d.ok and d.smoke[1].value == "100" and d.fingerprint_ok, d.problems[1])

      local p = backup.prune(DIR .. "/backups", { keep = 1, older_than = "1s", dry_run = true })
      assert(#p.removed == 0 and p.dry_run == true, "both must hold: nothing is a second old yet")
      p = backup.prune(DIR .. "/backups", { keep = 1 })
      assert(#p.removed == 0, "the only unprotected backup is the newest verified one")
    )lua", &ctx) == "");
    CHECK(reporter.progress > 0);
  }

  TEST_CASE("verify answers for a damaged backup, restore refuses it") {
    TempDir t("bklua");
    test::backup::MakeDb(t / "app.db", 100);
    CHECK(RunLua(t.path, R"lua(
      local db = require "hoist.db"
      local backup = require "hoist.backup"
      local c <close> = db.open("sqlite://" .. DIR .. "/app.db")
      local b = backup.create(c, { dir = DIR .. "/b" })
      local fs = require "hoist.fs"
      local bytes = fs.read(b.path)
      fs.write_inplace(b.path, bytes:sub(1, 5000) .. (bytes:sub(5001, 5001) == "X" and "Y" or "X") .. bytes:sub(5002))
      local v = backup.verify(b.path)
      assert(v.ok == false and v.checksum_ok == false)
      assert(v.message:match("sha256 mismatch: the file hashes to %x+, .+%.sha256 records " .. b.sha256), v.message)
      local ok, err = pcall(backup.restore, b.path, c, { confirm = true })
      assert(not ok and err.area == "backup" and err.code == "corrupt", tostring(err))
      assert(err.message:find("refusing to restore into " .. DIR .. "/app.db: ", 1, true) == 1, err.message)
      assert(err.message:find(": sha256 mismatch: ", 1, true), err.message)
    )lua") == "");
  }

  TEST_CASE("restore needs confirmation: confirm = true, --yes or the prompt") {
    TempDir t("bklua");
    test::backup::MakeDb(t / "app.db", 100);
    std::string script = R"lua(
      local db = require "hoist.db"
      local backup = require "hoist.backup"
      local c <close> = db.open("sqlite://" .. DIR .. "/app.db")
      local b = backup.create(c, { dir = DIR .. "/b" })
      c:exec("UPDATE marker SET v = 'current'")
      local ok, err = pcall(backup.restore, b.path, c)
      if MODE == "none" then
        assert(not ok and err.code == "not_confirmed", tostring(err))
        assert(err.message == "restore " .. b.path .. " into sqlite://" .. DIR ..
               "/app.db: needs confirmation: pass --yes, or set confirm = true after run:confirm", err.message)
        assert(c:scalar("SELECT v FROM marker") == "current")
        local r = backup.restore(b.path, c, { confirm = true, safety_backup = false })
        assert(r.safety_backup == db.null and r.pages > 0)
      else
        assert(ok, tostring(err))
        assert(err.safety_backup:match("app%-pre%-restore%-"), "a safety backup by default")
      end
      assert(c:scalar("SELECT v FROM marker") == "original", "the open connection reads the restored data")
    )lua";
    SUBCASE("no confirmation") { CHECK(RunLua(t.path, "local MODE = 'none'\n" + script) == ""); }
    SUBCASE("--yes") {
      bind::Context ctx;
      ctx.assume_yes = true;
      CHECK(RunLua(t.path, "local MODE = 'yes'\n" + script, &ctx) == "");
    }
  }

  TEST_CASE("bad arguments") {
    TempDir t("bklua");
    test::backup::MakeDb(t / "app.db", 10);
    CHECK(RunLua(t.path, R"lua(
      local db = require "hoist.db"
      local backup = require "hoist.backup"
      local c <close> = db.open("sqlite://" .. DIR .. "/app.db")
      local ok, err = pcall(backup.create, c, { dir = DIR .. "/b", lable = "x" })
      assert(not ok and err.message:match("unknown option 'lable' for backup.create"), tostring(err))
      ok, err = pcall(backup.create, c, { dir = DIR .. "/b", format = "plain" })
      assert(not ok and err.message == "format, data_only, schema_only and tables apply to PostgreSQL only", tostring(err))
      ok, err = pcall(backup.create, "app.db", { dir = DIR })
      assert(not ok and err.code == "invalid", tostring(err))
      local m <close> = db.open("sqlite::memory:")
      ok, err = pcall(backup.create, m, { dir = DIR .. "/b" })
      assert(not ok and err.message == "an in-memory SQLite database has no file to back up", tostring(err))
      ok, err = pcall(backup.prune, DIR .. "/b", { older_than = "a month" })
      assert(not ok and err.code == "invalid", tostring(err))
      ok, err = pcall(backup.verify, DIR .. "/nope.db")
      assert(not ok and err.code == "not_found" and err.message == "no such backup: " .. DIR .. "/nope.db", tostring(err))
    )lua") == "");
  }
}

}  // namespace
}  // namespace hoist

// Lua-level tests of hoist.db on SQLite: snippets run in a real lua::State
// through require "hoist.db", asserting what playbooks see (types, the null
// sentinel, tx, <close>, errors as {area, code, message} tables).
#include <doctest/doctest.h>

#include "bind/context.h"
#include "core/secrets.h"
#include "engine/reporter.h"
#include "engine/runner.h"
#include "engine/state_store.h"
#include "lua/boundary.h"
#include "lua/state.h"
#include "support/lua_eval.h"
#include "support/support.h"

namespace hoist {
namespace {

using test::TempDir;

using test::RunLuaError;

TEST_SUITE("db/lua") {
  TEST_CASE("types and the null sentinel") {
    CHECK(RunLuaError(R"lua(
      local db = require "hoist.db"
      local json = require "hoist.json"
      local c = db.open("sqlite::memory:")
      assert(c:kind() == "sqlite")
      c:exec("CREATE TABLE t (n, i INTEGER, f REAL, s TEXT, b BLOB)")
      assert(c:exec("INSERT INTO t VALUES (?, ?, ?, ?, ?)", nil, 42, 1.5, "text", db.blob("\0\1\2")) == 1)
      assert(c:exec("INSERT INTO t VALUES (?, ?, ?, ?, ?)", db.null, math.maxinteger, -0.25, "", db.blob("")) == 1)
      local rows = c:query("SELECT * FROM t ORDER BY rowid")
      assert(#rows == 2)
      local r = rows[1]
      assert(r.n == db.null and r.n == json.null, "null is the json.null sentinel")
      assert(r.n ~= nil, "a null column is present, not absent")
      assert(math.type(r.i) == "integer" and r.i == 42)
      assert(math.type(r.f) == "float" and r.f == 1.5)
      assert(r.s == "text")
      assert(r.b == "\0\1\2")
      assert(rows[2].i == math.maxinteger)
      assert(rows[2].b == "")
      assert(c:scalar("SELECT typeof(b) FROM t WHERE rowid = 2") == "blob")
      assert(c:scalar("SELECT NULL") == db.null)
      assert(c:scalar("SELECT 1 WHERE 0") == nil)
      assert(c:one("SELECT 1 WHERE 0") == nil)
      assert(c:one("SELECT 7 AS seven").seven == 7)
      assert(json.encode(c:query("SELECT 1 WHERE 0")) == "[]")
      assert(json.encode(c:query("SELECT NULL AS x")) == '[{"x":null}]')
      assert(tostring(db.blob("abc")) == "<blob 3 bytes>")
      c:close()
    )lua") == "");
  }

  TEST_CASE("tx commits rolls back and nests") {
    CHECK(RunLuaError(R"lua(
      local db = require "hoist.db"
      local c = db.open("sqlite::memory:")
      c:exec("CREATE TABLE t (x INTEGER)")
      local a, b = c:tx(function(conn)
        conn:exec("INSERT INTO t VALUES (1)")
        return "done", 2
      end)
      assert(a == "done" and b == 2)
      local ok, err = pcall(c.tx, c, function()
        c:exec("INSERT INTO t VALUES (2)")
        error({code = "nope", message = "changed my mind"})
      end)
      assert(not ok and err.message == "changed my mind", tostring(err))
      c:tx(function()
        c:exec("INSERT INTO t VALUES (3)")
        pcall(c.tx, c, function()
          c:exec("INSERT INTO t VALUES (4)")
          error("inner fails")
        end)
      end)
      local got = {}
      for _, r in ipairs(c:query("SELECT x FROM t ORDER BY x")) do got[#got + 1] = r.x end
      assert(table.concat(got, ",") == "1,3", table.concat(got, ","))
    )lua") == "");
  }

  TEST_CASE("errors are structured and carry the Lua position") {
    CHECK(RunLuaError(R"lua(
      local db = require "hoist.db"
      local c = db.open("sqlite::memory:")
      local ok, e = pcall(c.query, c, "SELEC 1")
      assert(not ok)
      assert(e.area == "db" and e.code == "syntax", e.code)
      assert(e.message == 'near "SELEC": syntax error (at line 1, column 1: SELEC 1)', e.message)
      local ok2, e2 = pcall(c.exec, c, "SELECT ?", {})
      assert(e2.code == "invalid")
      assert(e2.message == "bad argument #3 (SQL parameter): nil, boolean, number, string, db.null or db.blob(...) expected, got table", e2.message)
      local ok3, e3 = pcall(db.open, "postgres://u:Sup3rSecret@h:x/d")
      assert(e3.code == "invalid_url")
      assert(not e3.message:find("Sup3rSecret"), e3.message)
      c:query("SELECT nope")
    )lua") == "test:14: db: no such column: nope (at line 1, column 8: SELECT nope)");
  }

  TEST_CASE("close and to-be-closed variables") {
    TempDir dir("dblua");
    CHECK(RunLuaError(R"lua(
      local db = require "hoist.db"
      local keep
      do
        local c <close> = db.open("sqlite:)lua" + dir / "a.db" + R"lua(", { create = true, journal_mode = "wal" })
        assert(c:journal_mode() == "wal")
        c:exec("CREATE TABLE t (x)")
        keep = c
        assert(tostring(c) == "hoist.db.Connection(sqlite://)lua" + dir / "a.db" + R"lua()")
      end
      assert(tostring(keep):find(", closed%)$"), tostring(keep))
      local ok, e = pcall(keep.query, keep, "SELECT 1")
      assert(e.code == "closed", e.code)
      keep:close()  -- idempotent
      -- close inside a tx callback is deferred until the tx ends
      local c2 = db.open("sqlite:)lua" + dir / "a.db" + R"lua(")
      c2:tx(function() c2:exec("INSERT INTO t VALUES (1)"); c2:close() end)
      assert(select(2, pcall(c2.scalar, c2, "SELECT 1")).code == "closed")
      local c3 = db.open("sqlite:)lua" + dir / "a.db" + R"lua(")
      assert(c3:scalar("SELECT count(*) FROM t") == 1)
    )lua") == "");
  }

  TEST_CASE("schema fingerprint diff and integrity from Lua") {
    CHECK(RunLuaError(R"lua(
      local db = require "hoist.db"
      local a = db.open("sqlite::memory:")
      local b = db.open("sqlite::memory:")
      a:exec("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
      b:exec("create table users (id integer primary key,\n  email text not null)")
      assert(a:fingerprint() == b:fingerprint())
      local s = a:schema()
      assert(s.engine == "sqlite")
      assert(s.tables.users.columns[2].name == "email")
      assert(s.tables.users.columns[2].default == db.null)
      assert(s.tables.users.columns[1].pk == 1)
      assert(db.diff(a, b).equal)
      b:exec("ALTER TABLE users ADD COLUMN name TEXT")
      local d = db.diff(s, b)
      assert(not d.equal)
      assert(d.added.columns[1] == "users.name")
      assert(d.text == "+ column users.name text", d.text)
      assert(d.changes[1].kind == "column" and d.changes[1].action == "added")
      assert(#a:tables() == 1 and a:tables()[1] == "users")
      local cols = a:columns("users")
      assert(cols[2].not_null == true and cols[2].type == "text")
      local r = a:integrity({ quick = true })
      assert(r.ok and r.method == "quick_check" and #r.problems == 0, r.summary)
      assert(r.summary:find("^ok: "))
      local ok, e = pcall(db.diff, a, 42)
      assert(e.message == "bad argument #2 (schema): a connection or a table from conn:schema() expected, got number", e.message)
    )lua") == "");
  }

  TEST_CASE("locks and timeouts from Lua") {
    TempDir dir("dblua");
    std::string url = "sqlite:" + dir / "l.db";
    CHECK(RunLuaError(R"lua(
      local db = require "hoist.db"
      local a = db.open(")lua" + url + R"lua(", { create = true })
      local b = db.open(")lua" + url + R"lua(")
      local r = a:lock("migrate", { timeout = 1, ttl = 30, owner = "web-1" }, function(conn)
        local ok, e = pcall(b.lock, b, "migrate", { timeout = 0 }, function() end)
        assert(not ok and e.code == "lock_held", e.message)
        assert(e.message:find('^lock "migrate" is held by web%-1 until '), e.message)
        return "locked work"
      end)
      assert(r == "locked work")
      assert(b:lock("migrate", function() return 5 end) == 5)
      local ok, e = pcall(a.lock, a, "x", { tiemout = 1 }, function() end)
      assert(e.message == "unknown option 'tiemout' for conn:lock (expected one of: timeout, ttl, owner)", e.message)
      local t = a:timeouts()
      assert(t.lock_timeout == 5 and t.statement_timeout == 0)
      local ok2, e2 = pcall(a.timeouts, a, { statement_timeout = 0.05 }, function()
        return a:scalar("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
      end)
      assert(e2.code == "timeout", tostring(e2))
      assert(a:timeouts().statement_timeout == 0)
    )lua") == "");
  }

  TEST_CASE("every call is journaled as a world call with secrets masked") {
    TempDir dir("dblua");
    auto store = engine::OpenStateStore(dir / "state.db");
    auto reporter = engine::MakeNullReporter();
    engine::RunMeta meta;
    meta.playbook = "journal-test";
    meta.version = "1.0.0";
    int64_t run = store->BeginRun(meta);
    engine::Runner runner(*store, *reporter, run);
    bind::Context ctx;
    ctx.runner = &runner;
    RegisterSecret("api-key-5f4e3d");
    lua::State vm;
    bind::SetContext(vm.get(), &ctx);
    runner.Step("db work", [&] {
      vm.LoadChunk(R"lua(
        local db = require "hoist.db"
        local c = db.open("sqlite::memory:")
        c:exec("CREATE TABLE k (v TEXT)")
        c:exec("INSERT INTO k VALUES (?)", "api-key-5f4e3d")
        c:query("SELECT v\n FROM k WHERE v = ?", "api-key-5f4e3d")
        c:tx(function() c:exec("DELETE FROM k") end)
        pcall(c.query, c, "SELEC 1")
        c:close()
      )lua", "=test");
      lua::Call(vm.get(), 0, 0);
      return engine::json(nullptr);
    }, {});
    auto got = store->GetRun(run);
    REQUIRE(got);
    std::vector<std::string> names;
    for (const auto& e : (*got)["events"]) {
      if (e["kind"] == "db") names.push_back(e["name"].get<std::string>());
    }
    CHECK(names == std::vector<std::string>{"open sqlite::memory:", "CREATE TABLE k (v TEXT)",
                                            "INSERT INTO k VALUES (?)", "SELECT v …", "DELETE FROM k", "tx",
                                            "SELEC 1", "close sqlite::memory:"});
    const auto& events = (*got)["events"];
    auto find = [&](const std::string& name) {
      for (const auto& e : events) {
        if (e["name"] == name) return e;
      }
      return engine::json();
    };
    auto insert = find("INSERT INTO k VALUES (?)");
    CHECK(insert["data"]["params"] == engine::json{"***"});
    CHECK(insert["data"]["changes"] == 1);
    CHECK(insert["data"]["url"] == "sqlite::memory:");
    auto select = find("SELECT v …");
    CHECK(select["data"]["sql"] == "SELECT v\n FROM k WHERE v = ?");
    CHECK(select["data"]["rows"] == 1);
    CHECK(find("tx")["data"]["outcome"] == "commit");
    CHECK(find("SELEC 1")["data"]["error"] == "db: near \"SELEC\": syntax error (at line 1, column 1: SELEC 1)");
    bind::SetContext(vm.get(), nullptr);
  }

  TEST_CASE("open options are checked") {
    CHECK(RunLuaError(R"lua(
      local db = require "hoist.db"
      db.open("sqlite::memory:", { busy_timout = 1 })
    )lua") == "test:3: lua: unknown option 'busy_timout' for db.open (expected one of: busy_timeout, lock_timeout, "
              "statement_timeout, connect_timeout, journal_mode, readonly, create, application_name, host)");
    CHECK(RunLuaError(R"lua(
      local db = require "hoist.db"
      db.open("sqlite::memory:"):journal_mode("fast")
    )lua") == "test:3: db: unknown journal_mode 'fast' (expected one of: delete, truncate, persist, memory, wal, off)");
  }
}

}  // namespace
}  // namespace hoist

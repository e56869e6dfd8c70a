// Lua-level tests of hoist.db against the private PostgreSQL cluster: what
// a playbook sees (types, null, tx, <close>, locks, errors).
#include <doctest/doctest.h>

#include "lua/boundary.h"
#include "lua/state.h"
#include "support/pg_cluster.h"
#include "support/lua_eval.h"
#include "support/support.h"

namespace hoist {
namespace {

using test::PgCluster;

using test::RunLuaError;

TEST_SUITE("db/postgres/lua") {
  TEST_CASE("types null tx and close from Lua") {
    PgCluster& pg = PgCluster::Get();
    std::string url = pg.Url(pg.CreateDatabase("lua"));
    CHECK(RunLuaError(R"lua(
      local db = require "hoist.db"
      local json = require "hoist.json"
      local c <close> = db.open(")lua" + url + R"lua(", { lock_timeout = 2, statement_timeout = 30 })
      assert(c:kind() == "postgres")
      assert(c:url():find("hoist:%*%*%*@"), c:url())
      assert(tostring(c):find("^hoist.db.Connection%(postgres://hoist:%*%*%*@"), tostring(c))
      local t = c:timeouts()
      assert(t.lock_timeout == 2 and t.statement_timeout == 30)
      c:exec("CREATE TABLE t (id serial PRIMARY KEY, n int, f float8, s text, b bytea, ok boolean, amount numeric)")
      assert(c:exec("INSERT INTO t (n, f, s, b, ok, amount) VALUES ($1, $2, $3, $4, $5, $6)",
                    nil, 2.5, "x", db.blob("\0\255"), true, "10.50") == 1)
      local r = c:one("SELECT * FROM t")
      assert(r.n == db.null and r.n == json.null)
      assert(math.type(r.id) == "integer" and r.id == 1)
      assert(math.type(r.f) == "float" and r.f == 2.5)
      assert(r.s == "x" and r.b == "\0\255" and r.ok == true)
      assert(r.amount == "10.50", "numeric comes back as an exact string")
      assert(c:scalar("SELECT count(*) FROM t") == 1)
      c:tx(function()
        c:exec("INSERT INTO t (n) VALUES (1)")
        local ok = pcall(c.tx, c, function()
          c:exec("INSERT INTO t (n) VALUES (2)")
          c:exec("SELECT 1/0")
        end)
        assert(not ok)
      end)
      assert(c:scalar("SELECT string_agg(n::text, ',') FROM t WHERE n IS NOT NULL") == "1")
      local ok, e = pcall(c.query, c, "SELEC 1")
      assert(e.code == "syntax")
      assert(e.message == 'syntax error at or near "SELEC" (at line 1, column 1: SELEC 1) [SQLSTATE 42601]', e.message)
      local d = db.diff(c, c)
      assert(d.equal and d.text == "no differences")
      assert(#c:tables() == 1 and c:tables()[1] == "t")
      local cols = c:columns("t")
      assert(cols[1].name == "id" and cols[1].type == "integer" and cols[1].pk == 1 and cols[1].not_null)
      assert(cols[1].default == "nextval('t_id_seq'::regclass)", cols[1].default)
      assert(cols[2].default == db.null)
      local s = c:schema()
      assert(s.engine == "postgres" and s.tables.t.columns[7].type == "numeric")
      local fp = c:fingerprint()
      assert(#fp == 64)
      c:exec("CREATE INDEX t_s ON t (s)")
      assert(c:fingerprint() ~= fp)
      local d2 = db.diff(s, c)
      assert(d2.added.indexes[1] == "t_s", d2.text)
      assert(d2.text == "+ index t_s on t (s)", d2.text)
      local integ = c:integrity({ quick = true })
      assert(integ.ok and integ.method == "catalog", integ.summary)
    )lua") == "");
  }

  TEST_CASE("advisory locks from Lua") {
    PgCluster& pg = PgCluster::Get();
    std::string url = pg.Url(pg.CreateDatabase("lualock"));
    CHECK(RunLuaError(R"lua(
      local db = require "hoist.db"
      local a = db.open(")lua" + url + R"lua(")
      local b = db.open(")lua" + url + R"lua(")
      local v = a:lock("deploy", { timeout = 1 }, function(conn)
        local ok, e = pcall(b.lock, b, "deploy", { timeout = 0.1 }, function() end)
        assert(not ok and e.code == "lock_held", tostring(e))
        return conn:scalar("SELECT 40 + 2")
      end)
      assert(v == 42)
      assert(b:lock("deploy", function() return "free" end) == "free")
    )lua") == "");
  }

  TEST_CASE("wrong password from Lua") {
    PgCluster& pg = PgCluster::Get();
    std::string url = pg.UrlWithPassword("postgres", "N0t-The-Pass");
    std::string err = RunLuaError(R"lua(
      local db = require "hoist.db"
      db.open(")lua" + url + R"lua(")
    )lua");
    CHECK(err == "test:3: db: cannot connect to database \"postgres\" on 127.0.0.1:" + std::to_string(pg.port()) +
                     " as user \"hoist\": password authentication failed for user \"hoist\" (check the password in "
                     "the database URL or its secret)");
    CHECK(err.find("N0t-The-Pass") == std::string::npos);
  }
}

}  // namespace
}  // namespace hoist

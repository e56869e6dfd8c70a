// Integration tests of the PostgreSQL Connection against a private
// PostgreSQL 15 cluster (tests/support/pg_cluster.h): types, transactions,
// errors with SQLSTATE and position, wrong password, timeouts, schema,
// fingerprint, diff, integrity (amcheck or statement) and advisory locks.
#include "db/pg_connection.h"

#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

#include "core/interrupt.h"
#include "core/secrets.h"
#include "support/pg_cluster.h"
#include "support/support.h"

namespace hoist::db {
namespace {

using test::CatchError;
using test::PgCluster;

std::unique_ptr<Connection> Fresh(const std::string& prefix = "t", OpenOptions o = {}) {
  PgCluster& pg = PgCluster::Get();
  return Open(pg.Url(pg.CreateDatabase(prefix)), o);
}

std::string Str(const Value& v) { return std::get<std::string>(v); }

TEST_SUITE("db/postgres") {
  TEST_CASE("connect with password over TCP and with conninfo") {
    PgCluster& pg = PgCluster::Get();
    std::string db = pg.CreateDatabase("conn");
    auto c = Open(pg.Url(db));
    CHECK(c->kind() == "postgres");
    CHECK(c->redacted() == "postgres://hoist:***@127.0.0.1:" + std::to_string(pg.port()) + "/" + db);
    CHECK(c->Query("SELECT current_database()").rows[0][0] == Value(db));
    CHECK(c->Query("SELECT current_setting('application_name')").rows[0][0] == Value(std::string("hoist")));
    auto* p = dynamic_cast<PgConnection*>(c.get());
    REQUIRE(p);
    CHECK(p->server_version() / 10000 == 15);
    auto env = p->ClientEnv();
    CHECK(env["PGPASSWORD"] == PgCluster::kPassword);
    CHECK(env["PGDATABASE"] == db);
    CHECK(env["PGHOST"] == "127.0.0.1");
    auto kv = Open(pg.Conninfo(db));
    CHECK(kv->Query("SELECT 1").rows[0][0] == Value(int64_t{1}));
    CHECK(kv->redacted().find("password=***") != std::string::npos);
  }

  TEST_CASE("a wrong password names host and database but never the password") {
    PgCluster& pg = PgCluster::Get();
    std::string url = pg.UrlWithPassword("postgres", "Wr0ng-Passw0rd");
    auto e = CatchError([&] { Open(url); });
    CHECK(e.area() == "db");
    CHECK(e.code() == "auth_failed");
    CHECK(e.message() == "cannot connect to database \"postgres\" on 127.0.0.1:" + std::to_string(pg.port()) +
                             " as user \"hoist\": password authentication failed for user \"hoist\" (check the "
                             "password in the database URL or its secret)");
    CHECK(std::string(e.what()).find("Wr0ng-Passw0rd") == std::string::npos);
  }

  TEST_CASE("connection refused and missing database") {
    PgCluster& pg = PgCluster::Get();
    auto refused = CatchError([] { Open("postgres://hoist:pw-xyz@127.0.0.1:1/app"); });
    CHECK(refused.code() == "connect_failed");
    CHECK(refused.message().rfind("cannot connect to database \"app\" on 127.0.0.1:1 as user \"hoist\": ", 0) == 0);
    CHECK(refused.message().find("(is PostgreSQL running and listening there?)") != std::string::npos);
    auto missing = CatchError([&] { Open(pg.Url("no_such_db")); });
    CHECK(missing.code() == "connect_failed");
    CHECK(missing.message() == "cannot connect to database \"no_such_db\" on 127.0.0.1:" + std::to_string(pg.port()) +
                                   " as user \"hoist\": database \"no_such_db\" does not exist");
  }

  TEST_CASE("values round trip by type") {
    auto c = Fresh("types");
    c->Exec(R"sql(CREATE TABLE v (
      n integer, s smallint, i integer, b bigint, r real, d double precision, num numeric(20,5),
      t text, vc varchar(10), flag boolean, by bytea, j jsonb, ts timestamptz))sql");
    const std::string bytes("\x00\x01\xff\x7f", 4);
    const int64_t big = std::numeric_limits<int64_t>::max();
    CHECK(c->Exec("INSERT INTO v VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
                  {Null{}, int64_t{-7}, int64_t{123456}, big, 1.5, 0.1, std::string("12345.67891"),
                   std::string("h\xc3\xa9llo"), std::string("short"), true, Blob{bytes},
                   std::string("{\"a\": 1}"), std::string("2026-01-02T03:04:05Z")}) == 1);
    Result r = c->Query("SELECT * FROM v");
    REQUIRE(r.rows.size() == 1);
    const auto& row = r.rows[0];
    CHECK(r.columns[0] == "n");
    CHECK(row[0] == Value(Null{}));
    CHECK(row[1] == Value(int64_t{-7}));
    CHECK(row[2] == Value(int64_t{123456}));
    CHECK(row[3] == Value(big));
    CHECK(row[4] == Value(1.5));
    CHECK(row[5] == Value(0.1));
    CHECK(row[6] == Value(std::string("12345.67891")));  // numeric stays exact, as text
    CHECK(row[7] == Value(std::string("h\xc3\xa9llo")));
    CHECK(row[9] == Value(true));
    CHECK(row[10] == Value(Blob{bytes}));
    CHECK(row[11] == Value(std::string("{\"a\": 1}")));
    CHECK(Str(row[12]).rfind("2026-01-02 03:04:05", 0) == 0);
    CHECK(c->Query("SELECT $1::text IS NULL", {Null{}}).rows[0][0] == Value(true));
    CHECK(c->Query("SELECT $1 + 1", {int64_t{41}}).rows[0][0] == Value(int64_t{42}));
    CHECK(c->Query("SELECT $1::float8 * 2", {2.25}).rows[0][0] == Value(4.5));
    CHECK(c->Query("SELECT length($1)", {Blob{std::string()}}).rows[0][0] == Value(int64_t{0}));
    double nan = std::get<double>(c->Query("SELECT 'NaN'::float8").rows[0][0]);
    CHECK(std::isnan(nan));
    CHECK(c->Query("SELECT '-Infinity'::float8").rows[0][0] == Value(-std::numeric_limits<double>::infinity()));
    CHECK(c->Query("SELECT 1 WHERE false").rows.empty());
  }

  TEST_CASE("exec counts rows and runs scripts") {
    auto c = Fresh("exec");
    CHECK(c->Exec("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2), (3);") == 3);
    CHECK(c->Exec("UPDATE t SET x = x + 1 WHERE x > $1", {int64_t{1}}) == 2);
    CHECK(c->Exec("DELETE FROM t") == 3);
    auto e = CatchError([&] { c->Query("SELECT 1; SELECT 2"); });
    CHECK(e.code() == "invalid");
    CHECK(e.message() == "query runs one statement, but the SQL holds more: use exec for a script");
    auto x = CatchError([&] { c->Exec("INSERT INTO t VALUES ($1); INSERT INTO t VALUES (2)", {int64_t{1}}); });
    CHECK(x.code() == "invalid");
    CHECK(x.message() ==
          "exec with parameters runs one statement, but the SQL holds more: run each statement with its own exec");
  }

  TEST_CASE("errors carry SQLSTATE position detail and hint") {
    auto c = Fresh("err");
    c->Exec("CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE)");
    auto syntax = CatchError([&] { c->Query("SELECT id,\n  FROM users"); });
    CHECK(syntax.code() == "syntax");
    CHECK(syntax.message() ==
          "syntax error at or near \"FROM\" (at line 2, column 3:   FROM users) [SQLSTATE 42601]");
    auto col = CatchError([&] { c->Query("SELECT émail FROM users"); });
    CHECK(col.code() == "sql_error");
    CHECK(col.message() == "column \"émail\" does not exist (at line 1, column 8: SELECT émail FROM users) "
                           "[SQLSTATE 42703]. HINT: Perhaps you meant to reference the column \"users.email\".");
    c->Exec("INSERT INTO users (email) VALUES ($1)", {std::string("a@x")});
    auto dup = CatchError([&] { c->Exec("INSERT INTO users (email) VALUES ($1)", {std::string("a@x")}); });
    CHECK(dup.code() == "constraint");
    CHECK(dup.message() == "duplicate key value violates unique constraint \"users_email_key\" [SQLSTATE 23505]. "
                           "DETAIL: Key (email)=(a@x) already exists.");
  }

  TEST_CASE("secrets in error details are masked") {
    auto c = Fresh("mask");
    RegisterSecret("tok-9f8e7d6c");
    c->Exec("CREATE TABLE k (v text UNIQUE)");
    c->Exec("INSERT INTO k VALUES ($1)", {std::string("tok-9f8e7d6c")});
    auto e = CatchError([&] { c->Exec("INSERT INTO k VALUES ($1)", {std::string("tok-9f8e7d6c")}); });
    CHECK(e.message() == "duplicate key value violates unique constraint \"k_v_key\" [SQLSTATE 23505]. DETAIL: "
                         "Key (v)=(***) already exists.");
  }

  TEST_CASE("transactions and savepoints") {
    auto c = Fresh("tx");
    c->Exec("CREATE TABLE t (x int)");
    c->Tx([&] { c->Exec("INSERT INTO t VALUES (1)"); });
    CatchError([&] {
      c->Tx([&] {
        c->Exec("INSERT INTO t VALUES (2)");
        throw Error("test", "boom", "no");
      });
    });
    c->Tx([&] {
      c->Exec("INSERT INTO t VALUES (3)");
      CatchError([&] {
        c->Tx([&] {
          c->Exec("INSERT INTO t VALUES (4)");
          c->Exec("SELECT 1/0");  // a server error inside the savepoint
        });
      });
      c->Exec("INSERT INTO t VALUES (5)");  // the outer transaction is usable again
    });
    CHECK(c->Query("SELECT string_agg(x::text, ',' ORDER BY x) FROM t").rows[0][0] ==
          Value(std::string("1,3,5")));
    CHECK(c->tx_depth() == 0);
  }

  TEST_CASE("lock timeout and statement timeout") {
    PgCluster& pg = PgCluster::Get();
    std::string db = pg.CreateDatabase("timeouts");
    OpenOptions o;
    o.lock_timeout = 0.2;
    auto a = Open(pg.Url(db));
    auto b = Open(pg.Url(db), o);
    a->Exec("CREATE TABLE t (x int)");
    a->Tx([&] {
      a->Exec("LOCK TABLE t IN ACCESS EXCLUSIVE MODE");
      auto e = CatchError([&] { b->Exec("ALTER TABLE t ADD COLUMN y int"); });
      CHECK(e.code() == "busy");
      CHECK(e.message() == "canceling statement due to lock timeout (another session holds a conflicting lock; "
                           "lock_timeout is 0.2 s: find the holder in pg_stat_activity, or raise lock_timeout with "
                           "conn:timeouts{...}) [SQLSTATE 55P03]");
    });
    b->SetTimeouts({5, 0.1});
    auto s = CatchError([&] { b->Query("SELECT pg_sleep(5)"); });
    CHECK(s.code() == "timeout");
    CHECK(s.message() == "canceling statement due to statement timeout (statement_timeout is 0.1 s) [SQLSTATE 57014]");
    CHECK(b->Query("SELECT current_setting('statement_timeout')").rows[0][0] == Value(std::string("100ms")));
    b->SetTimeouts({5, 0});
    // A step deadline cancels the running query on the server.
    auto start = std::chrono::steady_clock::now();
    DeadlineScope deadline(std::chrono::milliseconds(200));
    auto d = CatchError([&] { b->Query("SELECT pg_sleep(10)"); });
    CHECK(d.code() == "timeout");
    CHECK(d.message() == "step timeout reached during: SELECT pg_sleep(10)");
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));
  }

  TEST_CASE("tables columns schema and fingerprint") {
    auto c = Fresh("schema");
    c->Exec(R"sql(
      CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name varchar(50) DEFAULT 'anon');
      CREATE TABLE orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE, total numeric(10,2) NOT NULL DEFAULT 0);
      CREATE INDEX orders_user_idx ON orders (user_id);
      CREATE UNIQUE INDEX users_lower_email ON users (lower(email)) WHERE name IS NOT NULL;
      CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;
      CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
      CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION noop();
      CREATE SCHEMA audit;
      CREATE TABLE audit.log (id int);
    )sql");
    CHECK(c->Tables() == std::vector<std::string>{"audit.log", "orders", "users"});
    auto cols = c->Columns("users");
    REQUIRE(cols.size() == 3);
    CHECK(cols[0].type == "bigint");
    CHECK(cols[0].pk == 1);
    CHECK(cols[0].default_value == std::optional<std::string>("nextval('users_id_seq'::regclass)"));
    CHECK(cols[2].type == "character varying(50)");
    CHECK(cols[2].default_value == std::optional<std::string>("'anon'::character varying"));
    auto e = CatchError([&] { c->Columns("nope"); });
    CHECK(e.code() == "not_found");
    CHECK(e.message().rfind("no table \"nope\" in database \"schema_", 0) == 0);
    CHECK(e.message().find("(tables: audit.log, orders, users)") != std::string::npos);

    Schema s = c->ReadSchema();
    CHECK(s.engine == "postgres");
    REQUIRE(s.tables.size() == 3);
    const TableInfo& orders = s.tables[1];
    CHECK(orders.columns[0].default_value == std::optional<std::string>("generated always as identity"));
    REQUIRE(orders.foreign_keys.size() == 1);
    CHECK(orders.foreign_keys[0].name == "orders_user_id_fkey");
    CHECK(orders.foreign_keys[0].ref_table == "users");
    CHECK(orders.foreign_keys[0].on_delete == "CASCADE");
    REQUIRE(orders.indexes.size() == 1);
    CHECK(orders.indexes[0].method == "btree");
    const TableInfo& users = s.tables[2];
    REQUIRE(users.uniques.size() == 1);
    CHECK(users.uniques[0].name == "users_email_key");
    REQUIRE(users.indexes.size() == 1);
    CHECK(users.indexes[0].columns == std::vector<std::string>{"lower(email)"});
    CHECK(users.indexes[0].unique);
    CHECK(users.indexes[0].where == "name is not null");
    REQUIRE(s.views.size() == 1);
    CHECK(s.views[0].name == "big_orders");
    REQUIRE(s.triggers.size() == 1);
    CHECK(s.triggers[0].table == "users");

    // Same schema created in another order with other whitespace.
    auto d = Fresh("schema2");
    d->Exec(R"sql(
      create schema audit; create table audit.log (id int);
      CREATE TABLE users (id bigserial PRIMARY KEY,
                          email text NOT NULL UNIQUE,
                          name varchar(50) DEFAULT 'anon');
      CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
      CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION noop();
      CREATE UNIQUE INDEX users_lower_email ON users (lower(email)) WHERE name IS NOT NULL;
      CREATE TABLE orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        total numeric(10,2) NOT NULL DEFAULT 0);
      CREATE VIEW big_orders AS
        SELECT id, total
        FROM orders WHERE total > 100;
      CREATE INDEX orders_user_idx ON orders (user_id);
      INSERT INTO users (email) VALUES ('x@y');
    )sql");
    CHECK(c->Fingerprint() == d->Fingerprint());
    CHECK(Diff(c->ReadSchema(), d->ReadSchema()).empty());

    d->Exec(R"sql(
      ALTER TABLE users ADD COLUMN phone text;
      DROP VIEW big_orders;
      ALTER TABLE orders ALTER COLUMN total TYPE numeric(12,2);
      DROP INDEX orders_user_idx;
      CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 500;
      DROP TABLE audit.log;
    )sql");
    CHECK(c->Fingerprint() != d->Fingerprint());
    CHECK(Diff(c->ReadSchema(), d->ReadSchema()).Text() ==
          "- table audit.log\n"
          "~ column orders.total: type numeric(10,2) -> numeric(12,2)\n"
          "- index orders_user_idx on orders (user_id)\n"
          "+ column users.phone text\n"
          "~ view big_orders: definition changed");
  }

  TEST_CASE("integrity without amcheck states what was checked") {
    auto c = Fresh("integ");
    c->Exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;");
    IntegrityReport r = c->Integrity(false);
    CHECK(r.ok);
    CHECK(r.engine == "postgres");
    CHECK(r.method == "catalog");
    CHECK(r.checked == std::vector<std::string>{"no index is left invalid (pg_index.indisvalid)",
                                                "every page of 1 tables is readable (full scan)",
                                                "index structure was NOT verified (amcheck unavailable)"});
    CHECK(r.notes == std::vector<std::string>{
                         "data_checksums=off",
                         "amcheck is available but not created in this database: run CREATE EXTENSION amcheck (as a "
                         "superuser) so integrity() also verifies every B-tree index"});
  }

  TEST_CASE("integrity with amcheck and an invalid index") {
    auto c = Fresh("amcheck");
    c->Exec("CREATE EXTENSION amcheck; CREATE TABLE t (id int, v text);"
            "INSERT INTO t SELECT g % 10, 'v' FROM generate_series(1, 100) g; CREATE INDEX t_v ON t (v);");
    IntegrityReport q = c->Integrity(true);
    CHECK(q.ok);
    CHECK(q.method == "amcheck");
    REQUIRE(q.checked.size() == 2);
    CHECK(q.checked[1].rfind("the B-tree structure of ", 0) == 0);
    CHECK(q.checked[1].find(" indexes (amcheck bt_index_check)") != std::string::npos);
    IntegrityReport full = c->Integrity(false);
    CHECK(full.ok);
    CHECK(full.checked[1].find("and that every table row is present in them (heapallindexed)") != std::string::npos);
    // A failed CREATE UNIQUE INDEX CONCURRENTLY leaves an invalid index behind.
    CatchError([&] { c->Exec("CREATE UNIQUE INDEX CONCURRENTLY t_id_uniq ON t (id)"); });
    IntegrityReport bad = c->Integrity(true);
    CHECK_FALSE(bad.ok);
    CHECK(bad.problems == std::vector<std::string>{
                              "index t_id_uniq on t is invalid (left by a failed CREATE INDEX CONCURRENTLY or "
                              "REINDEX?): DROP INDEX CONCURRENTLY t_id_uniq and create it again"});
  }

  TEST_CASE("advisory lock contention and timeout") {
    PgCluster& pg = PgCluster::Get();
    std::string db = pg.CreateDatabase("lock");
    auto a = Open(pg.Url(db));
    auto b = Open(pg.Url(db));
    bool ran = false;
    a->Lock("migrate", {1, 60, "web-1:100"}, [&] {
      auto start = std::chrono::steady_clock::now();
      auto e = CatchError([&] { b->Lock("migrate", {0.3, 60, "web-2:200"}, [] { FAIL("must not run"); }); });
      double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      CHECK(waited >= 0.29);
      CHECK(waited < 3);
      CHECK(e.code() == "lock_held");
      CHECK(e.message().rfind("lock \"migrate\" is held by PostgreSQL session pid ", 0) == 0);
      CHECK(e.message().find("(application \"hoist lock migrate by web-1:100\", user hoist, from 127.0.0.1, "
                             "connected since ") != std::string::npos);
      CHECK(e.message().find("(waited 0.3 s on database \"" + db + "\" on 127.0.0.1:" + std::to_string(pg.port()) +
                             "; the server releases it when that session ends)") != std::string::npos);
      // The lock lives on its own session: a transaction on the main one is unaffected.
      a->Tx([&] { a->Exec("SELECT 1"); });
      b->Lock("other", {0, 60, ""}, [&] { ran = true; });
    });
    CHECK(ran);
    b->Lock("migrate", {0, 60, ""}, [] {});
    CHECK(a->Query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").rows[0][0] == Value(int64_t{0}));
  }

  TEST_CASE("advisory lock released on failure and when the holder disconnects") {
    PgCluster& pg = PgCluster::Get();
    std::string db = pg.CreateDatabase("lock2");
    auto a = Open(pg.Url(db));
    auto e = CatchError([&] { a->Lock("x", {}, [] { throw Error("test", "boom", "inside"); }); });
    CHECK(e.message() == "inside");
    a->Lock("x", {0, 60, ""}, [] {});
    // A holder whose session is killed loses the lock: reported after fn.
    auto lost = CatchError([&] {
      a->Lock("y", {0, 60, ""}, [&] {
        pg.Psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'hoist lock y%'",
                db);
      });
    });
    CHECK(lost.code() == "lock_lost");
    CHECK(lost.message().rfind("lock \"y\" was lost while held: its session on database \"" + db, 0) == 0);
  }

  TEST_CASE("closed connection") {
    auto c = Fresh("closed");
    c->Close();
    c->Close();
    auto e = CatchError([&] { c->Query("SELECT 1"); });
    CHECK(e.code() == "closed");
    CHECK(e.message().find("is closed") != std::string::npos);
  }
}

}  // namespace
}  // namespace hoist::db

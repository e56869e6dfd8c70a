// Tests for db/schema on real SQLite databases: the normalized schema, the
// fingerprint's insensitivity to whitespace and object order, the JSON
// round trip, and the structured and rendered diff.
#include "db/schema.h"

#include <doctest/doctest.h>

#include "db/connection.h"
#include "support/support.h"

namespace hoist::db {
namespace {

using test::CatchError;

std::unique_ptr<Connection> Memory() { return Open("sqlite::memory:"); }

constexpr const char* kSchemaA = R"sql(
CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  name VARCHAR(50) DEFAULT 'anon',
  created_at REAL
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  total NUMERIC NOT NULL DEFAULT 0
);
CREATE INDEX orders_user_idx ON orders (user_id);
CREATE INDEX users_lower_email ON users (lower(email)) WHERE created_at IS NOT NULL;
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;
CREATE TRIGGER users_audit AFTER DELETE ON users BEGIN DELETE FROM orders WHERE user_id = old.id; END;
)sql";

// The same schema: other order, other whitespace, other keyword case, comments.
constexpr const char* kSchemaAReordered = R"sql(
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,
                    name   VARCHAR( 50 )   DEFAULT 'anon', created_at REAL);
create trigger users_audit after delete on users
begin
  delete from orders where user_id = old.id;   -- cascade by hand
end;
CREATE INDEX users_lower_email ON users(lower( email )) WHERE created_at IS NOT NULL;
CREATE TABLE orders (id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE, total NUMERIC NOT NULL DEFAULT 0);
create view big_orders as
  select id,
         total
  from orders /* the big ones */ where total>100;
CREATE INDEX orders_user_idx ON orders(user_id);
)sql";

TEST_SUITE("db/schema") {
  TEST_CASE("NormalizeSql collapses whitespace and case but keeps literals") {
    CHECK(NormalizeSql("SELECT  a ,\n b FROM  t") == "select a,b from t");
    CHECK(NormalizeSql("select a, b from t -- note\n where x = 'A  B'") == "select a,b from t where x='A  B'");
    CHECK(NormalizeSql("SELECT \"Mixed Case\" FROM [T 1] /* c */ ;") == "select \"Mixed Case\" from [T 1]");
    CHECK(NormalizeSql("SELECT 'it''s'") == "select 'it''s'");
    CHECK(NormalizeSql("SELECT a - -1") == "select a- -1");
    CHECK(NormalizeSql("CREATE FUNCTION f() AS $body$ SELECT  1 $body$") == "create function f()as $body$ SELECT  1 $body$");
  }

  TEST_CASE("schema of a SQLite database") {
    auto c = Memory();
    c->Exec(kSchemaA);
    Schema s = c->ReadSchema();
    CHECK(s.engine == "sqlite");
    REQUIRE(s.tables.size() == 2);
    const TableInfo& orders = s.tables[0];
    CHECK(orders.name == "orders");
    REQUIRE(orders.columns.size() == 3);
    CHECK(orders.columns[0].name == "id");
    CHECK(orders.columns[0].type == "integer");
    CHECK(orders.columns[0].pk == 1);
    CHECK(orders.columns[2].default_value == std::optional<std::string>("0"));
    REQUIRE(orders.foreign_keys.size() == 1);
    CHECK(orders.foreign_keys[0].columns == std::vector<std::string>{"user_id"});
    CHECK(orders.foreign_keys[0].ref_table == "users");
    CHECK(orders.foreign_keys[0].ref_columns == std::vector<std::string>{"id"});
    CHECK(orders.foreign_keys[0].on_delete == "CASCADE");
    CHECK(orders.foreign_keys[0].on_update == "NO ACTION");
    REQUIRE(orders.indexes.size() == 1);
    CHECK(orders.indexes[0].name == "orders_user_idx");
    CHECK(orders.indexes[0].columns == std::vector<std::string>{"user_id"});

    const TableInfo& users = s.tables[1];
    CHECK(users.columns[1].not_null);
    CHECK(users.columns[2].type == "varchar(50)");
    CHECK(users.columns[2].default_value == std::optional<std::string>("'anon'"));
    CHECK_FALSE(users.columns[3].default_value.has_value());
    REQUIRE(users.uniques.size() == 1);
    CHECK(users.uniques[0].columns == std::vector<std::string>{"email"});
    REQUIRE(users.indexes.size() == 1);
    CHECK(users.indexes[0].columns == std::vector<std::string>{"lower(email)"});
    CHECK(users.indexes[0].where == "created_at is not null");

    REQUIRE(s.views.size() == 1);
    CHECK(s.views[0].sql == "create view big_orders as select id,total from orders where total>100");
    REQUIRE(s.triggers.size() == 1);
    CHECK(s.triggers[0].table == "users");
  }

  TEST_CASE("fingerprint ignores whitespace and object order") {
    auto a = Memory();
    auto b = Memory();
    a->Exec(kSchemaA);
    b->Exec(kSchemaAReordered);
    CHECK(a->Fingerprint() == b->Fingerprint());
    CHECK(a->Fingerprint().size() == 64);
    CHECK(Diff(a->ReadSchema(), b->ReadSchema()).empty());

    b->Exec("ALTER TABLE users ADD COLUMN phone TEXT");
    CHECK(a->Fingerprint() != b->Fingerprint());
  }

  TEST_CASE("fingerprint ignores data and hoist's lock table") {
    auto c = Memory();
    c->Exec(kSchemaA);
    std::string before = c->Fingerprint();
    c->Exec("INSERT INTO users (email) VALUES ('a@example.com')");
    c->Exec("CREATE TABLE hoist_locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, token TEXT NOT NULL, "
            "acquired_at REAL NOT NULL, expires_at REAL NOT NULL)");
    CHECK(c->Fingerprint() == before);
  }

  TEST_CASE("JSON round trip") {
    auto c = Memory();
    c->Exec(kSchemaA);
    Schema s = c->ReadSchema();
    json j = SchemaToJson(s);
    CHECK(j["tables"]["users"]["columns"][2]["default"] == "'anon'");
    CHECK(j["tables"]["users"]["columns"][3]["default"].is_null());
    CHECK(SchemaFromJson(j) == s);
    CHECK(Fingerprint(SchemaFromJson(j)) == Fingerprint(s));
  }

  TEST_CASE("SchemaFromJson rejects malformed tables") {
    CHECK(CatchError([] { SchemaFromJson(json::array()); }).message() ==
          "schema: (root): expected a schema table as returned by conn:schema()");
    json j = {{"tables", {{"users", {{"columns", {{{"type", "text"}}}}}}}}};
    CHECK(CatchError([&] { SchemaFromJson(j); }).message() == "schema: tables.users.columns[1].name: missing");
    json k = {{"tables", {{"users", {{"columns", {{{"name", "id"}, {"not_null", "yes"}}}}}}}}};
    CHECK(CatchError([&] { SchemaFromJson(k); }).message() ==
          "schema: tables.users.columns[1].not_null: expected a boolean");
  }

  TEST_CASE("diff of added dropped and changed objects") {
    auto a = Memory();
    auto b = Memory();
    a->Exec(kSchemaA);
    a->Exec("CREATE TABLE legacy (x INTEGER)");
    b->Exec(kSchemaA);
    b->Exec(R"sql(
      DROP VIEW big_orders;
      CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 500;
      DROP TRIGGER users_audit;
      DROP INDEX orders_user_idx;
      CREATE INDEX orders_user_idx ON orders (user_id, total);
      CREATE INDEX orders_total_idx ON orders (total);
      ALTER TABLE users ADD COLUMN phone TEXT NOT NULL DEFAULT '';
      CREATE TABLE payments (id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(id));
      CREATE VIEW recent AS SELECT * FROM orders;
    )sql");
    SchemaDiff d = Diff(a->ReadSchema(), b->ReadSchema());
    CHECK(d.Text() ==
          "- table legacy\n"
          "+ index orders_total_idx on orders (total)\n"
          "~ index orders_user_idx on orders: columns (user_id) -> (user_id, total)\n"
          "+ table payments (id, order_id)\n"
          "+ column users.phone text NOT NULL DEFAULT ''\n"
          "~ view big_orders: definition changed\n"
          "+ view recent\n"
          "- trigger users_audit on users");
    json j = d.ToJson();
    CHECK(j["equal"] == false);
    CHECK(j["added"]["tables"] == json{"payments"});
    CHECK(j["dropped"]["tables"] == json{"legacy"});
    CHECK(j["added"]["columns"] == json{"users.phone"});
    CHECK(j["added"]["indexes"] == json{"orders_total_idx"});
    CHECK(j["changed"]["indexes"] == json{"orders_user_idx"});
    CHECK(j["changed"]["views"] == json{"big_orders"});
    CHECK(j["added"]["views"] == json{"recent"});
    CHECK(j["dropped"]["triggers"] == json{"users_audit"});
    CHECK(j["changes"].size() == 8);
    CHECK(j["changes"][2]["detail"] == "columns (user_id) -> (user_id, total)");
  }

  TEST_CASE("diff of columns constraints and foreign keys") {
    Schema a, b;
    a.engine = b.engine = "sqlite";
    TableInfo t;
    t.name = "t";
    t.columns = {{"id", "integer", true, std::nullopt, 1}, {"name", "text", false, std::nullopt, 0},
                 {"old", "text", false, std::nullopt, 0}};
    t.uniques = {{"", {"name"}}};
    t.foreign_keys = {{"", {"id"}, "p", {"id"}, "NO ACTION", "NO ACTION"}};
    a.tables = {t};
    t.columns = {{"id", "integer", true, std::nullopt, 1}, {"name", "varchar(50)", true, "'x'", 0}};
    t.uniques = {{"", {"id", "name"}}};
    t.foreign_keys = {{"", {"id"}, "p", {"id"}, "NO ACTION", "CASCADE"}};
    b.tables = {t};
    SchemaDiff d = Diff(a, b);
    CHECK(d.Text() ==
          "~ column t.name: type text -> varchar(50), null nullable -> NOT NULL, default none -> 'x'\n"
          "- column t.old\n"
          "+ unique t (id, name)\n"
          "- unique t (name)\n"
          "~ foreign key t (id) -> p(id): on delete NO ACTION -> CASCADE");
    json j = d.ToJson();
    CHECK(j["changed"]["columns"] == json{"t.name"});
    CHECK(j["dropped"]["columns"] == json{"t.old"});
    CHECK(j["added"]["uniques"] == json{"t(id, name)"});
    CHECK(j["changed"]["foreign_keys"] == json{"t(id) -> p(id)"});
  }

  TEST_CASE("diff reports column order") {
    auto a = Memory();
    auto b = Memory();
    a->Exec("CREATE TABLE t (a INTEGER, b INTEGER)");
    b->Exec("CREATE TABLE t (b INTEGER, a INTEGER)");
    CHECK(Diff(a->ReadSchema(), b->ReadSchema()).Text() == "~ table t: column order (a, b) -> (b, a)");
    CHECK(Diff(a->ReadSchema(), a->ReadSchema()).Text() == "no differences");
  }
}

}  // namespace
}  // namespace hoist::db

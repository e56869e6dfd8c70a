// The SQL splitter against the constructs that break naive ';' splitting.
#include "db/sql_split.h"

#include "support/support.h"

namespace hoist::db {
namespace {

std::vector<std::string> Sqls(std::string_view script, Dialect d) {
  std::vector<std::string> out;
  for (auto& s : SplitSql(script, d)) out.push_back(s.sql);
  return out;
}

TEST_SUITE("migrate/sql_split") {

TEST_CASE("plain statements with lines") {
  auto st = SplitSql("CREATE TABLE a(x);\n\n  INSERT INTO a VALUES (1);\n-- trailing comment\n", Dialect::kSqlite);
  REQUIRE(st.size() == 2);
  CHECK(st[0].sql == "CREATE TABLE a(x)");
  CHECK(st[0].line == 1);
  CHECK(st[1].sql == "INSERT INTO a VALUES (1)");
  CHECK(st[1].line == 3);
}

TEST_CASE("semicolons inside strings identifiers and comments do not split") {
  auto v = Sqls("INSERT INTO t VALUES ('a;b', 'it''s; fine');\n"
                "SELECT \"odd;name\" FROM t; -- a comment; with semicolons\n"
                "/* block; comment */ SELECT 1;",
                Dialect::kPostgres);
  REQUIRE(v.size() == 3);
  CHECK(v[0] == "INSERT INTO t VALUES ('a;b', 'it''s; fine')");
  CHECK(v[1] == "SELECT \"odd;name\" FROM t");
  CHECK(v[2] == "SELECT 1");
}

TEST_CASE("a last statement without a semicolon is kept and empty ones dropped") {
  CHECK(Sqls(";; SELECT 1;;\n SELECT 2", Dialect::kSqlite) == std::vector<std::string>{"SELECT 1", "SELECT 2"});
  CHECK(Sqls("-- only a comment\n", Dialect::kSqlite).empty());
}

TEST_CASE("PostgreSQL dollar quoting keeps function bodies whole") {
  auto v = Sqls("CREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n  NEW.x := 1; RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n"
                "CREATE FUNCTION g() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
                "SELECT $1, price$ FROM t;",
                Dialect::kPostgres);
  REQUIRE(v.size() == 3);
  CHECK(v[0].find("NEW.x := 1; RETURN NEW;") != std::string::npos);
  CHECK(v[0].ends_with("LANGUAGE plpgsql"));
  CHECK(v[1] == "CREATE FUNCTION g() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql");
  CHECK(v[2] == "SELECT $1, price$ FROM t");
}

TEST_CASE("PostgreSQL BEGIN ATOMIC bodies stay whole") {
  auto v = Sqls("CREATE FUNCTION h(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT a + 1; SELECT CASE WHEN a > 0 "
                "THEN 1 ELSE 0 END; END;\nSELECT 2;",
                Dialect::kPostgres);
  REQUIRE(v.size() == 2);
  CHECK(v[0].ends_with("ELSE 0 END; END"));
}

TEST_CASE("SQLite trigger bodies stay whole even with CASE ... END inside") {
  auto v = Sqls("CREATE TRIGGER t_audit AFTER UPDATE ON t BEGIN\n"
                "  INSERT INTO audit VALUES (CASE WHEN new.x > 0 THEN 'pos' ELSE 'neg' END);\n"
                "  UPDATE t SET y = 1 WHERE id = new.id;\n"
                "END;\n"
                "CREATE TEMP TRIGGER tt BEFORE DELETE ON t BEGIN SELECT RAISE(ABORT, 'no; way'); END;\n"
                "BEGIN; SELECT 1; END;",
                Dialect::kSqlite);
  REQUIRE(v.size() == 5);
  CHECK(v[0].ends_with("WHERE id = new.id;\nEND"));
  CHECK(v[1] == "CREATE TEMP TRIGGER tt BEFORE DELETE ON t BEGIN SELECT RAISE(ABORT, 'no; way'); END");
  CHECK(v[2] == "BEGIN");
  CHECK(v[3] == "SELECT 1");
  CHECK(v[4] == "END");
}

TEST_CASE("SQLite bracket and backtick identifiers") {
  CHECK(Sqls("SELECT [a;b], `c;d` FROM t; SELECT 1", Dialect::kSqlite) ==
        std::vector<std::string>{"SELECT [a;b], `c;d` FROM t", "SELECT 1"});
}

TEST_CASE("unterminated quotes are errors with the line") {
  auto e = test::CatchError([] { SplitSql("SELECT 1;\nSELECT 'oops;\n", Dialect::kSqlite); });
  CHECK(e.message() == "unterminated string starting on line 2");
  CHECK(test::CatchError([] { SplitSql("SELECT $$ never closed", Dialect::kPostgres); }).message() ==
        "unterminated dollar-quoted string starting on line 1");
  CHECK(test::CatchError([] { SplitSql("/* open\n\n", Dialect::kPostgres); }).message() ==
        "unterminated block comment starting on line 1");
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::db

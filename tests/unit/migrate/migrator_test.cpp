// The migrator on SQLite: the shared scenarios of migrate_cases.h (the same
// ones run on PostgreSQL in tests/integration/migrate), plus what only
// SQLite has: the in-memory schema rebuild behind the per-migration check.
#include "db/migrate_classify.h"
#include "db/migrate_schema.h"
#include "unit/migrate/migrate_cases.h"

namespace hoist::test::migrate {
namespace {

Backend Sqlite() {
  static TempDir dir("migrate-sqlite");
  static int n = 0;
  return {"sqlite", [] { return "sqlite://" + dir.path + "/db" + std::to_string(++n) + ".db"; }};
}

TEST_SUITE("migrate/sqlite") {

TEST_CASE("apply rollback and re-apply round trip") { CaseRoundTrip(Sqlite()); }
TEST_CASE("a changed file is detected by validate and refused by up") { CaseChangedFile(Sqlite()); }
TEST_CASE("blanks at the end of a line inside a string literal are kept, up and down") {
  CaseSectionsVerbatim(Sqlite());
}
TEST_CASE("down works after the migration files are deleted") { CaseDownWithoutFiles(Sqlite()); }
TEST_CASE("a failing migration leaves the previous version and is recorded as failed") {
  CaseFailingMigration(Sqlite());
}
TEST_CASE("policy expand refuses destructive and incompatible migrations inside their transaction") {
  CaseExpandPolicy(Sqlite());
}
TEST_CASE("baseline of a database that predates hoist") { CaseBaseline(Sqlite()); }
TEST_CASE("import of EF Core alembic and plain migrations tables") { CaseImports(Sqlite()); }
TEST_CASE("lint classifies a matrix of statement kinds") { CaseLintMatrix(Sqlite()); }
TEST_CASE("lint reports phase disagreements and fails-on-data with the statement") { CaseLintReport(Sqlite()); }

TEST_CASE("the per-migration schema check sees what a full schema read sees") {
  // The probe rebuilds only touched tables in memory; its diff must equal
  // the diff of two full ReadSchema() calls.
  const std::vector<std::string> changes = {
      "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p)",
      "ALTER TABLE p ADD COLUMN extra TEXT DEFAULT 'x'",
      "CREATE UNIQUE INDEX p_name ON p (name)",
      "DROP INDEX p_n",
      "ALTER TABLE p RENAME COLUMN name TO label",
      "ALTER TABLE q RENAME TO q2",
      "DROP VIEW pv",
      "CREATE VIEW pv2 AS SELECT id FROM p",
      "DROP TRIGGER p_t",
      "CREATE TRIGGER q_t AFTER INSERT ON q BEGIN SELECT 1; END",
      "ALTER TABLE q DROP COLUMN v",
      "CREATE TABLE p2 (id INTEGER PRIMARY KEY, name TEXT NOT NULL, x INTEGER);"
      "INSERT INTO p2 (id, name) SELECT id, name FROM p; DROP VIEW pv; DROP TABLE p; ALTER TABLE p2 RENAME TO p",
  };
  for (const auto& sql : changes) {
    CAPTURE(sql);
    TempDir d("probe");
    auto c = OpenDb("sqlite://" + d.path + "/x.db");
    c->Exec("CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT NOT NULL); CREATE INDEX p_n ON p (name);"
            "CREATE TABLE q (id INTEGER PRIMARY KEY, v INTEGER); CREATE VIEW pv AS SELECT * FROM p;"
            "CREATE TRIGGER p_t AFTER INSERT ON p BEGIN SELECT 1; END;"
            "CREATE TABLE untouched (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id))");
    db::SchemaProbe probe(*c);
    auto full_before = c->ReadSchema();
    auto before = probe.Take();
    c->Exec(sql);
    auto after = probe.Take();
    auto full_after = c->ReadSchema();
    CHECK(before.cookie != after.cookie);
    auto cmp = probe.Compare(before, after);
    CHECK(cmp.diff.Text() == db::Diff(full_before, full_after).Text());
    auto a = db::Classify(cmp.before, cmp.after, cmp.diff, {});
    auto b = db::Classify(full_before, full_after, db::Diff(full_before, full_after), {});
    CHECK(a.Summary() == b.Summary());
  }
}

TEST_CASE("statement text alone classifies no-transaction migrations") {
  auto cls = [](const char* sql) {
    auto c = db::ClassifyStatementText(sql);
    return c ? std::string(db::ClassName(c->cls)) + ": " + c->what : std::string("none");
  };
  CHECK(cls("DROP TABLE IF EXISTS public.users") == "destructive: drop table users");
  CHECK(cls("alter table \"Users\" drop column \"Email\"") == "destructive: drop column Users.Email");
  CHECK(cls("ALTER TABLE users ALTER COLUMN name SET NOT NULL") == "incompatible: add NOT NULL to a column of users");
  CHECK(cls("ALTER TABLE users ALTER COLUMN age TYPE bigint") == "incompatible: change a column type of users");
  CHECK(cls("ALTER TABLE users RENAME COLUMN a TO b") == "incompatible: rename column users.a to b");
  CHECK(cls("ALTER TABLE users RENAME TO people") == "incompatible: rename table users to people");
  CHECK(cls("ALTER TABLE users ADD COLUMN x int NOT NULL") ==
        "incompatible: add a NOT NULL column without a default to users");
  CHECK(cls("ALTER TABLE users ADD COLUMN x int NOT NULL DEFAULT 0") == "none");
  CHECK(cls("ALTER TABLE users ADD CONSTRAINT u UNIQUE (email)") == "incompatible: add a unique constraint to users");
  CHECK(cls("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (name)") == "none");
  CHECK(cls("CREATE UNIQUE INDEX CONCURRENTLY i ON users (email)") == "incompatible: create a unique index");
  CHECK(cls("DROP INDEX CONCURRENTLY i") == "none");
  CHECK(cls("TRUNCATE TABLE audit") == "destructive: truncate audit");
  CHECK(cls("DELETE FROM audit") == "destructive: delete every row of audit");
  CHECK(cls("DELETE FROM audit WHERE at < now() - interval '30 days'") == "none");
  CHECK(cls("-- a comment naming DROP TABLE x\nUPDATE t SET a = 'DROP TABLE y'") == "none");
}

TEST_CASE("migrating an in-memory database needs no lock file") {
  auto c = OpenDb("sqlite::memory:");
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  CHECK(db::Up(*c, m.path(), {}).applied.size() == 1);
  CHECK(*db::Status(*c, m.path()).current == 1);
}

TEST_CASE("a Lua migration needs the Lua runtime") {
  TempDir d("nolua");
  auto c = OpenDb("sqlite://" + d.path + "/x.db");
  Migs m;
  m.Write("0001_seed.lua", "return { up = function(db) end }\n");
  auto e = CatchError([&] { db::Up(*c, m.path(), Any()); });
  CHECK(e.code() == "needs_lua");
  CHECK(e.message() ==
        "0001_seed.lua is a Lua migration: apply it from a playbook (require \"hoist.migrate\"), which runs Lua");
  CHECK(db::Status(*c, m.path()).Labels("pending") == std::vector<std::string>{"0001_seed.lua"});
}

TEST_CASE("out-of-order and missing migrations need permission") {
  TempDir d("order");
  auto c = OpenDb("sqlite://" + d.path + "/x.db");
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  m.Write("0003_add_index.sql", "CREATE TABLE later (id INTEGER);\n");
  db::Up(*c, m.path(), Any());
  m.Write("0002_add_email.sql", kAddEmail);  // merged from a branch after 0003 ran
  auto st = db::Status(*c, m.path());
  CHECK(st.Labels("out_of_order") == std::vector<std::string>{"0002_add_email.sql"});
  auto e = CatchError([&] { db::Up(*c, m.path(), Any()); });
  CHECK(e.code() == "out_of_order");
  CHECK(e.message() == "0002_add_email.sql is pending but older than the current version 3 (it was added after later "
                       "migrations were applied): renumber it above 3, or apply it with allow_out_of_order = true");
  auto o = Any();
  o.allow_out_of_order = true;
  CHECK(db::Up(*c, m.path(), o).applied.size() == 1);
  m.Remove("0003_add_index.sql");
  CHECK(CatchError([&] { db::Up(*c, m.path(), Any()); }).code() == "missing");
  o.allow_missing = true;
  CHECK(db::Up(*c, m.path(), o).applied.empty());
}

TEST_CASE("a failed no-transaction migration blocks until repair drops its record") {
  TempDir d("notx");
  auto c = OpenDb("sqlite://" + d.path + "/x.db");
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  m.Write("0002_two.sql", "-- hoist:no-transaction\n-- hoist:up\nCREATE TABLE a (id INTEGER);\nCREATE TABLE a (id "
                          "INTEGER);\n");
  auto e = CatchError([&] { db::Up(*c, m.path(), Any()); });
  CHECK(e.code() == "failed");
  CHECK(e.message() ==
        "0002_two.sql failed at statement 2 (line 4: CREATE TABLE a (id INTEGER)): table a already exists (at line 1, "
        "column 14: CREATE TABLE a (id INTEGER)). It runs without a transaction (-- hoist:no-transaction): statement 1 "
        "stays applied; it is recorded as failed and "
        "blocks further migrations until you check the database and drop the record with migrate.repair(db, { "
        "reason = \"...\" }); the database is at version 1");
  CHECK(HasTable(*c, "a"));
  auto blocked = CatchError([&] { db::Up(*c, m.path(), Any()); });
  CHECK(blocked.code() == "partial");
  CHECK(blocked.message().rfind("0002_two.sql failed part-way on ", 0) == 0);
  m.Write("0002_two.sql", "-- hoist:no-transaction\n-- hoist:up\nCREATE TABLE IF NOT EXISTS a (id INTEGER);\n");
  auto r = db::Repair(*c, {.dir = m.path(), .reason = "dropped the half-made table by hand"});
  CHECK(r.dropped == std::vector<std::string>{"0002_two.sql"});
  CHECK(db::Up(*c, m.path(), Any()).applied.size() == 1);
}

TEST_CASE("lint leaves no copy behind and says what it rehearsed on") {
  TempDir d("lintcopy");
  TempDir scratch("lintscratch");
  auto c = OpenDb("sqlite://" + d.path + "/x.db");
  c->Exec("PRAGMA journal_mode = wal");
  c->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  Migs m;
  m.Write("0001_add.sql", "ALTER TABLE t ADD COLUMN v TEXT;\n");
  db::LintOptions o;
  o.scratch_dir = scratch.path;
  auto r = db::Lint(*c, m.path(), o);
  CHECK(r.ok());
  CHECK(r.sandbox.rfind("an online backup copy in " + scratch.path + "/hoist-lint-", 0) == 0);
  CHECK(std::filesystem::is_empty(scratch.path));
  CHECK_FALSE(HasColumn(*c, "t", "v"));
  CHECK(r.Text() == "0001_add.sql  additive       -         add column t.v\n");
  // Nothing pending: nothing to copy.
  db::Up(*c, m.path(), {});
  CHECK(db::Lint(*c, m.path(), o).sandbox == "none (nothing pending)");
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test::migrate

// The migrator on a real PostgreSQL (the private test cluster): the same
// scenarios as the SQLite unit tests, the lint matrix on PostgreSQL, and
// several migrator processes (including a no-transaction CREATE INDEX
// CONCURRENTLY) and a SIGKILLed one.
#include "support/pg_cluster.h"
#include "unit/migrate/migrate_cases.h"

namespace hoist::test::migrate {
namespace {

Backend Postgres() {
  return {"postgres", [] {
            PgCluster& pg = PgCluster::Get();
            return pg.Url(pg.CreateDatabase("mig"));
          }};
}

TEST_SUITE("migrate/postgres") {

TEST_CASE("apply rollback and re-apply round trip") { CaseRoundTrip(Postgres()); }
TEST_CASE("a changed file is detected by validate and refused by up") { CaseChangedFile(Postgres()); }
TEST_CASE("blanks at the end of a line inside a string literal are kept, up and down") {
  CaseSectionsVerbatim(Postgres());
}
TEST_CASE("down works after the migration files are deleted") { CaseDownWithoutFiles(Postgres()); }
TEST_CASE("a failing migration leaves the previous version and is recorded as failed") {
  CaseFailingMigration(Postgres());
}
TEST_CASE("policy expand refuses destructive and incompatible migrations inside their transaction") {
  CaseExpandPolicy(Postgres());
}
TEST_CASE("baseline of a database that predates hoist") { CaseBaseline(Postgres()); }
TEST_CASE("import of EF Core alembic and plain migrations tables") { CaseImports(Postgres()); }
TEST_CASE("lint classifies a matrix of statement kinds") { CaseLintMatrix(Postgres()); }
TEST_CASE("lint reports phase disagreements and fails-on-data with the statement") { CaseLintReport(Postgres()); }

TEST_CASE("lint without data copies only the schema and drops its scratch database") {
  auto c = OpenDb(Postgres().fresh_url());
  LintBase(*c, true);
  Migs m;
  m.Write("0001_unique_email.sql", "CREATE UNIQUE INDEX users_email ON users (email);\n");
  db::LintOptions schema_only;
  schema_only.data = false;
  auto r = db::Lint(*c, m.path(), schema_only);
  REQUIRE(r.migrations.size() == 1);
  CHECK(r.migrations[0].cls == db::MigrationClass::kIncompatible);  // no duplicates without the data
  CHECK(r.sandbox.find("pg_dump --schema-only") != std::string::npos);
  auto full = db::Lint(*c, m.path());
  CHECK(full.migrations[0].cls == db::MigrationClass::kFailsOnData);
  CHECK(PgCluster::Get().Psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'hoist_lint_%'") == "0");
}

TEST_CASE("several migrator processes apply each migration exactly once including CREATE INDEX CONCURRENTLY") {
  CaseConcurrentProcesses(
      Postgres(),
      {{"0008_users_name.sql",
        "-- hoist:no-transaction\n-- hoist:up\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_name ON users (name);\n"
        "-- hoist:down\nDROP INDEX CONCURRENTLY IF EXISTS users_name;\n"},
       {"0009_users_id_name.sql",
        "-- hoist:no-transaction\n-- hoist:up\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_id_name ON users (id, "
        "name);\n"}});
}

TEST_CASE("a migrator killed mid-migration leaves the previous version and releases the lock") {
  CaseKilledMigrator(Postgres());
}

TEST_CASE("CREATE INDEX CONCURRENTLY runs while other migrators wait for the lock") {
  // The waiting migrators poll pg_try_advisory_lock on a dedicated session
  // and hold no transaction, so the index build does not wait for them.
  const std::string url = Postgres().fresh_url();
  auto c = OpenDb(url);
  c->Exec("CREATE TABLE big (id int PRIMARY KEY, v text)");
  c->Exec("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 200000) g");
  Migs m;
  m.Write("0001_big_v.sql", "-- hoist:no-transaction\n-- hoist:up\nCREATE INDEX CONCURRENTLY big_v ON big (v);\n");
  std::vector<MigratorProject> projects(3);
  std::vector<sys::ProcessResult> results(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { results[i] = RunHoist(projects[i].dir.path, projects[i].Args(url, m.path())); });
  }
  for (auto& t : threads) t.join();
  int applied = 0;
  for (const auto& r : results) {
    INFO(r.err);
    CHECK(r.exit_code == 0);
    if (r.out.find("applied 1") != std::string::npos) ++applied;
  }
  CHECK(applied == 1);
  CHECK(PgCluster::Get().Psql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_v'::regclass",
                              url.substr(url.rfind('/') + 1)) == "t");
}
TEST_CASE("a deferred constraint failing at COMMIT keeps the migration's context and its failed record") {
  auto c = OpenDb(Postgres().fresh_url());
  Migs m;
  m.Write("0001_schema.sql",
          "CREATE TABLE parents (id INTEGER PRIMARY KEY);\n"
          "CREATE TABLE kids (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parents(id) "
          "DEFERRABLE INITIALLY DEFERRED);\n"
          "INSERT INTO parents VALUES (1);\nINSERT INTO kids VALUES (1, 1);\n");
  db::Up(*c, m.path(), Any());
  m.Write("0002_orphan.sql", "INSERT INTO kids VALUES (2, 99);\n");
  auto e = CatchError([&] { db::Up(*c, m.path(), Any()); });
  INFO(e.message());
  CHECK(e.code() == "failed");
  CHECK(e.message().rfind("0002_orphan.sql failed at COMMIT: ", 0) == 0);
  CHECK(e.message().find("It was rolled back and recorded as failed; the database is at version 1") !=
        std::string::npos);
  CHECK(Scalar(*c, "SELECT count(*) FROM kids") == "1");
  CHECK(Scalar(*c, "SELECT success::int FROM hoist_schema_migrations WHERE version = 2") == "0");
}

TEST_CASE("a table dropped and recreated without its rows is destructive on PostgreSQL too") {
  auto c = OpenDb(Postgres().fresh_url());
  Migs m;
  m.Write("0001_nonce.sql", "CREATE TABLE sso_nonce (nonce TEXT PRIMARY KEY, created_at TEXT NOT NULL);\n"
                            "INSERT INTO sso_nonce VALUES ('n1', 'x'), ('n2', 'y');\n");
  db::Up(*c, m.path(), Any());
  m.Write("0002_verifier.sql", "DROP TABLE sso_nonce;\n"
                               "CREATE TABLE sso_nonce (nonce TEXT PRIMARY KEY, verifier TEXT, created_at TEXT NOT NULL);\n");
  auto e = CatchError([&] { db::Up(*c, m.path(), {}); });
  INFO(e.message());
  CHECK(e.code() == "refused");
  CHECK(e.message().find("table sso_nonce dropped and recreated: 2 rows before, 0 after") != std::string::npos);
  CHECK(Scalar(*c, "SELECT count(*) FROM sso_nonce") == "2");
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test::migrate

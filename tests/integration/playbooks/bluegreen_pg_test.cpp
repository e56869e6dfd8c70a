// `hoist deploy`, `rollback` and `contract` with the environment's database
// on PostgreSQL (the private test cluster), the example app's colours
// reading and writing it, behind a real nginx: what traffic, the database
// (through psql), the pg_dump backups and the state store show afterwards.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "integration/playbooks/bluegreen_rig.h"
#include "support/pg_cluster.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;

// The versions hoist recorded as applied, in PostgreSQL's own bookkeeping table.
std::string Versions(const BlueGreenRig& rig) {
  return rig.Db("SELECT string_agg(version::text, ',' ORDER BY version) FROM hoist_schema_migrations WHERE success");
}

std::string Column(const BlueGreenRig& rig, const std::string& name) {
  return rig.Db("SELECT count(*) FROM information_schema.columns WHERE table_name = 'notes' AND column_name = '" +
                name + "'");
}

std::string Kv(const BlueGreenRig& rig, const std::string& key, const std::string& path = "") {
  std::string value = path.empty() ? "value" : "json_extract(value, '" + path + "')";
  return rig.State("SELECT " + value + " FROM kv WHERE env = 'demo' AND key = '" + key + "'");
}

sys::ProcessResult Tool(std::vector<std::string> argv) {
  sys::ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.timeout = std::chrono::milliseconds(30000);
  return sys::RunProcess(spec);
}

TEST_SUITE("playbooks/bluegreen/pg") {
  TEST_CASE("PostgreSQL: deploy 1, deploy 2 (pg_dump backup, expand migrations), rollback, deploy 2 again, contract, "
            "then release 3 and its contract migration") {
    BlueGreenRig rig(BlueGreenRig::Database::kPostgres);
    rig.HoistOk({"deploy", "-e", "version=1"});
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(Versions(rig) == "1");
    rig.Db("INSERT INTO notes(body, author) VALUES ('noted before release 2', 'ada')");

    auto r = rig.Hoist({"deploy", "-e", "version=2"});
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    CHECK(rig.Traffic() == "release 2 (blue)");
    // Release 1 keeps serving from the expanded PostgreSQL schema: the rollback target.
    CHECK(rig.Direct("green") == "release 1 (green)");
    CHECK(Versions(rig) == "1,2,3");
    CHECK(Column(rig, "author_name") == "1");
    CHECK(rig.Db("SELECT author_name FROM notes WHERE body = 'noted before release 2'") == "ada");
    std::string colours = Kv(rig, "colours");
    CHECK(colours.find("\"blue\":{\"release\":\"2\"") != std::string::npos);
    CHECK(colours.find("\"green\":{\"release\":\"1\"") != std::string::npos);
    CHECK(Kv(rig, "schema_version") == "3");
    CHECK(Kv(rig, "last_deploy", "$.baked") == "1");

    // The pre-deploy backup: a verified, private safety pg_dump of the
    // database as it was before 0002 (no author_name yet, the row noted before).
    std::string backup = Kv(rig, "last_backup", "$.path");
    REQUIRE_FALSE(backup.empty());
    CHECK(Kv(rig, "last_backup", "$.verified") == "1");
    struct stat st {};
    REQUIRE(::stat(backup.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    auto manifest = nlohmann::json::parse(ReadAll(backup + ".json"));
    CHECK(manifest["engine"] == "postgres");
    CHECK(manifest["label"] == "predeploy");
    CHECK(manifest["safety"] == true);
    CHECK(manifest["protected"] == true);
    CHECK(manifest["verified"] == true);
    CHECK(manifest["migration_version"] == "1");
    auto script = Tool({"pg_restore", "--file=-", backup});
    INFO(script.err);
    REQUIRE(script.exit_code == 0);
    CHECK(script.out.find("COPY public.notes (id, body, author, created_at) FROM stdin;") != std::string::npos);
    CHECK(script.out.find("noted before release 2\tada") != std::string::npos);
    CHECK(script.out.find("author_name") == std::string::npos);

    auto s = rig.Hoist({"status"});
    INFO(Describe(s));
    CHECK(s.exit_code == 0);
    CHECK(s.out.find("active colour: blue") != std::string::npos);
    CHECK(s.out.find("schema version: 3, 0 pending") != std::string::npos);
    CHECK(s.out.find("last backup: " + backup) != std::string::npos);

    r = rig.Hoist({"rollback"});
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    CHECK((r.out + r.err).find("rolled back: traffic is on green (release 1)") != std::string::npos);
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(rig.Direct("blue") == "release 2 (blue)");
    CHECK(Versions(rig) == "1,2,3");  // the database is not touched
    CHECK(Kv(rig, "last_rollback", "$.to") == "green");
    CHECK(Kv(rig, "last_deploy", "$.baked") == "0");

    // Deploy 2 again: blue's standby is replaced, nothing is pending, a new backup is taken.
    r = rig.Hoist({"deploy", "-e", "version=2"});
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    CHECK(rig.Traffic() == "release 2 (blue)");
    CHECK(rig.Direct("green") == "release 1 (green)");
    CHECK(Versions(rig) == "1,2,3");
    std::string second = Kv(rig, "last_backup", "$.path");
    CHECK(second != backup);
    CHECK(fs::exists(second));
    CHECK(Kv(rig, "last_deploy", "$.baked") == "1");

    r = rig.Hoist({"contract"});
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    CHECK_FALSE(rig.Running("green"));
    CHECK(rig.Traffic() == "release 2 (blue)");
    CHECK(Versions(rig) == "1,2,3");  // release 2 ships no contract migration
    CHECK(Kv(rig, "colours").find("\"green\"") == std::string::npos);
    auto rb = rig.Hoist({"rollback"});
    CHECK(rb.exit_code == 1);
    CHECK(rb.err.find("green (the standby) is not running") != std::string::npos);

    // Release 3's contract migration (drop notes.author) waits for hoist contract.
    rig.HoistOk({"deploy", "-e", "version=3"});
    CHECK(rig.Traffic() == "release 3 (green)");
    CHECK(Versions(rig) == "1,2,3");
    rig.HoistOk({"contract"});
    CHECK(Versions(rig) == "1,2,3,4");
    CHECK(Column(rig, "author") == "0");
    CHECK(rig.Db("SELECT author_name FROM notes WHERE body = 'noted before release 2'") == "ada");
    CHECK(Kv(rig, "schema_version") == "4");
    CHECK_FALSE(rig.Running("blue"));
    CHECK(rig.Traffic() == "release 3 (green)");

    // The database password is in no file hoist or the colours wrote.
    for (const auto& f : fs::recursive_directory_iterator(rig.root())) {
      if (!f.is_regular_file()) continue;
      INFO(f.path().string());
      CHECK(ReadAll(f.path().string()).find(PgCluster::kPassword) == std::string::npos);
    }
  }

  TEST_CASE("PostgreSQL: release 2 never becomes healthy: traffic stays, with --yes its expand migrations go down") {
    BlueGreenRig rig(BlueGreenRig::Database::kPostgres);
    rig.HoistOk({"deploy", "-e", "version=1"});
    std::string conf = rig.UpstreamConf();
    auto r = rig.Hoist({"deploy", "-e", "version=2", "--yes"}, {{"APP_FAIL_AFTER", "0"}});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("blue (release 2) did not become healthy") != std::string::npos);
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(rig.UpstreamConf() == conf);
    CHECK_FALSE(rig.Running("blue"));
    CHECK(Versions(rig) == "1");
    CHECK(Column(rig, "author_name") == "0");
    CHECK(rig.State("SELECT status FROM runs ORDER BY id DESC LIMIT 1") == "failed");
    CHECK(Kv(rig, "colours").find("\"blue\"") == std::string::npos);
  }

  TEST_CASE("PostgreSQL: a migration the expand policy refuses: nothing applied, no scratch database left, nothing "
            "started") {
    BlueGreenRig rig(BlueGreenRig::Database::kPostgres);
    rig.DeployRefusedRelease("9");
    CHECK(Versions(rig) == "1");
    CHECK(Column(rig, "tags") == "0");
    CHECK(Column(rig, "author") == "1");
    CHECK(rig.Db("SELECT count(*) FROM pg_database WHERE datname LIKE 'hoist_lint_%'") == "0");
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK_FALSE(rig.Running("blue"));
  }

  TEST_CASE("PostgreSQL: a role without CREATEDB cannot rehearse the migrations: nothing applied, traffic stays, the "
            "error says what to grant") {
    BlueGreenRig rig(BlueGreenRig::Database::kPostgres);
    rig.HoistOk({"deploy", "-e", "version=1"});
    const std::string& role = rig.pg_database();
    PgCluster::Get().Psql("ALTER ROLE " + role + " NOCREATEDB");
    auto r = rig.Hoist({"deploy", "-e", "version=2"});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("permission denied to create database") != std::string::npos);
    CHECK(r.err.find("role " + role + " lacks CREATEDB, which hoist needs for the scratch databases it rehearses "
                     "migrations in before applying them") != std::string::npos);
    CHECK(r.err.find("as a superuser: ALTER ROLE " + role + " CREATEDB)") != std::string::npos);
    CHECK(rig.State("SELECT status FROM steps WHERE run_id = (SELECT max(id) FROM runs) AND name = "
                    "'expand migrations'") == "failed");
    CHECK(Versions(rig) == "1");
    CHECK(Column(rig, "author_name") == "0");
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK_FALSE(rig.Running("blue"));
  }
}

}  // namespace
}  // namespace hoist::test

// `hoist rollback` and `hoist contract` on the sqlite-bluegreen example
// behind a real nginx.
#include <filesystem>
#include <doctest/doctest.h>

#include "integration/playbooks/bluegreen_rig.h"

namespace hoist::test {
namespace {

/// Releases 1, 2 and 3 deployed (green live on 3, blue the standby on 2),
/// with release 3's contract migration replaced by sql.
void ThreeReleasesWithContract(BlueGreenRig& rig, const std::string& sql) {
  rig.HoistOk({"deploy", "-e", "version=1"});
  rig.HoistOk({"deploy", "-e", "version=2"});
  rig.HoistOk({"deploy", "-e", "version=3"});
  WriteFile(rig.path("releases/3/migrations/0004_drop_author.sql"),
            "-- hoist:phase contract\n-- hoist:up\nALTER TABLE notes DROP COLUMN author;\n" + sql);
}

std::string Version(const BlueGreenRig& rig) {
  return rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success");
}

TEST_SUITE("playbooks/rollback") {
  TEST_CASE("rollback switches back to the healthy standby, says what it does and did, leaves the database") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    rig.HoistOk({"deploy", "-e", "version=2"});
    REQUIRE(rig.Traffic() == "release 2 (blue)");
    auto r = rig.Hoist({"rollback"});
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    std::string text = r.out + r.err;
    auto plan = text.find("rollback: switch traffic blue (release 2) -> green (release 1); the database is not touched");
    auto done = text.find("rolled back: traffic is on green (release 1); blue (release 2) is still running");
    CHECK(plan != std::string::npos);
    CHECK(done != std::string::npos);
    CHECK(plan < done);
    CHECK(r.seconds < 5.0);  // bench_rollback measures it against the 2 s target
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(rig.Direct("blue") == "release 2 (blue)");
    CHECK(Version(rig) == "3");
    CHECK(rig.State("SELECT json_extract(value, '$.to') FROM kv WHERE key = 'last_rollback'") == "green");

    // Rolling back again goes forward to the standby (release 2), still no database change.
    rig.HoistOk({"rollback"});
    CHECK(rig.Traffic() == "release 2 (blue)");
  }

  TEST_CASE("rollback refuses when the standby is not running: traffic stays") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    std::string conf = rig.UpstreamConf();
    auto r = rig.Hoist({"rollback"});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("blue (the standby) is not running") != std::string::npos);
    CHECK(r.err.find("hoist deploy -e version=") != std::string::npos);
    CHECK(rig.UpstreamConf() == conf);
    CHECK(rig.Traffic() == "release 1 (green)");
  }

  TEST_CASE("rollback refuses an unhealthy standby: traffic stays on the live colour") {
    BlueGreenRig rig;
    std::string sick = rig.path("standby-sick");
    rig.HoistOk({"deploy", "-e", "version=1"}, {{"APP_FAIL_FILE", sick}});
    rig.HoistOk({"deploy", "-e", "version=2"});
    std::string conf = rig.UpstreamConf();
    WriteFile(sick, "x");  // green (release 1, the standby) now answers 500 on /api/health
    auto r = rig.Hoist({"rollback"});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("green (release 1) did not become healthy") != std::string::npos);
    CHECK(rig.UpstreamConf() == conf);
    CHECK(rig.Traffic() == "release 2 (blue)");
  }

  TEST_CASE("rollback with migrate_down needs confirmation, then runs the stored downs after the switch") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    rig.HoistOk({"deploy", "-e", "version=2"});
    auto r = rig.Hoist({"rollback", "-e", "migrate_down=2"});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("--yes") != std::string::npos);
    CHECK(rig.Traffic() == "release 2 (blue)");
    CHECK(Version(rig) == "3");

    r = rig.Hoist({"rollback", "-e", "migrate_down=2", "--yes"});
    INFO(Describe(r));
    CHECK(r.exit_code == 0);
    CHECK((r.out + r.err).find("migrated down 3 -> 1") != std::string::npos);
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(Version(rig) == "1");
    CHECK(rig.Db("SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'author_name'") == "0");
  }

  TEST_CASE("rollback with restore takes a safety backup and restores the named backup") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    rig.HoistOk({"deploy", "-e", "version=2"});
    std::string backup = rig.State("SELECT json_extract(value, '$.path') FROM kv WHERE key = 'last_backup'");
    REQUIRE_FALSE(backup.empty());
    auto r = rig.Hoist({"rollback", "-e", "restore=" + backup.substr(backup.rfind('/') + 1), "--yes"});
    INFO(Describe(r));
    CHECK(r.exit_code == 0);
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(Version(rig) == "1");
    CHECK((r.out + r.err).find("safety backup") != std::string::npos);
  }
}

TEST_SUITE("playbooks/contract") {
  TEST_CASE("contract after a baked deploy: the standby stops after draining, contract migrations apply") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    rig.HoistOk({"deploy", "-e", "version=2"});
    auto r = rig.Hoist({"deploy", "-e", "version=3"});
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    // 0004 is a contract migration: deploy leaves it pending.
    CHECK(Version(rig) == "3");
    CHECK(rig.Traffic() == "release 3 (green)");
    CHECK(rig.Direct("blue") == "release 2 (blue)");

    r = rig.Hoist({"contract"});
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    CHECK(Version(rig) == "4");
    CHECK(rig.Db("SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'author'") == "0");
    CHECK_FALSE(rig.Running("blue"));
    CHECK(rig.Traffic() == "release 3 (green)");
    // The dropped column's values are in a verified backup taken by this run.
    CHECK(r.out.find("lint contract migrations") != std::string::npos);
    bool pre_contract = false;
    for (const auto& e : std::filesystem::directory_iterator(rig.path(".hoist/backups"))) {
      pre_contract = pre_contract || e.path().filename().string().find("-pre-contract-") != std::string::npos;
    }
    CHECK(pre_contract);
    // Nothing to switch back to now.
    auto rb = rig.Hoist({"rollback"});
    CHECK(rb.exit_code == 1);
  }

  TEST_CASE("a contract migration that fails its rehearsal changes nothing and the standby keeps running") {
    BlueGreenRig rig;
    ThreeReleasesWithContract(rig, "INSERT INTO notes_missing VALUES (1);\n");
    auto r = rig.Hoist({"contract"});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("fail their rehearsal on a copy of the database; nothing was changed") != std::string::npos);
    CHECK(rig.Running("blue"));
    CHECK(rig.Direct("blue") == "release 2 (blue)");
    CHECK(Version(rig) == "3");
    CHECK(rig.Db("SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'author'") == "1");
    CHECK(rig.Traffic() == "release 3 (green)");
  }

  TEST_CASE("a contract migration that passes its rehearsal but fails live restarts the standby, healthy") {
    BlueGreenRig rig;
    // True on the rehearsal's copy (a file under hoist-lint-*), false on the
    // live file: as when the rows changed between rehearsal and apply.
    ThreeReleasesWithContract(rig,
              "CREATE TABLE contract_guard (ok INTEGER NOT NULL CHECK (ok = 1));\n"
              "INSERT INTO contract_guard SELECT (SELECT file FROM pragma_database_list WHERE name = 'main') "
              "LIKE '%hoist-lint-%';\n");
    REQUIRE(rig.Direct("blue") == "release 2 (blue)");
    auto r = rig.Hoist({"contract"});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("CHECK constraint failed") != std::string::npos);
    // The stop's undo started blue again with its release and gated it.
    CHECK(r.out.find("undo stop blue") != std::string::npos);
    CHECK(rig.Running("blue"));
    CHECK(rig.Direct("blue") == "release 2 (blue)");
    CHECK(Version(rig) == "3");
    CHECK(rig.Db("SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'author'") == "1");
    CHECK(rig.Db("SELECT count(*) FROM sqlite_master WHERE name = 'contract_guard'") == "0");
    CHECK(rig.Traffic() == "release 3 (green)");
    // A rollback is still possible: the point of restarting the standby.
    rig.HoistOk({"rollback"});
    CHECK(rig.Traffic() == "release 2 (blue)");
  }

  TEST_CASE("contract is refused after a rollback") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    rig.HoistOk({"deploy", "-e", "version=2"});
    rig.HoistOk({"rollback"});
    auto r = rig.Hoist({"contract"});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("contract migrations run only after a deploy that passed its bake and is still live") !=
          std::string::npos);
    CHECK(rig.Running("blue"));
    CHECK(rig.Running("green"));
  }
}

}  // namespace
}  // namespace hoist::test

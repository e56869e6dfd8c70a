// `hoist deploy` (playbooks/deploy.lua, hoist.bluegreen) on the
// sqlite-bluegreen example behind a real nginx: the happy path and each
// main failure, checked on what traffic, the upstream include, the
// processes, the database and the state store show afterwards.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>
#include <thread>

#include "integration/playbooks/bluegreen_rig.h"
#include "support/colour_server.h"
#include "sys/clock.h"

namespace hoist::test {
namespace {

bool WaitUntil(const std::function<bool()>& cond, double seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

TEST_SUITE("playbooks/deploy") {
  TEST_CASE("deploy release 1 then 2: switch, expand migrations, standby kept, state recorded") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK_FALSE(rig.Running("blue"));
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "1");

    auto r = rig.Hoist({"deploy", "-e", "version=2"});
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    CHECK(rig.Traffic() == "release 2 (blue)");
    // The old colour keeps running release 1 on the expanded schema: an instant rollback target.
    CHECK(rig.Direct("green") == "release 1 (green)");
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "3");
    CHECK(rig.Db("SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'author_name'") == "1");
    CHECK(rig.UpstreamConf().find(":" + std::to_string(rig.Port("blue")) + ";") != std::string::npos);
    // Which release each colour runs, and the schema version, in the state store.
    std::string colours = rig.State("SELECT value FROM kv WHERE env = 'demo' AND key = 'colours'");
    CHECK(colours.find("\"blue\":{\"release\":\"2\"") != std::string::npos);
    CHECK(colours.find("\"green\":{\"release\":\"1\"") != std::string::npos);
    CHECK(rig.State("SELECT value FROM kv WHERE env = 'demo' AND key = 'schema_version'") == "3");
    // A verified, protected, private backup from before the migrations.
    std::string backup = rig.State("SELECT json_extract(value, '$.path') FROM kv WHERE key = 'last_backup'");
    REQUIRE_FALSE(backup.empty());
    struct stat st {};
    REQUIRE(::stat(backup.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    auto manifest = nlohmann::json::parse(ReadAll(backup + ".json"));
    CHECK(manifest["protected"] == true);
    CHECK(manifest["verified"] == true);
    CHECK(manifest["label"] == "predeploy");
    CHECK(manifest["migration_version"].dump().find('1') != std::string::npos);

    auto s = rig.Hoist({"status"});
    INFO(Describe(s));
    CHECK(s.exit_code == 0);
    // The report is the command's output: stdout, so `hoist status | grep LIVE` works.
    std::string text = s.out;
    CHECK(s.err.find("active colour") == std::string::npos);
    CHECK(text.find("LIVE") != std::string::npos);
    CHECK(text.find("active colour: blue") != std::string::npos);
    CHECK(text.find("release 2") != std::string::npos);
    CHECK(text.find("schema version: 3, 0 pending") != std::string::npos);
    CHECK(text.find("verified") != std::string::npos);
    // Deploy 1 met no database (nothing to back up); deploy 2's predeploy backup is a safety one.
    CHECK(text.find("backups: 1 (") != std::string::npos);
    CHECK(text.find(") in " + rig.path(".hoist/backups") + "; 1 safety backup(s) (") != std::string::npos);
    CHECK(text.find("), all kept (set backups.keep_safety to prune them)") != std::string::npos);

    // --json: the same report as data, in run_finished's result.
    auto sj = rig.Hoist({"--json", "status"});
    CHECK(sj.exit_code == 0);
    nlohmann::json finished;
    bool printed = false;
    std::istringstream lines(sj.out);
    for (std::string l; std::getline(lines, l);) {
      auto ev = nlohmann::json::parse(l);
      if (ev["event"] == "run_finished") finished = ev;
      if (ev["event"] == "message") printed = ev["text"].get<std::string>().find("active colour: blue") != std::string::npos;
    }
    CHECK(printed);
    REQUIRE(finished.contains("result"));
    CHECK(finished["result"]["active"] == "blue");
    CHECK(finished["result"]["colours"]["blue"]["live"] == true);
    CHECK(finished["result"]["schema"]["version"] == 3);

    // -e image= is for Docker colours: refused here before anything changes.
    auto img = rig.Hoist({"deploy", "-e", "image=registry.local/api:3"});
    CHECK(img.exit_code == 1);
    CHECK(img.err.find("-e image=registry.local/api:3 needs app.kind = \"docker\"") != std::string::npos);
    CHECK(rig.Traffic() == "release 2 (blue)");

    auto d = rig.Hoist({"describe", "deploy"});
    CHECK(d.out.find("deploy 1.4.0") != std::string::npos);
    CHECK(d.out.find("-e version=<string>") != std::string::npos);
    CHECK(d.out.find("health gate") != std::string::npos);
  }

  TEST_CASE("a typo in the database path is refused before anything changes, naming both databases") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    rig.HoistOk({"deploy", "-e", "version=2"});
    REQUIRE(rig.Traffic() == "release 2 (blue)");
    std::string notes = rig.Db("SELECT count(*) FROM notes");
    std::string id = rig.Db("SELECT id FROM hoist_identity");
    REQUIRE(id.size() == 32);
    CHECK(rig.State("SELECT json_extract(value, '$.id') FROM kv WHERE env = 'demo' AND key = 'database'") == id);
    std::string upstream = rig.UpstreamConf();

    // hoist.lua now says data/note.db: a file that does not exist.
    std::map<std::string, std::string> typo = {{"EXAMPLE_DATABASE_URL", "sqlite:data/note.db"}};
    for (std::vector<std::string> args : {std::vector<std::string>{"deploy", "-e", "version=3"},
                                          std::vector<std::string>{"rollback"},
                                          std::vector<std::string>{"migrate", "-e", "action=up", "-e", "version=3"},
                                          std::vector<std::string>{"restore", "--yes"}}) {
      CAPTURE(args[0]);
      auto r = rig.Hoist(args, typo);
      INFO(Describe(r));
      CHECK(r.exit_code == 1);
      CHECK(r.err.find("the database " + rig.path("data/note.db") + " does not exist; the live release runs on sqlite://" +
                       rig.path("data/app.db") + " (database id " + id + ")") != std::string::npos);
      CHECK(r.err.find("pass -e new_database=true") != std::string::npos);
      CHECK_FALSE(std::filesystem::exists(rig.path("data/note.db")));
      CHECK(rig.Traffic() == "release 2 (blue)");
      CHECK(rig.UpstreamConf() == upstream);
    }
    // Another database that exists (a copy made elsewhere, without hoist's id) is refused too.
    {
      sqlite3* other = nullptr;
      REQUIRE(sqlite3_open(rig.path("data/other.db").c_str(), &other) == SQLITE_OK);
      sqlite3_exec(other, "CREATE TABLE notes (id INTEGER PRIMARY KEY)", nullptr, nullptr, nullptr);
      sqlite3_close(other);
    }
    auto r = rig.Hoist({"deploy", "-e", "version=3"}, {{"EXAMPLE_DATABASE_URL", "sqlite:data/other.db"}});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("is not the database the live release runs on (sqlite://" + rig.path("data/app.db") + ", database id " + id +
                     "; this one has no hoist identity)") != std::string::npos);
    CHECK(rig.Traffic() == "release 2 (blue)");
    // The right database still deploys, and nothing was lost.
    rig.HoistOk({"deploy", "-e", "version=3"});
    CHECK(rig.Traffic() == "release 3 (green)");
    CHECK(rig.Db("SELECT count(*) FROM notes") == notes);
    CHECK(rig.Db("SELECT id FROM hoist_identity") == id);
  }

  TEST_CASE("a switch killed after writing the include: the next deploy trusts what nginx serves and repairs the include") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    rig.HoistOk({"deploy", "-e", "version=2"});
    REQUIRE(rig.Traffic() == "release 2 (blue)");
    // What a kill -9 between the include's write and nginx's reload leaves:
    // the include names green, nginx still serves blue.
    std::string conf = rig.UpstreamConf();
    std::string blue = ":" + std::to_string(rig.Port("blue")) + ";", green = ":" + std::to_string(rig.Port("green")) + ";";
    REQUIRE(conf.find(blue) != std::string::npos);
    conf.replace(conf.find(blue), blue.size(), green);
    WriteFile(rig.nginx().upstream_conf(), conf);
    REQUIRE(rig.Traffic() == "release 2 (blue)");

    auto r = rig.Hoist({"deploy", "-e", "version=3"});
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("nginx serves blue but " + rig.path(".hoist/nginx/upstream.conf") + " names green") !=
          std::string::npos);
    // Without the repair the deploy would have stopped blue, the colour serving traffic.
    CHECK(rig.Traffic() == "release 3 (green)");
    CHECK(rig.Direct("blue") == "release 2 (blue)");
    CHECK(rig.UpstreamConf().find(green) != std::string::npos);
    CHECK(rig.State("SELECT count(*) FROM steps WHERE name LIKE 'repair include: green -> blue%'") == "1");
  }

  TEST_CASE("a process no run tracks holds the idle colour's port: the deploy refuses before starting, traffic stays") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    REQUIRE(rig.Traffic() == "release 1 (green)");
    std::string conf = rig.UpstreamConf();
    // What an app started by some other hand (or lost by an older hoist
    // killed mid-start) looks like: blue's port answers healthy, as release
    // 9, with no pid file. Taking its answers for release 2's would switch
    // traffic to it.
    ColourServer squatter("blue", rig.Port("blue"));
    squatter.SetRoute("/api/health", {200, R"({"status":"ok","version":"9"})"});
    auto r = rig.Hoist({"deploy", "-e", "version=2"});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    const std::string port = std::to_string(rig.Port("blue"));
    CHECK(r.err.find("port 127.0.0.1:" + port + " already accepts connections, but app-blue is not running") !=
          std::string::npos);
    CHECK(r.err.find("ss -ltnp 'sport = :" + port + "'") != std::string::npos);
    // Refused before the backup and the expand migrations: nothing to undo.
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "1");
    CHECK(rig.State("SELECT count(*) FROM steps WHERE run_id = (SELECT max(id) FROM runs)") == "0");
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(rig.UpstreamConf() == conf);
    CHECK_FALSE(rig.Running("blue"));
    // Once the port is free the same deploy goes through.
    squatter.Stop();
    rig.HoistOk({"deploy", "-e", "version=2"});
    CHECK(rig.Traffic() == "release 2 (blue)");
  }

  TEST_CASE("the idle colour never becomes healthy: it is stopped, traffic stays, expand migrations are kept") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    std::string conf = rig.UpstreamConf();
    auto r = rig.Hoist({"deploy", "-e", "version=2"}, {{"APP_FAIL_AFTER", "0"}});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("blue (release 2) did not become healthy") != std::string::npos);
    CHECK(r.err.find("status 500") != std::string::npos);
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK_FALSE(rig.Running("blue"));
    CHECK(rig.Direct("blue") == "down");
    CHECK(rig.UpstreamConf() == conf);
    // Without --yes the undo keeps the (backward-compatible) expand
    // migrations and says how to remove them.
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "3");
    const std::string advice = "to remove them (traffic untouched): hoist migrate -e action=down -e steps=2";
    CHECK((r.out + r.err).find(advice) != std::string::npos);
    std::string colours = rig.State("SELECT value FROM kv WHERE key = 'colours'");
    CHECK(colours.find("\"blue\"") == std::string::npos);
    CHECK(rig.State("SELECT status FROM runs ORDER BY id DESC LIMIT 1") == "failed");
    // The printed command does exactly what it says: those 2 down, traffic stays on the healthy release.
    auto down = rig.Hoist({"migrate", "-e", "action=down", "-e", "steps=2"});
    INFO(Describe(down));
    CHECK(down.exit_code == 0);
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "1");
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(rig.UpstreamConf() == conf);
  }

  TEST_CASE("with --yes a failed deploy also migrates the expand migrations down") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    auto r = rig.Hoist({"deploy", "-e", "version=2", "--yes"}, {{"APP_FAIL_AFTER", "0"}});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "1");
    CHECK(rig.Db("SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'author_name'") == "0");
    CHECK(rig.Traffic() == "release 1 (green)");
  }

  TEST_CASE("with --yes and a migration without a down section, the undo restores the pre-deploy backup") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    rig.AddRelease("8", {{"0002_add_tags.sql",
                          "-- hoist:phase expand\n-- hoist:up\nALTER TABLE notes ADD COLUMN tags TEXT;\n"}});
    auto r = rig.Hoist({"deploy", "-e", "version=8", "--yes"}, {{"APP_FAIL_AFTER", "0"}});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("restored the pre-deploy backup") != std::string::npos);
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "1");
    CHECK(rig.Db("SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'tags'") == "0");
    CHECK(rig.Traffic() == "release 1 (green)");
  }

  TEST_CASE("nginx -t fails: the include is restored byte for byte, the new colour stopped") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    std::string conf = rig.UpstreamConf();
    // Someone broke another file of the configuration after nginx loaded it.
    WriteFile(rig.nginx().maintenance_conf(), "bogus_directive on;\n");
    auto r = rig.Hoist({"deploy", "-e", "version=2"});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("nginx -t rejected the configuration") != std::string::npos);
    CHECK(r.err.find("bogus_directive") != std::string::npos);
    CHECK(rig.UpstreamConf() == conf);
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK_FALSE(rig.Running("blue"));
    CHECK(rig.Running("green"));
  }

  TEST_CASE("probes fail during the bake: the switch is reverted, the new colour stopped") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    std::string conf = rig.UpstreamConf();
    std::string fail_file = rig.path("fail-now");
    sys::ProcessResult r;
    std::thread deploy([&] {
      r = rig.Hoist({"deploy", "-e", "version=2", "-e", "bake=20"}, {{"APP_FAIL_FILE", fail_file}});
    });
    // Once the bake step runs (the switch was verified), release 2 degrades.
    bool baking = WaitUntil([&] {
      return rig.State("SELECT count(*) FROM steps WHERE name = 'bake' AND status = 'running'") == "1";
    }, 45);
    CHECK(baking);
    CHECK(rig.Traffic() == "release 2 (blue)");
    WriteFile(fail_file, "x");
    deploy.join();
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("failed 1 of") != std::string::npos);
    CHECK(r.err.find("during the bake") != std::string::npos);
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(rig.UpstreamConf() == conf);
    CHECK_FALSE(rig.Running("blue"));
    CHECK(rig.Direct("green") == "release 1 (green)");
  }

  TEST_CASE("a migration the expand policy refuses: nothing is applied, nothing started") {
    BlueGreenRig rig;
    rig.DeployRefusedRelease("9");
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "1");
    CHECK(rig.Db("SELECT count(*) FROM pragma_table_info('notes') WHERE name IN ('tags', 'author')") == "1");
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK_FALSE(rig.Running("blue"));
  }

  TEST_CASE("the backup fails its check: the deploy stops before anything changes") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    // Fill a few pages, fold the WAL into the file, then damage a b-tree page.
    {
      sqlite3* db = nullptr;
      REQUIRE(sqlite3_open(rig.path("data/app.db").c_str(), &db) == SQLITE_OK);
      sqlite3_busy_timeout(db, 5000);
      std::string big(3000, 'x');
      for (int i = 0; i < 20; ++i) {
        std::string sql = "INSERT INTO notes(body, author) VALUES('" + big + "', 'test')";
        REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
      }
      REQUIRE(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr) == SQLITE_OK);
      sqlite3_close(db);
    }
    long root = std::stol(rig.Db("SELECT rootpage FROM sqlite_master WHERE name = 'notes'"));
    REQUIRE(root > 1);
    {
      // The notes table's root (an interior page by now): its cell pointers.
      std::fstream f(rig.path("data/app.db"), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(4096 * (root - 1) + 12);
      std::string junk(64, '\xee');
      f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    std::string conf = rig.UpstreamConf();
    auto r = rig.Hoist({"deploy", "-e", "version=2"});
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("backup: quick_check failed on the copy") != std::string::npos);
    CHECK(rig.State("SELECT status FROM steps WHERE run_id = (SELECT max(id) FROM runs) AND name = 'backup'") == "failed");
    CHECK(rig.State("SELECT count(*) FROM steps WHERE run_id = (SELECT max(id) FROM runs)") == "1");
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "1");
    CHECK(rig.UpstreamConf() == conf);
    CHECK_FALSE(rig.Running("blue"));
    CHECK(rig.Running("green"));
    // (green's own health may now fail on the damaged table: traffic still reaches it)
    CHECK(HttpGet(rig.nginx().port(), "/api/health").colour == "green");
  }

  TEST_CASE("the lease is held: exit 4 naming the holder, nothing changes") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    {
      sqlite3* db = nullptr;
      REQUIRE(sqlite3_open(rig.path(".hoist/state.db").c_str(), &db) == SQLITE_OK);
      sqlite3_busy_timeout(db, 5000);
      std::string sql = "INSERT INTO leases(env, owner, host, pid, run_id, reason, token, started_at, heartbeat_at, "
                        "expires_at) VALUES('demo', 'carol', 'ops1', " + std::to_string(::getpid()) +
                        ", 99, 'restore drill', 'tok', " + std::to_string(sys::NowEpoch()) + ", " +
                        std::to_string(sys::NowEpoch()) + ", " + std::to_string(sys::NowEpoch() + 600) + ")";
      REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
      sqlite3_close(db);
    }
    auto r = rig.Hoist({"deploy", "-e", "version=2"});
    INFO(Describe(r));
    CHECK(r.exit_code == 4);
    CHECK(r.err.find("locked by carol@ops1") != std::string::npos);
    CHECK(r.err.find("restore drill") != std::string::npos);
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "1");
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK_FALSE(rig.Running("blue"));
    // status is read-only: it runs anyway and names the holder.
    auto s = rig.Hoist({"status"});
    CHECK(s.exit_code == 0);
    CHECK(s.out.find("lease: held by carol@ops1") != std::string::npos);
  }
}

}  // namespace
}  // namespace hoist::test

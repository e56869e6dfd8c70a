// The real hoist binary migrating one SQLite file: several migrators started
// together, a migrator killed mid-migration, `hoist migrate status`, and the
// journal of a migrating run.
#include <nlohmann/json.hpp>

#include "unit/migrate/migrate_cases.h"

namespace hoist::test::migrate {
namespace {

using json = nlohmann::json;

Backend Sqlite() {
  static TempDir dir("migrate-proc");
  static int n = 0;
  return {"sqlite", [] {
            std::string path = dir.path + "/db" + std::to_string(++n) + ".db";
            // WAL, as the blue/green setups share it.
            auto c = OpenDb("sqlite://" + path);
            c->Exec("PRAGMA journal_mode = wal");
            return "sqlite://" + path;
          }};
}

TEST_SUITE("migrate/processes") {

TEST_CASE("several migrator processes on one SQLite file apply each migration exactly once") {
  CaseConcurrentProcesses(Sqlite(), {});
}

TEST_CASE("a migrator killed mid-migration leaves the previous version and a recoverable lock") {
  CaseKilledMigrator(Sqlite());
}

TEST_CASE("hoist migrate status prints a table and JSON") {
  TempDir d("migcli");
  const std::string url = "sqlite://" + d.path + "/app.db";
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  m.Write("0002_add_email.sql", kAddEmail);
  {
    auto c = OpenDb(url);
    db::UpOptions to1;
    to1.to = 1;
    db::Up(*c, m.path(), to1);
  }
  auto c = OpenDb(url);
  auto st = db::Status(*c, m.path());
  const std::string at = Entry(st, 1).applied->applied_at;
  auto r = RunHoist(d.path, {"migrate", "status", "--db", url, "--dir", m.path()});
  CHECK(r.exit_code == 0);
  CHECK(r.err == "");
  CHECK(r.out == url + ": migrations in " + m.path() +
                     "\ncurrent version: 1 (1 applied, 1 pending)\n"
                     "VERSION  STATE         PHASE     APPLIED AT                FILE\n"
                     "      1  applied       expand    " + at + "  0001_create_users.sql\n"
                     "      2  pending       -         -                         0002_add_email.sql\n");
  auto j = RunHoist(d.path, {"migrate", "status", "--db", url, "--dir", m.path(), "--json"});
  CHECK(j.exit_code == 0);
  json s = json::parse(j.out);
  CHECK(s["db"] == url);
  CHECK(s["current"] == 1);
  CHECK(s["ok"] == true);
  CHECK(s["pending"] == json::array({"0002_add_email.sql"}));
  CHECK(s["migrations"][0]["applied"]["applied_at"] == at);
  CHECK(s["migrations"][1]["state"] == "pending");

  auto bad = RunHoist(d.path, {"migrate", "status", "--db", "sqlite://" + d.path + "/nope.db", "--dir", m.path()});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.rfind("hoist: db: no database file at " + d.path + "/nope.db", 0) == 0);
  // Without `status`, `hoist migrate` is the canned migrate playbook: here
  // without a hoist.lua, so it names the missing key.
  auto none = RunHoist(d.path, {"migrate"});
  CHECK(none.exit_code == 1);
  CHECK(none.err.find("error: config: hoist.lua: environments.default.database: not set") != std::string::npos);
}

TEST_CASE("each migration is journaled as a world call of the run") {
  MigratorProject p;
  Migs m;
  m.Write("0001_create_users.sql", kCreateUsers);
  m.Write("0002_add_email.sql", kAddEmail);
  TempDir d("migjournal");
  const std::string url = "sqlite://" + d.path + "/app.db";
  OpenDb(url);
  auto r = RunHoist(p.dir.path, p.Args(url, m.path()));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("applied 2 skipped 0") != std::string::npos);
  auto show = RunHoist(p.dir.path, {"show", "1", "--json"});
  REQUIRE(show.exit_code == 0);
  json run = json::parse(show.out);
  std::vector<std::string> names;
  int64_t run_id = run["id"].get<int64_t>();
  for (const auto& e : run["events"]) {
    if (e["kind"] == "migrate") names.push_back(e["name"].get<std::string>());
  }
  CHECK(names == std::vector<std::string>{"apply 0001_create_users.sql", "apply 0002_add_email.sql",
                                          "up " + m.path()});
  auto c = OpenDb(url);
  CHECK(*Entry(db::Status(*c, m.path()), 2).applied->run_id == run_id);
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test::migrate

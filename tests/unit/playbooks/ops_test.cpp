// The canned database playbooks (migrate, backup, restore, verify, prune,
// compare) and the two-databases example, run through the real hoist
// binary on real SQLite files. Each test checks the exit code and message
// a user sees, then the database itself, not the output.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "db/connection.h"
#include "engine/state_store.h"
#include "support/support.h"
#include "support/terminal.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const char* kConfig = R"lua(return {
  environments = {
    prod = { database = "sqlite:data/app.db", backups = { dir = "backups", keep = 3 } },
    dev = { database = "sqlite:data/dev.db" },
  },
  default_env = "prod",
}
)lua";

const char* kUsers = R"sql(-- hoist:phase expand
-- hoist:up
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
-- hoist:down
DROP TABLE users;
)sql";

const char* kEmail = R"sql(-- hoist:phase expand
-- hoist:up
ALTER TABLE users ADD COLUMN email TEXT;
-- hoist:down
ALTER TABLE users DROP COLUMN email;
)sql";

db::OpenOptions ReadOnly() {
  db::OpenOptions o;
  o.readonly = true;
  return o;
}

unsigned Mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// A project with two SQLite databases and two migrations.
struct Ops {
  TempDir dir{"ops"};
  Ops() {
    WriteFile(dir / "hoist.lua", kConfig);
    WriteFile(dir / "migrations/0001_users.sql", kUsers);
    WriteFile(dir / "migrations/0002_email.sql", kEmail);
    fs::create_directories(dir / "data");
    for (const char* name : {"data/app.db", "data/dev.db"}) {
      db::OpenOptions o;
      o.create = true;
      o.journal_mode = "wal";
      db::Open("sqlite://" + (dir / name), o)->Close();
    }
  }
  sys::ProcessResult Run(std::vector<std::string> args) { return RunHoist(dir.path, std::move(args)); }
  /// Migrated, users ada and grace, a backup labelled "good" of them, then `change` applied.
  void GoodBackupThen(const std::string& change) {
    REQUIRE(Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
    Exec("INSERT INTO users (name) VALUES ('ada'), ('grace')");
    REQUIRE(Run({"backup", "-e", "label=good"}).exit_code == 0);
    Exec(change);
  }
  json Query(const std::string& sql, const std::string& file = "data/app.db") {
    auto conn = db::Open("sqlite://" + (dir / file));
    auto r = conn->Query(sql);
    json out = json::array();
    for (const auto& row : r.rows) {
      json j = json::array();
      for (const auto& v : row) j.push_back(db::ValueToJson(v));
      out.push_back(j);
    }
    return out;
  }
  json Scalar(const std::string& sql, const std::string& file = "data/app.db") { return Query(sql, file)[0][0]; }
  void Exec(const std::string& sql, const std::string& file = "data/app.db") {
    db::Open("sqlite://" + (dir / file))->Exec(sql);
  }
  // Data files (not sidecars or manifests) in backups/, sorted.
  std::vector<std::string> Backups() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir / "backups", ec)) {
      std::string n = e.path().filename().string();
      if (n.ends_with(".db")) out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  // The newest backup by its manifest's created_at (names of backups taken
  // in the same second sort the other way: -2.db before .db).
  std::string Newest() {
    std::string best, at;
    for (const auto& n : Backups()) {
      std::string created = json::parse(ReadAll(dir / ("backups/" + n + ".json")))["created_at"];
      if (created >= at) best = n, at = created;
    }
    return best;
  }
  // The last run_finished event of a --json run.
  static json Finished(const sys::ProcessResult& r) {
    json last;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      json ev = json::parse(line, nullptr, false);
      if (!ev.is_discarded() && ev.value("event", "") == "run_finished") last = ev;
    }
    return last;
  }
};

// The example as checked in, without run-time files of a run in the tree.
void CopyExample(const std::string& name, const std::string& to) {
  fs::copy(std::string(HOIST_SOURCE_DIR) + "/examples/" + name, to, fs::copy_options::recursive);
  for (const char* d : {"data", "backups", ".hoist"}) fs::remove_all(to + "/" + d);
}


TEST_SUITE("playbooks/ops") {

TEST_CASE("the database playbooks are canned, versioned and documented") {
  Ops p;
  auto list = p.Run({"list"});
  REQUIRE(list.exit_code == 0);
  // Minor versions: backup, migrate and prune learned keep_safety; migrate and
  // restore check the database identity.
  for (auto [name, version] : std::vector<std::pair<const char*, const char*>>{
           {"backup", "1.1.0"}, {"compare", "1.0.0"}, {"migrate", "1.3.1"}, {"prune", "1.1.0"}, {"restore", "1.1.1"},
           {"verify", "1.0.1"}}) {
    CAPTURE(name);
    CHECK(list.out.find(name) != std::string::npos);
    auto d = p.Run({"describe", name, "--json"});
    REQUIRE(d.exit_code == 0);
    json j = json::parse(d.out);
    CHECK(j["version"] == version);
    CHECK(!j["summary"].get<std::string>().empty());
    for (const auto& param : j["params"]) CHECK(!param["help"].get<std::string>().empty());
  }
  auto exp = p.Run({"playbook", "export", "restore"});
  CHECK(exp.exit_code == 0);
  CHECK(ReadAll(p.dir / "playbooks/restore.lua").find("name = \"restore\"") != std::string::npos);
}

TEST_CASE("migrate: status, plan, up after a backup, down") {
  Ops p;
  auto st = p.Run({"migrate"});
  CHECK(st.exit_code == 0);
  CHECK(st.err.find("current version: none (2 pending)") != std::string::npos);
  CHECK(st.err.find("      1  pending       expand    -                         0001_users.sql") != std::string::npos);

  auto plan = p.Run({"migrate", "-e", "action=plan"});
  CHECK(plan.exit_code == 0);
  CHECK(plan.err.find("1 0001_users.sql\n2 0002_email.sql") != std::string::npos);
  CHECK(p.Scalar("SELECT count(*) FROM sqlite_master WHERE name = 'users'") == 0);

  p.Exec("CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT)");  // something to lose: a backup first
  auto up = p.Run({"migrate", "-e", "action=up"});
  CHECK(up.exit_code == 0);
  CHECK(up.err.find("from version none to 2: 0001_users.sql [additive], 0002_email.sql [additive]") != std::string::npos);
  CHECK(p.Scalar("SELECT group_concat(version) FROM hoist_schema_migrations WHERE success") == "1,2");
  auto backups = p.Backups();
  REQUIRE(backups.size() == 1);
  CHECK(backups[0].starts_with("app-pre-migrate-"));
  CHECK(p.Scalar("SELECT count(*) FROM pragma_table_info('users') WHERE name = 'email'") == 1);

  auto again = p.Run({"migrate", "-e", "action=up"});
  CHECK(again.exit_code == 0);
  CHECK(again.err.find("is up to date (version 2)") != std::string::npos);
  CHECK(p.Backups().size() == 1);  // nothing to do: no backup either

  auto down = p.Run({"migrate", "-e", "action=down", "-e", "backup=false"});
  CHECK(down.exit_code == 0);
  CHECK(down.err.find("from version 2 to 1: 0002_email.sql") != std::string::npos);
  CHECK(p.Scalar("SELECT count(*) FROM pragma_table_info('users') WHERE name = 'email'") == 0);
  CHECK(p.Scalar("SELECT max(version) FROM hoist_schema_migrations") == 1);

  // A file edited after it was applied: status says so and exits 1.
  WriteFile(p.dir / "migrations/0001_users.sql", std::string(kUsers) + "CREATE INDEX users_name ON users (name);\n");
  auto changed = p.Run({"--json", "migrate"});
  CHECK(changed.exit_code == 1);
  CHECK(Ops::Finished(changed)["code"] == "history");
  CHECK(changed.out.find("changed       expand") != std::string::npos);
}

TEST_CASE("migrate: down refuses a migration without a down section and rolls back nothing") {
  Ops p;
  WriteFile(p.dir / "migrations/0003_nick.sql", "ALTER TABLE users ADD COLUMN nick TEXT;\n");
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  auto r = p.Run({"--json", "migrate", "-e", "action=down", "-e", "steps=2", "-e", "backup=false"});
  CHECK(r.exit_code == 1);
  CHECK(Ops::Finished(r)["code"] == "no_down");
  CHECK(Ops::Finished(r)["error"].get<std::string>().find("0003_nick.sql") != std::string::npos);
  CHECK(p.Scalar("SELECT group_concat(version) FROM hoist_schema_migrations") == "1,2,3");
  CHECK(p.Scalar("SELECT count(*) FROM pragma_table_info('users') WHERE name IN ('email', 'nick')") == 2);
}

TEST_CASE("a playbook that forgets the backup: hoist takes a safety backup before a down or a destructive migration") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  p.Exec("INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com')");
  WriteFile(p.dir / "playbooks/careless.lua", R"lua(local hoist = require "hoist"
local migrate = require "hoist.migrate"
local project = require "hoist.project"
return hoist.playbook {
  name = "careless", version = "1.0.0",
  params = { what = { type = "enum", values = { "down", "any", "contract", "none" }, default = "down" } },
  run = function(run, p)
    local conn <close> = project.database(run)
    if p.what == "down" then return migrate.down(conn, { steps = 1 }) end
    if p.what == "none" then return migrate.down(conn, { steps = 1, safety_backup = false }) end
    return migrate.up(conn, project.migrations(run), { policy = p.what == "any" and "any" or "expand",
      allow_contract = p.what == "contract" })
  end,
}
)lua");
  auto down = p.Run({"careless"});
  INFO(down.out << down.err);
  REQUIRE(down.exit_code == 0);
  CHECK(down.err.find("safety backup before rolling back 1 migration (to version 1): ") != std::string::npos);
  auto backups = p.Backups();
  REQUIRE(backups.size() == 1);
  CHECK(backups[0].starts_with("app-pre-destructive-"));
  // The email values are in it.
  auto copy = db::Open("sqlite://" + (p.dir / ("backups/" + backups[0])), ReadOnly());
  CHECK(db::ValueToJson(copy->Query("SELECT email FROM users").rows[0][0]) == "ada@example.com");

  // Policy any applying a DROP COLUMN, and a declared contract: one backup each.
  WriteFile(p.dir / "migrations/0003_drop_name.sql", "ALTER TABLE users DROP COLUMN name;\n");
  REQUIRE(p.Run({"careless", "-e", "what=any"}).exit_code == 0);
  CHECK(p.Backups().size() == 2);
  WriteFile(p.dir / "migrations/0004_drop_t.sql", "-- hoist:phase contract\n-- hoist:up\nCREATE TABLE t (x);\nDROP TABLE t;\n-- hoist:down\nSELECT 1;\n");
  REQUIRE(p.Run({"careless", "-e", "what=contract"}).exit_code == 0);
  CHECK(p.Backups().size() == 3);

  // An additive migration under expand needs none; safety_backup = false is said.
  auto none = p.Run({"careless", "-e", "what=none"});
  INFO(none.out << none.err);
  CHECK(none.exit_code == 0);
  CHECK(none.err.find("no safety backup before rolling back 1 migration") != std::string::npos);
  CHECK(p.Backups().size() == 3);
}

TEST_CASE("migrate status: migrations newer than every file are a newer release's, not a broken history") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  // The directory of the release before: it lacks 0002, which a deploy kept.
  fs::remove(p.dir / "migrations/0002_email.sql");
  auto st = p.Run({"migrate"});
  INFO(st.out << st.err);
  CHECK(st.exit_code == 0);
  CHECK(st.err.find("1 migration(s) applied beyond the files in") != std::string::npos);
  CHECK(st.err.find("hoist migrate -e action=down -e steps=1") != std::string::npos);
  // A file missing below the newest one is a broken history.
  WriteFile(p.dir / "migrations/0002_email.sql", kEmail);
  fs::remove(p.dir / "migrations/0001_users.sql");
  CHECK(p.Run({"migrate"}).exit_code == 1);
}

TEST_CASE("migrate: -e to=0 with down rolls back every migration, unset to with down rolls back steps") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  auto all = p.Run({"migrate", "-e", "action=down", "-e", "to=0", "-e", "backup=false"});
  INFO(all.out << all.err);
  CHECK(all.exit_code == 0);
  CHECK(all.err.find("from version 2 to none") != std::string::npos);
  CHECK(p.Scalar("SELECT count(*) FROM hoist_schema_migrations") == 0);
  CHECK(p.Scalar("SELECT count(*) FROM sqlite_master WHERE name = 'users'") == 0);
  // Up again: unset `to` applies everything pending.
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  CHECK(p.Scalar("SELECT max(version) FROM hoist_schema_migrations") == 2);
}

TEST_CASE("migrate: repair needs a reason, then accepts an edited file and drops failed records") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  WriteFile(p.dir / "migrations/0001_users.sql", std::string(kUsers) + "-- a comment added after it ran\n");
  WriteFile(p.dir / "migrations/0003_bad.sql", "INSERT INTO nope VALUES (1);\n");
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 1);
  REQUIRE(p.Run({"migrate"}).exit_code == 1);

  auto no_reason = p.Run({"migrate", "-e", "action=repair"});
  CHECK(no_reason.exit_code != 0);
  CHECK(no_reason.err.find("repair needs -e reason=") != std::string::npos);

  fs::remove(p.dir / "migrations/0003_bad.sql");
  auto r = p.Run({"migrate", "-e", "action=repair", "-e", "reason=comment only; 0003 abandoned"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("1 checksum(s) accepted") != std::string::npos);
  auto st = p.Run({"migrate"});
  CHECK(st.exit_code == 0);
  CHECK(p.Scalar("SELECT count(*) FROM hoist_schema_migrations WHERE NOT success") == 0);
}

TEST_CASE("migrate: a failed migration is rolled back, reported, and applied once fixed") {
  Ops p;
  WriteFile(p.dir / "migrations/0003_audit.sql", "CREATE TABLE audit (id INTEGER PRIMARY KEY);\nINSERT INTO nope VALUES (1);\n");
  auto bad = p.Run({"--json", "migrate", "-e", "action=up", "-e", "backup=false"});
  CHECK(bad.exit_code == 1);
  CHECK(Ops::Finished(bad)["code"] == "failed");
  CHECK(Ops::Finished(bad)["error"].get<std::string>().find("0003_audit.sql failed at statement 2") != std::string::npos);
  CHECK(p.Scalar("SELECT count(*) FROM sqlite_master WHERE name = 'audit'") == 0);
  auto st = p.Run({"migrate"});
  CHECK(st.exit_code == 1);
  CHECK(st.err.find("      3  failed ") != std::string::npos);
  WriteFile(p.dir / "migrations/0003_audit.sql", "CREATE TABLE audit (id INTEGER PRIMARY KEY);\n");
  auto fixed = p.Run({"migrate", "-e", "action=up", "-e", "backup=false"});
  CHECK(fixed.exit_code == 0);
  CHECK(fixed.err.find("to 3: 0003_audit.sql") != std::string::npos);
  CHECK(p.Scalar("SELECT group_concat(version) FROM hoist_schema_migrations WHERE success") == "1,2,3");
}

TEST_CASE("migrate: a missing SQLite file is an error unless create is asked for") {
  Ops p;
  fs::remove(p.dir / "data/app.db");
  auto r = p.Run({"migrate", "-e", "action=up"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("no database file at " + (p.dir / "data/app.db")) != std::string::npos);
  CHECK(!fs::exists(p.dir / "data/app.db"));
  auto c = p.Run({"migrate", "-e", "action=up", "-e", "create=true"});
  CHECK(c.exit_code == 0);
  CHECK(p.Backups().empty());  // nothing to back up in a new file
  CHECK(p.Scalar("SELECT max(version) FROM hoist_schema_migrations") == 2);
}

TEST_CASE("migrate: a destructive migration is refused by the expand policy and rolled back") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up"}).exit_code == 0);
  p.Exec("INSERT INTO users (name, email) VALUES ('ada', 'ada@example.com')");
  WriteFile(p.dir / "migrations/0003_drop_email.sql", "ALTER TABLE users DROP COLUMN email;\n");
  auto lint = p.Run({"migrate", "-e", "action=lint"});
  CHECK(lint.exit_code == 1);
  CHECK(lint.err.find("0003_drop_email.sql is destructive (drop column users.email") != std::string::npos);

  auto r = p.Run({"--json", "migrate", "-e", "action=up"});
  CHECK(r.exit_code == 1);
  json fin = Ops::Finished(r);
  CHECK(fin["code"] == "refused");
  CHECK(fin["error"].get<std::string>().find("policy expand refuses it") != std::string::npos);
  CHECK(p.Scalar("SELECT max(version) FROM hoist_schema_migrations WHERE success") == 2);
  CHECK(p.Scalar("SELECT email FROM users") == "ada@example.com");
}

TEST_CASE("backup: label, protect, retention from hoist.lua, files 0600 in a 0700 dir") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  auto first = p.Run({"backup", "-e", "label=keepme", "-e", "protect=true", "-e", "reason=before the audit"});
  REQUIRE(first.exit_code == 0);
  CHECK(first.err.find("migration version 2, protected") != std::string::npos);
  for (int i = 0; i < 4; ++i) REQUIRE(p.Run({"backup", "-e", "label=nightly"}).exit_code == 0);
  auto names = p.Backups();
  // keep = 3 unprotected, plus the protected one.
  REQUIRE(names.size() == 4);
  CHECK(std::count_if(names.begin(), names.end(), [](auto& n) { return n.starts_with("app-keepme-"); }) == 1);
  CHECK(Mode(p.dir / "backups") == 0700);
  for (const auto& n : names) CHECK(Mode(p.dir / ("backups/" + n)) == 0600);
  json m = json::parse(ReadAll(p.dir / ("backups/" + names[0] + ".json")));
  for (const auto& n : names) {
    json mm = json::parse(ReadAll(p.dir / ("backups/" + n + ".json")));
    if (n.starts_with("app-keepme-")) m = mm;
  }
  CHECK(m["protected"] == true);
  CHECK(m["reason"] == "before the audit");
  CHECK(m["migration_version"] == "2");
}

TEST_CASE("restore: refuses without confirmation, then restores after a safety backup") {
  Ops p;
  p.GoodBackupThen("DELETE FROM users WHERE name = 'grace'; INSERT INTO users (name) VALUES ('mallory')");

  auto no = p.Run({"--json", "restore"});
  CHECK(no.exit_code == 1);
  CHECK(Ops::Finished(no)["code"] == "not_confirmed");
  CHECK(p.Scalar("SELECT group_concat(name) FROM (SELECT name FROM users ORDER BY id)") == "ada,mallory");
  CHECK(p.Backups().size() == 1);

  auto yes = p.Run({"restore", "--yes"});
  CHECK(yes.exit_code == 0);
  CHECK(yes.err.find("will restore app-good-") != std::string::npos);
  CHECK(yes.err.find("the previous contents are in the protected backup") != std::string::npos);
  CHECK(p.Scalar("SELECT group_concat(name) FROM (SELECT name FROM users ORDER BY id)") == "ada,grace");
  auto names = p.Backups();
  REQUIRE(names.size() == 2);
  std::string safety = names[0].starts_with("app-pre-restore-") ? names[0] : names[1];
  REQUIRE(safety.starts_with("app-pre-restore-"));
  auto conn = db::Open("sqlite://" + (p.dir / ("backups/" + safety)), ReadOnly());
  auto r = conn->Query("SELECT group_concat(name) FROM (SELECT name FROM users ORDER BY id)");
  CHECK(db::ValueToJson(r.rows[0][0]) == "ada,mallory");
}

TEST_CASE("restore on a terminal: answering n changes nothing, answering y restores") {
  Ops p;
  p.GoodBackupThen("DELETE FROM users WHERE name = 'grace'");

  auto no = RunHoistOnTerminal(p.dir.path, {"restore"}, "n\n");
  INFO(no.output);
  REQUIRE(no.prompted);
  CHECK(no.output.find("will restore app-good-") != std::string::npos);
  CHECK(no.exit_code == 1);
  CHECK(no.output.find("not_confirmed") == std::string::npos);  // a person said no: no advice to pass --yes
  CHECK(p.Scalar("SELECT group_concat(name) FROM users") == "ada");
  CHECK(p.Backups().size() == 1);  // no safety backup either

  auto yes = RunHoistOnTerminal(p.dir.path, {"restore"}, "y\n");
  INFO(yes.output);
  REQUIRE(yes.prompted);
  CHECK(yes.exit_code == 0);
  CHECK(p.Scalar("SELECT group_concat(name) FROM (SELECT name FROM users ORDER BY id)") == "ada,grace");
  CHECK(p.Backups().size() == 2);  // the protected safety backup of what was replaced
}

TEST_CASE("restore: a bit-flipped backup is refused and the live database is unchanged") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  p.Exec("INSERT INTO users (name) VALUES ('ada')");
  REQUIRE(p.Run({"backup"}).exit_code == 0);
  std::string name = p.Backups().at(0);
  FlipByte(p.dir / ("backups/" + name), 4096 + 100);
  p.Exec("INSERT INTO users (name) VALUES ('grace')");

  auto r = p.Run({"--json", "restore", "--yes", "-e", "backup=" + name});
  CHECK(r.exit_code == 1);
  json fin = Ops::Finished(r);
  CHECK(fin["code"] == "corrupt");
  std::string err = fin["error"];
  CHECK(err.find("refusing to restore: " + name + ": sha256 mismatch") != std::string::npos);
  CHECK(err.find(name + ": sha256 mismatch: the file hashes to ") != std::string::npos);
  CHECK(err.find("was not touched") != std::string::npos);
  CHECK(p.Scalar("SELECT group_concat(name) FROM (SELECT name FROM users ORDER BY id)") == "ada,grace");
  CHECK(p.Backups().size() == 1);  // no safety backup: nothing was about to change

  auto missing = p.Run({"restore", "--yes", "-e", "backup=app-nope.db"});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("no backup named app-nope.db of sqlite://" + (p.dir / "data/app.db")) != std::string::npos);
}

TEST_CASE("restore: a backup that is not what its manifest says is refused before the live database changes") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  p.Exec("INSERT INTO users (name) VALUES ('ada')");
  REQUIRE(p.Run({"backup"}).exit_code == 0);
  // Intact data, a manifest that records another schema.
  std::string name = p.Backups().at(0);
  json m = json::parse(ReadAll(p.dir / ("backups/" + name + ".json")));
  m["schema_fingerprint"] = std::string(64, 'f');
  WriteFile(p.dir / ("backups/" + name + ".json"), m.dump());
  p.Exec("INSERT INTO users (name) VALUES ('grace')");

  auto r = p.Run({"restore", "--yes"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("refusing to restore " + name + " into " + (p.dir / "data/app.db") +
                   ": it is not the backup its manifest describes (its schema fingerprint is ") != std::string::npos);
  CHECK(r.err.find("the manifest records ffffffffffffffff); nothing was written") != std::string::npos);
  CHECK(r.out.find("undo restore") == std::string::npos);  // nothing to undo: nothing was written
  CHECK(p.Scalar("SELECT group_concat(name) FROM (SELECT name FROM users ORDER BY id)") == "ada,grace");
  CHECK(p.Backups().size() == 1);  // not even a safety backup was needed
}

TEST_CASE("verify: backups, drill and the live schema fingerprint") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  p.Exec("INSERT INTO users (name) VALUES ('ada')");
  REQUIRE(p.Run({"backup"}).exit_code == 0);
  REQUIRE(p.Run({"backup"}).exit_code == 0);
  auto ok = p.Run({"verify", "-e", "backups=all"});
  CHECK(ok.exit_code == 0);
  CHECK(ok.err.find(": ok (checksum, integrity, restore drill)") != std::string::npos);
  CHECK(ok.err.find("matches backup app-manual-") != std::string::npos);
  std::string newest = p.Newest();
  json m = json::parse(ReadAll(p.dir / ("backups/" + newest + ".json")));
  CHECK(m["last_drill"]["ok"] == true);

  // A schema change behind the migrations' back: same version, other fingerprint.
  p.Exec("CREATE INDEX users_name ON users (name)");
  auto drift = p.Run({"--json", "verify", "-e", "drill=false"});
  CHECK(drift.exit_code == 1);
  json fin = Ops::Finished(drift);
  CHECK(fin["code"] == "verify_failed");
  CHECK(fin["error"].get<std::string>().find("differs from") != std::string::npos);
  CHECK(fin["error"].get<std::string>().find("(migration version 2)") != std::string::npos);

  // The expected fingerprint as a param.
  auto fp = p.Run({"verify", "-e", "drill=false", "-e", "expect_fingerprint=" + m["schema_fingerprint"].get<std::string>()});
  CHECK(fp.exit_code == 1);

  FlipByte(p.dir / ("backups/" + newest), 4096 + 10);
  auto bad = p.Run({"--json", "verify", "-e", "live=false"});
  CHECK(bad.exit_code == 1);
  CHECK(Ops::Finished(bad)["error"].get<std::string>().find(newest + ": sha256 mismatch") != std::string::npos);

  // Intact data whose manifest lies about the schema: the drill catches it,
  // and the live check no longer trusts that manifest.
  REQUIRE(p.Run({"backup"}).exit_code == 0);
  std::string lying = p.Newest();
  json lm = json::parse(ReadAll(p.dir / ("backups/" + lying + ".json")));
  lm["schema_fingerprint"] = std::string(64, '0');
  WriteFile(p.dir / ("backups/" + lying + ".json"), lm.dump());
  auto drill = p.Run({"verify"});
  CHECK(drill.exit_code == 1);
  CHECK(drill.out.find("✗ verify " + lying) != std::string::npos);
  CHECK(drill.err.find(lying + ": restore drill failed: schema fingerprint ") != std::string::npos);
  CHECK(drill.err.find("differs from 0000000000000000 recorded in") == std::string::npos);
}

TEST_CASE("prune: dry run removes nothing, then the retention applies") {
  Ops p;
  for (int i = 0; i < 5; ++i) REQUIRE(p.Run({"backup", "-e", "keep=10"}).exit_code == 0);
  REQUIRE(p.Backups().size() == 5);
  auto dry = p.Run({"prune", "-e", "keep=2", "-e", "dry_run=true"});
  CHECK(dry.exit_code == 0);
  CHECK(dry.err.find("would remove 3 backup(s), 2 remain (keep 2 unprotected and every safety backup per database); dry "
                     "run: nothing was removed") != std::string::npos);
  CHECK(p.Backups().size() == 5);
  auto real = p.Run({"prune"});  // keep = 3 from hoist.lua
  CHECK(real.exit_code == 0);
  CHECK(real.err.find("removed 2 backup(s), 3 remain (keep 3 unprotected and every safety backup per database)") !=
        std::string::npos);
  CHECK(p.Backups().size() == 3);
}

TEST_CASE("prune: safety backups stay until keep_safety says otherwise, from the command line or hoist.lua") {
  Ops p;
  p.Exec("CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT)");  // something to lose: each migrate backs up first
  for (const char* action : {"up", "down", "up", "down"})
    REQUIRE(p.Run({"migrate", "-e", std::string("action=") + action, "-e", "steps=2"}).exit_code == 0);
  REQUIRE(p.Run({"backup"}).exit_code == 0);
  const std::string manual = p.Newest();
  auto all = p.Backups();
  REQUIRE(all.size() == 5);
  CHECK(std::count_if(all.begin(), all.end(), [](const std::string& n) { return n.find("-pre-migrate") != std::string::npos; }) == 4);

  auto keep = p.Run({"prune"});  // keep = 3: the safety backups neither count nor go
  CHECK(keep.exit_code == 0);
  CHECK(keep.err.find("removed 0 backup(s), 5 remain") != std::string::npos);
  CHECK(keep.err.find("4 safety backup(s) (") != std::string::npos);
  CHECK(keep.err.find("are kept: set backups.keep_safety in hoist.lua (or -e keep_safety=N) to keep only the newest N "
                      "per database") != std::string::npos);
  CHECK(p.Backups().size() == 5);

  auto one = p.Run({"prune", "-e", "keep_safety=1"});
  CHECK(one.exit_code == 0);
  CHECK(one.err.find("removed 3 backup(s), 2 remain (keep 3 unprotected and 1 safety backups per database)") !=
        std::string::npos);
  CHECK(one.err.find("are kept: set backups.keep_safety") == std::string::npos);
  auto left = p.Backups();
  REQUIRE(left.size() == 2);
  CHECK(std::find(left.begin(), left.end(), manual) != left.end());
  const std::string last_safety = left[0] == manual ? left[1] : left[0];
  CHECK(last_safety.find("-pre-migrate-down-") != std::string::npos);

  // backups.keep_safety in hoist.lua: each new safety backup prunes the older ones.
  std::string config = ReadAll(p.dir / "hoist.lua");
  config.replace(config.find("keep = 3 }"), 10, "keep = 3, keep_safety = 1 }");
  WriteFile(p.dir / "hoist.lua", config);
  auto up = p.Run({"migrate", "-e", "action=up"});
  CHECK(up.exit_code == 0);
  left = p.Backups();
  REQUIRE(left.size() == 2);
  CHECK(std::find(left.begin(), left.end(), last_safety) == left.end());
  CHECK(std::find(left.begin(), left.end(), manual) != left.end());
}

TEST_CASE("compare: equal databases exit 0, differing ones exit 1 with the diff") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  REQUIRE(p.Run({"migrate", "--env", "dev", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  auto same = p.Run({"compare", "-e", "a=dev", "-e", "b=prod"});
  CHECK(same.exit_code == 0);
  CHECK(same.err.find("same schema (fingerprint") != std::string::npos);

  p.Exec("CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT)", "data/dev.db");
  auto r = p.Run({"--json", "compare", "-e", "a=prod", "-e", "b=dev"});
  CHECK(r.exit_code == 1);
  json fin = Ops::Finished(r);
  CHECK(fin["code"] == "differs");
  std::string err = fin["error"];
  CHECK(err.find("prod (sqlite://" + (p.dir / "data/app.db") + ") vs dev (sqlite://" + (p.dir / "data/dev.db") +
                 ") differ") != std::string::npos);
  CHECK(err.find("+ table audit (id, what)") != std::string::npos);

  // A URL on one side; a migration applied on one side only.
  REQUIRE(p.Run({"migrate", "--env", "dev", "-e", "action=down", "-e", "backup=false"}).exit_code == 0);
  p.Exec("DROP TABLE audit", "data/dev.db");
  auto h = p.Run({"compare", "-e", "a=prod", "-e", "b=sqlite:data/dev.db"});
  CHECK(h.exit_code == 1);
  CHECK(h.err.find("- migration 2 email: applied in prod only") != std::string::npos);
  CHECK(h.err.find("- column users.email") != std::string::npos);

  auto unknown = p.Run({"compare", "-e", "a=prod", "-e", "b=staging"});
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("'staging' is neither an environment of hoist.lua (dev, prod) nor a database URL") !=
        std::string::npos);
}

TEST_CASE("a held lease stops backup and restore with exit 4 and changes nothing") {
  Ops p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  auto store = engine::OpenStateStore(p.dir / ".hoist/state.db");
  engine::Lease lease;
  lease.env = "prod";
  lease.owner = "alice";
  lease.host = "deploy-host";
  lease.pid = getpid();
  lease.run_id = 99;
  lease.reason = "deploy v2";
  lease.token = "test-token";
  store->AcquireLease(lease, 60);
  for (const char* pb : {"backup", "restore", "migrate", "prune"}) {
    CAPTURE(pb);
    auto r = p.Run({pb, "--yes"});
    CHECK(r.exit_code == 4);
    CHECK(r.err.find("environment 'prod' is locked by alice@") != std::string::npos);
  }
  CHECK(p.Backups().empty());
  store->ReleaseLease("prod", "test-token");
  CHECK(p.Run({"backup"}).exit_code == 0);
}

TEST_CASE("example two-databases: run.sh consolidates blue and green, keeping both") {
  TempDir t("twodb");
  CopyExample("two-databases", t.path);
  sys::ProcessSpec spec;
  spec.argv = {"bash", t / "run.sh"};
  spec.env = {{"HOIST", HOIST_BINARY}, {"NO_COLOR", "1"}};
  spec.timeout = std::chrono::milliseconds(120000);
  auto r = sys::RunProcess(spec);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("warning: the data drifted: blue.notes has 3 rows, digest ") != std::string::npos);
  auto q = [&](const std::string& file, const std::string& sql) {
    auto conn = db::Open("sqlite://" + (t / file), ReadOnly());
    return db::ValueToJson(conn->Query(sql).rows.at(0).at(0));
  };
  CHECK(q("data/shared.db", "SELECT group_concat(body, '|') FROM (SELECT body FROM notes ORDER BY id)") ==
        "blue note 1|blue note 2|blue note 3");
  CHECK(q("data/shared.db", "SELECT max(version) FROM hoist_schema_migrations") == 2);
  CHECK(q("data/shared.db", "PRAGMA journal_mode") == "wal");
  // Nothing deleted: green's notes are still in its file and in a protected backup.
  CHECK(q("data/green.db", "SELECT count(*) FROM notes WHERE tag = 'green'") == 3);
  bool green_backup = false;
  for (const auto& e : fs::directory_iterator(t / "backups")) {
    std::string n = e.path().filename().string();
    if (n.starts_with("green-pre-consolidate-green-") && n.ends_with(".db.json")) {
      green_backup = json::parse(ReadAll(e.path().string()))["protected"] == true;
    }
  }
  CHECK(green_backup);

  // Run again: the shared database exists and is never overwritten.
  auto again = RunHoist(t.path, {"consolidate", "-e", "from=green", "--yes"});
  CHECK(again.exit_code == 1);
  CHECK(again.err.find("already exists: consolidate never overwrites a database") != std::string::npos);
  CHECK(q("data/shared.db", "SELECT count(*) FROM notes WHERE tag = 'green'") == 0);
}

TEST_CASE("example two-databases: colours that disagree are refused with the diff") {
  TempDir t("twodb");
  CopyExample("two-databases", t.path);
  REQUIRE(RunHoist(t.path, {"seed"}).exit_code == 0);
  // Green's schema drifted: a table blue does not have.
  {
    auto conn = db::Open("sqlite://" + (t / "data/green.db"));
    conn->Exec("CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT)");
  }
  auto r = RunHoist(t.path, {"consolidate", "-e", "from=blue", "--yes"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("refusing to consolidate: blue and green disagree; nothing was changed") != std::string::npos);
  CHECK(r.err.find("+ table audit (id, what)") != std::string::npos);
  CHECK(!fs::exists(t / "data/shared.db"));
  auto conn = db::Open("sqlite://" + (t / "data/green.db"), ReadOnly());
  CHECK(db::ValueToJson(conn->Query("SELECT count(*) FROM notes").rows[0][0]) == 3);
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test

// The canned database playbooks and examples/postgres against a private
// PostgreSQL cluster (tests/support/pg_cluster), through the real hoist
// binary. Each test checks the exit code and message, then the database.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/pg_cluster.h"
#include "support/support.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const char* kConfig = R"lua(return {
  environments = {
    prod = { database = os.getenv("DATABASE_URL"), backups = { dir = "backups", keep = 3 } },
    dev = { database = os.getenv("DEV_DATABASE_URL") },
  },
  default_env = "prod",
}
)lua";

unsigned Mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// A project whose prod (and dev) are fresh databases of the test cluster.
struct PgOps {
  PgCluster& pg = PgCluster::Get();
  std::string prod = pg.CreateDatabase("ops");
  std::string dev = pg.CreateDatabase("opsdev");
  TempDir dir{"pgops"};
  PgOps() {
    WriteFile(dir / "hoist.lua", kConfig);
    WriteFile(dir / "migrations/0001_items.sql",
              "-- hoist:phase expand\n-- hoist:up\nCREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\n"
              "-- hoist:down\nDROP TABLE items;\n");
    WriteFile(dir / "migrations/0002_price.sql",
              "-- hoist:phase expand\n-- hoist:up\nALTER TABLE items ADD COLUMN price numeric(10, 2);\n"
              "-- hoist:down\nALTER TABLE items DROP COLUMN price;\n");
  }
  sys::ProcessResult Run(std::vector<std::string> args) {
    return RunHoist(dir.path, std::move(args), {{"DATABASE_URL", pg.Url(prod)}, {"DEV_DATABASE_URL", pg.Url(dev)}});
  }
  std::string Sql(const std::string& sql, const std::string& db = "") const { return pg.Psql(sql, db.empty() ? prod : db); }
  std::vector<std::string> Backups() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir / "backups", ec)) {
      std::string n = e.path().filename().string();
      if (n.ends_with(".dump")) out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
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

using test::FlipByte;

TEST_SUITE("playbooks/ops/pg") {

TEST_CASE("examples/postgres: run.sh migrates, backs up, drills, contracts, rolls back and restores") {
  PgCluster& pg = PgCluster::Get();
  std::string db = pg.CreateDatabase("example");
  TempDir t("pgexample");
  fs::copy(std::string(HOIST_SOURCE_DIR) + "/examples/postgres", t.path, fs::copy_options::recursive);
  for (const char* d : {"backups", ".hoist"}) fs::remove_all(t / d);
  sys::ProcessSpec spec;
  spec.argv = {"bash", t / "run.sh"};
  spec.env = {{"HOIST", HOIST_BINARY}, {"DATABASE_URL", pg.Url(db)}, {"NO_COLOR", "1"}};
  spec.timeout = std::chrono::milliseconds(180000);
  auto r = sys::RunProcess(spec);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find(PgCluster::kPassword) == std::string::npos);
  CHECK(r.out.find(PgCluster::kPassword) == std::string::npos);
  // The restore brought back the pre-contract state: version 3, name and
  // full_name both present, the seeded rows.
  CHECK(pg.Psql("SELECT max(version) FROM hoist_schema_migrations", db) == "3");
  CHECK(pg.Psql("SELECT string_agg(name || '=' || full_name, ',' ORDER BY id) FROM customers", db) ==
        "customer 1=customer 1,customer 2=customer 2,customer 3=customer 3");
  CHECK(pg.Psql("SELECT count(*) FROM orders", db) == "6");
  bool drilled = false;
  for (const auto& e : fs::directory_iterator(t / "backups")) {
    std::string n = e.path().filename().string();
    if (n.ends_with(".dump")) CHECK(Mode(e.path().string()) == 0600);
    if (n.starts_with(db + "-pre-contract-") && n.ends_with(".dump.json")) {
      json m = json::parse(ReadAll(e.path().string()));
      CHECK(m["format"] == "custom");
      drilled = m["last_drill"]["ok"] == true;
    }
  }
  CHECK(drilled);
  CHECK(Mode(t / "backups") == 0700);
}

TEST_CASE("pg: migrate up applies, a destructive migration is refused and rolled back") {
  PgOps p;
  p.Sql("CREATE TABLE settings (k text PRIMARY KEY, v text)");  // something to lose: a backup first
  auto up = p.Run({"migrate", "-e", "action=up"});
  INFO(up.err);
  REQUIRE(up.exit_code == 0);
  CHECK(p.Sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM hoist_schema_migrations") == "1,2");
  CHECK(p.Backups().size() == 1);
  p.Sql("INSERT INTO items VALUES (1, 'pen', 1.50)");
  WriteFile(p.dir / "migrations/0003_drop_price.sql", "ALTER TABLE items DROP COLUMN price;\n");
  auto r = p.Run({"--json", "migrate", "-e", "action=up"});
  CHECK(r.exit_code == 1);
  json fin = PgOps::Finished(r);
  CHECK(fin["code"] == "refused");
  CHECK(fin["error"].get<std::string>().find("0003_drop_price.sql is destructive (drop column items.price") !=
        std::string::npos);
  CHECK(p.Sql("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "2");
  CHECK(p.Sql("SELECT price FROM items") == "1.50");
}

TEST_CASE("pg: restore refuses a bit-flipped dump and leaves the database unchanged, restores a good one") {
  PgOps p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  p.Sql("INSERT INTO items VALUES (1, 'pen', 1.50), (2, 'ink', 3.00)");
  REQUIRE(p.Run({"backup", "-e", "label=flipped"}).exit_code == 0);
  std::string bad = p.Backups().at(0);
  FlipByte(p.dir / ("backups/" + bad), 200);
  p.Sql("DELETE FROM items WHERE id = 2");

  auto r = p.Run({"--json", "restore", "--yes", "-e", "backup=" + bad});
  CHECK(r.exit_code == 1);
  json fin = PgOps::Finished(r);
  CHECK(fin["code"] == "corrupt");
  CHECK(fin["error"].get<std::string>().find("refusing to restore: " + bad + ": ") != std::string::npos);
  CHECK(fin["error"].get<std::string>().find(bad + ": sha256 mismatch") != std::string::npos);
  CHECK(p.Sql("SELECT string_agg(name, ',' ORDER BY id) FROM items") == "pen");
  CHECK(p.Backups().size() == 1);  // no safety backup was taken

  REQUIRE(p.Run({"backup", "-e", "label=good"}).exit_code == 0);
  p.Sql("INSERT INTO items VALUES (3, 'mallory', 0)");
  auto ok = p.Run({"restore", "--yes", "-e", "label=good"});
  INFO(ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(p.Sql("SELECT string_agg(name, ',' ORDER BY id) FROM items") == "pen");
  auto names = p.Backups();
  CHECK(std::count_if(names.begin(), names.end(), [&](auto& n) { return n.starts_with(p.prod + "-pre-restore-"); }) == 1);
  CHECK(ok.err.find(PgCluster::kPassword) == std::string::npos);
}

TEST_CASE("pg: verify drills the newest dump and flags a changed live schema") {
  PgOps p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  REQUIRE(p.Run({"backup"}).exit_code == 0);
  auto ok = p.Run({"verify"});
  INFO(ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(ok.err.find(": ok (checksum, integrity, restore drill)") != std::string::npos);
  CHECK(ok.err.find("matches backup " + p.prod + "-manual-") != std::string::npos);

  p.Sql("CREATE INDEX items_name ON items (name)");
  auto drift = p.Run({"--json", "verify", "-e", "drill=false"});
  CHECK(drift.exit_code == 1);
  CHECK(PgOps::Finished(drift)["code"] == "verify_failed");
}

TEST_CASE("pg: compare exits 0 for the same schema and 1 with the diff for different ones") {
  PgOps p;
  REQUIRE(p.Run({"migrate", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  REQUIRE(p.Run({"migrate", "--env", "dev", "-e", "action=up", "-e", "backup=false"}).exit_code == 0);
  auto same = p.Run({"compare", "-e", "a=dev", "-e", "b=prod"});
  CHECK(same.exit_code == 0);
  p.Sql("ALTER TABLE items ADD COLUMN sku text", p.dev);
  auto r = p.Run({"compare", "-e", "a=prod", "-e", "b=dev"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("+ column items.sku text") != std::string::npos);
  CHECK(r.err.find(PgCluster::kPassword) == std::string::npos);
  CHECK(r.err.find("postgres://hoist:***@127.0.0.1:") != std::string::npos);
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test

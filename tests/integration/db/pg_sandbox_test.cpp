// Sandbox runs against PostgreSQL: the copy is a scratch database on the
// same server (CREATE DATABASE ... TEMPLATE when the source is idle, pg_dump
// and pg_restore while someone is connected), the playbook changes only the
// copy, and the scratch database is dropped afterwards.
#include <doctest/doctest.h>

#include <filesystem>

#include "app/sandbox.h"
#include "db/connection.h"
#include "engine/reporter.h"
#include "support/pg_cluster.h"
#include "support/support.h"

namespace hoist::test {
namespace {

const char* kPlaybook = R"lua(local hoist = require "hoist"
local project = require "hoist.project"
return hoist.playbook { name = "grow", version = "1.0.0", run = function(run)
  run:step("grow", function()
    local db <close> = project.database(run)
    db:exec("ALTER TABLE users ADD COLUMN email TEXT")
    return db:exec("INSERT INTO users (name) VALUES ('margaret')")
  end)
end }
)lua";

struct PgProject {
  PgCluster& pg = PgCluster::Get();
  std::string db = pg.CreateDatabase("sbx");
  TempDir dir{"pgsbx"};
  PgProject() {
    pg.Psql("CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);"
            "INSERT INTO users (name) VALUES ('ada'), ('grace'), ('linus');",
            db);
    WriteFile(dir / "hoist.lua", "return { environments = { prod = { database = \"" + pg.Url(db) + "\" } } }");
    WriteFile(dir / "grow.lua", kPlaybook);
  }
  app::SandboxResult Run() {
    app::SandboxOptions o;
    o.run.playbook = dir / "grow.lua";
    auto quiet = engine::MakeNullReporter();
    return app::RunSandbox({dir.path, dir / "hoist.lua"}, o, *quiet);
  }
  std::string Scratch() {
    return pg.Psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'hoist\\_sandbox\\_%'");
  }
};

TEST_SUITE("db/postgres/sandbox") {
  TEST_CASE("an idle source is copied with CREATE DATABASE TEMPLATE, changed only in the copy, dropped after") {
    PgProject p;
    auto r = p.Run();
    CHECK(r.outcome.status == "ok");
    CHECK(r.copy_method == "template");
    CHECK(r.rows["users"].before == 3);
    CHECK(r.rows["users"].after == 4);
    CHECK(r.schema_text.find("+ column users.email") != std::string::npos);
    CHECK(p.pg.Psql("SELECT count(*) FROM users", p.db) == "3");
    CHECK(p.Scratch() == "0");
  }

  TEST_CASE("a source in use is copied with pg_dump and pg_restore, without waiting for its sessions") {
    PgProject p;
    auto holder = db::Open(p.pg.Url(p.db));  // someone connected: TEMPLATE is refused
    auto r = p.Run();
    CHECK(r.outcome.status == "ok");
    CHECK(r.copy_method == "pg_dump");
    // CREATE DATABASE ... TEMPLATE of a source in use waits 5 s before it
    // fails: a live app's database (every blue/green one) must not pay that.
    CHECK(r.copy_seconds < 4.0);
    CHECK(r.rows["users"].after == 4);
    CHECK(std::get<int64_t>(holder->Query("SELECT count(*) FROM users").rows[0][0]) == 3);
    CHECK(p.Scratch() == "0");
  }
}

}  // namespace
}  // namespace hoist::test

// hoist.health against real servers the harness starts: SQL checks on
// PostgreSQL (SQLite is in tests/unit/traffic/health_test.cpp) and
// container checks against dockerd's own HEALTHCHECK status.
#include <doctest/doctest.h>

#include <atomic>
#include <string>

#include "support/dockerd.h"
#include "support/pg_cluster.h"
#include "support/support.h"
#include "support/lua_eval.h"

namespace hoist::test {
namespace {

TEST_SUITE("traffic/health") {
  TEST_CASE("sql checks on PostgreSQL") {
    PgCluster& pg = PgCluster::Get();
    std::string name = pg.CreateDatabase("health");
    pg.Psql("CREATE TABLE users(id int); INSERT INTO users VALUES (1), (2)", name);
    std::string db = "local db = require('hoist.db').open(" + LuaStr(pg.Url(name)) + ")\n"
                     "local health = require 'hoist.health'\n";
    auto r = RunLua(db + "return health.sql{ db = db, query = 'SELECT count(*) FROM users', expect = 2 }");
    CHECK(r["ok"] == true);
    CHECK(r["value"] == 2);
    r = RunLua(db + "return health.sql{ db = db, query = 'SELECT count(*) FROM users', expect = 3 }");
    CHECK(r["ok"] == false);
    CHECK(r["error"] == "SELECT count(*) FROM users gave 2, expected 3");
    r = RunLua(db + "return health.sql{ db = db, query = 'SELECT count(*) FROM orders', retries = 1, interval = 0.05 }");
    CHECK(r["ok"] == false);
    CHECK(r["attempts"] == 2);
    CHECK(r["error"].get<std::string>().find("relation \"orders\" does not exist") != std::string::npos);
    r = RunLua(db + "return health.wait({ { sql = { db = db, query = 'SELECT 1', expect = 1 } },"
                    " { tcp = { port = " + std::to_string(pg.port()) + " } } }, { timeout = 5 })");
    CHECK(r["ok"] == true);
  }

  TEST_CASE("container checks follow Docker's own health status") {
    Dockerd& dockerd = Dockerd::Shared();
    const std::string& image = dockerd.BusyboxImage();
    static std::atomic<int> n{0};
    std::string suffix = std::to_string(::getpid()) + "-" + std::to_string(n++);
    std::string lua =
        "local docker = require 'hoist.docker'\n"
        "local health = require 'hoist.health'\n"
        "local d <close> = docker.connect{ socket = " + LuaStr(dockerd.socket()) + " }\n"
        "local function run(name, test)\n"
        "  d:create{ image = " + LuaStr(image) + ", name = name, network = 'none',\n"
        "    cmd = { '/bin/busybox', 'sleep', '600' },\n"
        "    healthcheck = { test = test, interval = 0.1, timeout = 1, retries = 1 } }\n"
        "  d:start(name)\n"
        "end\n"
        "local good, bad, plain = 'hoist-health-good-" + suffix + "', 'hoist-health-bad-" + suffix + "',"
        " 'hoist-health-plain-" + suffix + "'\n"
        "run(good, { '/bin/busybox', 'true' })\n"
        "run(bad, { '/bin/busybox', 'false' })\n"
        "d:create{ image = " + LuaStr(image) + ", name = plain, network = 'none', cmd = { '/bin/busybox', 'sleep', '600' } }\n"
        "d:start(plain)\n"
        "local out = {\n"
        "  good = health.container{ docker = d, name = good, retries = 50, interval = 0.1 },\n"
        "  bad = health.container{ docker = d, name = bad, retries = 30, interval = 0.1 },\n"
        "  plain = health.container{ docker = d, name = plain },\n"
        "  missing = health.container{ docker = d, name = 'hoist-no-such-container' },\n"
        "}\n"
        "for _, name in ipairs({ good, bad, plain }) do d:remove(name, { force = true }) end\n"
        "return out\n";
    auto r = RunLua(lua);
    CHECK(r["good"]["ok"] == true);
    CHECK(r["good"]["status"] == "healthy");
    CHECK(r["bad"]["ok"] == false);
    CHECK(r["bad"]["status"] == "unhealthy");
    CHECK(r["bad"]["error"].get<std::string>().rfind("container hoist-health-bad-" + suffix + " is unhealthy", 0) == 0);
    CHECK(r["plain"]["ok"] == true);
    CHECK(r["plain"]["status"] == "running");
    CHECK(r["missing"]["ok"] == false);
    CHECK(r["missing"]["code"] == "not_found");
  }
}

}  // namespace
}  // namespace hoist::test

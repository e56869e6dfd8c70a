// hoist.health against real local servers (ColourServer on loopback):
// status ranges, body and JSON assertions, a port that accepts but never
// answers, retries with backoff, TCP, SQLite, wait. Results are data.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "support/colour_server.h"
#include "support/support.h"
#include "support/lua_eval.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;

json Check(const std::string& call) { return RunLua("local health = require 'hoist.health'\nreturn " + call); }

std::string Url(const ColourServer& s, const std::string& path = "/health") {
  return "'http://127.0.0.1:" + std::to_string(s.port()) + path + "'";
}

TEST_SUITE("traffic/health") {
  TEST_CASE("http: status as a number, a range, a class or a list") {
    ColourServer s("green");
    s.SetRoute("/health", {200, R"({"status":"ok"})"});
    s.SetRoute("/created", {201, "made"});
    auto r = Check("health.http{ url = " + Url(s) + " }");
    CHECK(r["ok"] == true);
    CHECK(r["status"] == 200);
    CHECK(r["attempts"] == 1);
    CHECK(r["kind"] == "http");
    CHECK(r["target"] == "GET http://127.0.0.1:" + std::to_string(s.port()) + "/health");
    CHECK(r["latency"].get<double>() >= 0);
    CHECK(Check("health.http{ url = " + Url(s, "/created") + ", expect_status = 201 }")["ok"] == true);
    CHECK(Check("health.http{ url = " + Url(s, "/created") + ", expect_status = '200-204' }")["ok"] == true);
    CHECK(Check("health.http{ url = " + Url(s, "/created") + ", expect_status = '2xx' }")["ok"] == true);
    CHECK(Check("health.http{ url = " + Url(s, "/created") + ", expect_status = { 200, '201-202' } }")["ok"] == true);
    r = Check("health.http{ url = " + Url(s, "/created") + ", expect_status = { 200, 204 } }");
    CHECK(r["ok"] == false);
    CHECK(r["status"] == 201);
    CHECK(r["error"] == "status 201, expected 200 or 204");
    s.SetStatus(503);
    r = Check("health.http{ url = " + Url(s, "/") + " }");
    CHECK(r["ok"] == false);
    CHECK(r["error"] == "status 503, expected 200-299");
  }

  TEST_CASE("http: a probe asks the colour to close its connection, so no keep-alive outlives the check") {
    ColourServer s("green");
    CHECK(Check("health.http{ url = " + Url(s, "/") + ", retries = 2 }")["ok"] == true);
    CHECK(Check("health.http{ url = " + Url(s, "/") + ", headers = { ['X-Probe'] = 'gate' } }")["ok"] == true);
    CHECK(s.requests() == 2);
    CHECK(s.closing_requests() == 2);
  }

  TEST_CASE("http: body and JSON assertions") {
    ColourServer s("green");
    s.SetRoute("/health", {200, R"({"status":"ok","version":"1.4.2","checks":{"db":"up","disk":{"free":42}},)"
                                R"("items":[{"id":7}],"ready":true})"});
    s.SetRoute("/html", {200, "<h1>hello</h1>", "text/html"});
    CHECK(Check("health.http{ url = " + Url(s) + ", body_contains = '\"db\":\"up\"' }")["ok"] == true);
    auto r = Check("health.http{ url = " + Url(s) + ", body_contains = 'degraded' }");
    CHECK(r["ok"] == false);
    CHECK(r["error"] == "body does not contain \"degraded\"");
    r = Check("health.http{ url = " + Url(s) + ", json = { status = 'ok', ['checks.db'] = 'up',"
              " ['checks.disk.free'] = 42, ['items.1.id'] = 7, ready = true,"
              " version = function(v) return v:match('^1%.') ~= nil end } }");
    CHECK(r["ok"] == true);
    r = Check("health.http{ url = " + Url(s) + ", json = { ['checks.db'] = 'down' } }");
    CHECK(r["ok"] == false);
    CHECK(r["error"] == "JSON checks.db = \"up\", expected \"down\"");
    r = Check("health.http{ url = " + Url(s) + ", json = { ['checks.cache'] = 'up' } }");
    CHECK(r["error"] == "JSON has no checks.cache");
    r = Check("health.http{ url = " + Url(s) + ", json = { version = function(v) return v == '2.0' end } }");
    CHECK(r["error"] == "JSON version = \"1.4.2\" is not accepted");
    r = Check("health.http{ url = " + Url(s, "/html") + ", json = { status = 'ok' } }");
    CHECK(r["ok"] == false);
    CHECK(r["error"].get<std::string>().rfind("body is not JSON", 0) == 0);
  }

  TEST_CASE("http: a port that accepts but never answers times out, as data") {
    ColourServer s("blue");
    s.SetHang(true);
    auto t0 = std::chrono::steady_clock::now();
    auto r = Check("health.http{ url = " + Url(s) + ", timeout = 0.3 }");
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(r["ok"] == false);
    CHECK(r["code"] == "timeout");
    CHECK(r["error"].get<std::string>().find("timed out") != std::string::npos);
    CHECK(took >= 0.29);
    CHECK(took < 2.0);
  }

  TEST_CASE("http: retries with backoff") {
    ColourServer s("blue");
    s.SetHang(true);
    // 3 attempts of 0.2 s, sleeping 0.1 then 0.2 s in between.
    auto r = Check("health.http{ url = " + Url(s) + ", timeout = 0.2, retries = 2, interval = 0.1, backoff = 2 }");
    CHECK(r["ok"] == false);
    CHECK(r["attempts"] == 3);
    CHECK(r["seconds"].get<double>() >= 0.85);
    CHECK(r["seconds"].get<double>() < 3);

    // Unhealthy at first, healthy after ~0.35 s: passes on a later attempt.
    ColourServer t("green");
    t.SetStatus(500);
    std::thread flip([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(350));
      t.SetStatus(200);
    });
    r = Check("health.http{ url = " + Url(t, "/") + ", retries = 6, interval = 0.05, backoff = 2 }");
    flip.join();
    CHECK(r["ok"] == true);
    CHECK(r["attempts"].get<int>() > 1);
    CHECK(r["attempts"].get<int>() <= 5);

    // Connection refused is a failed check, not an error.
    int closed = FreePort();
    r = Check("health.http{ url = 'http://127.0.0.1:" + std::to_string(closed) + "/', retries = 1, interval = 0 }");
    CHECK(r["ok"] == false);
    CHECK(r["attempts"] == 2);
    CHECK(r["code"] == "connect_failed");
  }

  TEST_CASE("tcp: open and closed ports") {
    ColourServer s("blue");
    auto r = Check("health.tcp{ port = " + std::to_string(s.port()) + " }");
    CHECK(r["ok"] == true);
    CHECK(r["target"] == "127.0.0.1:" + std::to_string(s.port()));
    int closed = FreePort();
    r = Check("health.tcp{ host = '127.0.0.1', port = " + std::to_string(closed) + ", retries = 1, interval = 0.01 }");
    CHECK(r["ok"] == false);
    CHECK(r["code"] == "refused");
    CHECK(r["attempts"] == 2);
  }

  TEST_CASE("sql on SQLite: value, predicate, SQL error as data") {
    TempDir dir("health");
    std::string db = "local db = require('hoist.db').open('sqlite://" + (dir / "app.db") + "', { create = true })\n"
                     "db:exec('CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY)')\n"
                     "db:exec('INSERT OR IGNORE INTO users VALUES (1), (2), (3)')\n"
                     "local health = require 'hoist.health'\n";
    auto r = RunLua(db + "return health.sql{ db = db, query = 'SELECT count(*) FROM users', expect = 3 }");
    CHECK(r["ok"] == true);
    CHECK(r["value"] == 3);
    CHECK(r["kind"] == "sql");
    r = RunLua(db + "return health.sql{ db = db, query = 'SELECT count(*) FROM users', expect = function(n) return n > 5 end }");
    CHECK(r["ok"] == false);
    CHECK(r["error"] == "SELECT count(*) FROM users gave 3, which is not accepted");
    r = RunLua(db + "return health.sql{ db = db, query = 'SELECT count(*) FROM orders' }");
    CHECK(r["ok"] == false);
    CHECK(r["error"].get<std::string>().find("no such table: orders") != std::string::npos);
    r = RunLua(db + "return health.sql{ db = db, query = 'SELECT 1' }");
    CHECK(r["ok"] == true);
  }

  TEST_CASE("wait passes only when every check passes") {
    ColourServer s("green");
    s.SetRoute("/health", {200, R"({"status":"ok"})"});
    int closed = FreePort();
    std::string checks = "{ { http = { url = " + Url(s) + ", json = { status = 'ok' } } }, { tcp = { port = " +
                         std::to_string(s.port()) + " } }, { kind = 'tcp', port = " + std::to_string(s.port()) + " } }";
    auto r = Check("health.wait(" + checks + ", { timeout = 5 })");
    CHECK(r["ok"] == true);
    CHECK(r["rounds"] == 1);
    CHECK(r["results"].size() == 3);

    r = Check("health.wait({ { http = { url = " + Url(s) + " } }, { tcp = { port = " + std::to_string(closed) +
              ", timeout = 0.2 } } }, { timeout = 0.5, interval = 0.1 })");
    CHECK(r["ok"] == false);
    CHECK(r["rounds"].get<int>() >= 3);
    CHECK(r["results"][0]["ok"] == true);
    CHECK(r["results"][1]["ok"] == false);
    CHECK(r["error"].get<std::string>().rfind("tcp 127.0.0.1:" + std::to_string(closed) + ": cannot connect", 0) == 0);

    // A check turning healthy during the wait.
    s.SetRoute("/late", {503, "starting"});
    std::thread flip([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      s.SetRoute("/late", {200, "ready"});
    });
    r = Check("health.wait({ { http = { url = " + Url(s, "/late") + " } } }, { timeout = 5, interval = 0.1 })");
    flip.join();
    CHECK(r["ok"] == true);
    CHECK(r["rounds"].get<int>() > 1);
  }

  TEST_CASE("malformed checks raise") {
    auto e = LuaError("require('hoist.health').http{ url = 'http://x/', expect_staus = 200 }");
    CHECK(e.area() == "health");
    CHECK(e.code() == "invalid");
    CHECK(e.message().rfind("unknown option 'expect_staus' for health.http", 0) == 0);
    e = LuaError("require('hoist.health').tcp{ port = 'eighty' }");
    CHECK(e.message() == "health.tcp: port (an integer) is required");
    e = LuaError("require('hoist.health').wait({ { ftp = {} } })");
    CHECK(e.message() == "health.wait: check #1 needs one of http, tcp, sql, container (or kind = ...)");
  }
}

}  // namespace
}  // namespace hoist::test

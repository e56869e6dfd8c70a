// hoist.http and hoist.docker through the real Lua VM: argument handling,
// the response table, raised error tables, the client userdata, and that
// both go through the run's world (a fake world answers for dockerd here).
#include <doctest/doctest.h>

#include <functional>

#include "bind/context.h"
#include "core/secrets.h"
#include "engine/reporter.h"
#include "engine/runner.h"
#include "engine/state_store.h"
#include "engine/world.h"
#include "lua/boundary.h"
#include "lua/state.h"
#include "support/support.h"
#include "unit/net/test_server.h"

namespace hoist::net {
namespace {

using test::HttpAnswer;
using test::ServedRequest;
using test::TestServer;

/// A world whose HTTP is a function (what a sandbox world does); files stay real.
class FakeWorld final : public engine::RealWorld {
 public:
  std::function<HttpResponse(const HttpRequest&)> http;
  std::vector<HttpRequest> seen;
  sys::ProcessResult RunProcess(const sys::ProcessSpec&) override {
    throw Error("proc", "not_found", "no processes in this fake world");
  }
  HttpResponse Http(const HttpRequest& r) override {
    seen.push_back(r);
    return http(r);
  }
  const char* mode() const override { return "sandbox"; }
};

/// Keeps the world calls a runner journals; the rest of the store is inert.
class EventStore final : public engine::StateStore {
 public:
  struct Event {
    std::string kind, name;
    nlohmann::json data;
  };
  std::vector<Event> events;
  int64_t BeginRun(const engine::RunMeta&) override { return 1; }
  void FinishRun(int64_t, const std::string&, int, const std::string&) override {}
  int64_t StepStarted(int64_t, std::optional<int64_t>, const std::string&, const std::string&) override { return 1; }
  void StepFinished(int64_t, int64_t, const std::string&, int, const nlohmann::json&, const std::string&,
                    double) override {}
  void Event(int64_t, std::optional<int64_t>, const std::string& kind, const std::string& name,
             const nlohmann::json& data, double) override {
    events.push_back({kind, name, data});
  }
  std::vector<nlohmann::json> History(const std::optional<std::string>&, int) override { return {}; }
  std::optional<nlohmann::json> GetRun(int64_t) override { return std::nullopt; }
  void AcquireLease(const engine::Lease&, double) override {}
  bool Heartbeat(const std::string&, const std::string&, double) override { return true; }
  void ReleaseLease(const std::string&, const std::string&) override {}
  std::optional<engine::Lease> ForceRelease(const std::string&, const std::string&, const std::string&) override {
    return std::nullopt;
  }
  std::vector<engine::Lease> Leases() override { return {}; }
};

/// Runs a chunk with string arguments and returns its results as strings
/// (tostring of each).
std::vector<std::string> RunLua(lua::State& state, const std::string& code, std::vector<std::string> args = {}) {
  lua_State* L = state.get();
  int base = lua_gettop(L);
  state.LoadChunk(code, "=test");
  for (const auto& a : args) lua_pushlstring(L, a.data(), a.size());
  lua::Call(L, static_cast<int>(args.size()), LUA_MULTRET);
  std::vector<std::string> out;
  for (int i = base + 1; i <= lua_gettop(L); ++i) {
    out.emplace_back(luaL_tolstring(L, i, nullptr));
    lua_pop(L, 1);
  }
  lua_settop(L, base);
  return out;
}

HttpResponse Json(int status, const std::string& body) {
  HttpResponse r;
  r.status = status;
  r.body = body;
  r.headers = {{"Content-Type", "application/json"}};
  return r;
}

TEST_SUITE("net/bind") {
  TEST_CASE("http.get returns status, lower-case headers, body and a json decoder") {
    TestServer server([](const ServedRequest&) {
      return HttpAnswer(200, R"({"colour":"green","n":2})",
                        "Content-Type: application/json\r\nX-Colour: green\r\nX-Multi: a\r\nX-Multi: b\r\n");
    });
    lua::State state;
    auto out = RunLua(state, R"(
      local http = require "hoist.http"
      local r = http.get(...)
      return r.status, r.ok, r.body, r.headers["x-colour"], r.headers["x-multi"], r:json().colour, r:json().n,
             type(r.seconds)
    )",
                      {server.Url("/health")});
    CHECK(out == std::vector<std::string>{"200", "true", R"({"colour":"green","n":2})", "green", "a, b", "green", "2",
                                          "number"});
  }

  TEST_CASE("http.request sends method, headers and a json body") {
    TestServer server([](const ServedRequest& r) { return HttpAnswer(500, "failed: " + r.body); });
    lua::State state;
    auto out = RunLua(state, R"(
      local http = require "hoist.http"
      local r = http.request{ method = "post", url = ..., json = { name = "api" }, headers = { ["X-Req"] = 7 },
                              timeout = 2 }
      return r.status, r.ok, r.body
    )",
                      {server.Url("/deploy")});
    CHECK(out == std::vector<std::string>{"500", "false", R"(failed: {"name":"api"})"});
    ServedRequest seen = server.last();
    CHECK(seen.method == "POST");
    CHECK(seen.headers["content-type"] == "application/json");
    CHECK(seen.headers["x-req"] == "7");
  }

  TEST_CASE("http transport failures raise structured errors naming the URL") {
    int port = test::RefusedPort();
    std::string url = "http://127.0.0.1:" + std::to_string(port) + "/health";
    lua::State state;
    auto out = RunLua(state, R"(
      local http = require "hoist.http"
      local ok, e = pcall(http.get, ...)
      return ok, e.area, e.code, e.message
    )",
                      {url});
    CHECK(out == std::vector<std::string>{"false", "http", "connect_failed",
                                          "GET " + url + ": cannot connect: Connection refused"});

    test::SilentPort silent;
    std::string slow = "http://127.0.0.1:" + std::to_string(silent.port) + "/";
    out = RunLua(state, R"(
      local http = require "hoist.http"
      local ok, e = pcall(http.get, ..., { timeout = 0.2 })
      return e.code, e.message
    )",
                 {slow});
    CHECK(out == std::vector<std::string>{"timeout", "GET " + slow + ": timed out after 0.2 s"});
  }

  TEST_CASE("http argument errors") {
    lua::State state;
    auto out = RunLua(state, R"(
      local http = require "hoist.http"
      local _, a = pcall(http.request, { url = "http://x/", tiemout = 1 })
      local _, b = pcall(http.request, { url = "http://x/", body = "a", json = {} })
      local _, c = pcall(http.get, "gopher://x/")
      local _, d = pcall(function() return http.request{ body = "x" } end)
      return a.message, b.message, c.message, d.message
    )");
    CHECK(out[0] ==
          "unknown option 'tiemout' for http.request (expected one of: method, url, headers, body, json, timeout, "
          "unix_socket, follow_redirects, verify_tls, max_body)");
    CHECK(out[1] == "give body or json, not both");
    CHECK(out[2] == "url must start with http:// or https://: \"gopher://x/\"");
    CHECK(out[3] == "http.request: url is required");
  }

  TEST_CASE("r:json() on a body that is not JSON raises") {
    TestServer server([](const ServedRequest&) { return HttpAnswer(200, "<html>"); });
    lua::State state;
    auto out = RunLua(state, R"(
      local r = require("hoist.http").get(...)
      local ok, e = pcall(r.json, r)
      return e.code, e.message
    )",
                      {server.Url()});
    CHECK(out == std::vector<std::string>{"invalid", "response body is not JSON: \"<html>\""});
  }

  TEST_CASE("hoist.http goes through the run's world") {
    FakeWorld world;
    world.http = [](const HttpRequest&) { return Json(200, R"({"simulated":true})"); };
    bind::Context ctx;
    ctx.world = &world;
    lua::State state;
    bind::SetContext(state.get(), &ctx);
    auto out = RunLua(state, R"(return require("hoist.http").get("http://blue.invalid/health"):json().simulated)");
    CHECK(out == std::vector<std::string>{"true"});
    REQUIRE(world.seen.size() == 1);
    CHECK(world.seen[0].url == "http://blue.invalid/health");
  }

  TEST_CASE("http calls are journaled with credentials masked and long bodies clipped") {
    TestServer server([](const ServedRequest&) { return HttpAnswer(502, "bad gateway"); });
    RegisterSecret("tok-very-secret");
    EventStore store;
    auto reporter = engine::MakeNullReporter();
    engine::Runner runner(store, *reporter, 1);
    bind::Context ctx;
    ctx.runner = &runner;
    lua::State state;
    bind::SetContext(state.get(), &ctx);
    std::string url = server.Url("/hook");
    auto out = RunLua(state, R"(
      local http = require "hoist.http"
      local r = http.request{ method = "POST", url = ..., body = string.rep("b", 5000),
                              headers = { Authorization = "Bearer abc123", ["X-Custom"] = "tok-very-secret" } }
      local ok = pcall(http.get, "http://127.0.0.1:1/")
      return r.status
    )",
                      {url});
    ClearSecrets();
    CHECK(out == std::vector<std::string>{"502"});
    REQUIRE(store.events.size() == 2);
    const auto& e = store.events[0];
    CHECK(e.kind == "http");
    CHECK(e.name == "POST " + url);
    CHECK(e.data["status"] == 502);
    CHECK(e.data["request_headers"]["Authorization"] == "***");
    CHECK(e.data["request_headers"]["X-Custom"] == "***");
    CHECK(e.data["request_body"] == std::string(4096, 'b') + "… (5000 bytes in all)");
    CHECK(e.data["response_body"] == "bad gateway");
    const auto& failed = store.events[1];
    CHECK(failed.name == "GET http://127.0.0.1:1/");
    CHECK(failed.data["status"] == 0);
    CHECK(failed.data["error_code"] == "connect_failed");
    CHECK(failed.data["error"] == "cannot connect: Connection refused");
  }

  TEST_CASE("hoist.docker: client userdata, errors and close through a fake dockerd") {
    FakeWorld world;
    world.http = [](const HttpRequest& r) {
      if (r.url == "http://localhost/version") return Json(200, R"({"ApiVersion":"1.41","Version":"20.10.24"})");
      if (r.url == "http://localhost/v1.41/_ping") return Json(200, "OK");
      if (r.url.starts_with("http://localhost/v1.41/containers/create")) {
        return Json(409, R"({"message":"Conflict. The container name \"/web\" is already in use"})");
      }
      if (r.url == "http://localhost/v1.41/containers/web/json") {
        return Json(200, R"({"Id":"abc","State":{"Status":"running","Health":{"Status":"healthy"}}})");
      }
      return Json(404, R"({"message":"page not found"})");
    };
    bind::Context ctx;
    ctx.world = &world;
    lua::State state;
    bind::SetContext(state.get(), &ctx);
    auto out = RunLua(state, R"(
      local docker = require "hoist.docker"
      local d <close> = docker.connect{ socket = "/sim/docker.sock" }
      local s = tostring(d)
      local info = d:inspect("web")
      local ok, e = pcall(d.create, d, { image = "busybox", name = "web", network = "host" })
      local _, bad = pcall(d.create, d, { image = "x", ports = { "nope" } })
      local _, unknown = pcall(d.create, d, { image = "x", netwrok = "host" })
      d:close()
      d:close()
      local _, closed = pcall(d.inspect, d, "web")
      return s, d.api_version, d.socket, info.State.Health.Status, e.area, e.code, e.message, bad.code,
             unknown.message, closed.message, tostring(d)
    )");
    REQUIRE(out.size() == 11);
    CHECK(out[0] == "hoist.docker.Client(/sim/docker.sock, API 1.41)");
    CHECK(out[1] == "nil");
    CHECK(out[2] == "/sim/docker.sock");
    CHECK(out[3] == "healthy");
    CHECK(out[4] == "docker");
    CHECK(out[5] == "conflict");
    CHECK(out[6] == "create container web: Conflict. The container name \"/web\" is already in use (HTTP 409)");
    CHECK(out[7] == "invalid");
    CHECK(out[8].starts_with("unknown option 'netwrok' for docker create"));
    CHECK(out[9] == "docker client for /sim/docker.sock is closed");
    CHECK(out[10] == "hoist.docker.Client(/sim/docker.sock, closed)");
    for (const auto& r : world.seen) CHECK(r.unix_socket == "/sim/docker.sock");
  }

  TEST_CASE("docker calls are journaled, failures with their code") {
    FakeWorld world;
    world.http = [](const HttpRequest& r) {
      if (r.url == "http://localhost/version") return Json(200, R"({"ApiVersion":"1.41","Version":"20.10.24"})");
      return Json(404, R"({"message":"No such container: api-blue"})");
    };
    EventStore store;
    auto reporter = engine::MakeNullReporter();
    engine::Runner runner(store, *reporter, 1);
    bind::Context ctx;
    ctx.world = &world;
    ctx.runner = &runner;
    lua::State state;
    bind::SetContext(state.get(), &ctx);
    RunLua(state, R"(
      local d = require("hoist.docker").connect{ socket = "/sim.sock" }
      pcall(d.stop, d, "api-blue", { timeout = 3 })
    )");
    REQUIRE(store.events.size() == 2);
    CHECK(store.events[0].kind == "docker");
    CHECK(store.events[0].name == "connect /sim.sock");
    CHECK(store.events[0].data["api_version"] == "1.41");
    CHECK(store.events[1].name == "stop api-blue");
    CHECK(store.events[1].data["timeout"] == 3);
    CHECK(store.events[1].data["code"] == "not_found");
    CHECK(store.events[1].data["error"] == "stop container api-blue: No such container: api-blue (HTTP 404)");
  }

  TEST_CASE("docker.connect to a missing socket raises unavailable") {
    test::TempDir dir("docker");
    lua::State state;
    auto out = RunLua(state, R"(
      local ok, e = pcall(require("hoist.docker").connect, { socket = ... })
      return e.code, e.message
    )",
                      {dir / "docker.sock"});
    CHECK(out == std::vector<std::string>{"unavailable", "cannot reach dockerd at " + (dir / "docker.sock") +
                                                             ": cannot connect: No such file or directory"});
  }

  TEST_CASE("docker.compose without docker compose or docker-compose says so") {
    FakeWorld world;
    bind::Context ctx;
    ctx.world = &world;
    lua::State state;
    bind::SetContext(state.get(), &ctx);
    auto out = RunLua(state, R"(
      local ok, e = pcall(require("hoist.docker").compose, { "compose.yml" }, "shop", { "up", "-d" })
      return e.code, e.message
    )");
    CHECK(out == std::vector<std::string>{
                     "unavailable",
                     "docker compose needs the Docker CLI with its compose plugin (docker compose) or docker-compose, "
                     "and neither was found in PATH (install the Debian package docker-compose)"});
  }
}

}  // namespace
}  // namespace hoist::net

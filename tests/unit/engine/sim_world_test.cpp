// The world seam in a sandbox: every primitive a blue/green playbook uses
// (proc.service, proc.run, hoist.fs, hoist.http, hoist.traffic signals and
// TCP probes, hoist.time, the nginx switch) reaches the simulated world, and
// nothing real is started, signalled, written or requested. The real things
// it could touch (a live child process, a listening socket, files in a temp
// dir) are set up first and checked after.
#include "engine/sim_world.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "bind/context.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "lua/state.h"
#include "support/support.h"

extern char** environ;

namespace hoist::test {
namespace {

using json = nlohmann::json;

json RunIn(engine::World& world, const std::string& code) {
  lua::State vm;
  bind::Context ctx;
  ctx.world = &world;
  bind::SetContext(vm.get(), &ctx);
  vm.LoadChunk(code, "=test");
  lua::Call(vm.get(), 0, 1);
  json out = lua::ToJson(vm.get(), -1, /*lenient=*/true);
  lua_pop(vm.get(), 1);
  return out;
}

/// A real child (sleep 30), killed and reaped at the end.
struct Child {
  pid_t pid = 0;
  Child() {
    char sleep_arg[] = "sleep", secs[] = "30";
    char* argv[] = {sleep_arg, secs, nullptr};
    REQUIRE(posix_spawnp(&pid, "sleep", nullptr, nullptr, argv, environ) == 0);
  }
  bool Alive() { return ::waitpid(pid, nullptr, WNOHANG) == 0 && ::kill(pid, 0) == 0; }
  ~Child() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

/// A real listening socket; Pending() is true if anyone connected.
struct Listener {
  int fd = -1;
  int port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  bool Pending() {
    int c = ::accept(fd, nullptr, nullptr);
    if (c >= 0) ::close(c);
    return c >= 0;
  }
  ~Listener() { ::close(fd); }
};

const char* kConf =
    "upstream api {\n"
    "    server 127.0.0.1:5001;\n"
    "}\n";

TEST_SUITE("engine/sim_world") {
  TEST_CASE("a sandbox world starts, signals, writes and requests nothing real") {
    TempDir dir("sim");
    WriteFile(dir / "conf", "old\n");
    Child child;
    Listener listener;
    engine::SimOptions so;
    so.seed_from_disk = true;
    engine::SimWorld world(so);
    std::string d = dir.path;
    auto t0 = std::chrono::steady_clock::now();
    json out = RunIn(world, R"(
      local proc, fs, traffic, http, time = require "hoist.proc", require "hoist.fs", require "hoist.traffic",
        require "hoist.http", require "hoist.time"
      local svc = proc.service{ name = "api-green", argv = { "/bin/sh", "-c", "touch )" + d + R"(/started; sleep 60" },
                                port = 5002, pid_file = ")" + d + R"(/green.pid" }
      svc:start{ wait = 5 }
      local status = svc:status()
      local ran = proc.run({ "/bin/sh", "-c", "touch )" + d + R"(/ran" })
      fs.write_atomic(")" + d + R"(/conf", "new\n")
      traffic.signal()" + std::to_string(child.pid) + R"(, "TERM")
      local ok_http, res = pcall(http.request, { url = "http://127.0.0.1:)" + std::to_string(listener.port) + R"(/x" })
      local health = http.request{ url = "http://127.0.0.1:5002/health" }
      local t = time.monotonic(); time.sleep(3600)
      local tcp = traffic.tcp("127.0.0.1", )" + std::to_string(listener.port) + R"(, 1)
      local stopped = svc:stop()
      return { state = status.state, ran = ran.ok, read_back = fs.read(")" + d + R"(/conf"),
               alive_after_term = traffic.alive()" + std::to_string(child.pid) + R"(),
               slept = time.monotonic() - t, http_ok = ok_http, health = health.status,
               health_body = health.body, tcp = tcp.ok, stopped = stopped.how }
    )");
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // What the playbook saw: a consistent, stateful world.
    CHECK(out["state"] == "running");
    CHECK(out["ran"] == true);
    CHECK(out["read_back"] == "new\n");
    CHECK(out["alive_after_term"] == false);
    CHECK(out["slept"].get<double>() >= 3600);
    CHECK(out["http_ok"] == false);  // the real listener is not part of the simulated world
    CHECK(out["health"] == 200);
    CHECK(out["health_body"].get<std::string>().find("api-green") != std::string::npos);
    CHECK(out["tcp"] == false);
    CHECK(out["stopped"] == "term");
    // What really happened: nothing.
    CHECK(wall < 5);
    CHECK_FALSE(std::filesystem::exists(dir / "started"));
    CHECK_FALSE(std::filesystem::exists(dir / "ran"));
    CHECK_FALSE(std::filesystem::exists(dir / "green.pid"));
    CHECK(ReadAll(dir / "conf") == "old\n");
    CHECK(child.Alive());
    CHECK_FALSE(listener.Pending());
    // The changes, in order.
    std::vector<std::string> whats;
    for (const auto& c : world.changes()) whats.push_back(c.what);
    REQUIRE(whats.size() == 5);
    CHECK(whats[0] == "start api-green");
    CHECK(whats[1].rfind("run /bin/sh -c touch", 0) == 0);
    CHECK(whats[2] == "write " + (dir / "conf"));
    CHECK(whats[3] == "kill -15 " + std::to_string(child.pid));
    CHECK(whats[4] == "stop api-green");
    // The rehearsal depended on the file it read.
    CHECK(world.observed().count(dir / "conf") == 1);
  }

  TEST_CASE("the nginx switch runs against a simulated master and frontend") {
    engine::SimWorld world;
    world.SetFile("/etc/nginx/conf.d/api.conf", kConf);
    pid_t master = world.AddNginx("/run/nginx.pid", 2);
    world.AddService("api-green", "/run/green.pid", 5002);
    world.AddService("api-blue", "/run/blue.pid", 5001);
    world.AddFrontend(80, "/etc/nginx/conf.d/api.conf");
    auto before = world.ChildPids(master);
    json out = RunIn(world, R"(
      local nginx = require "hoist.nginx"
      local site = nginx.site{ conf = "/etc/nginx/conf.d/api.conf", upstream = "api",
        servers = { blue = "127.0.0.1:5001", green = "127.0.0.1:5002" }, pid_file = "/run/nginx.pid",
        verify = { url = "http://127.0.0.1/health", expect_header = "X-Colour" } }
      local was = site:active()
      site:switch("green")
      return { was = was, now = site:active() }
    )");
    CHECK(out["was"] == "blue");
    CHECK(out["now"] == "green");
    CHECK(world.files().at("/etc/nginx/conf.d/api.conf")->find("server 127.0.0.1:5002;") != std::string::npos);
    auto after = world.ChildPids(master);
    CHECK(after.size() == 2);
    CHECK(after != before);
  }

  TEST_CASE("scripted nginx -t failure: the switch is rolled back in memory") {
    engine::SimWorld world;
    world.SetFile("/etc/nginx/conf.d/api.conf", kConf);
    world.AddNginx("/run/nginx.pid", 1);
    engine::SimProcessRule rule;
    rule.match = "nginx -t";
    rule.exit_code = 1;
    rule.err = "nginx: [emerg] unknown directive \"bogus\" in /etc/nginx/conf.d/api.conf:2\n";
    world.AddProcessRule(rule);
    std::string err;
    try {
      RunIn(world, R"(
        local nginx = require "hoist.nginx"
        nginx.site{ conf = "/etc/nginx/conf.d/api.conf", upstream = "api", pid_file = "/run/nginx.pid",
          servers = { blue = "127.0.0.1:5001", green = "127.0.0.1:5002" } }:switch("green", { verify = false })
      )");
    } catch (const lua::ScriptError& ex) {
      err = ex.what();
    }
    CHECK(err.find("nginx -t rejected the configuration: nginx: [emerg] unknown directive \"bogus\"") !=
          std::string::npos);
    CHECK(*world.files().at("/etc/nginx/conf.d/api.conf") == kConf);
  }

  TEST_CASE("a simulated Docker engine: create, start, health, stop, and a container that never becomes healthy") {
    engine::SimWorld world;
    world.ScriptService("api-red", {.behaviour = "never_listens", .listen_after = 10});
    json out = RunIn(world, R"(
      local docker, health = require "hoist.docker", require "hoist.health"
      local d <close> = docker.connect{ socket = "/var/run/docker.sock" }
      local hc = { test = { "CMD", "/app/healthcheck" }, interval = 2, timeout = 1, retries = 3 }
      d:create{ name = "api-green", image = "api:1.4.2", healthcheck = hc }
      d:start("api-green")
      local green = health.container{ docker = d, name = "api-green" }
      d:create{ name = "api-red", image = "api:1.4.2", healthcheck = hc }
      d:start("api-red")
      local red = health.container{ docker = d, name = "api-red", retries = 10, interval = 2 }
      d:stop("api-green")
      return { green = green.ok, red = red.ok, red_status = red.status, listed = #d:containers{ all = true },
               running = #d:containers() }
    )");
    CHECK(out["green"] == true);
    CHECK(out["red"] == false);
    CHECK(out["red_status"] == "unhealthy");
    CHECK(out["listed"] == 2);
    CHECK(out["running"] == 1);
    std::vector<std::string> whats;
    for (const auto& c : world.changes()) whats.push_back(c.what);
    CHECK(whats == std::vector<std::string>{"create api-green (api:1.4.2)", "start api-green",
                                            "create api-red (api:1.4.2)", "start api-red", "stop api-green"});
  }

  TEST_CASE("a simulated container answers on the port it publishes or its hoist.port label names, while it runs") {
    engine::SimWorld world;
    json out = RunIn(world, R"(
      local docker, traffic, http = require "hoist.docker", require "hoist.traffic", require "hoist.http"
      local d <close> = docker.connect{ socket = "/var/run/docker.sock" }
      local up = function(port) return traffic.tcp("127.0.0.1", port, 1).ok end
      d:create{ name = "api-green", image = "api:2", network = "host", labels = { ["hoist.port"] = "5002" } }
      d:create{ name = "api-blue", image = "api:2", ports = { "5001:8080" } }
      d:create{ name = "api-red", image = "api:2", network = "host" }
      local before = up(5002)
      d:start("api-green")
      d:start("api-blue")
      d:start("api-red")
      local r = { before = before, green = up(5002), blue = up(5001), red = up(8080),
                  who = http.get("http://127.0.0.1:5002/health").headers["x-colour"] }
      d:stop("api-green")
      d:remove("api-blue", { force = true })
      r.green_after, r.blue_after = up(5002), up(5001)
      return r
    )");
    CHECK(out["before"] == false);
    CHECK(out["green"] == true);
    CHECK(out["blue"] == true);
    CHECK(out["red"] == false);   // nothing says where it listens
    CHECK(out["who"] == "api-green");
    CHECK(out["green_after"] == false);
    CHECK(out["blue_after"] == false);
  }

  TEST_CASE("a service scripted never to listen times out on the virtual clock") {
    engine::SimWorld world;
    world.ScriptService("api-green", {.behaviour = "never_listens"});
    auto t0 = std::chrono::steady_clock::now();
    std::string err;
    try {
      RunIn(world, R"(
        require("hoist.proc").service{ name = "api-green", argv = { "app" }, port = 5002,
          pid_file = "/run/green.pid" }:start{ wait = 30 }
      )");
    } catch (const lua::ScriptError& ex) {
      err = ex.what();
    }
    CHECK(err.find("is running but not listening on 127.0.0.1:5002 after 30 s") != std::string::npos);
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 5);
  }
}

}  // namespace
}  // namespace hoist::test

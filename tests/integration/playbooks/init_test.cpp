// `hoist init`'s first-deploy recipe against a real nginx and the example
// app: each fact init prints is checked as it happens — a deploy without a
// running nginx fails and is undone, the first deploy creates the SQLite
// file and goes live on the colour the include does not name, and a
// missing file is refused after that.
#include <doctest/doctest.h>
#include <signal.h>

#include <filesystem>

#include "integration/playbooks/bluegreen_rig.h"
#include "net/http.h"
#include "support/colour_server.h"
#include "support/nginx_server.h"
#include "support/support.h"
#include "sys/probe.h"
#include "sys/process.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;

struct InitProject {
  TempDir dir{"init-real"};
  int blue = FreePort(), green = 0;
  std::unique_ptr<NginxServer> nginx;
  InitProject() {
    do {
      green = FreePort();
    } while (green == blue);
    fs::copy(std::string(HOIST_EXAMPLES_DIR) + "/sqlite-bluegreen/releases", dir / "releases",
             fs::copy_options::recursive);
    NginxOptions o;
    o.upstream_conf = "upstream api {\n    server 127.0.0.1:" + std::to_string(blue) + ";\n}\n";
    nginx = std::make_unique<NginxServer>(dir / "nginx", o);
  }
  ~InitProject() {
    for (const char* colour : {"blue", "green"}) {
      if (auto pid = sys::ReadPidFile(dir / (std::string(".hoist/run/") + colour + ".pid")); pid && *pid > 0) {
        ::kill(-*pid, SIGKILL);
        ::kill(*pid, SIGKILL);
      }
    }
  }
  sys::ProcessResult Hoist(std::vector<std::string> args) { return RunHoist(dir.path, std::move(args)); }
  // "release 1 (green)" as nginx answers, from the app's own headers.
  std::string Traffic() {
    auto r = net::Send({.url = nginx->url("/api/health"), .timeout = std::chrono::milliseconds(2000)});
    if (!r.ok()) return "no answer: " + r.error;
    return "release " + r.Header("X-Release").value_or("?") + " (" + r.Header("X-Colour").value_or("?") + ")";
  }
};

TEST_SUITE("playbooks/init") {
  TEST_CASE("init's first-deploy recipe holds against a real nginx") {
    if (NginxServer::Binary().empty()) SkipUnless(false, "nginx is not installed (Debian nginx-light)");
    InitProject p;
    auto init = p.Hoist({"init", "--db", "sqlite:data/app.db", "--start",
                         std::string(HOIST_EXAMPLE_APP) + " --port {port} --colour {colour} --release {version} --db {database_path}",
                         "--ports", std::to_string(p.blue) + "," + std::to_string(p.green), "--health", "/api/health",
                         "--nginx-include", p.nginx->upstream_conf(), "--nginx-pid", p.nginx->pid_file(),
                         "--nginx-url", p.nginx->url("/api/health"), "--colour-header", "X-Colour", "--migrations",
                         "releases/{version}/migrations"});
    INFO(Describe(init));
    REQUIRE(init.exit_code == 0);
    CHECK(init.out.find("1. Check " + p.nginx->upstream_conf() + " so that it routes to blue only") !=
          std::string::npos);
    // The operator's edit for a private nginx (not /etc/nginx): its main
    // config, prefix and error log, the keys docs/config.md lists.
    std::string lua = ReadAll(p.dir / "hoist.lua");
    const std::string at = "        upstream = \"api\",\n";
    REQUIRE(lua.find(at) != std::string::npos);
    lua.replace(lua.find(at), at.size(),
                at + "        main_conf = \"" + p.nginx->main_conf() + "\", prefix = \"" + p.nginx->dir() +
                    "\", error_log = \"" + p.nginx->error_log() + "\",\n");
    WriteFile(p.dir / "hoist.lua", lua);
    const std::string include = p.nginx->upstream_conf();
    const std::string before = ReadAll(include);

    // Step 2 of the recipe skipped: nginx is not running.
    auto no_nginx = p.Hoist({"deploy", "-e", "version=1", "-e", "bake=1"});
    INFO(Describe(no_nginx));
    CHECK(no_nginx.exit_code == 1);
    CHECK(no_nginx.err.find("nginx is not running: no pid in " + p.nginx->pid_file()) != std::string::npos);
    CHECK(ReadAll(include) == before);
    CHECK(sys::ReadPidFile(p.dir / ".hoist/run/green.pid").value_or(0) <= 0);

    p.nginx->StartOrSkip();
    // The failed deploy above created the database (its expand migrations
    // stay, as after any failed deploy): start again without it.
    for (const char* f : {"data/app.db", "data/app.db-wal", "data/app.db-shm"}) fs::remove(p.dir / f);
    auto first = p.Hoist({"deploy", "-e", "version=1", "-e", "bake=1"});
    INFO(Describe(first));
    CHECK(first.exit_code == 0);
    CHECK(fs::exists(p.dir / "data/app.db"));
    CHECK(first.err.find("no database at " + p.dir.path + "/data/app.db yet: nothing to back up") != std::string::npos);
    CHECK(p.Traffic() == "release 1 (green)");
    CHECK(ReadAll(include) == "upstream api {\n    server 127.0.0.1:" + std::to_string(p.green) + ";\n}\n");

    auto second = p.Hoist({"deploy", "-e", "version=2", "-e", "bake=1"});
    INFO(Describe(second));
    CHECK(second.exit_code == 0);
    CHECK(p.Traffic() == "release 2 (blue)");

    // Only the first deploy creates the file: a missing one later is refused.
    fs::rename(p.dir / "data", p.dir / "data.moved");
    auto missing = p.Hoist({"deploy", "-e", "version=2", "-e", "bake=1"});
    INFO(Describe(missing));
    CHECK(missing.exit_code != 0);
    CHECK(missing.err.find("deploy: the database " + p.dir.path + "/data/app.db does not exist") != std::string::npos);
    CHECK_FALSE(fs::exists(p.dir / "data/app.db"));
    CHECK(p.Traffic() == "release 2 (blue)");
  }
}

}  // namespace
}  // namespace hoist::test

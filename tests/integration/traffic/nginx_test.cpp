// hoist.nginx against a real nginx (Debian nginx-light) with its own prefix
// and two loopback backends answering with their colour. What traffic shows
// is read with a plain socket client, independent of hoist's HTTP client.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "core/interrupt.h"
#include "support/colour_server.h"
#include "support/nginx_server.h"
#include "support/support.h"
#include "sys/probe.h"
#include "support/lua_eval.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;

std::string Upstream(const std::string& addr) { return "upstream api {\n    server " + addr + " max_fails=3;\n}\n"; }

struct Rig {
  TempDir dir{"nginx"};
  ColourServer blue{"blue"}, green{"green"};
  std::unique_ptr<NginxServer> nginx;

  /// upstream(blue address, green address) -> the initial include; default: one line, blue.
  explicit Rig(std::function<std::string(const std::string&, const std::string&)> upstream = nullptr,
               NginxOptions o = {}) {
    o.upstream_conf = upstream ? upstream(blue.address(), green.address()) : Upstream(blue.address());
    nginx = std::make_unique<NginxServer>(dir.path, o);
    nginx->StartOrSkip();
  }

  /// Lua declaring `site` (and `nginx`) for this rig; extra goes into the spec.
  std::string Site(const std::string& extra = "") const {
    return "local nginx = require 'hoist.nginx'\n"
           "local site = nginx.site{\n"
           "  conf = " + LuaStr(nginx->upstream_conf()) + ", upstream = 'api',\n"
           "  servers = { blue = '" + blue.address() + "', green = '" + green.address() + "' },\n"
           "  main_conf = " + LuaStr(nginx->main_conf()) + ", prefix = " + LuaStr(nginx->dir()) + ",\n"
           "  args = { '-e', " + LuaStr(nginx->error_log()) + " },\n"
           "  pid_file = " + LuaStr(nginx->pid_file()) + ", error_log = " + LuaStr(nginx->error_log()) + ",\n"
           "  maintenance_conf = " + LuaStr(nginx->maintenance_conf()) + ",\n"
           "  verify = { url = '" + nginx->url("/") + "', expect_header = 'X-Colour', timeout = 3 },\n" +
           extra + "}\n";
  }

  /// The colour that 6 fresh requests through nginx come from ("blue"), or
  /// what they showed when they disagree or fail.
  std::string Traffic() const {
    std::string first, all;
    bool same = true;
    for (int i = 0; i < 6; ++i) {
      Answer a = HttpGet(nginx->port());
      std::string seen = a.status == 200 ? a.colour : "status " + std::to_string(a.status) + a.error;
      if (i == 0) first = seen;
      same = same && seen == first;
      all += (i ? "," : "") + seen;
    }
    return same ? first : all;
  }

  std::string Active() const { return RunLua(Site() + "local c = site:active()\nreturn c").get<std::string>(); }
  std::string Conf() const { return ReadAll(nginx->upstream_conf()); }
};

/// "kind name" of every journal event of run 1, one a line.
std::string JournalEvents(const std::string& state_db) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(state_db.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT kind || ' ' || name FROM events WHERE run_id = 1 ORDER BY seq", -1, &st, nullptr);
    while (st && sqlite3_step(st) == SQLITE_ROW) out += std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) + "\n";
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

std::vector<pid_t> Workers(const Rig& rig) { return sys::ChildPids(rig.nginx->MasterPid()); }

/// Workers now running that were not in `before`: a reload forks new ones.
/// (Old workers of an earlier reload may still be exiting, so equality would race.)
std::vector<pid_t> NewWorkers(const Rig& rig, const std::vector<pid_t>& before) {
  std::vector<pid_t> fresh;
  for (pid_t w : Workers(rig))
    if (std::find(before.begin(), before.end(), w) == before.end()) fresh.push_back(w);
  return fresh;
}

TEST_SUITE("traffic/nginx") {
  TEST_CASE("switch blue to green to blue, verified through nginx") {
    Rig rig;
    const std::string blue_conf = rig.Conf();
    CHECK(rig.Traffic() == "blue");
    CHECK(rig.Active() == "blue");

    json r = RunLua(rig.Site() + "local r = site:switch('green')\nreturn r");
    CHECK(r["changed"] == true);
    CHECK(r["colour"] == "green");
    CHECK(r["previous"] == "blue");
    CHECK(r["verified"] == true);
    CHECK(r["probes"].get<int>() >= 2);
    CHECK(r["new_workers"].size() >= 1);
    CHECK(r["seconds"].get<double>() < 5);
    MESSAGE("switch blue->green took " << r["seconds"].get<double>() * 1000 << " ms: " << r["timings"].dump());
    // Right after switch returns, every new connection meets green.
    CHECK(rig.Traffic() == "green");
    CHECK(rig.Active() == "green");
    std::string expected = blue_conf;
    expected.replace(expected.find(rig.blue.address()), rig.blue.address().size(), rig.green.address());
    CHECK(rig.Conf() == expected);

    r = RunLua(rig.Site() + "local r = site:switch('blue')\nreturn r");
    CHECK(r["changed"] == true);
    CHECK(r["previous"] == "green");
    CHECK(rig.Traffic() == "blue");
    CHECK(rig.Active() == "blue");
    CHECK(rig.Conf() == blue_conf);

    // Switching to the live colour changes nothing but still proves it.
    auto workers = Workers(rig);
    r = RunLua(rig.Site() + "local r = site:switch('blue')\nreturn r");
    CHECK(r["changed"] == false);
    CHECK(r["probes"].get<int>() >= 2);
    CHECK(NewWorkers(rig, workers).empty());  // no reload
    CHECK(rig.Conf() == blue_conf);
  }

  TEST_CASE("an nginx -t failure leaves the file byte-identical and traffic on the old colour") {
    Rig rig;
    const std::string before = rig.Conf();
    const pid_t master = rig.nginx->MasterPid();
    const auto workers = Workers(rig);
    // A template with a syntax error nginx will reject (our parser will not).
    auto e = LuaError(rig.Site("  template = 'upstream api {\\n    server {{address}};\\n    keepalive_bogus 8;\\n}\\n',\n") +
                      "site:switch('green')\n");
    CHECK(e.area() == "nginx");
    CHECK(e.code() == "test_failed");
    CHECK(e.message().find("nginx -t rejected the configuration: nginx: [emerg] unknown directive \"keepalive_bogus\" in " +
                           rig.nginx->upstream_conf() + ":3") == 0);
    CHECK(e.message().find("(rolled back: " + rig.nginx->upstream_conf() + " restored byte for byte)") != std::string::npos);
    CHECK(rig.Conf() == before);
    CHECK(rig.nginx->MasterPid() == master);
    CHECK(NewWorkers(rig, workers).empty());  // nginx never saw the bad file
    CHECK(rig.Traffic() == "blue");
    CHECK(rig.Active() == "blue");
  }

  TEST_CASE("an in-place write keeps the inode (bind-mounted files), with a byte-exact backup") {
    Rig rig;
    const std::string before = rig.Conf();
    struct stat st0 {};
    REQUIRE(::stat(rig.nginx->upstream_conf().c_str(), &st0) == 0);
    json r = RunLua(rig.Site("  write = 'inplace',\n") + "local r = site:switch('green')\nreturn r");
    CHECK(r["changed"] == true);
    struct stat st1 {};
    REQUIRE(::stat(rig.nginx->upstream_conf().c_str(), &st1) == 0);
    CHECK(st1.st_ino == st0.st_ino);
    CHECK(ReadAll(rig.nginx->upstream_conf() + ".hoist-prev") == before);
    CHECK(rig.Traffic() == "green");
    CHECK(rig.Active() == "green");

    // The default (rename) replaces the inode: what a bind mount would not see.
    RunLua(rig.Site() + "site:switch('blue')");
    struct stat st2 {};
    REQUIRE(::stat(rig.nginx->upstream_conf().c_str(), &st2) == 0);
    CHECK(st2.st_ino != st1.st_ino);
    CHECK(rig.Conf() == before);
    CHECK(rig.Traffic() == "blue");
  }

  TEST_CASE("a verification failure (the new colour answers 500) reverts file and traffic") {
    Rig rig;
    const std::string before = rig.Conf();
    rig.green.SetStatus(500);
    for (std::string write : {"rename", "inplace"}) {
      CAPTURE(write);
      // 3 s: the window must outlast the reload on a loaded machine, or the
      // last answer seen can still be the old workers' (from blue).
      auto e = LuaError(rig.Site("  write = '" + write + "',\n") +
                        "site:switch('green', { verify = { url = '" + rig.nginx->url("/") +
                        "', expect_header = 'X-Colour', timeout = 3 } })\n");
      INFO(e.message());
      CHECK(e.code() == "verify_failed");
      CHECK(e.message().find("traffic through " + rig.nginx->url("/") + " did not come from green within 3 s") == 0);
      CHECK(e.message().find("last: status 500 from green") != std::string::npos);
      CHECK(e.message().find("restored byte for byte and nginx reloaded with it)") != std::string::npos);
      CHECK(rig.Conf() == before);
      CHECK(rig.Traffic() == "blue");
      CHECK(rig.Active() == "blue");
    }
    // Once green is healthy the same switch goes through.
    rig.green.SetStatus(200);
    RunLua(rig.Site() + "site:switch('green')");
    CHECK(rig.Traffic() == "green");
    CHECK(rig.Active() == "green");
  }

  TEST_CASE("one line per colour: the idle one is marked down, active() agrees with traffic") {
    Rig rig([](const std::string& b, const std::string& g) {
      return "upstream api {\n    server " + b + ";\n    server " + g + " down;\n}\n";
    });
    CHECK(rig.Active() == "blue");
    CHECK(rig.Traffic() == "blue");
    RunLua(rig.Site() + "site:switch('green')");
    CHECK(rig.Conf() == "upstream api {\n    server " + rig.blue.address() + " down;\n    server " +
                            rig.green.address() + ";\n}\n");
    CHECK(rig.Active() == "green");
    CHECK(rig.Traffic() == "green");
    RunLua(rig.Site() + "site:switch('blue')");
    CHECK(rig.Active() == "blue");
    CHECK(rig.Traffic() == "blue");
  }

  TEST_CASE("maintenance mode serves a 503 page through the same transaction") {
    Rig rig;
    json r = RunLua(rig.Site() + "local r = site:maintenance(true, { page = '<h1>Back at 4</h1>' })\n"
                                 "r.flag = site:in_maintenance()\nreturn r");
    CHECK(r["changed"] == true);
    CHECK(r["maintenance"] == true);
    CHECK(r["flag"] == true);
    Answer a = HttpGet(rig.nginx->port(), "/any/path");
    CHECK(a.status == 503);
    CHECK(a.body == "<h1>Back at 4</h1>");
    CHECK(rig.Active() == "blue");  // the upstream is untouched
    r = RunLua(rig.Site() + "local r = site:maintenance(false)\nr.flag = site:in_maintenance()\nreturn r");
    CHECK(r["changed"] == true);
    CHECK(r["flag"] == false);
    CHECK(rig.Traffic() == "blue");
  }

  TEST_CASE("drained: stopping the old colour after it costs no request") {
    Rig rig;
    std::atomic<bool> stop{false};
    std::atomic<long> ok{0}, bad{0};
    std::string first_bad;
    std::thread load([&] {
      while (!stop) {
        Answer a = HttpGet(rig.nginx->port());
        if (a.status == 200) {
          ++ok;
        } else {
          if (bad++ == 0) first_bad = std::to_string(a.status) + " " + a.error;
        }
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    json r = RunLua(rig.Site() + "local s = site:switch('green')\nlocal d = site:drained{ timeout = 10 }\n"
                                 "return { switch = s, drained = d }");
    rig.blue.Stop();  // the old colour goes away only now
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
    load.join();
    CHECK(r["switch"]["changed"] == true);
    CHECK(ok.load() > 20);
    CHECK_MESSAGE(bad.load() == 0, "first failure: " << first_bad);
    CHECK(rig.Traffic() == "green");
    // The old generation is gone: no worker of the master is shutting down.
    for (pid_t w : Workers(rig)) CHECK(sys::CmdLine(w).find("shutting down") == std::string::npos);
  }

  TEST_CASE("nginx not running: switch refuses before touching the file") {
    Rig rig;
    const std::string before = rig.Conf();
    rig.nginx->Stop();
    auto e = LuaError(rig.Site() + "site:switch('green')\n");
    CHECK(e.code() == "not_running");
    // nginx removes its pid file when it exits
    CHECK(e.message() == "nginx is not running: no pid in " + rig.nginx->pid_file());
    CHECK(rig.Conf() == before);
    auto s = RunLua(rig.Site() + "local s = site:status()\nreturn s");
    CHECK(s["colour"] == "blue");
    CHECK_FALSE(s.contains("master"));
  }

  TEST_CASE("Ctrl-C during verification still restores the file and reloads nginx") {
    Rig rig;
    const std::string before = rig.Conf();
    rig.green.SetStatus(500);  // verification will keep failing until interrupted
    std::thread ctrl_c([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
      RequestInterrupt();
    });
    lua::ScriptError e = LuaError(rig.Site() + "site:switch('green', { verify = { url = '" + rig.nginx->url("/") +
                                  "', expect_header = 'X-Colour', timeout = 10 } })\n");
    ctrl_c.join();
    ClearInterrupt();
    CHECK(e.code() == "interrupted");
    CHECK(rig.Conf() == before);
    CHECK(rig.Traffic() == "blue");
    CHECK(rig.Active() == "blue");
  }

  TEST_CASE("a playbook run: the failed switch is reported with the playbook line and journaled") {
    Rig rig;
    rig.green.SetStatus(500);
    TempDir project("proj");
    WriteFile(project / "hoist.lua", "return { environments = { prod = {} } }\n");
    WriteFile(project / "playbooks/switch.lua",
              "local hoist = require 'hoist'\n" + rig.Site() +
                  "return hoist.playbook {\n"
                  "  name = 'switch', version = '1.0.0', summary = 'switch to green',\n"
                  "  run = function(run)\n"
                  "    local h = require('hoist.health').http{ url = '" + rig.nginx->url("/") + "' }\n"
                  "    run:step('switch', function()\n"
                  "      local r = site:switch('green', { verify = { url = '" + rig.nginx->url("/") +
                  "', expect_header = 'X-Colour', timeout = 0.5 } })\n"
                  "      return r\n"
                  "    end)\n"
                  "  end,\n"
                  "}\n");
    sys::ProcessResult r = RunHoist(project.path, {"run", "switch"});
    CHECK(r.exit_code != 0);
    std::string out = r.out + r.err;
    CHECK(out.find("playbooks/switch.lua:17: nginx: traffic through " + rig.nginx->url("/") +
                   " did not come from green within 0.5 s") != std::string::npos);
    CHECK(rig.Traffic() == "blue");
    // The journal has every world call of the transaction, the restore included.
    std::string events = JournalEvents(project / ".hoist/state.db");
    CHECK(events.find("proc nginx -p " + rig.nginx->dir()) != std::string::npos);
    CHECK(events.find("signal kill -HUP " + std::to_string(rig.nginx->MasterPid())) != std::string::npos);
    CHECK(events.find("http GET " + rig.nginx->url("/")) != std::string::npos);
    CHECK(events.find("nginx restore " + rig.nginx->upstream_conf()) != std::string::npos);
    CHECK(events.find("health http GET " + rig.nginx->url("/") + ": ok") != std::string::npos);
  }
}

}  // namespace
}  // namespace hoist::test

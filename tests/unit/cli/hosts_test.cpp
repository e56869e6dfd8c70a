// run:hosts, run:on and run:each through the real binary. The hosts here
// are this machine (ssh = false) or simulated (--sandbox); the real
// remote hosts, over sshd in network namespaces, are the integration
// suite's (tests/integration/playbooks/fleet_test.cpp).
#include <filesystem>
#include <string>

#include "support/support.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;

struct HostsProject {
  TempDir dir{"hosts"};
  explicit HostsProject(const std::string& hosts, const std::string& body) {
    WriteFile(dir / "hoist.lua", "return { environments = { prod = { hosts = {" + hosts + "} } } }");
    WriteFile(dir / "p.lua", R"lua(local hoist = require "hoist"
local fs = require "hoist.fs"
local time = require "hoist.time"
local proc = require "hoist.proc"
local dir = ")lua" + dir.path + R"lua("
return hoist.playbook { name = "p", version = "1.0.0", run = function(run)
)lua" + body + "\nend }\n");
  }
  sys::ProcessResult Run(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"run", "p.lua", "--env", "prod"};
    for (auto& a : extra) args.push_back(a);
    return RunHoist(dir.path, args);
  }
};

const std::string kThreeLocal =
    "web1 = { ssh = false, roles = { 'app' } }, web2 = { ssh = false, roles = { 'app' } }, "
    "web3 = { ssh = false, roles = { 'app' } }";

TEST_SUITE("cli/hosts") {
  TEST_CASE("run:each works every host at once: each waits for all the others to arrive") {
    // A rendezvous: a host runs on only once every host has written its
    // file. Worked one after another, the first host would wait alone
    // until its deadline; at once, all three meet.
    HostsProject p(kThreeLocal, R"lua(
  local r = run:step("meet", function()
    return run:each(run:hosts("app"), function(h)
      fs.write_atomic(dir .. "/" .. h.name .. ".arrived", h.name)
      local t0 = time.monotonic()
      while not (fs.exists(dir .. "/web1.arrived") and fs.exists(dir .. "/web2.arrived")
                 and fs.exists(dir .. "/web3.arrived")) do
        if time.monotonic() - t0 > 10 then error(h.name .. " waited alone for 10 s") end
        time.sleep(0.02)
      end
      return h.name .. " met the others"
    end)
  end)
  for _, x in ipairs(r) do run:print(x.host, x.ok, x.value or tostring(x.error)) end
)lua");
    auto r = p.Run();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("web1 true web1 met the others\nweb2 true web2 met the others\nweb3 true web3 met the others") !=
          std::string::npos);
  }

  TEST_CASE("run:each: a host that fails fails alone, the others finish, results keep the hosts' order") {
    HostsProject p(kThreeLocal, R"lua(
  local r = run:step("each", function()
    return run:each({ "web3", "web1", "web2" }, function(h)
      if h.name == "web1" then error(hoist.error("app", "broken", "web1 is broken"), 0) end
      time.sleep(0.2)
      return proc.run({ "echo", h.name }).stdout
    end)
  end)
  for _, x in ipairs(r) do
    run:print(x.host, x.ok, x.ok and x.value or (x.error.code .. ": " .. x.error.message))
  end
)lua");
    auto r = p.Run();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("web3 true web3\n\nweb1 false broken: web1 is broken\nweb2 true web2\n") != std::string::npos);
  }

  TEST_CASE("run:step inside run:each is refused, naming the step") {
    HostsProject p(kThreeLocal, R"lua(
  run:step("outer", function()
    local r = run:each(run:hosts(), function(h) run:step("inner " .. h.name, function() end) end)
    error(r[1].error, 0)
  end)
)lua");
    auto r = p.Run();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("run:step(\"inner web1\") inside run:each") != std::string::npos);
  }

  TEST_CASE("run:hosts lists a role's hosts in name order with their addresses, and an unknown host names the known ones") {
    HostsProject p("lb1 = { ssh = 'deploy@lb1.internal', roles = { 'lb' } }, spare = { ssh = 'spare', roles = {} }, "
                   "web2 = { ssh = 'deploy@web2.internal', roles = { 'app' }, address = '10.0.0.2' }, "
                   "web1 = { ssh = 'web1', roles = { 'app' } }",
                   R"lua(
  for _, h in ipairs(run:hosts("app")) do run:print(h.name, h.address, h.ssh, table.concat(h.roles, ",")) end
  run:print(#run:hosts(), #run:hosts("db"), run:host("lb1").address)
  run:on("web9", function() end)
)lua");
    auto r = p.Run();
    INFO(r.out << r.err);
    CHECK(r.out.find("web1 web1 web1 app\nweb2 10.0.0.2 deploy@web2.internal app\n4 0 lb1.internal\n") !=
          std::string::npos);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("no host \"web9\" in this environment: its hosts are lb1, spare, web1, web2") != std::string::npos);
  }

  TEST_CASE("run:each: a host that cannot be reached fails alone, naming the host, while the local one works") {
    // Port 1 on loopback refuses at once: ssh fails quickly, nothing leaves the machine.
    HostsProject p("here = { ssh = false }, gone = { ssh = 'root@127.0.0.1', port = 1 }", R"lua(
  local r = run:step("each", function()
    return run:each(run:hosts(), function(h) return proc.run({ "true" }).code end)
  end)
  for _, x in ipairs(r) do run:print(x.host, x.ok, x.ok and x.value or (x.error.code .. ": " .. x.error.message)) end
)lua");
    auto r = p.Run();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("here true 0") != std::string::npos);
    auto at = r.out.find("gone false ");
    REQUIRE(at != std::string::npos);
    std::string line = r.out.substr(at, r.out.find('\n', at) - at);
    CHECK(line.find("gone") != line.rfind("gone"));  // the message names the host too
  }

  TEST_CASE("--sandbox simulates each host apart: its changes are listed under its name, nothing is written") {
    // Both hosts are this machine: each is read from the disk as it is, and
    // each keeps its own simulated changes.
    HostsProject p("web1 = { ssh = false }, web2 = { ssh = false }", R"lua(
  run:step("write", function()
    run:each(run:hosts(), function(h)
      fs.mkdir_p(dir .. "/srv")
      fs.write_atomic(dir .. "/srv/host.txt", h.name .. "\n")
      return fs.read(dir .. "/srv/host.txt")
    end)
  end)
  run:on("web1", function() run:print("web1 sees", fs.read(dir .. "/srv/host.txt"), fs.exists(dir .. "/hoist.lua")) end)
)lua");
    auto r = p.Run({"--sandbox"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("web1 sees web1\n true") != std::string::npos);
    CHECK(r.out.find("web1: write " + (p.dir / "srv/host.txt")) != std::string::npos);
    CHECK(r.out.find("web2: write " + (p.dir / "srv/host.txt")) != std::string::npos);
    CHECK_FALSE(fs::exists(p.dir / "srv"));
  }

  TEST_CASE("--sandbox reads another host as it is: one it cannot reach fails there as in a real run") {
    HostsProject p("gone = { ssh = 'root@127.0.0.1', port = 1 }", R"lua(
  run:on("gone", function() return fs.exists("/etc/hostname") end)
)lua");
    auto r = p.Run({"--sandbox"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("host gone (root@127.0.0.1): cannot reach it") != std::string::npos);
  }

  TEST_CASE("db.open with host= in a sandbox run is refused: a rehearsal cannot reach another host's database file") {
    HostsProject p("web1 = { ssh = 'root@192.0.2.1' }", R"lua(
  local db = require "hoist.db"
  run:step("open", function() db.open("sqlite:///srv/app/data/app.db", { host = "web1" }) end)
)lua");
    auto r = p.Run({"--sandbox"});
    INFO(r.out << r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("db: db.open(sqlite:///srv/app/data/app.db, {host = \"web1\"}) refused in a sandbox run: a "
                     "rehearsal cannot reach another host's database file (rehearse the database part on a copy here, "
                     "without host=)") != std::string::npos);
  }

  TEST_CASE("db.open with host= of a host with ssh = false opens the file here, and refuses a relative path, PostgreSQL and an unknown host") {
    HostsProject p("web1 = { ssh = false }", R"lua(
  local db = require "hoist.db"
  run:step("open", function()
    local c <close> = db.open("sqlite://" .. dir .. "/app.db", { host = run:host("web1"), create = true })
    c:exec("CREATE TABLE t (x)")
    run:print("tables", table.concat(c:tables(), ","))
    local _, e = pcall(db.open, "sqlite:app.db", { host = "web1" })
    run:print(e.code, e.message)
    _, e = pcall(db.open, "postgres://u:pw@db1/app", { host = "web1" })
    run:print(e.code, e.message)
    _, e = pcall(db.open, "sqlite://" .. dir .. "/app.db", { host = "web9" })
    run:print(e.code)
  end)
)lua");
    auto r = p.Run();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("tables t\n") != std::string::npos);
    CHECK(fs::exists(p.dir / "app.db"));
    CHECK(r.out.find("invalid db.open(sqlite:app.db, {host = \"web1\"}): a relative path means nothing on another "
                     "host (the project is not there): write the absolute path of the file on web1 "
                     "(sqlite:///srv/app/data/app.db)\n") != std::string::npos);
    CHECK(r.out.find("unsupported db.open(postgres://u:***@db1/app, {host = \"web1\"}): host= names where a SQLite "
                     "file is; a PostgreSQL database is reached over the network from where hoist runs: drop host=\n") !=
          std::string::npos);
    CHECK(r.out.find("\nunknown\n") != std::string::npos);
  }

  TEST_CASE("hosts.address must be a string: the config check names the key") {
    HostsProject p("web1 = { ssh = 'web1', address = 5 }", "");
    auto r = p.Run();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 2);
    CHECK((r.out + r.err).find("hosts.web1.address") != std::string::npos);
  }
}

}  // namespace
}  // namespace hoist::test

// net::SshHost against real sshd's on test hosts (network namespaces built
// by support/ssh_lab): one ControlMaster per host carries every command,
// argv arrives exactly, channels stay below MaxSessions, and each way a
// host can be wrong (unknown or changed host key, refused login, nothing
// listening) is one message naming the host and what to do.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "net/ssh.h"
#include "support/ssh_lab.h"
#include "support/support.h"

namespace hoist::test {
namespace {

net::SshHostSpec Spec(const SshLab& lab, const std::string& name, int max_channels = 8) {
  net::SshHostSpec s;
  s.name = name;
  s.target = lab.Target(name);
  s.config_file = lab.ssh_config();
  s.max_channels = max_channels;
  s.connect_timeout = std::chrono::seconds(5);
  return s;
}

TEST_SUITE("net/ssh") {
  TEST_CASE("commands run on the host through one master login, with argv arriving exactly") {
    SshLab lab({"web1", "web2"});
    net::SshHost web1(Spec(lab, "web1"), lab.dir() + "/ctl");
    net::SshHost web2(Spec(lab, "web2"), lab.dir() + "/ctl");
    const std::vector<std::string> args = {"printf", "%s|", "two words", "it's", "$HOME", "a;b", "`x`", "", "*"};
    for (int i = 0; i < 5; ++i) {
      auto r = web1.Run(args);
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      CHECK(r.out == "two words|it's|$HOME|a;b|`x`||*|");
    }
    // It really ran over there: the namespace's own address.
    auto where = web2.Run({"ip", "-o", "-4", "addr", "show", "dev", "eth0"});
    CHECK(where.out.find(lab.host("web2").address + "/30") != std::string::npos);
    // The remote exit code and stdin are the program's.
    auto code = web1.Run({"sh", "-c", "cat; exit 7"}, {.stdin_data = std::string("fed in")});
    CHECK(code.exit_code == 7);
    CHECK(code.out == "fed in");
    CHECK(lab.Logins("web1") == 1);
    CHECK(lab.Logins("web2") == 1);
  }

  TEST_CASE("parallel commands stay below sshd's MaxSessions and never fall back to more logins") {
    SshLab lab({"app1"}, /*max_sessions=*/3);
    auto twelve_at_once = [](net::SshHost& host) {
      std::atomic<int> ok{0};
      std::vector<std::thread> threads;
      for (int i = 0; i < 12; ++i) {
        threads.emplace_back([&, i] {
          auto r = host.Run({"sh", "-c", "sleep 0.2; echo $0", std::to_string(i)});
          if (r.exit_code == 0 && r.out == std::to_string(i) + "\n") ++ok;
        });
      }
      for (auto& t : threads) t.join();
      return ok.load();
    };
    {
      net::SshHost app1(Spec(lab, "app1", /*max_channels=*/2), lab.dir() + "/ctl");
      app1.Connect();
      CHECK(twelve_at_once(app1) == 12);
      CHECK(lab.Logins("app1") == 1);
    }
    // The control: past MaxSessions, ssh quietly makes a full login per
    // refused channel. This is what the cap prevents.
    net::SshHost unbounded(Spec(lab, "app1", /*max_channels=*/8), lab.dir() + "/ctl");
    unbounded.Connect();
    CHECK(twelve_at_once(unbounded) == 12);
    CHECK(lab.Logins("app1") > 2);
  }

  TEST_CASE("an unknown host key is refused, never added, with the fingerprint check to do") {
    SshLab lab({"web1"});
    lab.ForgetHostKey("web1");
    std::string before = ReadAll(lab.known_hosts());
    net::SshHost web1(Spec(lab, "web1"), lab.dir() + "/ctl");
    Error e = CatchError([&] { web1.Run({"true"}); });
    CHECK(e.area() == "ssh");
    CHECK(e.code() == "unknown_host_key");
    CHECK(std::string(e.what()).find("host web1 (" + lab.Target("web1") + ")") != std::string::npos);
    CHECK(std::string(e.what()).find("ssh-keyscan") != std::string::npos);
    CHECK(ReadAll(lab.known_hosts()) == before);
    CHECK(lab.Logins("web1") == 0);
  }

  TEST_CASE("a changed host key is refused, naming the host and the two explanations") {
    SshLab lab({"web1"});
    lab.ChangeHostKey("web1");
    net::SshHost web1(Spec(lab, "web1"), lab.dir() + "/ctl");
    Error e = CatchError([&] { web1.Connect(); });
    CHECK(e.code() == "host_key_changed");
    CHECK(std::string(e.what()).find("host web1") != std::string::npos);
    CHECK(std::string(e.what()).find("reinstalled or someone is in the middle") != std::string::npos);
    CHECK(lab.Logins("web1") == 0);
  }

  TEST_CASE("a refused login and a host with nothing listening each say so, naming the host") {
    SshLab lab({"web1"});
    net::SshHostSpec wrong_user = Spec(lab, "web1");
    wrong_user.target = "nobody@" + lab.host("web1").address;
    net::SshHost as_nobody(wrong_user, lab.dir() + "/ctl");
    Error denied = CatchError([&] { as_nobody.Run({"true"}); });
    CHECK(denied.code() == "auth_failed");
    CHECK(std::string(denied.what()).find("ssh-agent") != std::string::npos);

    lab.StopSshd("web1");
    net::SshHost web1(Spec(lab, "web1"), lab.dir() + "/ctl");
    Error down = CatchError([&] { web1.Run({"true"}); });
    CHECK(down.code() == "unreachable");
    CHECK(std::string(down.what()).find("host web1 (" + lab.Target("web1") + "): cannot reach it") !=
          std::string::npos);
  }

  TEST_CASE("hoist hosts reaches every host of the environment at once and names the one it cannot reach") {
    SshLab lab({"web1", "web2"});
    lab.StopSshd("web2");
    TempDir project("hosts");
    WriteFile(project / "hoist.lua", "return { environments = { prod = { hosts = {\n"
              "  web1 = { ssh = \"" + lab.Target("web1") + "\", ssh_config = \"" + lab.ssh_config() +
              "\", roles = { \"app\" } },\n"
              "  web2 = { ssh = \"" + lab.Target("web2") + "\", ssh_config = \"" + lab.ssh_config() +
              "\", roles = { \"app\" } },\n"
              "  here = { ssh = false, roles = { \"lb\" } },\n} } } }\n");
    auto r = RunHoist(project.path, {"hosts"}, {{"XDG_RUNTIME_DIR", lab.dir()}});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("hosts of environment prod:") != std::string::npos);
    CHECK(r.out.find("here  ok    local [lb]: Linux") != std::string::npos);
    CHECK(r.out.find("web1  ok    " + lab.Target("web1") + " [app]: Linux") != std::string::npos);
    CHECK(r.out.find("web2  FAIL  " + lab.Target("web2") + " [app]: ssh: host web2 (" + lab.Target("web2") +
                     "): cannot reach it") != std::string::npos);
    CHECK(lab.Logins("web1") == 1);

    lab.StartSshd("web2");
    auto j = RunHoist(project.path, {"--json", "hosts"}, {{"XDG_RUNTIME_DIR", lab.dir()}});
    INFO(j.out << j.err);
    CHECK(j.exit_code == 0);
    auto ev = nlohmann::json::parse(j.out);
    CHECK(ev["event"] == "hosts");
    REQUIRE(ev["hosts"].size() == 3);
    CHECK(ev["hosts"][2]["name"] == "web2");
    CHECK(ev["hosts"][2]["ok"] == true);
  }

  TEST_CASE("a master that went away is replaced on the next command") {
    SshLab lab({"web1"});
    net::SshHost web1(Spec(lab, "web1"), lab.dir() + "/ctl");
    CHECK(web1.Run({"true"}).exit_code == 0);
    web1.Close();
    CHECK(web1.Run({"echo", "again"}).out == "again\n");
    CHECK(lab.Logins("web1") == 2);
  }
}

}  // namespace
}  // namespace hoist::test

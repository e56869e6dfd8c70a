// The canned deploy, rollback and status over a fleet of real test hosts
// (fleet_rig.h): 3 app hosts and lb1, under load, with hosts that die or
// a hoist killed part-way.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "integration/playbooks/fleet_rig.h"
#include "support/support.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::vector<std::string>& kApps = FleetRig::AppHosts();

void HoistOk(const FleetRig& rig, std::vector<std::string> args) {
  auto r = rig.Hoist(args);
  INFO("hoist " << args[0] << "\n" << Describe(r));
  REQUIRE(r.exit_code == 0);
}

std::string EveryHost(const std::string& what) {
  std::string out;
  for (const auto& h : kApps) out += (out.empty() ? "" : ", ") + what + " on " + h;
  return out;
}

// Waits (bounded) until cond holds; false when it never did.
template <typename F>
bool Eventually(F cond, double seconds = 30) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

// Kills `host` (every process of its namespace) once hoist started the
// blue colour there: in the middle of that host's batch.
class KillWhenStarted {
 public:
  KillWhenStarted(const FleetRig& rig, std::string host) {
    thread_ = std::thread([&rig, host, this] {
      if (Eventually([&] { return fs::exists(rig.root() + "/hosts/" + host + "/run/blue.pid"); }, 90)) {
        rig.Kill(host);
        killed_ = true;
      }
    });
  }
  ~KillWhenStarted() {
    if (thread_.joinable()) thread_.join();
  }
  bool Killed() {
    if (thread_.joinable()) thread_.join();
    return killed_;
  }

 private:
  std::thread thread_;
  std::atomic<bool> killed_ = false;
};

TEST_SUITE("playbooks/fleet") {
  TEST_CASE("fleet deploy under load: every app host gets the release, one lb switch, no failed request, no lost write") {
    FleetRig rig("{ serial = 1, max_fail = 0, on_fail = \"halt\" }");
    HoistOk(rig, {"deploy", "--env", "prod", "-e", "version=1"});
    CHECK(rig.Traffic() == EveryHost("release 1 (green)"));

    // A rehearsal reads every host as it is (through its agent) and
    // changes none: each host's changes are reported under its name.
    std::string upstream_before = rig.Upstream();
    auto rehearsal = rig.Hoist({"deploy", "--env", "prod", "-e", "version=2", "--sandbox"});
    INFO(Describe(rehearsal));
    CHECK(rehearsal.exit_code == 0);
    for (const auto& h : kApps) CHECK(rehearsal.out.find(h + ": start app-blue") != std::string::npos);
    CHECK(rehearsal.out.find("lb1: write " + rig.nginx().upstream_conf()) != std::string::npos);
    CHECK(rig.Upstream() == upstream_before);
    for (const auto& h : kApps) CHECK_FALSE(rig.Running(h, "blue"));

    std::string stop = rig.root() + "/stop-load";
    json load;
    std::thread loader([&] { load = rig.Load(0, 4, stop); });
    // The load runs before, during and after the deploy.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto deploy = rig.Hoist({"deploy", "--env", "prod", "-e", "version=2"});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    WriteFile(stop, "stop");
    loader.join();
    INFO(Describe(deploy));
    INFO(load.dump());
    REQUIRE(deploy.exit_code == 0);
    CHECK(load["failed"] == 0);
    CHECK(load["lost_writes"] == 0);
    CHECK(load["acknowledged_writes"].get<int>() > 20);
    for (const auto& h : kApps) {
      CHECK(load["served_by"].contains("release 2 (blue) on " + h));
      CHECK(rig.Direct(h, "blue") == "release 2 (blue) on " + h);
      CHECK(rig.Direct(h, "green") == "release 1 (green) on " + h);  // the standby, for rollback
    }
    CHECK(rig.Traffic() == EveryHost("release 2 (blue)"));
    // One switch: the include lists every app host's blue address, and only it.
    for (const auto& h : kApps) CHECK(rig.Upstream().find(rig.lab().host(h).lan_address + ":5001;") != std::string::npos);
    // The batches: one per host (serial = 1), each journaled.
    CHECK(deploy.out.find("batch 1/3: web1") != std::string::npos);
    CHECK(deploy.out.find("batch 3/3: web3") != std::string::npos);
    CHECK(deploy.out.find("switch green -> blue on lb1") != std::string::npos);

    auto status = rig.Hoist({"status", "--env", "prod"});
    INFO(Describe(status));
    CHECK(status.exit_code == 0);
    for (const auto& h : kApps) {
      CHECK(std::regex_search(status.out, std::regex(h + " +blue \\(LIVE\\) release 2 running \\(pid [0-9]+\\); green "
                                                         "release 1 running")));
    }

    // Replayed from the journal, host by host: the same calls in order.
    std::smatch m;
    REQUIRE(std::regex_search(deploy.out, m, std::regex("env prod, run ([0-9]+)\\)")));
    // hoist show counts each step's world calls per host.
    auto show = rig.Hoist({"show", m[1]});
    INFO(Describe(show));
    CHECK(std::regex_search(show.out, std::regex("batch 1/3: web1 \\([0-9.]+m?s, [0-9]+ world calls \\(web1 [0-9]+\\)\\)")));
    CHECK(std::regex_search(show.out, std::regex("switch green -> blue on lb1 \\(.*world calls \\(lb1 [0-9]+\\)\\)")));
    auto replay = rig.Hoist({"replay", m[1]});
    INFO(Describe(replay));
    CHECK(replay.exit_code == 0);
    CHECK(replay.out.find("matched: all ") != std::string::npos);

    auto rollback = rig.Hoist({"rollback", "--env", "prod", "--yes"});
    INFO(Describe(rollback));
    REQUIRE(rollback.exit_code == 0);
    CHECK(rig.Traffic() == EveryHost("release 1 (green)"));
    CHECK(rollback.out.find("check green on web1, web2 and web3") != std::string::npos);
    CHECK(rollback.out.find("switch blue -> green on lb1") != std::string::npos);
  }

  TEST_CASE("a host killed in the middle of its batch under on_fail = halt: later hosts are skipped, traffic stays") {
    FleetRig rig("{ serial = 1, max_fail = 0, on_fail = \"halt\" }");
    HoistOk(rig, {"deploy", "--env", "prod", "-e", "version=1"});
    KillWhenStarted killer(rig, "web2");  // mid-batch: its blue was just started
    auto r = rig.Hoist({"deploy", "--env", "prod", "-e", "version=2"});
    INFO(Describe(r));
    REQUIRE(killer.Killed());
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("batch 2/3: 1 of 1 host failed (web2: ") != std::string::npos);
    CHECK(r.err.find("on_fail = \"halt\": stopping here, keeping web1 as they are; skipping web3") != std::string::npos);
    CHECK(rig.Running("web1", "blue"));          // halt keeps what is done
    CHECK_FALSE(rig.Running("web3", "blue"));    // never started
    CHECK(rig.Upstream().find(":5002;") != std::string::npos);  // traffic never switched
    CHECK(rig.Upstream().find(":5001;") == std::string::npos);
  }

  TEST_CASE("a deploy killed part-way: rollback refuses the standby it changed, the next deploy resumes it") {
    FleetRig rig("{ serial = 1, max_fail = 0, on_fail = \"halt\" }");
    HoistOk(rig, {"deploy", "--env", "prod", "-e", "version=1"});
    HoistOk(rig, {"deploy", "--env", "prod", "-e", "version=2"});
    CHECK(rig.Traffic() == EveryHost("release 2 (blue)"));
    // Deploy 3 goes to green, where release 1 stands by; hoist is killed
    // once web1's green answers as release 3 (batch 1 done, batch 2 going).
    std::string log = rig.root() + "/deploy3.log";
    pid_t hoist = rig.HoistInBackground({"deploy", "--env", "prod", "-e", "version=3"}, log);
    bool caught = Eventually([&] { return rig.Direct("web1", "green") == "release 3 (green) on web1"; }, 60);
    ::kill(hoist, SIGKILL);
    int status = 0;
    ::waitpid(hoist, &status, 0);
    INFO(ReadAll(log));
    REQUIRE(caught);
    CHECK(rig.Traffic() == EveryHost("release 2 (blue)"));  // killed before any switch

    // Rolling back would switch to green, which on web1 now runs release 3:
    // that would be a deploy, so it is refused and traffic stays.
    auto rollback = rig.Hoist({"rollback", "--env", "prod", "--yes"});
    INFO(Describe(rollback));
    CHECK(rollback.exit_code == 1);
    CHECK(rollback.err.find("web1: green runs `") != std::string::npos);
    CHECK(rollback.err.find("--release 3 --listen 0.0.0.0 --instance web1`, not release 1 (the standby the last "
                            "deploy left)") != std::string::npos);
    CHECK(rig.Traffic() == EveryHost("release 2 (blue)"));

    // The same deploy again finishes the job: web1's release 3 is kept.
    auto again = rig.Hoist({"deploy", "--env", "prod", "-e", "version=3"});
    INFO(Describe(again));
    REQUIRE(again.exit_code == 0);
    CHECK(again.err.find("web1: green already runs release 3 and is healthy: kept") != std::string::npos);
    CHECK(rig.Traffic() == EveryHost("release 3 (green)"));
  }

  TEST_CASE("two operators on two machines deploy the fleet at once: one holds the lease, the other is told who") {
    FleetRig rig("{ serial = 1 }");
    HoistOk(rig, {"deploy", "--env", "prod", "-e", "version=1"});
    std::string alice_log = rig.root() + "/alice.log", bob_log = rig.root() + "/bob.log";
    pid_t alice = rig.HoistInBackground({"deploy", "--env", "prod", "-e", "version=2"}, alice_log,
                                        {{"HOIST_OPERATOR", "alice"}}, "laptop-alice");
    // Bob's CI runner starts while alice's deploy holds the lease (the
    // shared state in PostgreSQL says so), not by a lucky sleep.
    bool held = Eventually([&] { return rig.StateSql("SELECT count(*) FROM hoist.lease") == "1"; }, 30);
    pid_t bob = rig.HoistInBackground({"deploy", "--env", "prod", "-e", "version=3"}, bob_log,
                                      {{"HOIST_OPERATOR", "bob"}}, "ci-runner-7");
    int sa = 0, sb = 0;
    ::waitpid(bob, &sb, 0);
    ::waitpid(alice, &sa, 0);
    INFO("alice:\n" << ReadAll(alice_log) << "\nbob:\n" << ReadAll(bob_log));
    REQUIRE(held);
    CHECK(WEXITSTATUS(sa) == 0);
    CHECK(WEXITSTATUS(sb) == 4);
    CHECK(ReadAll(bob_log).find("environment 'prod' is locked by alice@laptop-alice") != std::string::npos);
    CHECK(rig.Traffic() == EveryHost("release 2 (blue)"));
    CHECK(rig.StateSql("SELECT count(*) FROM hoist.runs WHERE status = 'lease_held'") == "1");
  }

  TEST_CASE("on_fail = rollback_batch, a host killed mid-batch: the batch's other hosts are rolled back, earlier kept") {
    FleetRig rig("{ serial = { 1, 2 }, max_fail = 0, on_fail = \"rollback_batch\" }");
    HoistOk(rig, {"deploy", "--env", "prod", "-e", "version=1"});
    KillWhenStarted killer(rig, "web3");  // batch 2 = { web2, web3 }
    auto r = rig.Hoist({"deploy", "--env", "prod", "-e", "version=2"});
    INFO(Describe(r));
    REQUIRE(killer.Killed());
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("batch 2/2: 1 of 2 hosts failed (web3: ") != std::string::npos);
    CHECK(r.err.find("rolling back web2, keeping web1 (earlier batches)") != std::string::npos);
    CHECK(rig.Running("web1", "blue"));
    CHECK_FALSE(rig.Running("web2", "blue"));
    CHECK(rig.Direct("web2", "green") == "release 1 (green) on web2");  // what served before still serves
    CHECK(rig.Upstream().find(":5002;") != std::string::npos);
    CHECK(rig.Upstream().find(":5001;") == std::string::npos);
  }

  TEST_CASE("on_fail = rollback_all, a host killed mid-batch: every host done so far is rolled back, traffic never moved") {
    FleetRig rig("{ serial = 1, max_fail = 0, on_fail = \"rollback_all\" }");
    HoistOk(rig, {"deploy", "--env", "prod", "-e", "version=1"});
    KillWhenStarted killer(rig, "web3");
    auto r = rig.Hoist({"deploy", "--env", "prod", "-e", "version=2"});
    INFO(Describe(r));
    REQUIRE(killer.Killed());
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("batch 3/3: 1 of 1 host failed (web3: ") != std::string::npos);
    CHECK(r.err.find("rolling back web2, web1") != std::string::npos);
    for (const auto& h : {"web1", "web2"}) {
      CHECK_FALSE(rig.Running(h, "blue"));
      CHECK(rig.Direct(h, "green") == std::string("release 1 (green) on ") + h);
    }
    CHECK(rig.Upstream().find(":5001;") == std::string::npos);
  }

  TEST_CASE("an unreachable host within max_fail: the deploy goes on and the switch leaves that host out") {
    FleetRig rig("{ serial = \"100%\", max_fail = 1, on_fail = \"halt\" }");
    HoistOk(rig, {"deploy", "--env", "prod", "-e", "version=1"});
    rig.lab().StopSshd("web2");
    auto r = rig.Hoist({"deploy", "--env", "prod", "-e", "version=2"});
    INFO(Describe(r));
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("batch 1/1: 1 of 3 hosts failed (web2: ") != std::string::npos);
    CHECK(r.err.find("max_fail = 1 tolerates 1 in a batch of 3: carrying on") != std::string::npos);
    CHECK(r.err.find("web2 failed within max_fail = 1: it gets no traffic until a deploy succeeds there") !=
          std::string::npos);
    // Only web1 and web3 run blue; the include sends blue's traffic to them alone.
    std::string up = rig.Upstream();
    CHECK(up.find(rig.lab().host("web1").lan_address + ":5001;") != std::string::npos);
    CHECK(up.find(rig.lab().host("web3").lan_address + ":5001;") != std::string::npos);
    CHECK(up.find(rig.lab().host("web2").lan_address) == std::string::npos);
    CHECK(rig.Traffic() == "release 2 (blue) on web1, release 2 (blue) on web3");
    // Status shows every host: the one it cannot reach says why.
    auto status = rig.Hoist({"status", "--env", "prod"});
    INFO(Describe(status));
    CHECK(status.exit_code == 0);
    CHECK(status.out.find("web2       UNREACHABLE: ") != std::string::npos);
    CHECK(std::regex_search(status.out, std::regex("web1 +blue \\(LIVE\\) release 2 running")));
    CHECK(status.out.find("running on 2 of 3 hosts") != std::string::npos);

    // Back, with a new host key (reinstalled, or a man in the middle):
    // refused, naming the host and what to check; nothing else changes.
    rig.lab().StartSshd("web2");
    rig.lab().ChangeHostKey("web2");
    auto k = rig.Hoist({"deploy", "--env", "prod", "-e", "version=3"});
    INFO(Describe(k));
    CHECK(k.exit_code == 0);  // still within max_fail = 1
    CHECK(k.err.find("web2: ") != std::string::npos);
    CHECK(k.err.find("ssh-keygen -R") != std::string::npos);
    CHECK_FALSE(rig.Running("web2", "green"));
    CHECK(rig.Traffic() == "release 3 (green) on web1, release 3 (green) on web3");
  }
}

}  // namespace
}  // namespace hoist::test

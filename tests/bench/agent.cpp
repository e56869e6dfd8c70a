// bench_agent: one remote World call over the agent against the cheapest
// thing ssh can do on the same host, measured in the same run on an
// SshLab host (a network namespace with its own sshd; needs root):
//   A) RemoteWorld::RunProcess({"true"}) through `hoist agent --stdio`,
//   B) `ssh -S <control socket> host true`, a new channel of the same master.
// Prints both medians and the ratio A/B; the target (issue 14) is A within
// 1.5x of B. Exit 1 when it is missed (docs/performance.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/remote_world.h"
#include "net/ssh.h"
#include "support/ssh_lab.h"
#include "support/support.h"
#include "sys/clock.h"
#include "sys/process.h"

namespace {

using namespace hoist;

constexpr int kRounds = 60;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  try {
    test::SshLab lab({"bench1"});
    net::SshHostSpec s;
    s.name = "bench1";
    s.target = lab.Target("bench1");
    s.config_file = lab.ssh_config();
    std::string ctl_dir = lab.dir() + "/ctl";
    net::SshHost host(s, ctl_dir);
    net::AgentUploadOptions upload;
    upload.local_binary = HOIST_BINARY;
    double t0 = sys::Monotonic();
    net::AgentInstall install;
    auto world = engine::ConnectRemoteWorld(host, upload, &install);
    fmt::print("agent {} at {} ({}, {:.2f}s)\n", install.version, install.path,
               install.uploaded ? "uploaded" : "already there", sys::Monotonic() - t0);

    sys::ProcessSpec bare;
    bare.argv = {"ssh", "-F", lab.ssh_config(), "-S", ctl_dir + "/bench1", "-o", "ControlMaster=no", "-T", "--",
                 lab.Target("bench1"), "true"};
    // Warm both paths (page cache, the master's first channels).
    for (int i = 0; i < 5; ++i) {
      world->RunProcess({.argv = {"true"}});
      sys::RunProcess(bare);
    }
    std::vector<double> agent, ssh;
    for (int i = 0; i < kRounds; ++i) {
      double a = sys::Monotonic();
      auto r = world->RunProcess({.argv = {"true"}});
      agent.push_back(sys::Monotonic() - a);
      double b = sys::Monotonic();
      auto q = sys::RunProcess(bare);
      ssh.push_back(sys::Monotonic() - b);
      if (r.exit_code != 0 || q.exit_code != 0) {
        fmt::print(stderr, "bench_agent: a call failed: agent exit {}, ssh exit {}: {}\n", r.exit_code, q.exit_code,
                   q.err);
        return 1;
      }
    }
    double ma = Median(agent), mb = Median(ssh);
    double ratio = ma / mb;
    fmt::print("RunProcess(true) over the agent: median {:.2f} ms ({} calls)\n", ma * 1000, kRounds);
    fmt::print("ssh -S <master> host true:       median {:.2f} ms ({} calls)\n", mb * 1000, kRounds);
    fmt::print("ratio agent / ssh: {:.2f}x (target: within 1.5x) {}\n", ratio, ratio <= 1.5 ? "ok" : "MISSED");
    return ratio <= 1.5 ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_agent: {}\n", e.what());
    return 1;
  }
}

// Test hosts for the fleet work: each host is a network namespace this
// harness creates, joined to the test's own namespace by a veth pair on a
// private /30 (10.231.<n>.0), running a private `sshd -D -f` with its own
// host key, authorized key and log under a temp dir. The client side (a
// user key, a known_hosts and an ssh_config naming them) is in the same
// temp dir, so ~/.ssh is never read or written. The hosts also share a
// LAN: a bridge with one port per host (`lan0`, 10.232.<m>.<i+2>/24) and one
// for the test's namespace (the gateway, .1, where e.g. a PostgreSQL of the
// test listens). The bridge lives in a namespace of its own, whose
// iptables are empty, so br_netfilter (bridge-nf-call-iptables=1) and
// whatever FORWARD policy the test's namespace has (Docker's DROP) cannot
// drop LAN traffic. No default routes, no forwarding changes: no traffic
// leaves the namespaces. Needs root, iproute2 and openssh-server: without
// them the test is skipped with the reason (a failure under CI=true).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/support.h"
#include "sys/process.h"

namespace hoist::test {

class SshLab {
 public:
  struct Host {
    std::string name;     ///< "web1"
    std::string netns;    ///< "hoist-<pid>-web1"
    std::string address;  ///< "10.231.<n>.2", where its sshd listens
    std::string lan_address;  ///< "10.232.<m>.<i+2>" on its lan0, i its index in the lab
    std::string dir;      ///< its sshd's files
    /// Its own HOME and XDG_CACHE_HOME (sshd SetEnv): namespaces share the
    /// filesystem, so each host's "~/.cache/hoist" is a directory of its own.
    std::string home, cache;
    int sshd_pid = 0;
  };

  /// Starts one namespace and sshd per name; max_sessions is each sshd's
  /// MaxSessions. Skips (or fails under CI=true) when it cannot.
  explicit SshLab(std::vector<std::string> names, int max_sessions = 10);
  ~SshLab();
  SshLab(const SshLab&) = delete;
  SshLab& operator=(const SshLab&) = delete;

  const Host& host(const std::string& name) const;
  /// The ssh_config the client uses (-F): user key, known_hosts, no ~/.ssh.
  const std::string& ssh_config() const { return ssh_config_; }
  const std::string& known_hosts() const { return known_hosts_; }
  const std::string& dir() const { return dir_.path; }
  /// "root@10.231.<n>.2".
  std::string Target(const std::string& name) const;

  /// The test's namespace on the hosts' LAN ("10.232.<m>.1"): a service of
  /// the test bound here is what the hosts reach.
  std::string lan_gateway() const { return lan_prefix_ + ".1"; }
  /// "10.232.<m>", this lab's /24 (free when the lab was built).
  const std::string& lan_prefix() const { return lan_prefix_; }

  /// Runs argv inside the host's network namespace (`ip netns exec`, no
  /// shell), output captured; RunProcess's result and errors.
  sys::ProcessResult Exec(const std::string& host, std::vector<std::string> argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// Starts argv detached inside the host's namespace, stdout and stderr
  /// appended to log_file, and returns its pid (ip netns exec execs it, so
  /// the pid is argv[0]'s). Anything still running in a host's namespace is
  /// killed when the lab is destroyed. Throws sys::StartService's errors.
  pid_t Spawn(const std::string& host, std::vector<std::string> argv, const std::string& log_file);

  /// The host's XDG_CACHE_HOME, where hoist keeps its agent binary.
  const std::string& CacheDir(const std::string& name) const { return host(name).cache; }

  /// How many logins the host's sshd accepted so far (from its log).
  int Logins(const std::string& name) const;
  /// Stops / starts the host's sshd (an unreachable host, then back).
  void StopSshd(const std::string& name);
  void StartSshd(const std::string& name);
  /// Gives the host a new host key (a reinstalled host, or a man in the middle).
  void ChangeHostKey(const std::string& name);
  /// Removes the host from known_hosts (a host never seen before).
  void ForgetHostKey(const std::string& name);

 private:
  Host& Mutable(const std::string& name);
  void WriteKnownHosts();

  TempDir dir_{"sshlab"};
  std::vector<Host> hosts_;
  std::string lan_netns_, lan_prefix_;
  int spawned_ = 0;
  std::string ssh_config_, known_hosts_;
  std::vector<std::string> forgotten_;
  int max_sessions_;
};

}  // namespace hoist::test

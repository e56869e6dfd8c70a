// Test hosts for the fleet work: each host is a network namespace this
// harness creates, joined to the test's own namespace by a veth pair on a
// private /30 (10.231.<n>.0), running a private `sshd -D -f` with its own
// host key, authorized key and log under a temp dir. The client side (a
// user key, a known_hosts and an ssh_config naming them) is in the same
// temp dir, so ~/.ssh is never read or written. No traffic leaves the
// namespaces. Needs root, iproute2 and openssh-server: without them the
// test is skipped with the reason (a failure under CI=true).
#pragma once

#include <string>
#include <vector>

#include "support/support.h"

namespace hoist::test {

class SshLab {
 public:
  struct Host {
    std::string name;     ///< "web1"
    std::string netns;    ///< "hoist-<pid>-web1"
    std::string address;  ///< "10.231.<n>.2", where its sshd listens
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
  std::string ssh_config_, known_hosts_;
  std::vector<std::string> forgotten_;
  int max_sessions_;
};

}  // namespace hoist::test

// A fleet of real test hosts for the fleet deploy's tests and bench_fleet:
// three app hosts (web1..web3) and a load-balancer host (lb1), each a
// network namespace with its own sshd (support/ssh_lab), joined by the
// lab's LAN. nginx runs in lb1's namespace and proxies to the app hosts'
// LAN addresses; the example app runs on each app host (started there by
// hoist's agent) and keeps its notes in PostgreSQL, which also holds
// hoist's state. The app reaches PostgreSQL through the cluster's unix
// socket (namespaces share the filesystem; the cluster listens on the
// test's loopback only). Traffic and writes are read with the example
// app's own load client, through lb1, independently of hoist. Setup
// failures throw (the bench builds without doctest's assertions).
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/nginx_server.h"
#include "support/ssh_lab.h"
#include "sys/process.h"

namespace hoist::test {

class PgCluster;

class FleetRig {
 public:
  static const std::vector<std::string>& AppHosts();

  /// fleet_rules: hoist.lua's `fleet` value, e.g. "{ serial = 1 }".
  /// app_hosts: the hosts given role "app" (default: all three).
  explicit FleetRig(const std::string& fleet_rules, std::vector<std::string> app_hosts = AppHosts(),
                    double bake_seconds = 1);
  ~FleetRig();
  FleetRig(const FleetRig&) = delete;
  FleetRig& operator=(const FleetRig&) = delete;

  sys::ProcessResult Hoist(std::vector<std::string> args) const;
  /// `hoist args...` started in the background, output to out_file: its
  /// pid. env is added to the environment; hostname (non-empty) runs it in a
  /// UTS namespace of its own under that name: another machine, as far as
  /// hoist's lease can tell.
  pid_t HoistInBackground(const std::vector<std::string>& args, const std::string& out_file,
                          const std::map<std::string, std::string>& env = {}, const std::string& hostname = "") const;

  /// The example app's load client through lb1 for `seconds` (or until
  /// stop_file exists, then checking every acknowledged write is in the
  /// database): its JSON summary.
  nlohmann::json Load(double seconds, int threads, const std::string& stop_file = "") const;
  /// "release 2 (blue) on web1, release 2 (blue) on web2, ..." through lb1.
  std::string Traffic() const;
  /// What the host's colour answers on its own port, inside its namespace ("down" when nothing).
  std::string Direct(const std::string& host, const std::string& colour) const;
  /// Whether the host's colour pid file names a live process.
  bool Running(const std::string& host, const std::string& colour) const;
  /// The host dies: every process in its namespace is killed at once.
  void Kill(const std::string& host) const;

  /// First column of the first row of sql on hoist's state database.
  std::string StateSql(const std::string& sql) const;
  std::string Upstream() const;
  const std::string& root() const { return root_; }
  SshLab& lab() const { return *lab_; }
  const NginxServer& nginx() const { return *nginx_; }
  /// The ssh options, inventory host and port Ansible uses for a host.
  std::string SocketUrl() const;

 private:
  nlohmann::json RunLoad(std::vector<std::string> argv, const std::string& host) const;

  std::unique_ptr<SshLab> lab_;
  std::string root_;
  PgCluster* pg_ = nullptr;
  std::string db_, state_db_;
  std::unique_ptr<NginxServer> nginx_;
};


}  // namespace hoist::test

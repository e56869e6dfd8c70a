// The hosts of an environment (hoist.lua's `hosts`) and reaching them:
// `hoist hosts` connects to each over the system's OpenSSH, in parallel,
// and says what runs there or, for each host that cannot be reached, why
// and what to do.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/project.h"

namespace hoist::app {

struct HostConfig {
  std::string name;
  std::string ssh;         ///< "deploy@web1.internal" or an ~/.ssh/config alias; "" for the local host
  bool local = false;      ///< ssh = false: this machine, reached without ssh
  int port = 0;            ///< 0: ssh's default
  std::string ssh_config;  ///< an ssh_config file instead of ~/.ssh/config (absolute)
  std::vector<std::string> roles;
  int max_channels = 8;
};

/// The environment's hosts, sorted by name. Error{"config","invalid"}
/// naming the key for a host that is neither `ssh = "..."` nor `ssh = false`,
/// or whose name cannot name a host (letters, digits, '_', '-').
std::vector<HostConfig> EnvironmentHosts(const Project& project, const std::string& env, std::string* env_name);

struct HostCheck {
  HostConfig host;
  bool ok = false;
  std::string error;          ///< why it cannot be reached / used, masked
  std::string code;           ///< the error's code (unknown_host_key, unreachable, ...)
  std::string system;         ///< uname -srm there
  /// The local host: this hoist's version. Another host: the version of
  /// the agent at agent_path ("" when it is not uploaded yet).
  std::string hoist_version;
  std::string agent_path;     ///< where this hoist keeps its agent there
  double seconds = 0;
};

/// Reaches every host at once (one ControlMaster each, closed after).
std::vector<HostCheck> CheckHosts(const std::vector<HostConfig>& hosts);
/// The control sockets' dir: short and 0700 ($XDG_RUNTIME_DIR/hoist-ssh, else /tmp/hoist-ssh-UID).
std::string SshControlDir();

std::string HostsText(const std::string& env, const std::vector<HostCheck>& checks);
nlohmann::json HostsJson(const std::string& env, const std::vector<HostCheck>& checks);

}  // namespace hoist::app

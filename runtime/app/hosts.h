// The hosts of an environment (hoist.lua's `hosts`) and reaching them:
// `hoist hosts` connects to each over the system's OpenSSH, in parallel,
// and says what runs there or, for each host that cannot be reached, why
// and what to do.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/project.h"
#include "engine/recorded_world.h"
#include "engine/world.h"

namespace hoist::app {

struct HostConfig {
  std::string name;
  std::string ssh;         ///< "deploy@web1.internal" or an ~/.ssh/config alias; "" for the local host
  bool local = false;      ///< ssh = false: this machine, reached without ssh
  int port = 0;            ///< 0: ssh's default
  std::string ssh_config;  ///< an ssh_config file instead of ~/.ssh/config (absolute)
  std::vector<std::string> roles;
  int max_channels = 8;
  /// Where the other hosts reach it (an LB's upstream): `address`, else
  /// the host part of ssh ("web1.internal"); 127.0.0.1 for the local host.
  std::string address;
};

/// The environment's hosts, sorted by name. Error{"config","invalid"}
/// naming the key for a host that is neither `ssh = "..."` nor `ssh = false`,
/// or whose name cannot name a host (letters, digits, '_', '-').
std::vector<HostConfig> EnvironmentHosts(const Project& project, const std::string& env, std::string* env_name);
/// The same from the environment's `hosts` table (as JSON); null: none.
std::vector<HostConfig> ParseHosts(const nlohmann::json& hosts, const std::string& env, const std::string& project_root);
/// What playbooks see of them (run:hosts): [{name, ssh, address, roles, local}].
nlohmann::json HostsForPlaybooks(const std::vector<HostConfig>& hosts);

/// The worlds acting on an environment's hosts during one run. A host is
/// reached when first used (its ssh master, the agent uploaded if missing
/// or another version, the agent started) and kept until the run ends; a
/// host that could not be reached keeps failing with the same error (no
/// second wait on a dead host). The local host (ssh = false) is the run's
/// own world. Every call is journaled through `journal` with its host.
/// Get may be called from several threads at once (run:each).
class HostWorlds {
 public:
  /// simulated (sandbox, replay): the world standing for a host instead of
  /// reaching it (owned by the caller); calls are journaled unless it is a
  /// replay, or journal is empty (a sandbox reading the real hosts).
  HostWorlds(std::vector<HostConfig> hosts, engine::World& local, engine::CallSink journal,
             std::function<engine::World*(const std::string& host)> simulated = {});
  ~HostWorlds();
  HostWorlds(const HostWorlds&) = delete;
  HostWorlds& operator=(const HostWorlds&) = delete;

  /// Error{"hosts","unknown"} for a name that is no host; the host's
  /// connection error (ssh's, the upload's, the agent's; naming the host).
  engine::World& Get(const std::string& name);

 private:
  struct Entry;
  std::vector<HostConfig> hosts_;
  engine::World& local_;
  engine::CallSink journal_;
  std::function<engine::World*(const std::string&)> simulated_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>> entries_;
};

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

// Local process services: a long-running app (a blue or a green instance on
// port 3000/3001, as pm2 would keep it) started detached in its own session,
// its output appended to a log file, its pid in a pid file; stopped with
// TERM to its process group and KILL after a grace period. No Lua.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace hoist::sys {

struct ServiceSpec {
  std::string name{};                          ///< for messages ("blue")
  std::vector<std::string> argv{};             ///< argv[0] looked up in PATH if it has no '/'
  std::map<std::string, std::string> env{};    ///< added to / overriding the inherited environment
  bool inherit_env = true;
  std::string cwd{};                           ///< "" = the current directory
  std::string pid_file{};                      ///< required: the service's identity across runs
  std::string log_file{};                      ///< stdout+stderr appended here; "" = /dev/null
  std::string host = "127.0.0.1";              ///< where status() connects to check the port
  int port = 0;                                ///< 0 = no port check
};

/// Starts the service detached (double fork + setsid: its own session and
/// process group, not our child, so it outlives hoist and is never our
/// zombie), stdin from /dev/null, stdout and stderr appended to log_file,
/// signal mask and dispositions reset, no fd of ours inherited. Writes the
/// pid to pid_file atomically and returns it.
/// Throws hoist::Error{"service", code}: "invalid" (empty argv, no pid_file),
/// "conflict" (pid_file names a live process: already running),
/// "not_found" (program not found, cwd or log dir missing), "failed".
pid_t StartService(const ServiceSpec& spec);

struct StopResult {
  pid_t pid = 0;
  std::string how;      ///< "term", "kill" or "not_running"
  double seconds = 0;
};

/// Stops the service named by pid_file: SIGTERM to its process group, and
/// SIGKILL to the group if the leader is still alive after `grace`; also
/// SIGKILL for stragglers left in the group once the leader is gone. Removes
/// the pid file. A missing pid file or a dead pid is "not_running", not an
/// error. Throws {"service","failed"} when the process cannot be signalled
/// or survives SIGKILL for 5 s.
StopResult StopService(const ServiceSpec& spec, std::chrono::milliseconds grace);

struct ServiceStatus {
  pid_t pid = 0;           ///< from the pid file, 0 when none
  bool alive = false;      ///< the pid is a live (non-zombie) process
  bool listening = false;  ///< port accepts connections (false when port == 0)
  /// "running" (alive, and listening when a port is set), "not_listening"
  /// (alive, port closed), "down" (no pid file, or the process is gone).
  std::string state;
  bool up() const { return state == "running"; }
};

/// Looks at the pid file, the process and the port (1 s connect timeout).
ServiceStatus StatusOf(const ServiceSpec& spec);

}  // namespace hoist::sys

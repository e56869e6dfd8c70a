// Looking at processes and sockets from outside: is a pid alive, which
// children does it have (nginx worker generations), send it a signal, can a
// TCP port be connected to. Used by process services, hoist.nginx and
// hoist.health. Linux /proc based; no Lua.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace hoist::sys {

/// True when pid exists and is not a zombie (a dead process nobody reaped
/// yet is dead for every purpose of ours). pid <= 0 is never alive.
bool ProcessAlive(pid_t pid);

/// The pid in a pid file ("1234\n"), or nullopt when the file is missing or
/// holds no positive number. Throws {"proc","failed"} on other read errors.
std::optional<pid_t> ReadPidFile(const std::string& path);

/// Live (non-zombie) children of pid, ascending. Scans /proc (the kernel's
/// per-task children list is not always compiled in).
std::vector<pid_t> ChildPids(pid_t pid);

/// The process title (argv joined by spaces, as ps shows it), "" when gone.
std::string CmdLine(pid_t pid);

/// The process group of pid, or -1 when it is gone.
pid_t ProcessGroup(pid_t pid);

/// kill(2) with a message: throws {"proc","not_found"} when there is no such
/// process, {"proc","failed"} otherwise (EPERM...). A negative pid signals
/// the group, as kill(2) does.
void SendSignal(pid_t pid, int sig);

/// Signal names and numbers: "HUP", "SIGHUP" or "1" -> 1. Throws
/// {"proc","invalid"} for an unknown name.
int SignalNumber(const std::string& name);

struct TcpResult {
  bool ok = false;
  double seconds = 0;   ///< time to connect (or to fail)
  std::string code;     ///< "" when ok; "refused", "timeout", "resolve", "unreachable", "failed"
  std::string error;    ///< human message, "" when ok
};

/// Connects to host:port with a timeout and closes at once. Every address
/// getaddrinfo returns is tried in turn within the one timeout. Failure is
/// data, never an exception (a health check answer).
TcpResult TcpConnect(const std::string& host, int port, std::chrono::milliseconds timeout);

}  // namespace hoist::sys

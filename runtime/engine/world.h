// The world seam (DESIGN.md): everything that touches the outside world is
// reached through this interface held by the run context. A real run wires
// RealWorld; sandbox and replay runs wire simulated or recorded worlds.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/http.h"
#include "sys/fs.h"
#include "sys/probe.h"
#include "sys/process.h"
#include "sys/service.h"

namespace hoist::engine {

class World {
 public:
  virtual ~World() = default;
  /// Runs a process (argv, never a shell unless the spec asks for one).
  virtual sys::ProcessResult RunProcess(const sys::ProcessSpec& spec) = 0;
  /// Sends an HTTP request (TCP or unix socket; the Docker client too).
  /// Transport failures are data in the response (net/http.h).
  virtual net::HttpResponse Http(const net::HttpRequest& request) = 0;

  /// Files a playbook changes (nginx includes, release pointers, ...).
  /// Reads go through the world too, so a sandbox sees its own writes.
  /// Same contracts and errors as the sys/fs.h functions of the same names.
  virtual std::string ReadFile(const std::string& path) = 0;
  virtual void WriteAtomic(const std::string& path, std::string_view data, mode_t mode) = 0;
  virtual void WriteInPlace(const std::string& path, std::string_view data) = 0;
  virtual void MkdirP(const std::string& path, mode_t mode) = 0;
  virtual bool Remove(const std::string& path, bool recursive) = 0;
  virtual void Chmod(const std::string& path, mode_t mode) = 0;
  virtual sys::Stat StatPath(const std::string& path) = 0;
  virtual std::vector<std::string> ListDir(const std::string& path) = 0;
  virtual std::vector<std::string> Glob(const std::string& pattern) = 0;

  /// Local process services (proc.service): same contracts as sys/service.h.
  virtual pid_t StartService(const sys::ServiceSpec& spec) = 0;
  virtual sys::StopResult StopService(const sys::ServiceSpec& spec, std::chrono::milliseconds grace) = 0;
  virtual sys::ServiceStatus ServiceStatusOf(const sys::ServiceSpec& spec) = 0;

  /// Processes seen from outside (the nginx master and its worker
  /// generations) and signals: same contracts as sys/probe.h.
  virtual bool ProcessAlive(pid_t pid) = 0;
  virtual std::optional<pid_t> ReadPidFile(const std::string& path) = 0;
  virtual std::vector<pid_t> ChildPids(pid_t pid) = 0;
  virtual std::string CmdLine(pid_t pid) = 0;
  virtual void SendSignal(pid_t pid, int sig) = 0;
  /// TCP probe (health checks, service start-up waits); failure is data.
  virtual sys::TcpResult TcpConnect(const std::string& host, int port, std::chrono::milliseconds timeout) = 0;

  /// The clock waits are measured against, and sleeping. A simulated world
  /// advances a virtual clock instead of waiting, so a 60 s health wait
  /// costs nothing in a sandbox. Sleep throws when the step is stopped
  /// (Ctrl-C, step deadline), like hoist.time.sleep, unless !stoppable
  /// (the waits of a restore that must finish whatever happens).
  virtual double Monotonic() = 0;
  virtual double Now() = 0;
  virtual void Sleep(double seconds, bool stoppable) = 0;

  /// Whether a call may run while another thread's calls on other hosts
  /// run (run:each gives the VM's turn up around it: core/turn.h).
  virtual bool parallel_calls() const { return true; }

  /// "real", "sandbox" or "replay": recorded with each world call.
  virtual const char* mode() const = 0;
  /// The host this world acts on: "local" for this machine (real and
  /// simulated worlds), a hoist.lua host name for a RemoteWorld. Journaled
  /// with each call that is not local.
  virtual std::string host() const { return "local"; }
  /// The world this one wraps and passes every call to (RecordingWorld's
  /// inner), nullptr for one that wraps none: how db.open{host=} finds the
  /// RemoteWorld under a host's journaling world.
  virtual World* inner() { return nullptr; }

  /// For a simulated world: how to name the step each change is made in
  /// (the run sets it; nullptr clears it). Other worlds record no changes.
  virtual void SetStepName(std::function<std::string()> step_name) { (void)step_name; }
  /// For a simulated world: a directory whose files it reads from the real
  /// disk (the sandbox's own database copy and backups). Others read all.
  virtual void AddRealDir(const std::string& dir) { (void)dir; }
};

/// The real world. Test fakes may derive from it and override only what
/// they simulate.
class RealWorld : public World {
 public:
  sys::ProcessResult RunProcess(const sys::ProcessSpec& spec) override;
  net::HttpResponse Http(const net::HttpRequest& request) override;
  std::string ReadFile(const std::string& path) override;
  void WriteAtomic(const std::string& path, std::string_view data, mode_t mode) override;
  void WriteInPlace(const std::string& path, std::string_view data) override;
  void MkdirP(const std::string& path, mode_t mode) override;
  bool Remove(const std::string& path, bool recursive) override;
  void Chmod(const std::string& path, mode_t mode) override;
  sys::Stat StatPath(const std::string& path) override;
  std::vector<std::string> ListDir(const std::string& path) override;
  std::vector<std::string> Glob(const std::string& pattern) override;
  pid_t StartService(const sys::ServiceSpec& spec) override;
  sys::StopResult StopService(const sys::ServiceSpec& spec, std::chrono::milliseconds grace) override;
  sys::ServiceStatus ServiceStatusOf(const sys::ServiceSpec& spec) override;
  bool ProcessAlive(pid_t pid) override;
  std::optional<pid_t> ReadPidFile(const std::string& path) override;
  std::vector<pid_t> ChildPids(pid_t pid) override;
  std::string CmdLine(pid_t pid) override;
  void SendSignal(pid_t pid, int sig) override;
  sys::TcpResult TcpConnect(const std::string& host, int port, std::chrono::milliseconds timeout) override;
  double Monotonic() override;
  double Now() override;
  void Sleep(double seconds, bool stoppable) override;
  const char* mode() const override { return "real"; }
};

std::unique_ptr<World> MakeRealWorld();

}  // namespace hoist::engine

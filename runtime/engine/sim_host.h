// What the parts of the simulated world share: the process world (SimWorld)
// as the nginx and Docker simulators see it, how a service is scripted to
// behave, and the argv/URL helpers they all parse with.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hoist::engine {

/// How a simulated service behaves once started (keyed by name or port).
struct SimServiceScript {
  std::string behaviour = "listens";  ///< "listens", "never_listens", "exits"
  double listen_after = 0;            ///< virtual seconds before the port opens
};

/// The simulated processes, files, clock and change log, for the parts of
/// the simulated world that live in it (SimNginx, SimDocker).
class SimHost {
 public:
  virtual ~SimHost() = default;
  /// The virtual clock.
  virtual double Monotonic() = 0;
  /// A new simulated process; parent 0 = none.
  virtual pid_t AddProcess(const std::string& cmdline, pid_t parent) = 0;
  /// A new simulated process answering HTTP on port as `name`, from
  /// Monotonic() == listen_at on, if it listens at all.
  virtual pid_t AddListener(const std::string& cmdline, const std::string& name, int port, bool listens,
                            double listen_at) = 0;
  /// Ends one process (not its children).
  virtual void End(pid_t pid) = 0;
  /// Ends a process and its children (SIGTERM, a stopped container).
  virtual void Kill(pid_t pid) = 0;
  /// Live processes whose command line contains `part`, by pid.
  virtual std::vector<pid_t> LivePids(const std::string& part) = 0;
  virtual std::vector<pid_t> ChildPids(pid_t pid) = 0;
  virtual std::string CmdLine(pid_t pid) = 0;
  /// True when a simulated service answers on address:port now: this
  /// host's for a loopback address, else the simulated host at that address.
  virtual bool ServiceListening(const std::string& address, int port) = 0;
  /// A file as this world has it; nullopt = missing.
  virtual std::optional<std::string> Lookup(const std::string& path) = 0;
  /// How the service or container `name` is scripted (the default: listens).
  virtual SimServiceScript ScriptFor(const std::string& name) = 0;
  /// One change the run would have made (SimWorld::changes()).
  virtual void Record(std::string kind, std::string what, nlohmann::json detail) = 0;
  /// Something read from the real host (SimWorld::observed()).
  virtual void Observe(const std::string& what, const std::string& value) = 0;
};

/// The whitespace-separated words of s.
std::vector<std::string> SimWords(const std::string& s);
/// argv holds every word of `match` (argv[0] compared by base name).
bool ArgvMatches(const std::vector<std::string>& argv, const std::string& match);
/// Host and port of an http(s) URL (port defaults by scheme).
std::pair<std::string, int> HostPort(const std::string& url);
/// The last component of a path.
std::string SimBasename(const std::string& path);

}  // namespace hoist::engine

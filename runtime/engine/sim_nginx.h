// The simulated nginx of the simulated world: masters with worker
// generations that a HUP or `nginx -s reload` renews (unless reloads are
// ignored), and frontends that proxy to the first live upstream of their
// configuration as the file reads in the world, so a switch takes effect.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/sim_host.h"
#include "net/http.h"

namespace hoist::engine {

class SimNginx {
 public:
  explicit SimNginx(SimHost& host) : host_(host) {}

  /// A master process with `workers` workers; returns the master's pid.
  pid_t AddMaster(int workers);
  /// nginx listening on port, routing by the `server` lines of conf_path.
  void AddFrontend(int port, const std::string& conf_path) { frontends_[port] = conf_path; }
  bool IsFrontend(int port) const { return frontends_.count(port) > 0; }
  /// Masters ignore reloads: no new worker generation.
  void SetReloadIgnored(bool ignored) { reload_ignored_ = ignored; }

  /// A HUP to pid: a new generation of its children takes the
  /// configuration and the old one exits.
  void Reload(pid_t pid);
  /// argv is `nginx -s reload`.
  static bool IsReloadCommand(const std::vector<std::string>& argv);
  /// `nginx -s reload`: every live master reloads.
  void ReloadAll();

  /// A request to port. Not a frontend: nullopt and *target = port.
  /// A frontend: *target = the upstream port it proxies to, and the 502
  /// nginx answers when nothing listens there.
  std::optional<net::HttpResponse> Proxy(int port, int* target, std::string* target_address);

 private:
  SimHost& host_;
  std::map<int, std::string> frontends_;
  bool reload_ignored_ = false;
};

}  // namespace hoist::engine

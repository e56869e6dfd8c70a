// The simulated Docker Engine of the simulated world: containers with a
// life cycle and health, whose app answers on its host port (a process in
// the host world) while it runs; with seed_from_disk, the host's real
// containers are listed once (a read-only GET) and simulated from there.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sim_host.h"
#include "net/http.h"

namespace hoist::engine {

class SimDocker {
 public:
  SimDocker(SimHost& host, bool seed_from_disk) : host_(host), seed_from_disk_(seed_from_disk) {}

  /// A container already running (name, image).
  void AddContainer(const std::string& name, const std::string& image);

  /// The Engine API as the Docker client uses it: containers (create,
  /// start, stop, restart, kill, remove, inspect with health, wait, list,
  /// logs), ping and version, images (answered as present). Anything else
  /// is a 501 naming the call, so a playbook never gets a made-up answer.
  net::HttpResponse Handle(const net::HttpRequest& request);

 private:
  struct Container {
    std::string id, name, image, state = "created";  // created, running, exited
    int exit_code = 0;
    bool healthcheck = false;
    double started_at = 0;
    nlohmann::json config;
    int port = 0;    // the host port its app answers on (0 = none known)
    pid_t pid = 0;   // the simulated process answering there while it runs
  };
  /// The container's app is up: a process answering on its port (if known).
  void RunContainer(Container& c, const SimServiceScript& script);
  /// The container stopped: nothing answers on its port any more.
  void HaltContainer(Container& c);
  /// Sandbox: the containers running behind this socket, listed once.
  void Seed(const std::string& unix_socket);

  SimHost& host_;
  bool seed_from_disk_;
  std::vector<Container> containers_;
  std::set<std::string> seeded_;  // sockets whose real containers were looked at
  int next_container_ = 1;
};

}  // namespace hoist::engine

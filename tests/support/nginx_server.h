// A real nginx (Debian nginx-light) for traffic tests: its own prefix, main
// config, pid file, logs and temp dirs under a directory of the test's, one
// free loopback port, the upstream in an include file, a server-level
// include for maintenance mode. Or inside a lab host's network namespace
// (support/ssh_lab), listening on its addresses. Stopped by pid when destroyed.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace hoist::test {

struct NginxOptions {
  int worker_processes = 1;
  /// The initial upstream include, e.g. "upstream api {\n    server 127.0.0.1:5001;\n}\n".
  std::string upstream_conf;
  /// Extra directives inside the server block.
  std::string server_extra;
  /// Bounds how long old workers may drain (0 = nginx's default, unbounded).
  int worker_shutdown_timeout = 0;
  /// A network namespace (a lab host's Host::netns) nginx runs in: every
  /// nginx command of the class goes through `ip netns exec <netns>`.
  std::string netns;
  /// Where it listens: "0.0.0.0" in a namespace reaches all of its addresses.
  std::string listen_address = "127.0.0.1";
  /// Where a client in the test's own namespace connects (url(), the
  /// readiness check): "" = listen_address, or 127.0.0.1 for "0.0.0.0"
  /// without netns. Required with netns and "0.0.0.0" (e.g. Host::address).
  std::string client_address;
};

class NginxServer {
 public:
  /// Lays out dir/{nginx.conf, upstream.conf, maintenance.conf, logs, tmp}.
  /// The port is free on the test's loopback; a fresh namespace has every
  /// port free, so the same choice holds there. Throws std::invalid_argument
  /// for netns with "0.0.0.0" and no client_address.
  NginxServer(const std::string& dir, NginxOptions options);
  ~NginxServer();
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  /// Path of the nginx binary, or "" when not installed.
  static std::string Binary();

  /// Starts nginx (daemonized master) and waits until it listens and has
  /// forked all its workers; on failure returns false with *why (nginx's own message).
  bool Start(std::string* why);
  /// Stops the master by pid (QUIT, then TERM, then KILL) and waits.
  void Stop();

  /// Starts, or skips the test (fails it under CI=true) when nginx is unavailable.
  void StartOrSkip();

  /// argv running nginx with args in the server's namespace, for the
  /// nginx commands a test runs itself (`-t`, `-s reload`).
  std::vector<std::string> Command(const std::vector<std::string>& args) const;

  pid_t MasterPid() const;
  int port() const { return port_; }
  /// http://<client address>:<port><path>: what a client in the test's namespace uses.
  std::string url(const std::string& path = "/") const;
  const std::string& client_address() const { return client_address_; }
  const std::string& dir() const { return dir_; }
  const std::string& main_conf() const { return main_conf_; }
  const std::string& upstream_conf() const { return upstream_conf_; }
  const std::string& maintenance_conf() const { return maintenance_conf_; }
  const std::string& pid_file() const { return pid_file_; }
  const std::string& error_log() const { return error_log_; }

 private:
  std::string dir_, main_conf_, upstream_conf_, maintenance_conf_, pid_file_, error_log_;
  std::string netns_, client_address_;
  int port_ = 0;
  int worker_processes_ = 1;
  bool started_ = false;
};

}  // namespace hoist::test

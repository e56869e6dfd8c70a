// A real nginx (Debian nginx-light) for traffic tests: its own prefix, main
// config, pid file, logs and temp dirs under a directory of the test's, one
// free loopback port, the upstream in an include file, a server-level
// include for maintenance mode. Stopped by pid when destroyed.
#pragma once

#include <sys/types.h>

#include <string>

namespace hoist::test {

struct NginxOptions {
  int worker_processes = 1;
  /// The initial upstream include, e.g. "upstream api {\n    server 127.0.0.1:5001;\n}\n".
  std::string upstream_conf;
  /// Extra directives inside the server block.
  std::string server_extra;
  /// Bounds how long old workers may drain (0 = nginx's default, unbounded).
  int worker_shutdown_timeout = 0;
};

class NginxServer {
 public:
  /// Lays out dir/{nginx.conf, upstream.conf, maintenance.conf, logs, tmp}.
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

  pid_t MasterPid() const;
  int port() const { return port_; }
  std::string url(const std::string& path = "/") const;
  const std::string& dir() const { return dir_; }
  const std::string& main_conf() const { return main_conf_; }
  const std::string& upstream_conf() const { return upstream_conf_; }
  const std::string& maintenance_conf() const { return maintenance_conf_; }
  const std::string& pid_file() const { return pid_file_; }
  const std::string& error_log() const { return error_log_; }

 private:
  std::string dir_, main_conf_, upstream_conf_, maintenance_conf_, pid_file_, error_log_;
  int port_ = 0;
  int worker_processes_ = 1;
  bool started_ = false;
};

}  // namespace hoist::test

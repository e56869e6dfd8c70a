// A private dockerd for integration tests (Debian docker.io, run as root):
// its own socket, data root and exec root under a temp dir, no bridge and
// no iptables rules, so it touches nothing of the host's Docker or network.
// One instance per test process, stopped at exit by pid.
#pragma once

#include <string>

#include "net/docker.h"

namespace hoist::test {

class Dockerd {
 public:
  /// The process-wide instance, started on first use. When dockerd cannot
  /// run here (not installed, not root, no cgroups...), the test is skipped
  /// through SkipUnless (and fails under CI=true) with dockerd's reason.
  static Dockerd& Shared();

  /// The unix socket path ("/tmp/hoist-dockerd-XXXXXX/docker.sock").
  const std::string& socket() const { return socket_; }
  /// A client over the real transport (net::Send).
  net::DockerClient Client() const;

  /// "hoist-test/busybox:1": FROM scratch with /bin/busybox (Debian
  /// busybox-static), /tmp and CMD busybox sleep 3600; built once per
  /// process through DockerClient::Build.
  const std::string& BusyboxImage();

  ~Dockerd();
  Dockerd(const Dockerd&) = delete;
  Dockerd& operator=(const Dockerd&) = delete;

 private:
  Dockerd();
  void Stop();

  std::string dir_;
  std::string socket_;
  std::string image_;
  int pid_ = -1;
};

}  // namespace hoist::test

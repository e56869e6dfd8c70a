// hoist_test_backend: ColourServer as a program, for process-service tests
// and manual experiments, and its client, for checks run inside a lab host's
// network namespace (support/ssh_lab), where no test code of ours runs. Usage:
//   hoist_test_backend --port N --colour blue [--address A] [--status 500] [--ignore-term] [--crash-after SECONDS]
//   hoist_test_backend --get ADDRESS:PORT[/path]   prints "<status> <colour>", exit 1 when unanswered
//   hoist_test_backend --connect ADDRESS:PORT      prints "connected" or "connect: <strerror>" (exit 1)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "support/colour_server.h"

namespace {
volatile sig_atomic_t g_stop = 0;
void OnTerm(int) { g_stop = 1; }

struct Target {
  std::string address, path = "/";
  int port = 0;
};

Target ParseTarget(const std::string& s) {
  Target t;
  size_t colon = s.find(':');
  size_t slash = s.find('/', colon == std::string::npos ? 0 : colon);
  t.address = s.substr(0, colon);
  if (colon != std::string::npos) t.port = std::atoi(s.c_str() + colon + 1);
  if (slash != std::string::npos) t.path = s.substr(slash);
  return t;
}

int Get(const Target& t) {
  hoist::test::Answer a = hoist::test::HttpGet(t.address, t.port, t.path);
  if (a.status == 0) {
    std::printf("%s\n", a.error.c_str());
    return 1;
  }
  std::printf("%d %s\n", a.status, a.colour.c_str());
  return 0;
}

// The errno is the point: "Network is unreachable" (no route from this
// namespace) is a different fact from "Connection refused" (a host answered).
int Connect(const Target& t) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // bounds connect() too
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(t.port));
  ::inet_pton(AF_INET, t.address.c_str(), &sa.sin_addr);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  int err = errno;
  ::close(fd);
  if (rc == 0) {
    std::printf("connected\n");
    return 0;
  }
  // SO_SNDTIMEO cuts a connect short with EINPROGRESS: nothing answered.
  std::printf("connect: %s\n", err == EINPROGRESS || err == EAGAIN ? "timed out" : std::strerror(err));
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  int port = 0, status = 200;
  double crash_after = 0;
  bool ignore_term = false;
  std::string colour = "blue", address = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--port") port = std::atoi(next().c_str());
    else if (a == "--colour") colour = next();
    else if (a == "--address") address = next();
    else if (a == "--get") return Get(ParseTarget(next()));
    else if (a == "--connect") return Connect(ParseTarget(next()));
    else if (a == "--status") status = std::atoi(next().c_str());
    else if (a == "--crash-after") crash_after = std::atof(next().c_str());
    else if (a == "--ignore-term") ignore_term = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  signal(SIGTERM, ignore_term ? SIG_IGN : OnTerm);
  signal(SIGINT, OnTerm);
  hoist::test::ColourServer server(colour, port, address);
  server.SetStatus(status);
  std::printf("%s listening on %s (pid %d)\n", colour.c_str(), server.address().c_str(), static_cast<int>(getpid()));
  std::fflush(stdout);
  auto start = std::chrono::steady_clock::now();
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (crash_after > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= crash_after) {
      std::fprintf(stderr, "%s: crashing on purpose\n", colour.c_str());
      std::abort();
    }
  }
  std::printf("%s: stopping on SIGTERM\n", colour.c_str());
  return 0;
}

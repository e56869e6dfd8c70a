// hoist_test_backend: ColourServer as a program, for process-service tests
// and manual experiments. Usage:
//   hoist_test_backend --port N --colour blue [--status 500] [--ignore-term] [--crash-after SECONDS]
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "support/colour_server.h"

namespace {
volatile sig_atomic_t g_stop = 0;
void OnTerm(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  int port = 0, status = 200;
  double crash_after = 0;
  bool ignore_term = false;
  std::string colour = "blue";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--port") port = std::atoi(next().c_str());
    else if (a == "--colour") colour = next();
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
  hoist::test::ColourServer server(colour, port);
  server.SetStatus(status);
  std::printf("%s listening on 127.0.0.1:%d (pid %d)\n", colour.c_str(), server.port(), static_cast<int>(getpid()));
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

// Runs the real hoist binary on a pseudo-terminal, answering its first
// prompt: what an operator at a shell sees, for the paths `--yes` skips.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

namespace hoist::test {

struct TerminalRun {
  int exit_code = -1;
  std::string output;   ///< everything hoist wrote to the terminal (stdout and stderr)
  bool prompted = false;  ///< the prompt appeared and the answer was typed
};

/// Starts hoist args in dir on a new pty, waits (up to 60 s) for `prompt`,
/// types `answer` and reads the terminal until hoist exits.
inline TerminalRun RunHoistOnTerminal(const std::string& dir, const std::vector<std::string>& args,
                                      const std::string& answer, const std::string& prompt = "[y/N] ") {
  TerminalRun out;
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) return out;
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    ::setenv("NO_COLOR", "1", 1);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(HOIST_BINARY));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(HOIST_BINARY, argv.data());
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p{master, POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EIO: the last holder of the terminal's other side closed it
    out.output.append(buf, static_cast<size_t>(n));
    if (!out.prompted && out.output.find(prompt) != std::string::npos) {
      out.prompted = ::write(master, answer.data(), answer.size()) == static_cast<ssize_t>(answer.size());
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

}  // namespace hoist::test

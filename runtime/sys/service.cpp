// Detached start by double fork: the intermediate child forks the service
// and exits at once, so the service is re-parented to init (never our
// zombie); the service calls setsid() to lead its own session and group. A
// close-on-exec pipe carries back the service's pid and, if exec failed, the
// failing stage and errno. The service execs only after its pid file names
// it (a "go" byte on a socket pair): a hoist killed in between leaves no
// process it does not track — the service reads EOF and exits unexecuted.
#include "sys/service.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include "core/error.h"
#include "sys/fs.h"
#include "sys/probe.h"
#include "sys/process.h"

namespace hoist::sys {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kPoll{10};
constexpr milliseconds kKillWait{5000};
constexpr milliseconds kStatusConnectTimeout{1000};

// Messages on the status pipe: {kind, value}.
enum Kind : int { kPid = 1, kFork = 2, kCwd = 3, kExec = 4, kStdio = 5 };
struct Msg {
  int kind;
  int value;
};

[[noreturn]] void Fail(const std::string& code, const std::string& msg) { throw Error("service", code, msg); }

// Keeps our descriptors off 0-2, where the child's dup2 would clobber them.
int AboveStdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Async-signal-safe helpers for the forked children.
void Report(int fd, int kind, int value) {
  Msg m{kind, value};
  ssize_t n;
  do {
    n = ::write(fd, &m, sizeof m);
  } while (n < 0 && errno == EINTR);
}

void ResetSignals() {
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);
  }
}

void CloseOthersOnExec() {
  long max = ::sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
#ifdef CLOSE_RANGE_CLOEXEC
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
#endif
  for (int fd = 3; fd < max; ++fd) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

std::string Describe(const ServiceSpec& spec) { return spec.name.empty() ? spec.argv[0] : spec.name; }

bool WaitGone(pid_t pid, milliseconds timeout) {
  auto until = Clock::now() + timeout;
  for (;;) {
    if (!ProcessAlive(pid)) return true;
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(kPoll);
  }
}

void RemovePidFileIfOurs(const std::string& path, pid_t pid) {
  std::optional<pid_t> now;
  try {
    now = ReadPidFile(path);
  } catch (const Error&) {
    return;
  }
  if (now && *now == pid) ::unlink(path.c_str());
}

}  // namespace

pid_t StartService(const ServiceSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) Fail("invalid", "service needs a non-empty argv");
  if (spec.pid_file.empty()) Fail("invalid", "service " + Describe(spec) + " needs a pid_file");
  for (const auto& a : spec.argv)
    if (a.find('\0') != std::string::npos) Fail("invalid", "argument contains a NUL byte");
  const std::string who = Describe(spec);
  if (auto pid = ReadPidFile(spec.pid_file); pid && ProcessAlive(*pid)) {
    Fail("conflict", "service " + who + " is already running (pid " + std::to_string(*pid) + " in " +
                         spec.pid_file + ")");
  }
  if (!spec.cwd.empty()) {
    struct stat st;
    if (::stat(spec.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      Fail("not_found", "service " + who + ": no such directory: " + spec.cwd);
  }
  // A relative name is checked in spec.cwd: the child execs it after its chdir.
  std::string program = ResolveProgramIn(spec.argv[0], spec.cwd, spec.env, "service");
  std::vector<std::string> argv_s = spec.argv;
  std::vector<std::string> env_s = ChildEnv(spec.env, spec.inherit_env, "service");
  std::vector<char*> argv = CStrings(argv_s);
  std::vector<char*> envp = CStrings(env_s);
  const std::string log_path = spec.log_file.empty() ? "/dev/null" : spec.log_file;
  Fd log_fd(AboveStdio(::open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)));
  if (log_fd.get() < 0) {
    int err = errno;
    Fail(err == ENOENT ? "not_found" : "failed",
         "service " + who + ": cannot open log file " + log_path + ": " + std::strerror(err));
  }
  Fd null_fd(AboveStdio(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) Fail("failed", std::string("pipe: ") + std::strerror(errno));
  Fd rd(AboveStdio(fds[0])), wr(AboveStdio(fds[1]));
  int go_fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go_fds) != 0)
    Fail("failed", std::string("socketpair: ") + std::strerror(errno));
  Fd go_send(AboveStdio(go_fds[0])), go_wait(AboveStdio(go_fds[1]));
  if (null_fd.get() < 0 || rd.get() < 0 || wr.get() < 0 || go_send.get() < 0 || go_wait.get() < 0)
    Fail("failed", "cannot prepare descriptors");
  const char* cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();

  pid_t mid = ::fork();
  if (mid < 0) Fail("failed", std::string("fork: ") + std::strerror(errno));
  if (mid == 0) {
    // Only async-signal-safe calls from here on.
    pid_t svc = ::fork();
    if (svc < 0) {
      Report(wr.get(), kFork, errno);
      ::_exit(1);
    }
    if (svc > 0) {
      Report(wr.get(), kPid, svc);
      ::_exit(0);
    }
    ::close(go_send.get());  // so that our parent's death reads as EOF below
    ::setsid();  // its own session and process group: stop() signals the group
    if (::dup2(null_fd.get(), 0) < 0 || ::dup2(log_fd.get(), 1) < 0 || ::dup2(log_fd.get(), 2) < 0) {
      Report(wr.get(), kStdio, errno);
      ::_exit(127);
    }
    if (cwd && ::chdir(cwd) != 0) {
      Report(wr.get(), kCwd, errno);
      ::_exit(127);
    }
    ResetSignals();
    CloseOthersOnExec();
    char go = 0;
    ssize_t got;
    do {
      got = ::read(go_wait.get(), &go, 1);
    } while (got < 0 && errno == EINTR);
    if (got != 1) ::_exit(1);  // no pid file names us: never run
    ::execve(program.c_str(), argv.data(), envp.data());
    Report(wr.get(), kExec, errno);
    ::_exit(127);
  }
  wr.Reset();
  go_wait.Reset();
  int status = 0;
  while (::waitpid(mid, &status, 0) < 0 && errno == EINTR) {
  }
  pid_t pid = 0;
  Msg err{0, 0};
  std::optional<Error> pid_file_error;
  for (;;) {
    Msg m;
    ssize_t n = ::read(rd.get(), &m, sizeof m);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof m)) break;  // EOF: exec succeeded (or the service gave up)
    if (m.kind != kPid) {
      err = m;
      continue;
    }
    pid = m.value;
    try {
      WriteAtomic(spec.pid_file, std::to_string(pid) + "\n", 0644);
    } catch (const Error& e) {
      pid_file_error = e;
      go_send.Reset();  // EOF: the service exits without running
      continue;
    }
    const char go = 1;
    while (::send(go_send.get(), &go, 1, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
  }
  if (pid_file_error) {
    Fail(pid_file_error->code(), "service " + who + ": could not write its pid file, so it was not started: " +
                                     pid_file_error->message());
  }
  if (err.kind != 0) {
    if (pid > 0) RemovePidFileIfOurs(spec.pid_file, pid);
    const char* stage = err.kind == kExec ? "cannot execute " : err.kind == kCwd ? "cannot enter " : "cannot start ";
    std::string what = err.kind == kExec ? program : err.kind == kCwd ? spec.cwd : who;
    Fail(err.value == ENOENT ? "not_found" : "failed",
         "service " + who + ": " + stage + what + ": " + std::strerror(err.value));
  }
  if (pid <= 0) Fail("failed", "service " + who + ": the starter process died before reporting a pid");
  return pid;
}

StopResult StopService(const ServiceSpec& spec, milliseconds grace) {
  if (spec.pid_file.empty()) Fail("invalid", "service " + Describe(spec) + " needs a pid_file");
  StopResult r;
  auto start = Clock::now();
  auto finish = [&](std::string how) {
    r.how = std::move(how);
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return r;
  };
  auto pid = ReadPidFile(spec.pid_file);
  if (!pid || !ProcessAlive(*pid)) {
    if (pid) {
      r.pid = *pid;
      RemovePidFileIfOurs(spec.pid_file, *pid);
    }
    return finish("not_running");
  }
  r.pid = *pid;
  // A service we started leads its own group; anything else gets the pid alone.
  const pid_t target = ProcessGroup(*pid) == *pid ? -*pid : *pid;
  if (::kill(target, SIGTERM) != 0 && errno != ESRCH) {
    Fail("failed", "cannot stop service " + Describe(spec) + " (pid " + std::to_string(*pid) +
                       "): " + std::strerror(errno));
  }
  std::string how = "term";
  if (!WaitGone(*pid, grace)) {
    ::kill(target, SIGKILL);
    how = "kill";
    if (!WaitGone(*pid, kKillWait)) {
      Fail("failed", "service " + Describe(spec) + " (pid " + std::to_string(*pid) + ") survived SIGKILL for 5 s");
    }
  }
  // Stragglers of the group: the unreaped-or-gone leader keeps its id ours.
  if (target < 0) ::kill(target, SIGKILL);
  RemovePidFileIfOurs(spec.pid_file, *pid);
  return finish(how);
}

ServiceStatus StatusOf(const ServiceSpec& spec) {
  ServiceStatus s;
  auto pid = spec.pid_file.empty() ? std::nullopt : ReadPidFile(spec.pid_file);
  s.pid = pid.value_or(0);
  s.alive = pid && ProcessAlive(*pid);
  if (s.alive && spec.port > 0) s.listening = TcpConnect(spec.host, spec.port, kStatusConnectTimeout).ok;
  s.state = !s.alive ? "down" : (spec.port > 0 && !s.listening) ? "not_listening" : "running";
  return s;
}

}  // namespace hoist::sys

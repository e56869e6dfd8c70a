#include "sys/probe.h"

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace hoist::sys {
namespace {

using Clock = std::chrono::steady_clock;

/// The fields of /proc/<pid>/stat we use: state, ppid, pgrp. The command
/// name may contain spaces and parentheses, so parse after the last ')'.
struct StatLine {
  char state = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
};

std::optional<StatLine> ReadStat(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  const char* paren = std::strrchr(buf, ')');
  if (!paren) return std::nullopt;
  StatLine s;
  int ppid = 0, pgrp = 0;
  if (std::sscanf(paren + 1, " %c %d %d", &s.state, &ppid, &pgrp) != 3) return std::nullopt;
  s.ppid = ppid;
  s.pgrp = pgrp;
  return s;
}

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct AddrInfo {
  addrinfo* list = nullptr;
  ~AddrInfo() {
    if (list) ::freeaddrinfo(list);
  }
};

}  // namespace

bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  auto st = ReadStat(pid);
  if (!st) return ::kill(pid, 0) == 0 || errno == EPERM;  // no /proc: trust kill
  return st->state != 'Z' && st->state != 'X';
}

std::optional<pid_t> ReadPidFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw Error("proc", "failed", "cannot read pid file " + path + ": " + std::strerror(errno));
  }
  long pid = 0;
  if (!(in >> pid) || pid <= 0 || pid > 0x3fffffff) return std::nullopt;
  return static_cast<pid_t>(pid);
}

std::vector<pid_t> ChildPids(pid_t pid) {
  std::vector<pid_t> out;
  if (pid <= 0) return out;
  DIR* dir = ::opendir("/proc");
  if (!dir) return out;
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long child = std::strtol(e->d_name, &end, 10);
    if (child <= 0 || *end != '\0') continue;
    auto st = ReadStat(static_cast<pid_t>(child));
    if (st && st->ppid == pid && st->state != 'Z' && st->state != 'X') out.push_back(static_cast<pid_t>(child));
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

std::string CmdLine(pid_t pid) {
  // Not an ifstream: an nginx worker that exits while we read makes read()
  // fail with ESRCH, which libstdc++ throws ("basic_filebuf::underflow ...
  // No such process") — seen failing a switch. A gone process has no title.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/cmdline", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (n < 0) return "";
  while (!s.empty() && s.back() == '\0') s.pop_back();
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s;
}

pid_t ProcessGroup(pid_t pid) {
  pid_t g = ::getpgid(pid);
  return g < 0 ? -1 : g;
}

void SendSignal(pid_t pid, int sig) {
  if (pid == 0 || pid == -1) throw Error("proc", "invalid", "refusing to signal pid " + std::to_string(pid));
  if (::kill(pid, sig) == 0) return;
  int err = errno;
  std::string who = pid < 0 ? "process group " + std::to_string(-pid) : "process " + std::to_string(pid);
  if (err == ESRCH) throw Error("proc", "not_found", "no such " + who);
  throw Error("proc", "failed", "cannot signal " + who + ": " + std::strerror(err));
}

int SignalNumber(const std::string& name) {
  static const std::pair<const char*, int> kSignals[] = {
      {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL}, {"USR1", SIGUSR1},
      {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"WINCH", SIGWINCH},
      {"ALRM", SIGALRM}, {"PIPE", SIGPIPE}, {"CHLD", SIGCHLD},
  };
  std::string n = name;
  for (auto& c : n) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (n.rfind("SIG", 0) == 0) n = n.substr(3);
  for (const auto& [s, v] : kSignals)
    if (n == s) return v;
  char* end = nullptr;
  long v = std::strtol(n.c_str(), &end, 10);
  if (!n.empty() && *end == '\0' && v >= 0 && v < NSIG) return static_cast<int>(v);
  throw Error("proc", "invalid", "unknown signal '" + name + "'");
}

TcpResult TcpConnect(const std::string& host, int port, std::chrono::milliseconds timeout) {
  TcpResult r;
  auto start = Clock::now();
  auto done = [&](std::string code, std::string error) {
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    r.ok = code.empty();
    r.code = std::move(code);
    r.error = std::move(error);
    return r;
  };
  std::string where = host + ":" + std::to_string(port);
  if (port <= 0 || port > 65535) return done("failed", "invalid port " + std::to_string(port));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  AddrInfo ai;
  if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &ai.list); rc != 0) {
    return done("resolve", "cannot resolve " + host + ": " + ::gai_strerror(rc));
  }
  auto deadline = start + timeout;
  std::string last_code = "failed", last_error = "no address for " + host;
  for (addrinfo* a = ai.list; a; a = a->ai_next) {
    Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (s.get() < 0) {
      last_error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    int rc = ::connect(s.get(), a->ai_addr, a->ai_addrlen);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return done("timeout", "connecting to " + where + " timed out");
        pollfd p{s.get(), POLLOUT, 0};
        int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1 << 30)));
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) return done("timeout", "connecting to " + where + " timed out");
        socklen_t len = sizeof err;
        if (::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        break;
      }
    }
    if (err == 0) return done("", "");
    last_code = err == ECONNREFUSED                     ? "refused"
                : (err == ENETUNREACH || err == EHOSTUNREACH) ? "unreachable"
                : err == ETIMEDOUT                        ? "timeout"
                                                          : "failed";
    last_error = "cannot connect to " + where + ": " + std::strerror(err);
  }
  return done(last_code, last_error);
}

}  // namespace hoist::sys

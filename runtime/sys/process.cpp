// RunProcess: posix_spawn (vfork-fast, no shell) plus one poll loop over the
// output pipes, the stdin pipe and a pidfd, so large input and output never
// deadlock and waiting costs no CPU.
#include "sys/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
// glibc 2.36 (Debian 12) ships this header without __BEGIN_DECLS.
extern "C" {
#include <sys/pidfd.h>
}
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>

#include "core/error.h"
#include "core/interrupt.h"
#include "sys/fs.h"

namespace hoist::sys {
namespace {

using std::chrono::milliseconds;

// Only to notice Ctrl-C and deadlines; exits and output wake poll at once.
constexpr milliseconds kStopCheckSlice{50};
// Without a pidfd (old kernel) exit is noticed by polling waitid.
constexpr milliseconds kNoPidfdSlice{5};
// A child that exits but leaves a background process holding its stdout
// (`cmd &`, a daemon) must not hang the step until that process ends.
constexpr milliseconds kLingerAfterExit{200};
constexpr size_t kReadChunk = 64 * 1024;
// Bounds the final drain so a child that outpaces us cannot keep us reading.
constexpr size_t kFinalDrainMax = 1 << 20;

[[noreturn]] void ThrowFailed(const std::string& what, int err) {
  throw Error("proc", "failed", what + ": " + std::strerror(err));
}

// A pipe end landing on 0-2 (when our own stdio is closed) would be clobbered
// by the child's dup2 of another pipe onto that number.
Fd AboveStdio(Fd fd) {
  if (fd.get() > 2) return fd;
  int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) ThrowFailed("cannot create a pipe", errno);
  return Fd(moved);
}

struct Pipe {
  Fd read, write;
};

/// Both ends close-on-exec: another thread's spawn must not inherit them,
/// or our EOF would wait for that unrelated child.
Pipe MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) ThrowFailed("cannot create a pipe", errno);
  Fd r(fds[0]);
  Fd w(fds[1]);
  return {AboveStdio(std::move(r)), AboveStdio(std::move(w))};
}

void SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    ThrowFailed("cannot configure a pipe", errno);
}

class FileActions {
 public:
  FileActions() {
    if (int rc = posix_spawn_file_actions_init(&fa_)) ThrowFailed("posix_spawn_file_actions_init", rc);
  }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;

  void Dup2(int fd, int target) { Check(posix_spawn_file_actions_adddup2(&fa_, fd, target)); }
  void Open(int target, const char* path, int flags) {
    Check(posix_spawn_file_actions_addopen(&fa_, target, path, flags, 0));
  }
  void Chdir(const std::string& dir) { Check(posix_spawn_file_actions_addchdir_np(&fa_, dir.c_str())); }
  void CloseFrom(int from) { Check(posix_spawn_file_actions_addclosefrom_np(&fa_, from)); }
  const posix_spawn_file_actions_t* get() const { return &fa_; }

 private:
  static void Check(int rc) {
    if (rc != 0) ThrowFailed("cannot prepare the child", rc);
  }
  posix_spawn_file_actions_t fa_;
};

class SpawnAttr {
 public:
  SpawnAttr() {
    if (int rc = posix_spawnattr_init(&attr_)) ThrowFailed("posix_spawnattr_init", rc);
  }
  ~SpawnAttr() { posix_spawnattr_destroy(&attr_); }
  SpawnAttr(const SpawnAttr&) = delete;
  SpawnAttr& operator=(const SpawnAttr&) = delete;

  /// Own process group (so a stop reaches grandchildren too), an empty signal
  /// mask, and default dispositions for signals a host may ignore or block
  /// (an inherited SIG_IGN for SIGPIPE breaks `cmd | head` in the child).
  void Configure() {
    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGCHLD}) sigaddset(&defaults, sig);
    short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    int rc = posix_spawnattr_setflags(&attr_, flags);
    if (rc == 0) rc = posix_spawnattr_setpgroup(&attr_, 0);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr_, &empty);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr_, &defaults);
    if (rc != 0) ThrowFailed("cannot prepare the child", rc);
  }
  const posix_spawnattr_t* get() const { return &attr_; }

 private:
  posix_spawnattr_t attr_;
};

/// Owns a spawned child until it is reaped. The leader stays an unreaped
/// zombie until Reap(), which keeps its pid (= the group id) from being reused
/// while we may still signal the group.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  /// Reached only on an exception: kill the group so waitpid cannot hang.
  ~Child() {
    if (reaped_) return;
    ::kill(-pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  void SignalGroup(int sig) const { ::kill(-pid_, sig); }

  /// True once the leader has exited; does not reap it.
  bool HasExited() const {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) < 0)
      return errno == ECHILD;  // reaped behind our back (SIGCHLD ignored)
    return info.si_pid != 0;
  }

  /// Blocks until exit; returns the wait status (0 if someone else reaped it).
  int Reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0) {
      if (errno == EINTR) continue;
      if (errno == ECHILD) break;
      ThrowFailed("waitpid", errno);
    }
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_;
  bool reaped_ = false;
};

/// Keeps SIGPIPE from killing us when the child stops reading its stdin: the
/// signal is blocked for this thread while we write, and one we caused is
/// consumed before the old mask comes back.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask_);
  }
  ~SigpipeGuard() {
    if (caused_ && !was_pending_) {
      sigset_t pipe_set;
      sigemptyset(&pipe_set);
      sigaddset(&pipe_set, SIGPIPE);
      timespec zero{};
      while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

  void NoteEpipe() { caused_ = true; }

 private:
  sigset_t old_mask_;
  bool was_pending_ = false;
  bool caused_ = false;
};

/// errno-style result of checking that path names an executable regular file.
int CheckExecutable(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errno;
  if (!S_ISREG(st.st_mode)) return EACCES;
  if (::access(path.c_str(), X_OK) != 0) return errno;
  return 0;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void AppendCapped(std::string& sink, const char* data, size_t n, size_t max, bool& truncated) {
  size_t room = sink.size() < max ? max - sink.size() : 0;
  if (n > room) truncated = true;
  sink.append(data, std::min(n, room));
}

/// One read from a non-blocking pipe; closes it on EOF or error.
/// Returns the bytes read (0 when nothing was available).
size_t ReadOnce(Fd& fd, std::string& sink, size_t max, bool& truncated) {
  char buf[kReadChunk];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n > 0) {
      AppendCapped(sink, buf, static_cast<size_t>(n), max, truncated);
      return static_cast<size_t>(n);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    fd.Reset();  // EOF, or an error we cannot do anything about
    return 0;
  }
}

int MillisUntil(Clock::time_point now, Clock::time_point when) {
  if (when <= now) return 0;
  auto ms = std::chrono::ceil<milliseconds>(when - now).count();
  return static_cast<int>(std::min<decltype(ms)>(ms, 1 << 30));
}

}  // namespace

/// Resolving ourselves (instead of posix_spawnp) makes "not found" precise
/// and keeps a missing program from costing a spawn.
std::string ResolveProgramIn(const std::string& name, const std::string& cwd,
                             const std::map<std::string, std::string>& env, const std::string& area) {
  // Relative names are resolved in the child's cwd, where exec will run.
  auto in_cwd = [&](const std::string& p) {
    return (p[0] == '/' || cwd.empty()) ? p : cwd + "/" + p;
  };
  if (name.find('/') != std::string::npos) {
    int err = CheckExecutable(in_cwd(name));
    if (err == 0) return name;
    if (err == ENOENT || err == ENOTDIR) throw Error(area, "not_found", "no such program: " + name);
    throw Error(area, "not_found", "cannot execute " + name + ": " + std::strerror(err));
  }
  std::string path_var;
  if (auto it = env.find("PATH"); it != env.end()) {
    path_var = it->second;
  } else if (const char* p = std::getenv("PATH")) {
    path_var = p;
  } else {
    path_var = "/usr/local/bin:/usr/bin:/bin";
  }
  std::string denied;  // the first match we may not execute, as execvp reports it
  int denied_err = 0;
  size_t pos = 0;
  while (pos <= path_var.size()) {
    size_t colon = path_var.find(':', pos);
    if (colon == std::string::npos) colon = path_var.size();
    std::string dir = path_var.substr(pos, colon - pos);
    pos = colon + 1;
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    int err = CheckExecutable(in_cwd(candidate));
    if (err == 0) return candidate;
    if (err != ENOENT && err != ENOTDIR && denied.empty()) {
      denied = candidate;
      denied_err = err;
    }
  }
  if (!denied.empty())
    throw Error(area, "not_found", "cannot execute " + denied + ": " + std::strerror(denied_err));
  throw Error(area, "not_found", "no such program: " + name + " (searched PATH)");
}

std::vector<std::string> ChildEnv(const std::map<std::string, std::string>& vars, bool inherit, const std::string& area) {
  std::vector<std::string> env;
  if (inherit) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string_view kv(*e);
      if (vars.count(std::string(kv.substr(0, kv.find('='))))) continue;
      env.emplace_back(kv);
    }
  }
  for (const auto& [key, value] : vars) {
    if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos)
      throw Error(area, "invalid", "bad environment variable name: '" + key + "'");
    if (value.find('\0') != std::string::npos)
      throw Error(area, "invalid", "environment variable " + key + " contains a NUL byte");
    env.push_back(key + "=" + value);
  }
  return env;
}


ProcessResult RunProcess(const ProcessSpec& spec) {
  if (spec.argv.empty()) throw Error("proc", "invalid", "empty argv");
  if (spec.argv[0].empty()) throw Error("proc", "invalid", "empty program name");
  for (const auto& arg : spec.argv)
    if (arg.find('\0') != std::string::npos)
      throw Error("proc", "invalid", "argument contains a NUL byte");

  ProcessResult result;
  // Spawning after Ctrl-C or past the deadline would only start work to kill.
  if (std::string reason = StopReason(); !reason.empty()) {
    (reason == "timeout" ? result.timed_out : result.interrupted) = true;
    return result;
  }

  // A bad cwd would otherwise surface as ENOENT from spawn, which reads as
  // "no such program".
  if (!spec.cwd.empty()) {
    struct stat st;
    if (::stat(spec.cwd.c_str(), &st) != 0) ThrowFailed("cannot run in " + spec.cwd, errno);
    if (!S_ISDIR(st.st_mode)) ThrowFailed("cannot run in " + spec.cwd, ENOTDIR);
  }
  std::string program = ResolveProgramIn(spec.argv[0], spec.cwd, spec.env, "proc");
  std::vector<std::string> argv_strings = spec.argv;
  std::vector<std::string> env_strings = ChildEnv(spec.env, spec.inherit_env, "proc");
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);

  FileActions actions;
  SpawnAttr attr;
  attr.Configure();
  Pipe in, out, err;
  if (spec.stdin_data) {
    in = MakePipe();
    actions.Dup2(in.read.get(), STDIN_FILENO);
  } else {
    actions.Open(STDIN_FILENO, "/dev/null", O_RDONLY);
  }
  if (spec.capture) {
    out = MakePipe();
    err = MakePipe();
    actions.Dup2(out.write.get(), STDOUT_FILENO);
    actions.Dup2(err.write.get(), STDERR_FILENO);
  }
  // Lua's io.open files are not close-on-exec; they must not leak into children.
  actions.CloseFrom(3);
  if (!spec.cwd.empty()) actions.Chdir(spec.cwd);

  auto start = Clock::now();
  pid_t pid = 0;
  if (int rc = ::posix_spawn(&pid, program.c_str(), actions.get(), attr.get(), argv.data(), envp.data())) {
    if (rc == ENOENT || rc == EACCES || rc == ENOEXEC || rc == ENOTDIR)
      throw Error("proc", "not_found", "cannot execute " + program + ": " + std::strerror(rc));
    ThrowFailed("cannot run " + program, rc);
  }
  Child child(pid);
  in.read.Reset();
  out.write.Reset();
  err.write.Reset();

  // Without a pidfd (kernel < 5.3) we fall back to short waitid polls.
  Fd pidfd(::pidfd_open(pid, 0));
  if (in.write) SetNonBlocking(in.write.get());
  if (out.read) SetNonBlocking(out.read.get());
  if (err.read) SetNonBlocking(err.read.get());

  const std::string empty_input;
  const std::string& input = spec.stdin_data ? *spec.stdin_data : empty_input;
  size_t input_off = 0;
  if (in.write && input.empty()) in.write.Reset();
  std::optional<SigpipeGuard> sigpipe_guard;
  if (in.write) sigpipe_guard.emplace();

  const auto own_deadline = spec.timeout.count() > 0 ? start + spec.timeout : Clock::time_point::max();
  bool exited = false;
  bool stopping = false;
  bool killed = false;
  Clock::time_point kill_at = Clock::time_point::max();
  Clock::time_point linger_until = Clock::time_point::max();
  const milliseconds slice = pidfd ? kStopCheckSlice : kNoPidfdSlice;

  for (;;) {
    auto now = Clock::now();
    if (!exited && !stopping) {
      std::string reason = StopReason();
      if (reason.empty() && now >= own_deadline) reason = "timeout";
      if (!reason.empty()) {
        (reason == "timeout" ? result.timed_out : result.interrupted) = true;
        stopping = true;
        kill_at = now + spec.kill_grace;
        child.SignalGroup(SIGTERM);
        in.write.Reset();
      }
    }
    if (stopping && !killed && now >= kill_at) {
      child.SignalGroup(SIGKILL);
      killed = true;
    }
    if (exited && ((!out.read && !err.read) || now >= linger_until)) break;

    pollfd fds[4];
    nfds_t nfds = 0;
    int out_i = -1, err_i = -1, in_i = -1, pid_i = -1;
    if (out.read) fds[out_i = nfds++] = {out.read.get(), POLLIN, 0};
    if (err.read) fds[err_i = nfds++] = {err.read.get(), POLLIN, 0};
    if (in.write) fds[in_i = nfds++] = {in.write.get(), POLLOUT, 0};
    if (!exited && pidfd) fds[pid_i = nfds++] = {pidfd.get(), POLLIN, 0};

    int wait_ms = static_cast<int>(slice.count());
    if (own_deadline != Clock::time_point::max()) wait_ms = std::min(wait_ms, MillisUntil(now, own_deadline));
    if (stopping && !killed) wait_ms = std::min(wait_ms, MillisUntil(now, kill_at));
    if (exited) wait_ms = std::min(wait_ms, MillisUntil(now, linger_until));

    int ready = ::poll(fds, nfds, wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      ThrowFailed("poll", errno);
    }
    auto readable = [&](int i) { return i >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)); };
    if (readable(out_i)) ReadOnce(out.read, result.out, spec.max_output, result.truncated);
    if (readable(err_i)) ReadOnce(err.read, result.err, spec.max_output, result.truncated);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(in.write.get(), input.data() + input_off, input.size() - input_off);
      if (n > 0) {
        input_off += static_cast<size_t>(n);
        if (input_off == input.size()) in.write.Reset();
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        // The child closed its stdin early: its choice, not our failure.
        if (errno == EPIPE) sigpipe_guard->NoteEpipe();
        in.write.Reset();
      }
    }
    bool leader_gone = pid_i >= 0 ? (fds[pid_i].revents & POLLIN) != 0 : (!pidfd && !exited && child.HasExited());
    if (leader_gone) {
      exited = true;
      in.write.Reset();
      // When stopping, survivors holding the pipes get the rest of kill_grace.
      linger_until = stopping ? kill_at : Clock::now() + kLingerAfterExit;
    }
  }

  // Output the leader wrote before exiting is already in the pipes; take it
  // even when a leftover process kept them open past the linger.
  for (Fd* fd : {&out.read, &err.read}) {
    std::string& sink = fd == &out.read ? result.out : result.err;
    size_t drained = 0;
    while (*fd && drained < kFinalDrainMax) {
      size_t n = ReadOnce(*fd, sink, spec.max_output, result.truncated);
      if (n == 0) break;
      drained += n;
    }
  }
  // Whatever survived TERM dies now; the unreaped leader keeps the group id ours.
  if (stopping) child.SignalGroup(SIGKILL);
  int status = child.Reap();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

void WriteAllTo(int fd, std::string_view data, const std::string& what) {
  SigpipeGuard guard;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    if (n < 0 && errno == EPIPE) {
      guard.NoteEpipe();
      throw Error("proc", "closed", what + ": the other end closed");
    }
    ThrowFailed(what, n < 0 ? errno : EIO);
  }
}

struct Coprocess::Pipes {
  Fd in, out, err;
};

Coprocess::Coprocess(const CoprocessSpec& spec) : pipes_(std::make_unique<Pipes>()), max_stderr_(spec.max_stderr) {
  if (spec.argv.empty()) throw Error("proc", "invalid", "empty argv");
  if (spec.argv[0].empty()) throw Error("proc", "invalid", "empty program name");
  for (const auto& arg : spec.argv)
    if (arg.find('\0') != std::string::npos) throw Error("proc", "invalid", "argument contains a NUL byte");
  if (!spec.cwd.empty()) {
    struct stat st;
    if (::stat(spec.cwd.c_str(), &st) != 0) ThrowFailed("cannot run in " + spec.cwd, errno);
    if (!S_ISDIR(st.st_mode)) ThrowFailed("cannot run in " + spec.cwd, ENOTDIR);
  }
  std::string program = ResolveProgramIn(spec.argv[0], spec.cwd, spec.env, "proc");
  std::vector<std::string> argv_strings = spec.argv;
  std::vector<std::string> env_strings = ChildEnv(spec.env, spec.inherit_env, "proc");
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);

  FileActions actions;
  SpawnAttr attr;
  attr.Configure();
  Pipe in = MakePipe(), out = MakePipe(), err = MakePipe();
  actions.Dup2(in.read.get(), STDIN_FILENO);
  actions.Dup2(out.write.get(), STDOUT_FILENO);
  actions.Dup2(err.write.get(), STDERR_FILENO);
  actions.CloseFrom(3);
  if (!spec.cwd.empty()) actions.Chdir(spec.cwd);
  if (int rc = ::posix_spawn(&pid_, program.c_str(), actions.get(), attr.get(), argv.data(), envp.data())) {
    if (rc == ENOENT || rc == EACCES || rc == ENOEXEC || rc == ENOTDIR)
      throw Error("proc", "not_found", "cannot execute " + program + ": " + std::strerror(rc));
    ThrowFailed("cannot run " + program, rc);
  }
  pipes_->in = std::move(in.write);
  pipes_->out = std::move(out.read);
  pipes_->err = std::move(err.read);
  // The child's ends close here: EOF on stdout/stderr then means the child
  // (and whatever it left holding them) is gone.
  in.read.Reset();
  out.write.Reset();
  err.write.Reset();
  int err_fd = pipes_->err.get();
  err_thread_ = std::thread([this, err_fd] {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(err_fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      std::lock_guard lock(err_mu_);
      err_tail_.append(buf, static_cast<size_t>(n));
      if (err_tail_.size() > max_stderr_) err_tail_.erase(0, err_tail_.size() - max_stderr_);
    }
  });
}

Coprocess::~Coprocess() {
  try {
    Wait();
  } catch (...) {
    ::kill(-pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    if (err_thread_.joinable()) err_thread_.join();
  }
}

int Coprocess::stdin_fd() const { return pipes_->in.get(); }
int Coprocess::stdout_fd() const { return pipes_->out.get(); }

void Coprocess::Write(std::string_view data) {
  if (!pipes_->in) throw Error("proc", "closed", "the child's input is already closed");
  WriteAllTo(pipes_->in.get(), data, "writing to " + std::to_string(pid_));
}

size_t Coprocess::Read(char* buf, size_t n) {
  if (!pipes_->out) return 0;
  for (;;) {
    ssize_t got = ::read(pipes_->out.get(), buf, n);
    if (got >= 0) return static_cast<size_t>(got);
    if (errno == EINTR) continue;
    ThrowFailed("reading from " + std::to_string(pid_), errno);
  }
}

void Coprocess::CloseStdin() { pipes_->in.Reset(); }

std::string Coprocess::StderrTail() const {
  std::lock_guard lock(err_mu_);
  return err_tail_;
}

bool Coprocess::Running() const {
  if (result_) return false;
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) < 0) return false;
  return info.si_pid == 0;
}

void Coprocess::Kill() {
  if (!result_) ::kill(-pid_, SIGKILL);
}

ProcessResult Coprocess::Wait(std::chrono::milliseconds grace) {
  if (result_) return *result_;
  CloseStdin();
  auto start = Clock::now();
  Fd pidfd(::pidfd_open(pid_, 0));
  bool killed = false;
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: reaped behind our back
    }
    if (info.si_pid != 0) break;
    auto now = Clock::now();
    if (!killed && now - start >= grace) {
      ::kill(-pid_, SIGKILL);
      killed = true;
    }
    int ms = killed ? 50 : std::clamp(MillisUntil(now, start + grace), 1, 50);
    if (pidfd) {
      pollfd p{pidfd.get(), POLLIN, 0};
      ::poll(&p, 1, ms);
    } else {
      ::usleep(5000);
    }
  }
  // Whatever the leader left in its group (and holding stderr) goes too.
  ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) break;
  }
  pipes_->out.Reset();
  if (err_thread_.joinable()) err_thread_.join();
  pipes_->err.Reset();
  ProcessResult r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.err = StderrTail();
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result_ = r;
  return r;
}

ProcessSpec ShellSpec(const std::string& command) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", command};
  return spec;
}

}  // namespace hoist::sys

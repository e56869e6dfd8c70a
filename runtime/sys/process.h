// Child processes from an argv array, never through a shell (unless a playbook
// opts in with ShellSpec). The child runs in its own process group so a
// timeout or Ctrl-C can take down everything it started.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace hoist::sys {

/// Designated initializers work: `RunProcess({.argv = {"ls"}, .cwd = dir})`;
/// the `{}` initializers keep -Wextra quiet about the fields left out.
struct ProcessSpec {
  /// argv[0] is looked up in PATH (the child's PATH when env sets one) if it
  /// has no '/'; a relative path with '/' is relative to cwd.
  std::vector<std::string> argv{};
  /// Added to, or overriding, the inherited environment.
  std::map<std::string, std::string> env{};
  bool inherit_env = true;
  /// "" runs in the current directory.
  std::string cwd{};
  /// nullopt connects stdin to /dev/null.
  std::optional<std::string> stdin_data{};
  /// 0 means none; the thread's step deadline (core/interrupt.h) applies anyway.
  std::chrono::milliseconds timeout{0};
  /// On timeout/interrupt: SIGTERM to the process group, SIGKILL after this.
  std::chrono::milliseconds kill_grace{2000};
  /// false: the child writes straight to our stdout/stderr.
  bool capture = true;
  /// Per stream; bytes beyond it are dropped and truncated is set.
  size_t max_output = 64 << 20;
};

struct ProcessResult {
  int exit_code = -1;        ///< -1 when killed by a signal
  int signal = 0;            ///< the terminating signal, 0 on a normal exit
  bool timed_out = false;    ///< we stopped it: spec.timeout or the step deadline
  bool interrupted = false;  ///< we stopped it: Ctrl-C
  bool truncated = false;    ///< some output went past max_output
  std::string out, err;
  double seconds = 0;        ///< wall time from spawn to exit
  bool ok() const { return exit_code == 0; }
};

/// Runs spec.argv to completion and always reaps it (no zombies, also when
/// this throws). A non-zero exit, a signal or a timeout are data in the
/// result, not exceptions. Throws hoist::Error:
///   {"proc","invalid"}   empty argv or program name, a NUL byte in argv/env,
///                        an env name that is empty or contains '=';
///   {"proc","not_found"} argv[0] cannot be found or executed
///                        ("no such program: foo (searched PATH)");
///   {"proc","failed"}    any other spawn/system error, with strerror.
/// Once the direct child exits, output still buffered is collected, but
/// processes it left behind holding the pipes are waited for at most 200 ms.
/// If Ctrl-C or the step deadline has already happened, nothing is spawned:
/// the result has interrupted/timed_out set and exit_code -1.
ProcessResult RunProcess(const ProcessSpec& spec);

/// argv[0] as exec will run it: a name with '/' as given (checked relative
/// to cwd), otherwise the first executable match in PATH (env's PATH when it
/// sets one). Resolving ourselves (instead of posix_spawnp) makes "not
/// found" precise. Error{area,"not_found"}: "no such program: foo (searched
/// PATH)" or "cannot execute /x/foo: Permission denied".
std::string ResolveProgramIn(const std::string& name, const std::string& cwd,
                             const std::map<std::string, std::string>& env, const std::string& area);
/// A child's environment: the inherited one (minus the names vars sets)
/// when inherit, plus vars. Error{area,"invalid"} for a bad name or a NUL.
std::vector<std::string> ChildEnv(const std::map<std::string, std::string>& vars, bool inherit, const std::string& area);

/// Writes all of data to a pipe or file descriptor, retrying on EINTR and
/// short writes (a non-blocking fd is waited for with poll). SIGPIPE is
/// blocked for the calling thread meanwhile, so a reader that went away is
/// Error{"proc","closed", "<what>: the other end closed"}, never a signal
/// that kills hoist. Other failures: Error{"proc","failed", "<what>: <strerror>"}.
void WriteAllTo(int fd, std::string_view data, const std::string& what);

struct CoprocessSpec {
  /// Never a shell: argv[0] is resolved as RunProcess does.
  std::vector<std::string> argv{};
  std::map<std::string, std::string> env{};
  bool inherit_env = true;
  std::string cwd{};
  /// The last this many bytes of the child's stderr are kept (StderrTail).
  size_t max_stderr = 64 << 10;
};

/// A child kept running for a request/response conversation: its stdin and
/// stdout stay open pipes (close-on-exec on our side, so no other child
/// inherits them), its stderr is drained by a thread of its own into a
/// bounded tail (a chatty child can never block on a full stderr pipe).
/// The child runs in its own process group. The destructor closes stdin,
/// gives the child 2 s to exit, then kills its group and reaps it.
class Coprocess {
 public:
  /// Spawns spec.argv. Throws as RunProcess does: {"proc","invalid"},
  /// {"proc","not_found"}, {"proc","failed"}.
  explicit Coprocess(const CoprocessSpec& spec);
  ~Coprocess();
  Coprocess(const Coprocess&) = delete;
  Coprocess& operator=(const Coprocess&) = delete;

  pid_t pid() const { return pid_; }
  /// Our ends of the child's stdin (write) and stdout (read); -1 once closed.
  int stdin_fd() const;
  int stdout_fd() const;

  /// All of data to the child's stdin (WriteAllTo's errors: "closed" when
  /// the child no longer reads).
  void Write(std::string_view data);
  /// Up to n bytes of the child's stdout, blocking until some arrive;
  /// 0 at EOF. EINTR is retried.
  size_t Read(char* buf, size_t n);
  /// Ends the child's input (it sees EOF).
  void CloseStdin();
  /// The last max_stderr bytes the child wrote to stderr so far.
  std::string StderrTail() const;

  /// Closes stdin, waits up to grace for the child to exit, then SIGKILLs
  /// its group; reaps it. exit_code/signal as in ProcessResult, err = the
  /// stderr tail. Idempotent: a second call returns the same result.
  ProcessResult Wait(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
  /// SIGKILL to the child's group now (then Wait reaps it).
  void Kill();
  /// True while the child has not exited.
  bool Running() const;

 private:
  struct Pipes;
  pid_t pid_ = 0;
  std::unique_ptr<Pipes> pipes_;
  mutable std::mutex err_mu_;
  std::string err_tail_;
  size_t max_stderr_;
  std::thread err_thread_;
  std::optional<ProcessResult> result_;
};

/// The explicit opt-in to a shell: argv {"/bin/sh", "-c", command}.
ProcessSpec ShellSpec(const std::string& command);

}  // namespace hoist::sys

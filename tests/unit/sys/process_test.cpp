// Tests for sys/process: real children (/bin/sh, cat, env, pwd, sleep), since
// process groups, signals and pipes are exactly what a fake would hide.
#include "sys/process.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "support/support.h"
#include "core/interrupt.h"

namespace hoist::sys {
namespace {

using test::TempDir;

using std::chrono::milliseconds;


/// A pid is gone once kill() says ESRCH, or once it is a zombie: dead, and
/// reaping orphans is the job of whatever runs as PID 1 here, not ours.
bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

/// Polls for at most 2 s: the kill is asynchronous, a blind sleep would be flaky.
bool WaitGone(pid_t pid) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < until) {
    if (ProcessGone(pid)) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return ProcessGone(pid);
}

pid_t ReadPid(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

Error CatchError(const ProcessSpec& spec) {
  try {
    RunProcess(spec);
  } catch (const Error& e) {
    return e;
  }
  FAIL("RunProcess did not throw");
  return Error("", "", "");
}

}  // namespace

TEST_SUITE("sys/process") {
  TEST_CASE("exit code zero is ok and a non-zero exit is data not an exception") {
    ProcessResult ok = RunProcess({.argv = {"/bin/true"}});
    CHECK(ok.ok());
    CHECK(ok.exit_code == 0);
    CHECK(ok.signal == 0);

    ProcessResult three = RunProcess(ShellSpec("exit 3"));
    CHECK_FALSE(three.ok());
    CHECK(three.exit_code == 3);
    CHECK(three.signal == 0);
    CHECK_FALSE(three.timed_out);
  }

  TEST_CASE("a signal death gives exit_code -1 and the signal number") {
    ProcessResult r = RunProcess(ShellSpec("kill -USR1 $$"));
    CHECK(r.exit_code == -1);
    CHECK(r.signal == SIGUSR1);
  }

  TEST_CASE("ShellSpec builds a /bin/sh -c argv") {
    ProcessSpec spec = ShellSpec("echo $((1+2))");
    CHECK(spec.argv == std::vector<std::string>{"/bin/sh", "-c", "echo $((1+2))"});
    CHECK(RunProcess(spec).out == "3\n");
  }

  TEST_CASE("argv is passed verbatim without a shell") {
    ProcessResult r = RunProcess({.argv = {"printf", "%s|", "a b", "$HOME", "*", "'q'"}});
    CHECK(r.out == "a b|$HOME|*|'q'|");
  }

  TEST_CASE("stdout and stderr are captured separately") {
    ProcessResult r = RunProcess(ShellSpec("echo out1; echo err1 >&2; echo out2"));
    CHECK(r.out == "out1\nout2\n");
    CHECK(r.err == "err1\n");
  }

  TEST_CASE("stdin data of 1 MiB round-trips through cat exactly") {
    std::string input(1 << 20, '\0');
    for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
    ProcessResult r = RunProcess({.argv = {"/bin/cat"}, .stdin_data = input});
    CHECK(r.ok());
    CHECK(r.out.size() == input.size());
    CHECK(r.out == input);
    CHECK_FALSE(r.truncated);
  }

  TEST_CASE("stdin defaults to /dev/null so a reader sees EOF at once") {
    ProcessResult r = RunProcess({.argv = {"/bin/cat"}, .timeout = milliseconds(5000)});
    CHECK(r.ok());
    CHECK(r.out.empty());
    CHECK_FALSE(r.timed_out);
  }

  TEST_CASE("a child that stops reading stdin early does not kill us with SIGPIPE") {
    std::string input(4 << 20, 'x');
    ProcessResult r = RunProcess({.argv = {"head", "-c", "3"}, .stdin_data = input});
    CHECK(r.ok());
    CHECK(r.out == "xxx");
  }

  TEST_CASE("env entries are added and override inherited ones") {
    REQUIRE(::setenv("HOIST_TEST_OVERRIDE", "old", 1) == 0);
    ProcessResult r = RunProcess({.argv = {"/usr/bin/env"},
                                  .env = {{"HOIST_TEST_ADDED", "a b=c"}, {"HOIST_TEST_OVERRIDE", "new"}}});
    ::unsetenv("HOIST_TEST_OVERRIDE");
    CHECK(r.out.find("\nHOIST_TEST_ADDED=a b=c\n") != std::string::npos);
    CHECK(r.out.find("\nHOIST_TEST_OVERRIDE=new\n") != std::string::npos);
    CHECK(r.out.find("HOIST_TEST_OVERRIDE=old") == std::string::npos);
  }

  TEST_CASE("inherit_env false gives the child only the given env") {
    ProcessResult r = RunProcess({.argv = {"/usr/bin/env"}, .env = {{"ONLY", "1"}}, .inherit_env = false});
    CHECK(r.out == "ONLY=1\n");
  }

  TEST_CASE("cwd is honoured") {
    TempDir dir;
    ProcessResult r = RunProcess({.argv = {"/bin/pwd"}, .cwd = dir.path});
    CHECK(r.out == std::filesystem::canonical(dir.path).string() + "\n");
  }

  TEST_CASE("a relative program path is resolved in cwd") {
    TempDir dir;
    std::string script = dir.path + "/hello.sh";
    std::ofstream(script) << "#!/bin/sh\necho hello from script\n";
    std::filesystem::permissions(script, std::filesystem::perms::owner_all);
    ProcessResult r = RunProcess({.argv = {"./hello.sh"}, .cwd = dir.path});
    CHECK(r.out == "hello from script\n");
  }

  TEST_CASE("a missing cwd is a failed error not a missing program") {
    Error e = CatchError({.argv = {"/bin/true"}, .cwd = "/nonexistent-hoist-dir"});
    CHECK(e.code() == "failed");
    CHECK(std::string(e.what()) == "proc: cannot run in /nonexistent-hoist-dir: No such file or directory");
  }

  TEST_CASE("a program not in PATH gives not_found with the exact message") {
    Error e = CatchError({.argv = {"hoist-no-such-program"}});
    CHECK(e.area() == "proc");
    CHECK(e.code() == "not_found");
    CHECK(std::string(e.what()) == "proc: no such program: hoist-no-such-program (searched PATH)");
  }

  TEST_CASE("a missing absolute program gives not_found") {
    Error e = CatchError({.argv = {"/nonexistent/prog"}});
    CHECK(e.code() == "not_found");
    CHECK(std::string(e.what()) == "proc: no such program: /nonexistent/prog");
  }

  TEST_CASE("a non-executable file gives not_found with the reason") {
    TempDir dir;
    std::string file = dir.path + "/data.txt";
    std::ofstream(file) << "not a program\n";
    std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    Error e = CatchError({.argv = {file}});
    CHECK(e.code() == "not_found");
    // root passes access(X_OK) checks only when some x bit is set, so this holds for root too.
    CHECK(std::string(e.what()) == "proc: cannot execute " + file + ": Permission denied");
  }

  TEST_CASE("PATH from spec env is the one searched") {
    TempDir dir;
    std::string script = dir.path + "/hoist-only-here";
    std::ofstream(script) << "#!/bin/sh\necho found\n";
    std::filesystem::permissions(script, std::filesystem::perms::owner_all);
    ProcessResult r = RunProcess({.argv = {"hoist-only-here"}, .env = {{"PATH", dir.path + ":/usr/bin:/bin"}}});
    CHECK(r.out == "found\n");
  }

  TEST_CASE("an empty argv is invalid") {
    Error e = CatchError({});
    CHECK(e.code() == "invalid");
    CHECK(std::string(e.what()) == "proc: empty argv");
  }

  TEST_CASE("timeout kills the whole process group including a grandchild") {
    TempDir dir;
    std::string pidfile = dir.path + "/grandchild.pid";
    ProcessSpec spec = ShellSpec("sleep 30 & echo $! > " + pidfile + "; sleep 30");
    spec.timeout = milliseconds(300);
    ProcessResult r = RunProcess(spec);
    CHECK(r.timed_out);
    CHECK_FALSE(r.interrupted);
    CHECK(r.exit_code == -1);
    CHECK(r.signal == SIGTERM);
    CHECK(r.seconds >= 0.3);
    CHECK(r.seconds < 5);
    pid_t grandchild = ReadPid(pidfile);
    REQUIRE(grandchild > 0);
    CHECK(WaitGone(grandchild));
  }

  TEST_CASE("a TERM-ignoring child is killed with KILL after kill_grace") {
    TempDir dir;
    std::string pidfile = dir.path + "/grandchild.pid";
    ProcessSpec spec = ShellSpec("trap '' TERM; sleep 30 & echo $! > " + pidfile + "; sleep 30");
    spec.timeout = milliseconds(200);
    spec.kill_grace = milliseconds(400);
    ProcessResult r = RunProcess(spec);
    CHECK(r.timed_out);
    CHECK(r.signal == SIGKILL);
    CHECK(r.seconds >= 0.6);
    CHECK(r.seconds < 5);
    pid_t grandchild = ReadPid(pidfile);
    REQUIRE(grandchild > 0);
    CHECK(WaitGone(grandchild));
  }

  TEST_CASE("the step deadline stops a child as a timeout") {
    DeadlineScope scope(milliseconds(300));
    ProcessResult r = RunProcess({.argv = {"sleep", "30"}});
    CHECK(r.timed_out);
    CHECK(r.signal == SIGTERM);
    CHECK(r.seconds < 5);
  }

  TEST_CASE("an expired step deadline does not spawn at all") {
    TempDir dir;
    std::string marker = dir.path + "/ran";
    DeadlineScope scope(milliseconds(0));
    ProcessResult r = RunProcess(ShellSpec("touch " + marker));
    CHECK(r.timed_out);
    CHECK(r.exit_code == -1);
    CHECK_FALSE(std::filesystem::exists(marker));
  }

  TEST_CASE("Ctrl-C stops a child and reports interrupted") {
    ClearInterrupt();
    std::thread ctrl_c([] {
      std::this_thread::sleep_for(milliseconds(200));
      RequestInterrupt();
    });
    ProcessResult r = RunProcess({.argv = {"sleep", "30"}});
    ctrl_c.join();
    ClearInterrupt();
    CHECK(r.interrupted);
    CHECK_FALSE(r.timed_out);
    CHECK(r.signal == SIGTERM);
    CHECK(r.seconds < 5);
  }

  TEST_CASE("output beyond max_output is dropped and flagged") {
    ProcessSpec spec = ShellSpec("head -c 100000 /dev/zero; echo short >&2");
    spec.max_output = 10;
    ProcessResult r = RunProcess(spec);
    CHECK(r.ok());
    CHECK(r.out == std::string(10, '\0'));
    CHECK(r.err == "short\n");
    CHECK(r.truncated);
  }

  TEST_CASE("a background process holding stdout does not hang the run") {
    ProcessResult r = RunProcess(ShellSpec("sleep 20 & echo $!"));
    CHECK(r.ok());
    CHECK_FALSE(r.timed_out);
    CHECK(r.seconds < 2);
    pid_t leftover = static_cast<pid_t>(std::atol(r.out.c_str()));
    REQUIRE(leftover > 0);
    ::kill(leftover, SIGKILL);
  }

  TEST_CASE("the child is reaped so no zombie is left") {
    RunProcess({.argv = {"/bin/true"}});
    RunProcess(ShellSpec("exit 7"));
    int status = 0;
    CHECK(::waitpid(-1, &status, WNOHANG) == -1);
    CHECK(errno == ECHILD);
  }

  TEST_CASE("no file descriptor leaks from runs timeouts or errors") {
    auto open_fds = [] {
      return std::distance(std::filesystem::directory_iterator("/proc/self/fd"), std::filesystem::directory_iterator{});
    };
    auto before = open_fds();
    RunProcess({.argv = {"/bin/cat"}, .stdin_data = std::string("data")});
    RunProcess({.argv = {"sleep", "30"}, .timeout = milliseconds(50)});
    CatchError({.argv = {"hoist-no-such-program"}});
    CHECK(open_fds() == before);
  }

  TEST_CASE("the child inherits none of our other file descriptors") {
    // Opened without O_CLOEXEC, like Lua's io.open does.
    int fd = ::open("/dev/null", O_RDONLY);
    REQUIRE(fd >= 3);
    ProcessResult r = RunProcess(ShellSpec("ls /proc/self/fd"));
    ::close(fd);
    CHECK(r.out == "0\n1\n2\n3\n");  // 3 is the directory ls itself is reading
  }

  TEST_CASE("the child runs in its own process group") {
    ProcessResult r = RunProcess(ShellSpec("cut -d' ' -f5 /proc/$$/stat; echo $$"));
    std::istringstream lines(r.out);
    long pgid = 0, pid = 0;
    lines >> pgid >> pid;
    CHECK(pid > 0);
    CHECK(pgid == pid);
    CHECK(pgid != ::getpgrp());
  }

TEST_CASE("a coprocess answers line by line over its pipes, keeps a bounded stderr tail and is reaped") {
  Coprocess c({.argv = {"sh", "-c", "while read l; do echo \"got $l\"; echo \"log $l\" >&2; done; exit 4"},
               .max_stderr = 8});
  auto ask = [&](const std::string& line) {
    c.Write(line + "\n");
    std::string out;
    char ch;
    while (out.empty() || out.back() != '\n') {
      REQUIRE(c.Read(&ch, 1) == 1);
      out += ch;
    }
    return out;
  };
  CHECK(ask("one") == "got one\n");
  CHECK(ask("two") == "got two\n");
  CHECK(c.Running());
  auto r = c.Wait();
  CHECK(r.exit_code == 4);
  CHECK(r.err == "log two\n");  // the last 8 bytes only
  CHECK_FALSE(c.Running());
  CHECK(ProcessGone(c.pid()));
  CHECK(c.Wait().exit_code == 4);
}

TEST_CASE("writing to a coprocess that stopped reading is closed, not SIGPIPE, and its fds are close-on-exec") {
  Coprocess c({.argv = {"true"}});
  CHECK((::fcntl(c.stdin_fd(), F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((::fcntl(c.stdout_fd(), F_GETFD) & FD_CLOEXEC) != 0);
  char ch;
  CHECK(c.Read(&ch, 1) == 0);  // it exited: EOF
  Error e = test::CatchError([&] { for (int i = 0; i < 100; ++i) c.Write(std::string(65536, 'x')); });
  CHECK(e.code() == "closed");
  CHECK(c.Wait().exit_code == 0);
  CHECK(test::CatchError([&] { Coprocess({.argv = {"no-such-program-hoist"}}); }).code() == "not_found");
}

TEST_CASE("a coprocess that ignores the end of its input is killed after the grace") {
  Coprocess c({.argv = {"sh", "-c", "trap '' TERM; exec sleep 30"}});
  auto r = c.Wait(milliseconds(200));
  CHECK(r.signal == SIGKILL);
  CHECK(r.seconds < 5);
}

}

}  // namespace hoist::sys

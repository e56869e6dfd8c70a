// Tests for sys/service and proc.service: real detached processes (the
// hoist_test_backend program answering HTTP on a port), since sessions,
// process groups and signals are exactly what a fake would hide.
#include "sys/service.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include <chrono>
#include <thread>

#include "core/error.h"
#include "support/colour_server.h"
#include "support/support.h"
#include "sys/probe.h"
#include "support/lua_eval.h"

namespace hoist::test {
namespace {

using std::chrono::milliseconds;

bool Eventually(const std::function<bool()>& cond, milliseconds timeout = milliseconds(5000)) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return cond();
}

sys::ServiceSpec Backend(const TempDir& dir, const std::string& colour, int port,
                         std::vector<std::string> extra = {}) {
  sys::ServiceSpec s;
  s.name = colour;
  s.argv = {HOIST_TEST_BACKEND, "--port", std::to_string(port), "--colour", colour};
  for (auto& e : extra) s.argv.push_back(e);
  s.port = port;
  s.pid_file = dir / (colour + ".pid");
  s.log_file = dir / (colour + ".log");
  return s;
}

/// How many processes have `needle` in their command line.
int ProcessesMentioning(const std::string& needle) {
  int n = 0;
  for (const auto& p : std::filesystem::directory_iterator("/proc")) {
    const std::string name = p.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadAll(p.path() / "cmdline");
    if (cmdline.find(needle) != std::string::npos) ++n;
  }
  return n;
}

/// Stops whatever a test left running.
struct Cleanup {
  std::vector<sys::ServiceSpec> specs;
  ~Cleanup() {
    for (auto& s : specs) {
      try {
        sys::StopService(s, milliseconds(200));
      } catch (...) {
      }
    }
  }
};

TEST_SUITE("traffic/service") {
  TEST_CASE("two instances on two ports start, report running, restart and stop") {
    TempDir dir("svc");
    int p1 = FreePort(), p2 = FreePort();
    auto blue = Backend(dir, "blue", p1), green = Backend(dir, "green", p2);
    Cleanup cleanup{{blue, green}};
    pid_t b = sys::StartService(blue);
    pid_t g = sys::StartService(green);
    CHECK(b != g);
    CHECK(sys::ReadPidFile(blue.pid_file) == b);
    CHECK(Eventually([&] { return sys::StatusOf(blue).up() && sys::StatusOf(green).up(); }));
    // Detached: its own session and group, not our child.
    CHECK(::getsid(b) == b);
    CHECK(sys::ProcessGroup(b) == b);
    CHECK(::getppid() != b);

    sys::StopResult stopped = sys::StopService(blue, milliseconds(5000));
    CHECK(stopped.how == "term");
    CHECK(stopped.pid == b);
    CHECK_FALSE(sys::ProcessAlive(b));
    CHECK(sys::StatusOf(blue).state == "down");
    CHECK_FALSE(std::filesystem::exists(blue.pid_file));
    CHECK(sys::StatusOf(green).up());  // the other colour is untouched

    pid_t b2 = sys::StartService(blue);
    CHECK(b2 != b);
    CHECK(Eventually([&] { return sys::StatusOf(blue).up(); }));
    // Output goes to the log file, appended across starts.
    CHECK(Eventually([&] {
      std::string log = ReadAll(blue.log_file);
      return log.find("stopping on SIGTERM") != std::string::npos &&
             log.rfind("blue listening") > log.find("stopping on SIGTERM");
    }));
    CHECK(sys::StopService(green, milliseconds(5000)).how == "term");
    CHECK(sys::StopService(green, milliseconds(5000)).how == "not_running");
  }

  TEST_CASE("a crashed instance is reported down") {
    TempDir dir("svc");
    auto spec = Backend(dir, "blue", FreePort(), {"--crash-after", "0.3"});
    Cleanup cleanup{{spec}};
    pid_t pid = sys::StartService(spec);
    CHECK(Eventually([&] { return sys::StatusOf(spec).up(); }, milliseconds(2000)));
    CHECK(Eventually([&] { return sys::StatusOf(spec).state == "down"; }));
    sys::ServiceStatus st = sys::StatusOf(spec);
    CHECK(st.pid == pid);  // the stale pid file still names it
    CHECK_FALSE(st.alive);
    CHECK_FALSE(st.listening);
    // Starting again over a stale pid file works.
    pid_t again = sys::StartService(Backend(dir, "blue", spec.port));
    CHECK(again != pid);
    CHECK(Eventually([&] { return sys::StatusOf(spec).up(); }));
  }

  TEST_CASE("alive but not listening is not up") {
    TempDir dir("svc");
    sys::ServiceSpec s;
    s.name = "sleeper";
    s.argv = {"sleep", "30"};
    s.port = FreePort();
    s.pid_file = dir / "sleeper.pid";
    Cleanup cleanup{{s}};
    sys::StartService(s);
    sys::ServiceStatus st = sys::StatusOf(s);
    CHECK(st.alive);
    CHECK_FALSE(st.listening);
    CHECK(st.state == "not_listening");
    CHECK_FALSE(st.up());
  }

  TEST_CASE("stop escalates to KILL after the grace period") {
    TempDir dir("svc");
    auto spec = Backend(dir, "blue", FreePort(), {"--ignore-term"});
    Cleanup cleanup{{spec}};
    pid_t pid = sys::StartService(spec);
    REQUIRE(Eventually([&] { return sys::StatusOf(spec).up(); }));
    auto t0 = std::chrono::steady_clock::now();
    sys::StopResult r = sys::StopService(spec, milliseconds(300));
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(r.how == "kill");
    CHECK(took >= 0.29);
    CHECK_FALSE(sys::ProcessAlive(pid));
  }

  TEST_CASE("stop reaches the whole process group") {
    TempDir dir("svc");
    sys::ServiceSpec s;
    s.name = "tree";
    // sh waits on a background sleep: TERM to the group stops both.
    s.argv = {"/bin/sh", "-c", "sleep 60 & echo $! > " + (dir / "child.pid") + "; wait"};
    s.pid_file = dir / "tree.pid";
    Cleanup cleanup{{s}};
    sys::StartService(s);
    REQUIRE(Eventually([&] { return sys::ReadPidFile(dir / "child.pid").has_value(); }));
    pid_t child = *sys::ReadPidFile(dir / "child.pid");
    CHECK(sys::ProcessAlive(child));
    sys::StopService(s, milliseconds(2000));
    CHECK(Eventually([&] { return !sys::ProcessAlive(child); }, milliseconds(2000)));
  }

  TEST_CASE("start refuses a running service and reports a missing program") {
    TempDir dir("svc");
    auto spec = Backend(dir, "blue", FreePort());
    Cleanup cleanup{{spec}};
    pid_t pid = sys::StartService(spec);
    Error e = CatchError([&] { sys::StartService(spec); });
    CHECK(e.area() == "service");
    CHECK(e.code() == "conflict");
    CHECK(e.message() == "service blue is already running (pid " + std::to_string(pid) + " in " + spec.pid_file + ")");

    sys::ServiceSpec missing = spec;
    missing.argv = {"no-such-program-hoist"};
    missing.pid_file = dir / "missing.pid";
    e = CatchError([&] { sys::StartService(missing); });
    CHECK(e.code() == "not_found");
    CHECK(e.message() == "no such program: no-such-program-hoist (searched PATH)");

    missing.argv = {"sleep", "1"};
    missing.cwd = dir / "nope";
    e = CatchError([&] { sys::StartService(missing); });
    CHECK(e.code() == "not_found");
    CHECK(e.message() == "service blue: no such directory: " + missing.cwd);

    missing.cwd = "";
    missing.log_file = dir / "no/such/dir/x.log";
    e = CatchError([&] { sys::StartService(missing); });
    CHECK(e.code() == "not_found");
    CHECK_FALSE(std::filesystem::exists(missing.pid_file));
  }

  TEST_CASE("a service whose pid file cannot be written never runs") {
    // The service execs only once its pid file names it: a start that
    // cannot record the pid (or a hoist killed before it could) leaves no
    // process nobody tracks.
    TempDir dir("svc");
    sys::ServiceSpec s;
    s.name = "blue";
    s.argv = {"/bin/sh", "-c", "touch " + (dir / "ran") + "; sleep 30"};
    std::filesystem::create_directories(dir / "pid-is-a-dir");
    s.pid_file = dir / "pid-is-a-dir";
    // Every forked child holds a copy of this pipe's write end until it
    // execs (close-on-exec) or exits: EOF on the read end means the would-be
    // service has done one or the other.
    int sync[2];
    REQUIRE(::pipe2(sync, O_CLOEXEC) == 0);
    Error e = CatchError([&] { sys::StartService(s); });
    ::close(sync[1]);
    char c;
    while (::read(sync[0], &c, 1) > 0) {
    }
    ::close(sync[0]);
    CHECK(e.area() == "service");
    CHECK(e.message().find("service blue: could not write its pid file, so it was not started: ") == 0);
    // Had it exec'd, its shell would be waiting in `sleep 30` now.
    CHECK(ProcessesMentioning(dir.path) == 0);
    CHECK_FALSE(std::filesystem::exists(dir / "ran"));
  }

  TEST_CASE("proc.service start refuses a port another process already answers") {
    TempDir dir("svc");
    int port = FreePort();
    auto squatter = Backend(dir, "squatter", port);
    Cleanup cleanup{{squatter}};
    sys::StartService(squatter);
    REQUIRE(Eventually([&] { return sys::TcpConnect("127.0.0.1", port, milliseconds(200)).ok; }, milliseconds(5000)));
    std::string lua = "local service = require 'hoist.service'\n"
                      "local svc = service{ name = 'blue', argv = { '/bin/sh', '-c', 'touch " + (dir / "ran") +
                      "; sleep 30' }, port = " + std::to_string(port) + ", pid_file = " + LuaStr(dir / "blue.pid") + " }\n"
                      "svc:start{ wait = 5 }\n";
    auto e = LuaError(lua);
    CHECK(e.area() == "service");
    CHECK(e.code() == "conflict");
    CHECK(e.message() == "service blue: port 127.0.0.1:" + std::to_string(port) +
                             " already accepts connections, but blue is not running (no live pid in " +
                             (dir / "blue.pid") + "): another process holds the port. Find it with `ss -ltnp "
                             "'sport = :" + std::to_string(port) + "'`, stop it, then run again");
    CHECK_FALSE(std::filesystem::exists(dir / "blue.pid"));
    CHECK_FALSE(std::filesystem::exists(dir / "ran"));
  }

  TEST_CASE("the service gets its env and cwd, and none of our descriptors") {
    TempDir dir("svc");
    sys::ServiceSpec s;
    s.name = "env";
    s.argv = {"/bin/sh", "-c", "echo \"$HOIST_COLOUR $(pwd)\"; ls /proc/self/fd | wc -l"};
    s.env = {{"HOIST_COLOUR", "green"}};
    s.cwd = dir.path;
    s.pid_file = dir / "env.pid";
    s.log_file = dir / "env.log";
    sys::StartService(s);
    REQUIRE(Eventually([&] { return ReadAll(s.log_file).find('\n', ReadAll(s.log_file).find('\n') + 1) != std::string::npos; }));
    std::string log = ReadAll(s.log_file);
    CHECK(log.rfind("green " + dir.path + "\n", 0) == 0);
    // 0, 1, 2 and the fd ls itself opens for /proc/self/fd.
    CHECK(log.substr(log.find('\n') + 1) == "4\n");
  }

  TEST_CASE("proc.service from Lua: start with wait, status, restart, stop") {
    TempDir dir("svc");
    int port = FreePort();
    std::string lua = "local proc = require 'hoist.proc'\n"
                      "local svc = proc.service{ name = 'blue', argv = { '" HOIST_TEST_BACKEND "', '--port', '" +
                      std::to_string(port) + "', '--colour', 'blue' }, port = " + std::to_string(port) +
                      ", pid_file = " + LuaStr(dir / "blue.pid") + ", log_file = " + LuaStr(dir / "blue.log") +
                      ", stop_grace = 2 }\n"
                      "local out = { started = svc:start{ wait = 5 } }\n"
                      "out.status = svc:status()\n"
                      "out.restarted = svc:restart{ wait = 5 }\n"
                      "out.after = svc:status()\n"
                      "out.stopped = svc:stop()\n"
                      "out.final = svc:status()\n"
                      "out.name, out.port, out.str = svc.name, svc.port, tostring(svc)\n"
                      "return out\n";
    auto out = RunLua(lua);
    CHECK(out["status"]["up"] == true);
    CHECK(out["status"]["state"] == "running");
    CHECK(out["status"]["pid"] == out["started"]["pid"]);
    CHECK(out["restarted"]["stopped"]["how"] == "term");
    CHECK(out["restarted"]["pid"] != out["started"]["pid"]);
    CHECK(out["after"]["up"] == true);
    CHECK(out["stopped"]["how"] == "term");
    CHECK(out["final"]["state"] == "down");
    CHECK(out["final"]["up"] == false);
    CHECK(out["name"] == "blue");
    CHECK(out["port"] == port);
    CHECK(out["str"] == "hoist.service(blue, port " + std::to_string(port) + ")");
  }

  TEST_CASE("proc.service start with wait raises when the app dies during start-up") {
    TempDir dir("svc");
    std::string lua = "local service = require 'hoist.service'\n"
                      "local svc = service{ name = 'broken', argv = { '/bin/sh', '-c', 'echo boom: no config; exit 3' },"
                      " port = " + std::to_string(FreePort()) + ", pid_file = " + LuaStr(dir / "b.pid") +
                      ", log_file = " + LuaStr(dir / "b.log") + " }\n"
                      "svc:start{ wait = 5 }\n";
    auto e = LuaError(lua);
    CHECK(e.area() == "service");
    CHECK(e.code() == "failed");
    CHECK(e.message().find("exited before listening on port") != std::string::npos);
    CHECK(e.message().find("log: boom: no config") != std::string::npos);
  }

  TEST_CASE("proc.service rejects a typo and a missing pid_file") {
    auto e = LuaError("return require('hoist.proc').service{ argv = {'x'}, pid_fle = '/tmp/x' }");
    CHECK(e.message() == "unknown option 'pid_fle' for proc.service (expected one of: name, argv, env, cwd, port, "
                         "host, pid_file, log_file, stop_grace, inherit_env)");
    e = LuaError("return require('hoist.proc').service{ argv = {'x'} }");
    CHECK(e.code() == "invalid");
    CHECK(e.message() == "proc.service: pid_file is required");
  }
}

TEST_SUITE("traffic/probe") {
  TEST_CASE("tcp connect: open, refused, and a signal name table") {
    ColourServer s("blue");
    auto ok = sys::TcpConnect("127.0.0.1", s.port(), milliseconds(1000));
    CHECK(ok.ok);
    CHECK(ok.code.empty());
    int closed = FreePort();
    auto refused = sys::TcpConnect("127.0.0.1", closed, milliseconds(1000));
    CHECK_FALSE(refused.ok);
    CHECK(refused.code == "refused");
    CHECK(refused.error == "cannot connect to 127.0.0.1:" + std::to_string(closed) + ": Connection refused");
    auto bad = sys::TcpConnect("no-such-host.invalid", 80, milliseconds(1000));
    CHECK(bad.code == "resolve");
    CHECK(sys::SignalNumber("HUP") == SIGHUP);
    CHECK(sys::SignalNumber("sigterm") == SIGTERM);
    CHECK(sys::SignalNumber("9") == 9);
    CHECK(CatchError([] { sys::SignalNumber("BOGUS"); }).message() == "unknown signal 'BOGUS'");
  }

  TEST_CASE("children of a process, and zombies count as dead") {
    pid_t me = ::getpid();
    CHECK(sys::ProcessAlive(me));
    CHECK_FALSE(sys::ProcessAlive(0));
    std::string self_name = std::filesystem::read_symlink("/proc/self/exe").filename().string();
    CHECK(sys::CmdLine(me).find(self_name) != std::string::npos);
    pid_t sleeper = ::fork();
    if (sleeper == 0) {
      ::sleep(30);
      ::_exit(0);
    }
    pid_t quitter = ::fork();
    if (quitter == 0) ::_exit(0);
    CHECK(Eventually([&] { return !sys::ProcessAlive(quitter); }));  // a zombie until reaped
    auto kids = sys::ChildPids(me);
    CHECK(std::find(kids.begin(), kids.end(), sleeper) != kids.end());
    CHECK(std::find(kids.begin(), kids.end(), quitter) == kids.end());
    ::kill(sleeper, SIGKILL);
    int status;
    ::waitpid(sleeper, &status, 0);
    ::waitpid(quitter, &status, 0);
  }
}

}  // namespace
}  // namespace hoist::test

// hoist.traffic: the small native pieces under hoist.nginx and hoist.health
// (internal; not a stable playbook API) that act on the processes serving
// traffic: signals, worker generations of an nginx master, TCP probes, and
// the transaction guard whose restore must run even after Ctrl-C or a step
// timeout: Lua's count hook can interrupt Lua code at any instruction, so
// the "put the old bytes back and reload" part is done here, in C++.
#include <lua.hpp>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "bind/context.h"
#include "bind/modules.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/secrets.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/fs.h"
#include "sys/clock.h"
#include "sys/probe.h"

namespace hoist::bind {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

using sys::Since;

/// An old worker no longer accepts connections once it exited or retitled
/// itself "worker process is shutting down" (nginx does that right before
/// closing its listening sockets on QUIT).
bool Retired(engine::World& world, pid_t pid) {
  return !world.ProcessAlive(pid) || world.CmdLine(pid).find("shutting down") != std::string::npos;
}

/// Waits until the master has a child that is not in `old` (a new worker
/// generation took the configuration) and every old worker has stopped
/// accepting, so that the next new connection meets the new configuration.
/// Returns the new children, or an empty list on timeout. stoppable: Ctrl-C
/// and the step deadline apply.
std::vector<pid_t> AwaitGeneration(engine::World& world, pid_t master, const std::set<pid_t>& old,
                                   milliseconds timeout, bool stoppable) {
  double until = world.Monotonic() + std::chrono::duration<double>(timeout).count();
  for (;;) {
    std::vector<pid_t> fresh;
    for (pid_t p : world.ChildPids(master))
      if (!old.count(p)) fresh.push_back(p);
    if (!fresh.empty() && std::all_of(old.begin(), old.end(), [&](pid_t p) { return Retired(world, p); })) return fresh;
    if (!world.ProcessAlive(master))
      throw Error("nginx", "not_running", fmt::format("the nginx master (pid {}) exited during the reload", master));
    if (world.Monotonic() >= until) return {};
    if (stoppable) ThrowIfStopped("nginx");
    world.Sleep(0.001, false);  // stop checked just above, with the nginx area
  }
}

std::set<pid_t> PidSet(lua_State* L, int idx) {
  std::set<pid_t> out;
  if (!lua_istable(L, idx)) return out;
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, idx));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, idx, i);
    if (lua_isinteger(L, -1)) out.insert(static_cast<pid_t>(lua_tointeger(L, -1)));
    lua_pop(L, 1);
  }
  return out;
}

void PushPids(lua_State* L, const std::vector<pid_t>& pids) {
  lua_createtable(L, static_cast<int>(pids.size()), 0);
  for (size_t i = 0; i < pids.size(); ++i) {
    lua_pushinteger(L, pids[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

/// Runs argv to completion with /dev/null stdio, ignoring Ctrl-C and the
/// step deadline (used only to restore). Returns "" or what went wrong.
std::string RunUnstoppable(const std::vector<std::string>& argv, milliseconds timeout) {
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return fmt::format("cannot run {}: {}", argv[0], std::strerror(rc));
  auto until = SteadyClock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return fmt::format("waitpid: {}", std::strerror(errno));
    if (SteadyClock::now() >= until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return fmt::format("{} timed out", fmt::join(argv, " "));
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  return fmt::format("{} failed (status {})", fmt::join(argv, " "), status);
}

/// traffic.signal(pid, "HUP") — journaled.
int l_signal(lua_State* L) {
  auto pid = static_cast<pid_t>(lua::CheckInteger(L, 1, "pid"));
  std::string name = lua::CheckString(L, 2, "signal");
  int sig = sys::SignalNumber(name);
  WorldOf(L).SendSignal(pid, sig);
  RecordWorld(L, "signal", fmt::format("kill -{} {}", name, pid), {{"pid", pid}, {"signal", name}}, 0);
  return 0;
}

int l_alive(lua_State* L) {
  lua_pushboolean(L, WorldOf(L).ProcessAlive(static_cast<pid_t>(lua::CheckInteger(L, 1, "pid"))));
  return 1;
}

/// traffic.read_pid(path) -> pid or nil
int l_read_pid(lua_State* L) {
  auto pid = WorldOf(L).ReadPidFile(lua::CheckString(L, 1, "path"));
  if (pid) {
    lua_pushinteger(L, *pid);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

/// traffic.workers(master) -> { {pid=, title=}, ... } (live children)
int l_workers(lua_State* L) {
  auto master = static_cast<pid_t>(lua::CheckInteger(L, 1, "pid"));
  engine::World& world = WorldOf(L);
  std::vector<pid_t> kids = world.ChildPids(master);
  std::vector<std::string> titles;
  for (pid_t p : kids) titles.push_back(world.CmdLine(p));
  lua_createtable(L, static_cast<int>(kids.size()), 0);
  for (size_t i = 0; i < kids.size(); ++i) {
    lua_createtable(L, 0, 2);
    lua::SetField(L, "pid", static_cast<lua_Integer>(kids[i]));
    lua::SetField(L, "title", titles[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

/// traffic.await_generation(master, old_pids, timeout) -> new pids or nil
int l_await_generation(lua_State* L) {
  auto master = static_cast<pid_t>(lua::CheckInteger(L, 1, "master pid"));
  std::set<pid_t> old = PidSet(L, 2);
  double timeout = lua::CheckNumber(L, 3, "timeout");
  auto fresh = AwaitGeneration(WorldOf(L), master, old, milliseconds(static_cast<int64_t>(timeout * 1000)), true);
  if (fresh.empty()) {
    lua_pushnil(L);
  } else {
    PushPids(L, fresh);
  }
  return 1;
}

/// traffic.tcp(host, port, timeout) -> { ok, seconds, code, error }
int l_tcp(lua_State* L) {
  std::string host = lua::CheckString(L, 1, "host");
  auto port = lua::CheckInteger(L, 2, "port");
  double timeout = lua::CheckNumber(L, 3, "timeout");
  sys::TcpResult r =
      WorldOf(L).TcpConnect(host, static_cast<int>(port), milliseconds(static_cast<int64_t>(timeout * 1000)));
  lua_createtable(L, 0, 4);
  lua::SetFieldBool(L, "ok", r.ok);
  lua::SetFieldNumber(L, "seconds", r.seconds);
  if (!r.ok) {
    lua::SetField(L, "code", r.code);
    lua::SetField(L, "error", r.error);
  }
  return 1;
}

struct Restore {
  std::string path, previous, write = "rename";
  mode_t mode = 0644;
  bool written = false, reloaded = false;
  pid_t pid = 0;
  std::vector<std::string> reload_argv;
  double confirm_timeout = 5;
};

Restore ReadRestore(lua_State* L, int idx) {
  Restore r;
  r.path = lua::OptStringField(L, idx, "path").value_or("");
  r.previous = lua::OptStringField(L, idx, "previous").value_or("");
  r.write = lua::OptStringField(L, idx, "write").value_or("rename");
  r.mode = static_cast<mode_t>(lua::OptIntegerField(L, idx, "mode").value_or(0644));
  r.written = lua::OptBooleanField(L, idx, "written").value_or(false);
  r.reloaded = lua::OptBooleanField(L, idx, "reloaded").value_or(false);
  r.pid = static_cast<pid_t>(lua::OptIntegerField(L, idx, "pid").value_or(0));
  r.reload_argv = lua::OptStringListField(L, idx, "reload_argv").value_or(std::vector<std::string>{});
  r.confirm_timeout = lua::OptNumberField(L, idx, "confirm_timeout").value_or(5);
  return r;
}

/// Puts the previous bytes back (through the world, as hoist.fs writes) and,
/// if nginx had been told to reload, reloads it again and waits for the
/// generation. Never throws.
json DoRestore(engine::World& world, const Restore& r) {
  json out = {{"path", r.path}, {"restored_file", false}, {"reloaded", false}};
  std::string problem;
  try {
    if (r.written) {
      if (r.write == "inplace") {
        world.WriteInPlace(r.path, r.previous);
      } else {
        world.WriteAtomic(r.path, r.previous, r.mode);
      }
      out["restored_file"] = true;
    }
    if (r.reloaded) {
      if (r.pid > 0) {
        std::vector<pid_t> before = world.ChildPids(r.pid);
        world.SendSignal(r.pid, SIGHUP);
        auto fresh = AwaitGeneration(world, r.pid, {before.begin(), before.end()},
                                     milliseconds(static_cast<int64_t>(r.confirm_timeout * 1000)), false);
        if (fresh.empty()) {
          problem = fmt::format("nginx (pid {}) started no new workers within {} s of the restoring reload", r.pid,
                                r.confirm_timeout);
        } else {
          out["reloaded"] = true;
          out["new_workers"] = fresh;
        }
      } else if (!r.reload_argv.empty()) {
        if (std::string_view(world.mode()) == "real") {
          problem = RunUnstoppable(r.reload_argv, milliseconds(static_cast<int64_t>(r.confirm_timeout * 1000)));
        } else {
          // Simulated and recorded worlds answer from memory: nothing to
          // protect from Ctrl-C, and nothing real may be started.
          sys::ProcessSpec spec;
          spec.argv = r.reload_argv;
          sys::ProcessResult pr = world.RunProcess(spec);
          if (!pr.ok()) problem = fmt::format("{} failed (exit {})", fmt::join(r.reload_argv, " "), pr.exit_code);
        }
        if (problem.empty()) out["reloaded"] = true;
      }
    }
  } catch (const std::exception& e) {
    problem = e.what();
  }
  out["ok"] = problem.empty();
  if (!problem.empty()) out["error"] = problem;
  return out;
}

int GuardedRestore(lua_State* L) {
  // Stack: 1 body, 2 state, 3 error value.
  Restore r = ReadRestore(L, 2);
  auto t0 = SteadyClock::now();
  json info = DoRestore(WorldOf(L), r);
  RecordWorld(L, "nginx", "restore " + r.path, info, Since(t0));
  lua_pushboolean(L, 0);
  lua_pushvalue(L, 3);
  lua::PushJson(L, info);
  return 3;
}

/// traffic.guarded(body, state) -> true, ... | false, err, restore_info
/// Runs body; if it raises, restores per `state` (path, previous, write,
/// mode, written, reloaded, pid, reload_argv, confirm_timeout: read after
/// the failure, so body flips written/reloaded as it goes) in C++.
int l_guarded(lua_State* L) {
  lua::CheckFunction(L, 1, "body");
  lua::CheckTable(L, 2, "state");
  lua_settop(L, 2);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 0, LUA_MULTRET, 0) == LUA_OK) {
    lua_pushboolean(L, 1);
    lua_insert(L, 3);
    return lua_gettop(L) - 2;
  }
  lua_settop(L, 3);
  return GuardedRestore(L);
}

}  // namespace

int OpenTraffic(lua_State* L) {
  const luaL_Reg fns[] = {{"signal", lua::Protect<l_signal>},
                          {"alive", lua::Protect<l_alive>},
                          {"read_pid", lua::Protect<l_read_pid>},
                          {"workers", lua::Protect<l_workers>},
                          {"await_generation", lua::Protect<l_await_generation>},
                          {"tcp", lua::Protect<l_tcp>},
                          {"guarded", lua::Protect<l_guarded>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind

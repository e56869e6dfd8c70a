// hoist.service (also proc.service): local process services for hosts
// without Docker — a blue and a green instance of an app on two ports.
// start/stop/restart are journaled as world calls.
#include "bind/service.h"

#include <lua.hpp>

#include <chrono>
#include <new>
#include <thread>

#include <fmt/format.h>

#include "bind/context.h"
#include "bind/modules.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/fs.h"
#include "sys/probe.h"
#include "sys/service.h"

namespace hoist::bind {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kMeta = "hoist.service.Service";
constexpr double kDefaultGrace = 10;
constexpr size_t kLogTail = 2000;

struct Service {
  sys::ServiceSpec spec;
  double stop_grace = kDefaultGrace;
};

milliseconds Seconds(double s) { return milliseconds(static_cast<int64_t>(s * 1000)); }

Service& CheckService(lua_State* L, int idx) {
  auto* s = static_cast<Service*>(luaL_testudata(L, idx, kMeta));
  if (!s) throw Error("service", "invalid", "expected a service (call it as svc:method(...))");
  return *s;
}

std::string LogTail(engine::World& world, const std::string& path) {
  if (path.empty()) return "";
  try {
    std::string all = world.ReadFile(path);
    if (all.size() > kLogTail) all = "…" + all.substr(all.size() - kLogTail);
    while (!all.empty() && (all.back() == '\n' || all.back() == ' ')) all.pop_back();
    return all;
  } catch (const Error&) {
    return "";
  }
}

json SpecJson(const Service& s) {
  return {{"name", s.spec.name},         {"argv", s.spec.argv},     {"cwd", s.spec.cwd},
          {"port", s.spec.port},         {"pid_file", s.spec.pid_file}, {"log_file", s.spec.log_file}};
}

void PushStopResult(lua_State* L, const sys::StopResult& r) {
  lua_createtable(L, 0, 3);
  lua::SetField(L, "pid", static_cast<lua_Integer>(r.pid));
  lua::SetField(L, "how", r.how);
  lua::SetFieldNumber(L, "seconds", r.seconds);
}

/// A port that answers while the service is down belongs to another
/// process (one an earlier run lost track of, another app): a start on top
/// of it would take that process's answers for the new release's.
void CheckPortFree(engine::World& world, const Service& s) {
  if (s.spec.port <= 0 || world.ServiceStatusOf(s.spec).alive) return;
  if (!world.TcpConnect(s.spec.host, s.spec.port, milliseconds(500)).ok) return;
  const std::string who = s.spec.name.empty() ? s.spec.argv[0] : s.spec.name;
  throw Error("service", "conflict",
              fmt::format("service {}: port {}:{} already accepts connections, but {} is not running (no live pid "
                          "in {}): another process holds the port. Find it with `ss -ltnp 'sport = :{}'`, stop it, "
                          "then run again",
                          who, s.spec.host, s.spec.port, who, s.spec.pid_file, s.spec.port));
}

/// Starts and, with wait > 0 and a port, waits until the port accepts
/// connections; raises when the process exits first (with its log's tail).
pid_t Start(lua_State* L, Service& s, double wait) {
  engine::World& world = WorldOf(L);
  double t0 = world.Monotonic();
  const std::string who = s.spec.name.empty() ? s.spec.argv[0] : s.spec.name;
  CheckPortFree(world, s);
  pid_t pid = world.StartService(s.spec);
  auto seconds = [&] { return world.Monotonic() - t0; };
  json data = SpecJson(s);
  data["pid"] = pid;
  if (wait > 0 && s.spec.port > 0) {
    for (;;) {
      if (world.TcpConnect(s.spec.host, s.spec.port, milliseconds(500)).ok) break;
      if (!world.ProcessAlive(pid)) {
        data["error"] = "exited during start-up";
        RecordWorld(L, "service", "start " + who, data, seconds());
        std::string tail = LogTail(world, s.spec.log_file);
        throw Error("service", "failed",
                    fmt::format("service {} (pid {}) exited before listening on port {}{}", who, pid, s.spec.port,
                                tail.empty() ? "" : "; log: " + tail));
      }
      if (seconds() >= wait) {
        data["error"] = "not listening in time";
        RecordWorld(L, "service", "start " + who, data, seconds());
        throw Error("service", "timeout",
                    fmt::format("service {} (pid {}) is running but not listening on {}:{} after {} s (left running)",
                                who, pid, s.spec.host, s.spec.port, wait));
      }
      ThrowIfStopped("service");
      world.Sleep(0.02, false);  // stop checked just above, with the service area
    }
  }
  RecordWorld(L, "service", "start " + who, data, seconds());
  return pid;
}

sys::StopResult Stop(lua_State* L, Service& s, double grace) {
  sys::StopResult r = WorldOf(L).StopService(s.spec, Seconds(grace));
  json data = SpecJson(s);
  data["pid"] = r.pid;
  data["how"] = r.how;
  RecordWorld(L, "service", "stop " + (s.spec.name.empty() ? s.spec.argv[0] : s.spec.name), data, r.seconds);
  return r;
}

double GraceOption(lua_State* L, int idx, const Service& s) {
  double g = lua::OptNumberField(L, idx, "grace").value_or(s.stop_grace);
  if (g < 0) throw Error("service", "invalid", "grace must be >= 0 seconds");
  return g;
}

/// svc:start{ wait = seconds } -> { pid }
int l_start(lua_State* L) {
  Service& s = CheckService(L, 1);
  lua::CheckKeys(L, 2, "service:start", {"wait"});
  double wait = lua::OptNumberField(L, 2, "wait").value_or(0);
  pid_t pid = Start(L, s, wait);
  lua_createtable(L, 0, 1);
  lua::SetField(L, "pid", static_cast<lua_Integer>(pid));
  return 1;
}

/// svc:stop{ grace = seconds } -> { pid, how = "term"|"kill"|"not_running", seconds }
int l_stop(lua_State* L) {
  Service& s = CheckService(L, 1);
  lua::CheckKeys(L, 2, "service:stop", {"grace"});
  PushStopResult(L, Stop(L, s, GraceOption(L, 2, s)));
  return 1;
}

/// svc:restart{ grace, wait } -> { pid, stopped = <stop result> }
int l_restart(lua_State* L) {
  Service& s = CheckService(L, 1);
  lua::CheckKeys(L, 2, "service:restart", {"grace", "wait"});
  double grace = GraceOption(L, 2, s);
  double wait = lua::OptNumberField(L, 2, "wait").value_or(0);
  sys::StopResult stopped = Stop(L, s, grace);
  pid_t pid = Start(L, s, wait);
  lua_createtable(L, 0, 2);
  lua::SetField(L, "pid", static_cast<lua_Integer>(pid));
  PushStopResult(L, stopped);
  lua_setfield(L, -2, "stopped");
  return 1;
}

/// svc:check_port() -> true, or raises service/conflict when the port
/// answers while the service is down (what start would refuse).
int l_check_port(lua_State* L) {
  CheckPortFree(WorldOf(L), CheckService(L, 1));
  lua_pushboolean(L, 1);
  return 1;
}

/// svc:status() -> { name, pid, alive, listening, up, state }
int l_status(lua_State* L) {
  Service& s = CheckService(L, 1);
  sys::ServiceStatus st = WorldOf(L).ServiceStatusOf(s.spec);
  lua_createtable(L, 0, 6);
  lua::SetField(L, "name", s.spec.name);
  if (st.pid > 0) lua::SetField(L, "pid", static_cast<lua_Integer>(st.pid));
  lua::SetFieldBool(L, "alive", st.alive);
  lua::SetFieldBool(L, "listening", st.listening);
  lua::SetFieldBool(L, "up", st.up());
  lua::SetField(L, "state", st.state);
  return 1;
}

// svc:argv_matches() -> whether the live process named by the pid file runs
// exactly this service's argv (another release of it does not); nil when
// none runs or its command line cannot be read.
int l_argv_matches(lua_State* L) {
  Service& s = CheckService(L, 1);
  engine::World& world = WorldOf(L);
  sys::ServiceStatus st = world.ServiceStatusOf(s.spec);
  std::string cmdline = st.alive && st.pid > 0 ? world.CmdLine(st.pid) : "";
  if (cmdline.empty()) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushboolean(L, cmdline == Join(s.spec.argv, " "));
  lua::PushString(L, Mask(cmdline));
  return 2;
}

int l_index(lua_State* L) {
  Service& s = CheckService(L, 1);
  std::string key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  luaL_getmetatable(L, kMeta);
  lua_getfield(L, -1, "methods");
  lua_getfield(L, -1, key.c_str());
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 3);
  if (key == "name") {
    lua::PushString(L, s.spec.name);
  } else if (key == "port") {
    if (s.spec.port > 0) {
      lua_pushinteger(L, s.spec.port);
    } else {
      lua_pushnil(L);
    }
  } else if (key == "host") {
    lua::PushString(L, s.spec.host);
  } else if (key == "pid_file") {
    lua::PushString(L, s.spec.pid_file);
  } else if (key == "log_file") {
    lua::PushString(L, s.spec.log_file);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

int l_tostring(lua_State* L) {
  Service& s = CheckService(L, 1);
  lua::PushString(L, fmt::format("hoist.service({}{})", s.spec.name.empty() ? s.spec.argv[0] : s.spec.name,
                                 s.spec.port > 0 ? fmt::format(", port {}", s.spec.port) : ""));
  return 1;
}

int l_gc(lua_State* L) {
  if (auto* s = static_cast<Service*>(luaL_testudata(L, 1, kMeta))) s->~Service();
  return 0;
}

int l_new(lua_State* L) {
  lua::CheckTable(L, 1, "service spec");
  lua::CheckKeys(L, 1, "proc.service",
                 {"name", "argv", "env", "cwd", "port", "host", "pid_file", "log_file", "stop_grace", "inherit_env"});
  Service s;
  s.spec.name = lua::OptStringField(L, 1, "name").value_or("");
  auto argv = lua::OptStringListField(L, 1, "argv");
  if (!argv || argv->empty()) throw Error("service", "invalid", "proc.service: argv must be a non-empty list of strings");
  s.spec.argv = *argv;
  s.spec.cwd = lua::OptStringField(L, 1, "cwd").value_or("");
  s.spec.pid_file = lua::OptStringField(L, 1, "pid_file").value_or("");
  if (s.spec.pid_file.empty()) throw Error("service", "invalid", "proc.service: pid_file is required");
  s.spec.log_file = lua::OptStringField(L, 1, "log_file").value_or("");
  s.spec.host = lua::OptStringField(L, 1, "host").value_or("127.0.0.1");
  s.spec.inherit_env = lua::OptBooleanField(L, 1, "inherit_env").value_or(true);
  auto port = lua::OptIntegerField(L, 1, "port").value_or(0);
  if (port < 0 || port > 65535) throw Error("service", "invalid", "proc.service: port must be 1-65535");
  s.spec.port = static_cast<int>(port);
  s.stop_grace = lua::OptNumberField(L, 1, "stop_grace").value_or(kDefaultGrace);
  for (auto& [name, value] : lua::OptStringMapField(L, 1, "env")) s.spec.env[name] = std::move(value);
  void* mem = lua_newuserdatauv(L, sizeof(Service), 0);
  new (mem) Service(std::move(s));
  luaL_setmetatable(L, kMeta);
  return 1;
}

void RegisterMeta(lua_State* L) {
  if (luaL_newmetatable(L, kMeta)) {
    const luaL_Reg methods[] = {{"start", lua::Protect<l_start>},
                                {"stop", lua::Protect<l_stop>},
                                {"restart", lua::Protect<l_restart>},
                                {"status", lua::Protect<l_status>},
                                {"argv_matches", lua::Protect<l_argv_matches>},
                                {"check_port", lua::Protect<l_check_port>},
                                {nullptr, nullptr}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "methods");
    lua_pushcfunction(L, lua::Protect<l_index>);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, lua::Protect<l_tostring>);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushstring(L, kMeta);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

}  // namespace

int ServiceNew(lua_State* L) {
  RegisterMeta(L);
  return lua::Protect<l_new>(L);
}

int OpenService(lua_State* L) {
  RegisterMeta(L);
  const luaL_Reg fns[] = {{"new", ServiceNew}, {nullptr, nullptr}};
  luaL_newlib(L, fns);
  // service{...} works like service.new{...}
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, [](lua_State* L2) -> int {
    lua_remove(L2, 1);
    return ServiceNew(L2);
  });
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  return 1;
}

}  // namespace hoist::bind

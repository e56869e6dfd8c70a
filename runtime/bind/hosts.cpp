#include "bind/hosts.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bind/context.h"
#include "bind/modules.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/strings.h"
#include "core/turn.h"
#include "lua/boundary.h"
#include "lua/check.h"

namespace hoist::bind {
namespace {

using json = nlohmann::json;

// Hosts worked at once by one run:each; the rest wait for a free thread.
constexpr size_t kMaxHostsAtOnce = 32;

const json& HostsOf(lua_State* L) {
  static const json none = json::array();
  Context* ctx = GetContext(L);
  return ctx ? ctx->hosts : none;
}

std::string KnownHosts(const json& hosts) {
  std::vector<std::string> names;
  for (const auto& h : hosts) names.push_back(h["name"].get<std::string>());
  return names.empty() ? "this environment has no hosts (add hosts = { ... } to it in hoist.lua, see docs/fleet.md)"
                       : "its hosts are " + Join(names, ", ");
}

const json& FindHost(lua_State* L, const std::string& name) {
  const json& hosts = HostsOf(L);
  for (const auto& h : hosts) {
    if (h["name"] == name) return h;
  }
  throw Error("hosts", "unknown", fmt::format("no host \"{}\" in this environment: {}", name, KnownHosts(hosts)));
}

int l_list(lua_State* L) { return HostsList(L, 1); }
int l_get(lua_State* L) { return HostsGet(L, 1); }
int l_on(lua_State* L) { return HostsOn(L, 1); }
int l_each(lua_State* L) { return HostsEach(L, 1); }

}  // namespace

std::string HostArg(lua_State* L, int idx) {
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua::RawField(L, idx, "name");
    std::string name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    lua_pop(L, 1);
    if (!name.empty()) return FindHost(L, name)["name"].get<std::string>();
  } else if (lua_type(L, idx) == LUA_TSTRING) {
    return FindHost(L, lua_tostring(L, idx))["name"].get<std::string>();
  }
  throw Error("hosts", "invalid",
              fmt::format("a host is its name (\"web1\") or a table of run:hosts(), not a {}", luaL_typename(L, idx)));
}

engine::World& HostWorld(lua_State* L, const std::string& name) {
  Context* ctx = GetContext(L);
  if (!ctx || !ctx->host_world) {
    throw Error("hosts", "invalid", "a host's world calls can only be made while a playbook runs");
  }
  // Reaching a host may take seconds (its ssh master): the others go on.
  TurnGivenUp connecting;
  return ctx->host_world(name);
}

int HostsList(lua_State* L, int first) {
  std::optional<std::string> role;
  if (!lua_isnoneornil(L, first)) role = lua::CheckString(L, first, "role");
  lua_newtable(L);
  int n = 0;
  for (const auto& h : HostsOf(L)) {
    const auto& roles = h["roles"];
    if (role && std::find(roles.begin(), roles.end(), *role) == roles.end()) continue;
    lua::PushJson(L, h);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

int HostsGet(lua_State* L, int first) {
  lua::PushJson(L, FindHost(L, lua::CheckString(L, first, "host name")));
  return 1;
}

int HostsOn(lua_State* L, int first) {
  std::string name = HostArg(L, first);
  lua::CheckFunction(L, first + 1, "function");
  engine::World& world = HostWorld(L, name);
  HostScope scope(&world);
  int base = first + 1;  // fn, then its arguments
  int top = lua_gettop(L);
  lua_pushvalue(L, base);
  for (int i = base + 1; i <= top; ++i) lua_pushvalue(L, i);
  lua::Call(L, top - base, LUA_MULTRET);
  return lua_gettop(L) - top;
}

int HostsEach(lua_State* L, int first) {
  Context* ctx = GetContext(L);
  if (!ctx || !ctx->host_world) throw Error("hosts", "invalid", "run:each can only be called while a playbook runs");
  if (TakingTurns()) {
    throw Error("hosts", "invalid", "run:each inside run:each: work the hosts in one run:each (each host's function runs once)");
  }
  lua::CheckTable(L, first, "hosts");
  lua::CheckFunction(L, first + 1, "function(host)");
  struct Job {
    std::string host;
    lua_State* T = nullptr;
    int ref = LUA_NOREF;
    int status = LUA_OK;
  };
  std::vector<Job> jobs;
  for (lua_Integer i = 1, n = static_cast<lua_Integer>(lua_rawlen(L, first)); i <= n; ++i) {
    lua_rawgeti(L, first, i);
    std::string name = HostArg(L, lua_gettop(L));
    lua_pop(L, 1);
    for (const auto& j : jobs) {
      if (j.host == name) throw Error("hosts", "invalid", fmt::format("run:each: host \"{}\" is listed twice", name));
    }
    jobs.push_back({name});
  }
  // Each host's function runs on a coroutine of its own (its own Lua
  // stack), anchored in the registry until its result is read.
  for (auto& j : jobs) {
    j.T = lua_newthread(L);
    j.ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, first + 1);
    lua::PushJson(L, FindHost(L, j.host));
    lua_xmove(L, j.T, 2);
  }
  Clock::time_point deadline = CurrentDeadline();
  std::mutex& turn = ctx->turn;
  auto work = [&](Job& j) {
    std::optional<DeadlineScope> step_deadline;  // the step's, on this thread too
    if (deadline != Clock::time_point::max()) step_deadline.emplace(deadline - Clock::now());
    engine::World* world = nullptr;
    std::optional<Error> unreachable;
    try {
      world = &ctx->host_world(j.host);
    } catch (const Error& e) {
      unreachable = e;
    } catch (const std::exception& e) {
      unreachable = Error("hosts", "unreachable", fmt::format("host {}: {}", j.host, e.what()));
    }
    std::lock_guard hold(turn);
    SetTurn(&turn);
    if (world) {
      HostScope scope(world);
      j.status = lua_pcall(j.T, 1, 1, 0);
    } else {
      lua_settop(j.T, 0);
      lua::PushError(j.T, unreachable->area(), unreachable->code(), unreachable->message(), "");
      j.status = LUA_ERRRUN;
    }
    SetTurn(nullptr);
  };
  {
    // A bounded pool: a batch of 300 hosts must not open 300 ssh masters in
    // the same instant. Held while the threads start: none runs Lua before
    // all exist.
    std::atomic<size_t> next = 0;
    auto worker = [&] {
      for (size_t i = next++; i < jobs.size(); i = next++) work(jobs[i]);
    };
    std::unique_lock hold(turn);
    std::vector<std::thread> threads;
    try {
      for (size_t w = 0; w < std::min(kMaxHostsAtOnce, jobs.size()); ++w) threads.emplace_back(worker);
    } catch (...) {
      next = jobs.size();  // the threads that started take no more jobs
      hold.unlock();
      for (auto& t : threads) t.join();
      for (auto& j : jobs) luaL_unref(L, LUA_REGISTRYINDEX, j.ref);
      throw;
    }
    hold.unlock();
    for (auto& t : threads) t.join();
  }
  lua_createtable(L, static_cast<int>(jobs.size()), 0);
  int i = 0;
  for (auto& j : jobs) {
    lua_createtable(L, 0, 3);
    lua::SetField(L, "host", j.host);
    lua::SetFieldBool(L, "ok", j.status == LUA_OK);
    lua_xmove(j.T, L, 1);  // the result or the error value
    lua_setfield(L, -2, j.status == LUA_OK ? "value" : "error");
    lua_rawseti(L, -2, ++i);
    luaL_unref(L, LUA_REGISTRYINDEX, j.ref);
  }
  return 1;
}

int OpenHosts(lua_State* L) {
  const luaL_Reg fns[] = {{"list", lua::Protect<l_list>},
                          {"get", lua::Protect<l_get>},
                          {"on", lua::Protect<l_on>},
                          {"each", lua::Protect<l_each>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind

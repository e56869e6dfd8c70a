// hoist.time: wall clock, monotonic clock, and a sleep that Ctrl-C and step
// timeouts cut short.
#include <lua.hpp>

#include <chrono>
#include <thread>

#include "bind/context.h"
#include "bind/modules.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/clock.h"

namespace hoist::bind {
namespace {

// The clock and sleep go through the world: a sandbox advances a virtual
// clock instead of waiting.
int l_now(lua_State* L) {
  lua_pushnumber(L, WorldOf(L).Now());
  return 1;
}

int l_monotonic(lua_State* L) {
  lua_pushnumber(L, WorldOf(L).Monotonic());
  return 1;
}

int l_iso(lua_State* L) {
  auto t = lua::OptNumber(L, 1, "epoch");
  lua::PushString(L, sys::IsoUtc(t.value_or(WorldOf(L).Now())));
  return 1;
}

int l_sleep(lua_State* L) {
  double secs = lua::CheckNumber(L, 1, "seconds");
  if (secs < 0) throw Error("time", "invalid", "sleep: seconds must be >= 0");
  WorldOf(L).Sleep(secs, true);
  return 0;
}

}  // namespace

int OpenTime(lua_State* L) {
  const luaL_Reg fns[] = {{"now", lua::Protect<l_now>},
                          {"monotonic", lua::Protect<l_monotonic>},
                          {"iso", lua::Protect<l_iso>},
                          {"sleep", lua::Protect<l_sleep>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind

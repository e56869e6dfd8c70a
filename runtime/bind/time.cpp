// hoist.time: wall clock, monotonic clock, and a sleep that Ctrl-C and step
// timeouts cut short.
#include <lua.hpp>

#include <chrono>
#include <thread>

#include "bind/modules.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/clock.h"

namespace hoist::bind {
namespace {

int l_now(lua_State* L) {
  lua_pushnumber(L, sys::NowEpoch());
  return 1;
}

int l_monotonic(lua_State* L) {
  lua_pushnumber(L, sys::Monotonic());
  return 1;
}

int l_iso(lua_State* L) {
  auto t = lua::OptNumber(L, 1, "epoch");
  lua::PushString(L, sys::IsoUtc(t.value_or(sys::NowEpoch())));
  return 1;
}

int l_sleep(lua_State* L) {
  double secs = lua::CheckNumber(L, 1, "seconds");
  if (secs < 0) throw Error("time", "invalid", "sleep: seconds must be >= 0");
  auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  while (Clock::now() < until) {
    ThrowIfStopped("time");
    auto left = until - Clock::now();
    std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::milliseconds(20)));
  }
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

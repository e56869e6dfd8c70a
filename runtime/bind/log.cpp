// hoist.log: debug/info/warn/error through spdlog, masked, and journaled in
// the current step.
#include <lua.hpp>

#include "bind/context.h"
#include "bind/modules.h"
#include "core/log.h"
#include "core/secrets.h"
#include "lua/boundary.h"
#include "lua/check.h"

namespace hoist::bind {
namespace {

std::string Message(lua_State* L) {
  int n = lua_gettop(L);
  std::string out;
  for (int i = 1; i <= n; ++i) {
    if (i > 1) out += ' ';
    size_t len = 0;
    const char* s = luaL_tolstring(L, i, &len);
    out.append(s, len);
    lua_pop(L, 1);
  }
  return out;
}

template <log::Level kLevel>
int l_log(lua_State* L) {
  std::string msg = Message(L);
  log::Write(kLevel, msg);
  if (Context* ctx = GetContext(L); ctx && ctx->runner) {
    ctx->runner->Note("log", log::LevelName(kLevel), {{"message", Mask(msg)}});
  }
  return 0;
}

}  // namespace

int OpenLog(lua_State* L) {
  const luaL_Reg fns[] = {{"debug", lua::Protect<l_log<log::Level::kDebug>>},
                          {"info", lua::Protect<l_log<log::Level::kInfo>>},
                          {"warn", lua::Protect<l_log<log::Level::kWarn>>},
                          {"error", lua::Protect<l_log<log::Level::kError>>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind

// hoist.json: encode/decode with nlohmann-json, a null sentinel and an
// array marker so [] and {} survive a round trip.
#include <lua.hpp>

#include "bind/modules.h"
#include "core/error.h"
#include "lua/boundary.h"
#include "lua/check.h"

namespace hoist::bind {
namespace {

int l_encode(lua_State* L) {
  auto opts_pretty = lua_istable(L, 2) ? lua::OptBooleanField(L, 2, "pretty") : std::nullopt;
  lua::CheckKeys(L, 2, "json.encode", {"pretty"});
  nlohmann::json j = lua::ToJson(L, 1);
  lua::PushString(L, j.dump(opts_pretty.value_or(false) ? 2 : -1));
  return 1;
}

int l_decode(lua_State* L) {
  std::string text = lua::CheckString(L, 1, "text");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error("json", "invalid", std::string("cannot decode: ") + e.what());
  }
  lua::PushJson(L, j);
  return 1;
}

int l_array(lua_State* L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  lua::CheckTable(L, 1, "table");
  lua_settop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, "array");
  lua_setfield(L, -2, "__jsontype");
  lua_setmetatable(L, 1);
  return 1;
}

}  // namespace

int OpenJson(lua_State* L) {
  const luaL_Reg fns[] = {{"encode", lua::Protect<l_encode>},
                          {"decode", lua::Protect<l_decode>},
                          {"array", lua::Protect<l_array>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  lua::PushNull(L);
  lua_setfield(L, -2, "null");
  return 1;
}

}  // namespace hoist::bind

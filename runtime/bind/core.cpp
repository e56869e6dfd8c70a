// hoist.core: version, secrets and the playbook marker behind require "hoist".
#include <lua.hpp>

#include "bind/modules.h"
#include "core/secrets.h"
#include "lua/boundary.h"
#include "lua/check.h"

namespace hoist::bind {
namespace {

int l_secret(lua_State* L) {
  std::string name = lua::CheckString(L, 1, "name");
  std::string value = ReadSecret(name);
  lua::PushString(L, value);
  return 1;
}

int l_mask(lua_State* L) {
  std::string text = lua::CheckString(L, 1, "text");
  lua::PushString(L, Mask(text));
  return 1;
}

int l_playbook(lua_State* L) {
  lua::CheckTable(L, 1, "playbook description");
  lua_settop(L, 1);
  luaL_getmetatable(L, "hoist.Playbook");
  lua_setmetatable(L, 1);
  return 1;
}

}  // namespace

int OpenCore(lua_State* L) {
  luaL_newmetatable(L, "hoist.Playbook");
  lua_pushstring(L, "hoist.Playbook");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  const luaL_Reg fns[] = {{"secret", lua::Protect<l_secret>},
                          {"mask", lua::Protect<l_mask>},
                          {"playbook", lua::Protect<l_playbook>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  lua::SetField(L, "version", HOIST_VERSION);
  return 1;
}

}  // namespace hoist::bind

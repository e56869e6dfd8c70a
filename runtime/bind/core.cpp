// hoist.core: what require "hoist" is built on — version, secrets, the
// playbook marker, structured errors (hoist.error) and journal records.
#include <lua.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bind/context.h"
#include "bind/modules.h"
#include "core/secrets.h"
#include "lua/boundary.h"
#include "lua/check.h"

namespace hoist::bind {
namespace {

using json = nlohmann::json;

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

/// core.record(kind, name, data, seconds): a world call in the journal (for
/// stdlib modules that act through other primitives, e.g. an nginx switch).
int l_record(lua_State* L) {
  std::string kind = lua::CheckString(L, 1, "kind");
  std::string name = lua::CheckString(L, 2, "name");
  json data = lua_isnoneornil(L, 3) ? json::object() : lua::ToJson(L, 3, /*lenient=*/true);
  double seconds = lua::OptNumber(L, 4, "seconds").value_or(0);
  RecordWorld(L, kind, name, data, seconds);
  return 0;
}

/// core.event(name, data): a notify event of the running run (switch.done,
/// rollback.done, backup.failed), sent to hoist.lua's notify targets when
/// the run ends.
int l_event(lua_State* L) {
  std::string name = lua::CheckString(L, 1, "event name");
  json data = lua_isnoneornil(L, 2) ? json::object() : lua::ToJson(L, 2, /*lenient=*/true);
  RaiseEvent(L, name, data);
  return 0;
}

/// "chunk:line:" of the first Lua frame outside hoist's own stdlib (the
/// playbook line that called into hoist.nginx), else of the caller.
std::string PlaybookWhere(lua_State* L) {
  lua_Debug ar;
  std::string first;
  for (int level = 1; lua_getstack(L, level, &ar); ++level) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
    std::string where = fmt::format("{}:{}:", ar.short_src, ar.currentline);
    if (first.empty()) first = where;
    std::string_view src = ar.source ? ar.source : "";
    if (src.find("stdlib/hoist/") == std::string_view::npos) return where;
  }
  return first;
}

/// hoist.error(area, code, message[, fields]) -> a hoist.Error value
/// (raise it with error(e)); extra fields are copied onto it.
int l_error(lua_State* L) {
  std::string area = lua::CheckString(L, 1, "area");
  std::string code = lua::CheckString(L, 2, "code");
  std::string message = lua::CheckString(L, 3, "message");
  std::string where = PlaybookWhere(L);
  lua::PushError(L, area, code, Mask(message), where);
  if (lua_istable(L, 4)) {
    lua_pushnil(L);
    while (lua_next(L, 4) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
      } else {
        lua_pop(L, 1);
      }
    }
  }
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
                          {"error", lua::Protect<l_error>},
                          {"record", lua::Protect<l_record>},
                          {"event", lua::Protect<l_event>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  lua::SetField(L, "version", HOIST_VERSION);
  return 1;
}

}  // namespace hoist::bind

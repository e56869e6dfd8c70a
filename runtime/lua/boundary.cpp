#include "lua/boundary.h"

#include <cstring>
#include <exception>
#include <string_view>

#include "core/interrupt.h"
#include "lua/state.h"

namespace hoist::lua {
namespace {

constexpr const char* kErrorMeta = "hoist.Error";

std::string FieldString(lua_State* L, int idx, const char* key) {
  lua_getfield(L, idx, key);
  std::string s;
  if (lua_type(L, -1) == LUA_TSTRING) s = lua_tostring(L, -1);
  lua_pop(L, 1);
  return s;
}

// A position inside hoist's own Lua (the embedded stdlib, a canned
// playbook) is not where the user can act: it stays in the error's where
// field and the traceback (-v), and the message stands alone.
bool InternalWhere(std::string_view where) {
  return where.rfind("stdlib/hoist/", 0) == 0 || where.rfind("hoist:", 0) == 0;
}

int ErrorToString(lua_State* L) {
  if (!lua_istable(L, 1)) {
    lua_pushstring(L, "error");
    return 1;
  }
  lua_getfield(L, 1, "where");
  lua_getfield(L, 1, "area");
  lua_getfield(L, 1, "message");
  const char* where = lua_tostring(L, -3);
  const char* area = lua_tostring(L, -2);
  const char* message = lua_tostring(L, -1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (where && *where && !InternalWhere(where)) {
    luaL_addstring(&b, where);
    luaL_addchar(&b, ' ');
  }
  if (area && *area) {
    luaL_addstring(&b, area);
    luaL_addstring(&b, ": ");
  }
  luaL_addstring(&b, message ? message : "error");
  luaL_pushresult(&b);
  return 1;
}

// "not enough memory" from the VM's bound, or from a step past its deadline
// whose big allocations are refused: the error says which, and where.
void ExplainMemoryError(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING || std::strcmp(lua_tostring(L, 1), "not enough memory") != 0) return;
  std::string stop = StopReason();
  bool limit = MemoryLimitHit(L);
  if (stop.empty() && !limit) return;
  std::string where;
  lua_Debug ar;
  for (int level = 0; lua_getstack(L, level, &ar); ++level) {
    if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
      where = std::string(ar.short_src) + ":" + std::to_string(ar.currentline) + ":";
      break;
    }
  }
  std::string message =
      !stop.empty() ? (stop == "interrupted" ? "interrupted (Ctrl-C)" : "step timeout reached")
                    : "memory limit of " + std::to_string(MemoryLimit(L) >> 20) +
                          " MiB reached (set memory_limit_mb in hoist.lua if a run really needs more)";
  lua_createtable(L, 0, 4);
  lua_pushstring(L, "run");
  lua_setfield(L, -2, "area");
  lua_pushstring(L, stop.empty() ? "memory" : stop.c_str());
  lua_setfield(L, -2, "code");
  lua_pushstring(L, message.c_str());
  lua_setfield(L, -2, "message");
  lua_pushstring(L, where.c_str());
  lua_setfield(L, -2, "where");
  luaL_setmetatable(L, kErrorMeta);
  lua_replace(L, 1);
}

int MessageHandler(lua_State* L) {
  // Keep the error value as is; append the traceback as a second value in
  // the registry so Call can report both.
  ExplainMemoryError(L);
  const char* msg = nullptr;
  if (lua_type(L, 1) == LUA_TSTRING) {
    msg = lua_tostring(L, 1);
  } else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
    msg = lua_tostring(L, -1);
  } else {
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "hoist.last_traceback");
  lua_settop(L, 1);
  return 1;
}

}  // namespace

std::string ScriptError::BuildDisplay() const {
  std::string s = InternalWhere(where_) ? "" : where_;
  if (!s.empty()) s += ' ';
  return s + hoist::Error::what();
}

void RegisterErrorType(lua_State* L) {
  if (luaL_newmetatable(L, kErrorMeta)) {
    lua_pushcfunction(L, ErrorToString);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, "hoist.Error");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

void PushError(lua_State* L, const std::string& area, const std::string& code,
               const std::string& message, const std::string& where) {
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, area.data(), area.size());
  lua_setfield(L, -2, "area");
  lua_pushlstring(L, code.data(), code.size());
  lua_setfield(L, -2, "code");
  lua_pushlstring(L, message.data(), message.size());
  lua_setfield(L, -2, "message");
  lua_pushlstring(L, where.data(), where.size());
  lua_setfield(L, -2, "where");
  luaL_setmetatable(L, kErrorMeta);
}

ScriptError ErrorFromValue(lua_State* L, int idx, std::string traceback) {
  idx = lua_absindex(L, idx);
  if (lua_istable(L, idx) && luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
    bool ours = lua_type(L, -1) == LUA_TSTRING && std::string(lua_tostring(L, -1)) == kErrorMeta;
    lua_pop(L, 1);
    if (ours) {
      return ScriptError(FieldString(L, idx, "area"), FieldString(L, idx, "code"),
                         FieldString(L, idx, "message"), FieldString(L, idx, "where"),
                         std::move(traceback));
    }
  }
  std::string message;
  if (lua_type(L, idx) == LUA_TSTRING) {
    message = lua_tostring(L, idx);
  } else if (luaL_callmeta(L, idx, "__tostring")) {
    if (lua_type(L, -1) == LUA_TSTRING) message = lua_tostring(L, -1);
    lua_pop(L, 1);
  } else if (lua_istable(L, idx)) {
    // A plain table thrown with error{code=..., message=...}.
    message = FieldString(L, idx, "message");
    std::string code = FieldString(L, idx, "code");
    if (message.empty()) message = "(error object is a table value)";
    return ScriptError("", code.empty() ? "error" : code, message, "", std::move(traceback));
  } else {
    message = std::string("(error object is a ") + luaL_typename(L, idx) + " value)";
  }
  return ScriptError("", "error", message, "", std::move(traceback));
}

namespace detail {

void PushCurrentException(lua_State* L) {
  // Fields are copied into Lua before this frame's strings die; the caller
  // raises only after returning here.
  try {
    throw;
  } catch (const ScriptError& e) {
    PushError(L, e.area(), e.code(), e.message(), e.where());
  } catch (const hoist::Error& e) {
    luaL_where(L, 1);
    std::string where = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (!where.empty() && where.back() == ' ') where.pop_back();
    PushError(L, e.area(), e.code(), e.message(), where);
  } catch (const std::exception& e) {
    luaL_where(L, 1);
    std::string where = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (!where.empty() && where.back() == ' ') where.pop_back();
    PushError(L, "internal", "internal", e.what(), where);
  } catch (...) {
    PushError(L, "internal", "internal", "unknown C++ exception", "");
  }
}

}  // namespace detail

void Call(lua_State* L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;  // index of the function
  lua_pushcfunction(L, MessageHandler);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status == LUA_OK) return;
  std::string traceback;
  lua_getfield(L, LUA_REGISTRYINDEX, "hoist.last_traceback");
  if (lua_type(L, -1) == LUA_TSTRING) traceback = lua_tostring(L, -1);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "hoist.last_traceback");
  if (status == LUA_ERRMEM) {
    lua_pop(L, 1);
    // Lua calls no message handler for memory errors: say here what it was.
    if (std::string stop = StopReason(); !stop.empty()) {
      throw ScriptError("run", stop, stop == "interrupted" ? "interrupted (Ctrl-C)" : "step timeout reached", "",
                        traceback);
    }
    if (MemoryLimitHit(L)) {
      throw ScriptError("run", "memory",
                        "memory limit of " + std::to_string(MemoryLimit(L) >> 20) +
                            " MiB reached (set memory_limit_mb in hoist.lua if a run really needs more)",
                        MemoryLimitWhere(L), traceback);
    }
    throw ScriptError("lua", "memory", "out of memory", "", traceback);
  }
  ScriptError err = ErrorFromValue(L, -1, std::move(traceback));
  lua_pop(L, 1);
  throw err;
}

}  // namespace hoist::lua

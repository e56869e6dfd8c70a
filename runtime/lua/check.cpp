#include "lua/check.h"

#include <cmath>
#include <fmt/format.h>

#include "core/error.h"

namespace hoist::lua {
namespace {

[[noreturn]] void Bad(std::string msg) { throw hoist::Error("lua", "invalid", std::move(msg)); }

[[noreturn]] void BadArg(lua_State* L, int idx, std::string_view what, const char* expected) {
  Bad(fmt::format("bad argument #{} ({}): {} expected, got {}", idx, what, expected,
                  luaL_typename(L, idx)));
}

[[noreturn]] void BadField(lua_State* L, const char* key, const char* expected) {
  Bad(fmt::format("bad option '{}': {} expected, got {}", key, expected, luaL_typename(L, -1)));
}

char g_null_sentinel;

}  // namespace

int RawField(lua_State* L, int idx, const char* key) {
  if (!lua_istable(L, idx)) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  idx = lua_absindex(L, idx);
  lua_pushstring(L, key);
  return lua_rawget(L, idx);
}

std::string CheckString(lua_State* L, int idx, std::string_view what) {
  if (lua_type(L, idx) != LUA_TSTRING) BadArg(L, idx, what, "string");
  size_t n = 0;
  const char* s = lua_tolstring(L, idx, &n);
  return std::string(s, n);
}

std::optional<std::string> OptString(lua_State* L, int idx, std::string_view what) {
  if (lua_isnoneornil(L, idx)) return std::nullopt;
  return CheckString(L, idx, what);
}

lua_Integer CheckInteger(lua_State* L, int idx, std::string_view what) {
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, idx, &isnum);
  if (!isnum || lua_type(L, idx) != LUA_TNUMBER) BadArg(L, idx, what, "integer");
  return v;
}

std::optional<lua_Integer> OptInteger(lua_State* L, int idx, std::string_view what) {
  if (lua_isnoneornil(L, idx)) return std::nullopt;
  return CheckInteger(L, idx, what);
}

double CheckNumber(lua_State* L, int idx, std::string_view what) {
  if (lua_type(L, idx) != LUA_TNUMBER) BadArg(L, idx, what, "number");
  return lua_tonumber(L, idx);
}

std::optional<double> OptNumber(lua_State* L, int idx, std::string_view what) {
  if (lua_isnoneornil(L, idx)) return std::nullopt;
  return CheckNumber(L, idx, what);
}

void CheckTable(lua_State* L, int idx, std::string_view what) {
  if (!lua_istable(L, idx)) BadArg(L, idx, what, "table");
}

void CheckFunction(lua_State* L, int idx, std::string_view what) {
  if (!lua_isfunction(L, idx)) BadArg(L, idx, what, "function");
}

std::optional<std::string> OptStringField(lua_State* L, int idx, const char* key) {
  idx = lua_absindex(L, idx);
  int t = RawField(L, idx, key);
  std::optional<std::string> r;
  if (t == LUA_TSTRING) {
    size_t n = 0;
    const char* s = lua_tolstring(L, -1, &n);
    r = std::string(s, n);
  } else if (t != LUA_TNIL) {
    BadField(L, key, "string");
  }
  lua_pop(L, 1);
  return r;
}

std::string CheckStringField(lua_State* L, int idx, const char* key) {
  auto v = OptStringField(L, idx, key);
  if (!v) Bad(fmt::format("missing option '{}' (a string)", key));
  return *v;
}

std::optional<lua_Integer> OptIntegerField(lua_State* L, int idx, const char* key) {
  idx = lua_absindex(L, idx);
  int t = RawField(L, idx, key);
  std::optional<lua_Integer> r;
  if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
    r = lua_tointeger(L, -1);
  } else if (t == LUA_TNUMBER) {
    double d = lua_tonumber(L, -1);
    if (std::floor(d) != d) BadField(L, key, "integer");
    r = static_cast<lua_Integer>(d);
  } else if (t != LUA_TNIL) {
    BadField(L, key, "integer");
  }
  lua_pop(L, 1);
  return r;
}

std::optional<double> OptNumberField(lua_State* L, int idx, const char* key) {
  idx = lua_absindex(L, idx);
  int t = RawField(L, idx, key);
  std::optional<double> r;
  if (t == LUA_TNUMBER) {
    r = lua_tonumber(L, -1);
  } else if (t != LUA_TNIL) {
    BadField(L, key, "number");
  }
  lua_pop(L, 1);
  return r;
}

std::optional<bool> OptBooleanField(lua_State* L, int idx, const char* key) {
  idx = lua_absindex(L, idx);
  int t = RawField(L, idx, key);
  std::optional<bool> r;
  if (t == LUA_TBOOLEAN) {
    r = lua_toboolean(L, -1) != 0;
  } else if (t != LUA_TNIL) {
    BadField(L, key, "boolean");
  }
  lua_pop(L, 1);
  return r;
}

std::vector<std::string> CheckStringList(lua_State* L, int idx, std::string_view what) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) BadArg(L, idx, what, "array of strings");
  std::vector<std::string> out;
  // Raw: __len and __index may raise, and `out` is alive.
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, idx));
  out.reserve(static_cast<size_t>(n));
  for (lua_Integer i = 1; i <= n; ++i) {
    int t = lua_rawgeti(L, idx, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) {
      lua_pop(L, 1);
      Bad(fmt::format("bad {}: element {} must be a string, got {}", what, i, lua_typename(L, t)));
    }
    size_t len = 0;
    const char* s = lua_tolstring(L, -1, &len);
    out.emplace_back(s, len);
    lua_pop(L, 1);
  }
  return out;
}

std::optional<std::vector<std::string>> OptStringListField(lua_State* L, int idx, const char* key) {
  idx = lua_absindex(L, idx);
  int t = RawField(L, idx, key);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return std::nullopt;
  }
  if (t != LUA_TTABLE) BadField(L, key, "array of strings");
  std::vector<std::string> out;
  try {
    out = CheckStringList(L, -1, key);
  } catch (...) {
    lua_pop(L, 1);
    throw;
  }
  lua_pop(L, 1);
  return out;
}

std::map<std::string, std::string> OptStringMapField(lua_State* L, int idx, const char* key) {
  idx = lua_absindex(L, idx);
  std::map<std::string, std::string> out;
  int t = RawField(L, idx, key);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return out;
  }
  if (t != LUA_TTABLE) BadField(L, key, "table of strings");
  int map = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, map) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      std::string type = luaL_typename(L, -2);
      lua_settop(L, map - 1);
      Bad(fmt::format("{} keys must be names, got a {} key", key, type));
    }
    std::string name = lua_tostring(L, -2);
    int vt = lua_type(L, -1);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER) {
      std::string type = lua_typename(L, vt);
      lua_settop(L, map - 1);
      Bad(fmt::format("{}.{} must be a string, got {}", key, name, type));
    }
    size_t n = 0;
    const char* s = lua_tolstring(L, -1, &n);  // converts the value only: lua_next needs the key
    out[name] = std::string(s, n);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return out;
}

void CheckKeys(lua_State* L, int idx, std::string_view fn,
               std::initializer_list<std::string_view> allowed) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) return;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) continue;  // array part: caller checks
    std::string_view key = lua_tostring(L, -1);
    bool ok = false;
    for (auto a : allowed) ok = ok || a == key;
    if (!ok) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      std::string k(key);
      lua_pop(L, 1);
      Bad(fmt::format("unknown option '{}' for {} (expected one of: {})", k, fn, list));
    }
  }
}

void PushNull(lua_State* L) { lua_pushlightuserdata(L, &g_null_sentinel); }

bool IsNull(lua_State* L, int idx) {
  return lua_islightuserdata(L, idx) && lua_touserdata(L, idx) == &g_null_sentinel;
}

json ToJson(lua_State* L, int idx, bool lenient) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
      return nullptr;
    case LUA_TBOOLEAN:
      return lua_toboolean(L, idx) != 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return static_cast<int64_t>(lua_tointeger(L, idx));
      return lua_tonumber(L, idx);
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, idx, &n);
      return std::string(s, n);
    }
    case LUA_TLIGHTUSERDATA:
      if (IsNull(L, idx)) return nullptr;
      break;
    case LUA_TTABLE: {
      if (!lua_checkstack(L, 4)) Bad("table too deeply nested for JSON");
      // __tojson lets a userdata-like table (an error, a db handle) choose.
      if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
        bool is_error = lua_type(L, -1) == LUA_TSTRING && std::string_view(lua_tostring(L, -1)) == "hoist.Error";
        lua_pop(L, 1);
        if (is_error) {
          json e = json::object();
          for (const char* k : {"area", "code", "message"}) {
            RawField(L, idx, k);
            if (lua_type(L, -1) == LUA_TSTRING) e[k] = lua_tostring(L, -1);
            lua_pop(L, 1);
          }
          return e;
        }
      }
      bool force_array = false;
      if (luaL_getmetafield(L, idx, "__jsontype") != LUA_TNIL) {
        force_array = lua_type(L, -1) == LUA_TSTRING && std::string_view(lua_tostring(L, -1)) == "array";
        lua_pop(L, 1);
      }
      lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, idx));
      lua_Integer count = 0;
      lua_pushnil(L);
      while (lua_next(L, idx) != 0) {
        ++count;
        lua_pop(L, 1);
      }
      if (force_array || (n > 0 && count == n)) {
        json arr = json::array();
        for (lua_Integer i = 1; i <= n; ++i) {
          lua_rawgeti(L, idx, i);
          try {
            arr.push_back(ToJson(L, -1, lenient));
          } catch (...) {
            lua_pop(L, 1);
            throw;
          }
          lua_pop(L, 1);
        }
        return arr;
      }
      json obj = json::object();
      lua_pushnil(L);
      while (lua_next(L, idx) != 0) {
        std::string key;
        if (lua_type(L, -2) == LUA_TSTRING) {
          key = lua_tostring(L, -2);
        } else if (lua_type(L, -2) == LUA_TNUMBER) {
          lua_pushvalue(L, -2);
          key = lua_tostring(L, -1);
          lua_pop(L, 1);
        } else if (lenient) {
          lua_pop(L, 1);
          continue;
        } else {
          lua_pop(L, 2);
          Bad(fmt::format("cannot encode a table key of type {} as JSON", luaL_typename(L, -2)));
        }
        try {
          obj[key] = ToJson(L, -1, lenient);
        } catch (...) {
          lua_pop(L, 2);
          throw;
        }
        lua_pop(L, 1);
      }
      return obj;
    }
    default:
      break;
  }
  if (lenient) {
    const char* s = luaL_tolstring(L, idx, nullptr);
    std::string r = s ? s : "?";
    lua_pop(L, 1);
    return r;
  }
  Bad(fmt::format("cannot encode a {} as JSON", luaL_typename(L, idx)));
}

void PushJson(lua_State* L, const json& value) {
  if (!lua_checkstack(L, 4)) Bad("JSON too deeply nested");
  switch (value.type()) {
    case json::value_t::null:
      PushNull(L);
      return;
    case json::value_t::boolean:
      lua_pushboolean(L, value.get<bool>());
      return;
    case json::value_t::number_integer:
      lua_pushinteger(L, value.get<int64_t>());
      return;
    case json::value_t::number_unsigned:
      lua_pushinteger(L, static_cast<lua_Integer>(value.get<uint64_t>()));
      return;
    case json::value_t::number_float:
      lua_pushnumber(L, value.get<double>());
      return;
    case json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      lua_pushlstring(L, s.data(), s.size());
      return;
    }
    case json::value_t::array: {
      lua_createtable(L, static_cast<int>(value.size()), 0);
      lua_Integer i = 1;
      for (const auto& v : value) {
        PushJson(L, v);
        lua_rawseti(L, -2, i++);
      }
      if (value.empty()) {
        // Keep [] round-tripping as an array.
        lua_createtable(L, 0, 1);
        lua_pushstring(L, "array");
        lua_setfield(L, -2, "__jsontype");
        lua_setmetatable(L, -2);
      }
      return;
    }
    case json::value_t::object: {
      lua_createtable(L, 0, static_cast<int>(value.size()));
      for (const auto& [k, v] : value.items()) {
        lua_pushlstring(L, k.data(), k.size());
        PushJson(L, v);
        lua_rawset(L, -3);
      }
      return;
    }
    default:
      lua_pushnil(L);
  }
}

void SetField(lua_State* L, const char* key, std::string_view value) {
  lua_pushlstring(L, value.data(), value.size());
  lua_setfield(L, -2, key);
}

void SetField(lua_State* L, const char* key, lua_Integer value) {
  lua_pushinteger(L, value);
  lua_setfield(L, -2, key);
}

void SetFieldNumber(lua_State* L, const char* key, double value) {
  lua_pushnumber(L, value);
  lua_setfield(L, -2, key);
}

void SetFieldBool(lua_State* L, const char* key, bool value) {
  lua_pushboolean(L, value);
  lua_setfield(L, -2, key);
}

}  // namespace hoist::lua

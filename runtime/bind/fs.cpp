// hoist.fs: files for playbooks — read, atomic and in-place writes, dirs,
// stat, glob, remove, chmod, free space — through the world seam (a sandbox run
// simulates them). Mutations are journaled as world calls.
#include <lua.hpp>

#include <cstdlib>
#include <optional>

#include <fmt/format.h>

#include "bind/context.h"
#include "bind/modules.h"
#include "core/error.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/fs.h"

namespace hoist::bind {
namespace {

/// An octal mode string ("0640") as mode bits, or nullopt when it is not one
/// (only the digits 0-7, at most 07777: strtol alone would take " +644").
std::optional<mode_t> ParseOctalMode(const std::string& s) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("01234567") != std::string::npos) return std::nullopt;
  long v = std::strtol(s.c_str(), nullptr, 8);
  if (v > 07777) return std::nullopt;
  return static_cast<mode_t>(v);
}

// Modes are octal strings ("0600") because Lua has no octal literals; an
// integer is taken as the already-converted value (fs.stat's mode), but
// only up to 0777: `mode = 644` is decimal 644, octal 1204 (sticky bit,
// owner read-only), never what was meant.
mode_t ModeOption(lua_State* L, int idx, mode_t fallback) {
  lua::RawField(L, idx, "mode");
  mode_t mode = fallback;
  if (lua_type(L, -1) == LUA_TSTRING) {
    std::string s = lua_tostring(L, -1);
    auto parsed = ParseOctalMode(s);
    if (!parsed) {
      lua_pop(L, 1);
      throw Error("fs", "invalid", "mode must be an octal string like \"0644\", got \"" + s + "\"");
    }
    mode = *parsed;
  } else if (lua_isinteger(L, -1)) {
    lua_Integer v = lua_tointeger(L, -1);
    if (v < 0 || v > 0777) {
      lua_pop(L, 1);
      throw Error("fs", "invalid",
                  fmt::format("mode {} is an integer, read as decimal (octal {:o}): write the octal string \"{:04}\" "
                              "instead",
                              v, v < 0 ? 0 : v, v < 0 ? 0 : v));
    }
    mode = static_cast<mode_t>(v);
  } else if (!lua_isnil(L, -1)) {
    lua_pop(L, 1);
    throw Error("fs", "invalid", "mode must be an octal string like \"0644\"");
  }
  lua_pop(L, 1);
  return mode;
}

void PushStrings(lua_State* L, const std::vector<std::string>& v) {
  lua_createtable(L, static_cast<int>(v.size()), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    lua::PushString(L, v[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

int l_read(lua_State* L) {
  std::string path = lua::CheckString(L, 1, "path");
  lua::PushString(L, WorldOf(L).ReadFile(path));
  return 1;
}

int l_write_atomic(lua_State* L) {
  std::string path = lua::CheckString(L, 1, "path");
  std::string data = lua::CheckString(L, 2, "data");
  lua::CheckKeys(L, 3, "fs.write_atomic", {"mode"});
  mode_t mode = ModeOption(L, 3, 0644);
  WorldOf(L).WriteAtomic(path, data, mode);
  RecordWorld(L, "fs", "write_atomic " + path, {{"path", path}, {"bytes", data.size()}, {"mode", mode}}, 0);
  return 0;
}

int l_write_inplace(lua_State* L) {
  std::string path = lua::CheckString(L, 1, "path");
  std::string data = lua::CheckString(L, 2, "data");
  WorldOf(L).WriteInPlace(path, data);
  RecordWorld(L, "fs", "write_inplace " + path, {{"path", path}, {"bytes", data.size()}}, 0);
  return 0;
}

int l_mkdir_p(lua_State* L) {
  std::string path = lua::CheckString(L, 1, "path");
  lua::CheckKeys(L, 2, "fs.mkdir_p", {"mode"});
  WorldOf(L).MkdirP(path, ModeOption(L, 2, 0755));
  RecordWorld(L, "fs", "mkdir_p " + path, {{"path", path}}, 0);
  return 0;
}

int l_list(lua_State* L) {
  PushStrings(L, WorldOf(L).ListDir(lua::CheckString(L, 1, "dir")));
  return 1;
}

int l_glob(lua_State* L) {
  PushStrings(L, WorldOf(L).Glob(lua::CheckString(L, 1, "pattern")));
  return 1;
}

int l_stat(lua_State* L) {
  sys::Stat st = WorldOf(L).StatPath(lua::CheckString(L, 1, "path"));
  if (!st.exists) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 5);
  lua::SetField(L, "type", st.type);
  lua::SetField(L, "size", static_cast<lua_Integer>(st.size));
  lua::SetField(L, "mode", static_cast<lua_Integer>(st.mode));
  lua::SetFieldNumber(L, "mtime", st.mtime);
  lua::SetField(L, "inode", static_cast<lua_Integer>(st.inode));
  return 1;
}

int l_exists(lua_State* L) {
  lua_pushboolean(L, WorldOf(L).StatPath(lua::CheckString(L, 1, "path")).exists);
  return 1;
}

int l_remove(lua_State* L) {
  std::string path = lua::CheckString(L, 1, "path");
  lua::CheckKeys(L, 2, "fs.remove", {"recursive"});
  bool recursive = lua::OptBooleanField(L, 2, "recursive").value_or(false);
  bool removed = WorldOf(L).Remove(path, recursive);
  RecordWorld(L, "fs", "remove " + path, {{"path", path}, {"recursive", recursive}, {"removed", removed}}, 0);
  lua_pushboolean(L, removed);
  return 1;
}

int l_chmod(lua_State* L) {
  std::string path = lua::CheckString(L, 1, "path");
  std::string where = "chmod " + path + ": ";
  if (lua_isnoneornil(L, 2)) throw Error("fs", "invalid", where + "mode missing: pass an octal string like \"0640\"");
  // Only a string: fs.chmod(p, 0640) would be decimal 640 (mode 1200), since
  // Lua has no octal literals.
  if (lua_type(L, 2) != LUA_TSTRING) {
    throw Error("fs", "invalid",
                where + "mode must be an octal string like \"0640\", got a " + luaL_typename(L, 2) +
                    " (Lua has no octal literals: quote it)");
  }
  std::string text = lua_tostring(L, 2);
  auto mode = ParseOctalMode(text);
  if (!mode) {
    throw Error("fs", "invalid",
                where + "mode must be an octal string from \"0000\" to \"7777\" like \"0640\", got \"" + text + "\"");
  }
  try {
    WorldOf(L).Chmod(path, *mode);
  } catch (const Error& e) {
    if (e.code() != "not_found") throw;
    throw Error("fs", "not_found", e.message() + "; create it first or fix the path");
  }
  RecordWorld(L, "fs", "chmod " + path, {{"path", path}, {"mode", text}}, 0);
  return 0;
}

int l_disk_free(lua_State* L) {
  sys::DiskFree d = sys::DiskFreeOf(lua::CheckString(L, 1, "path"));
  lua_createtable(L, 0, 3);
  lua::SetField(L, "total", static_cast<lua_Integer>(d.total));
  lua::SetField(L, "free", static_cast<lua_Integer>(d.free));
  lua::SetField(L, "available", static_cast<lua_Integer>(d.available));
  return 1;
}

}  // namespace

int OpenFs(lua_State* L) {
  const luaL_Reg fns[] = {{"read", lua::Protect<l_read>},
                          {"write_atomic", lua::Protect<l_write_atomic>},
                          {"write_inplace", lua::Protect<l_write_inplace>},
                          {"mkdir_p", lua::Protect<l_mkdir_p>},
                          {"list", lua::Protect<l_list>},
                          {"glob", lua::Protect<l_glob>},
                          {"stat", lua::Protect<l_stat>},
                          {"exists", lua::Protect<l_exists>},
                          {"remove", lua::Protect<l_remove>},
                          {"chmod", lua::Protect<l_chmod>},
                          {"disk_free", lua::Protect<l_disk_free>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind

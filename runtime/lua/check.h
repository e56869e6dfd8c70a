// Throwing argument helpers for bindings: the luaL_check* family without the
// longjmp. They raise hoist::Error{"lua","invalid",...}; Protect<> turns that
// into a Lua error after the C++ frame unwound.
#pragma once

#include <lua.hpp>

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace hoist::lua {

using json = nlohmann::json;

/// [-0, +0, -] Argument idx as a string (numbers are not converted).
std::string CheckString(lua_State* L, int idx, std::string_view what);
std::optional<std::string> OptString(lua_State* L, int idx, std::string_view what);
lua_Integer CheckInteger(lua_State* L, int idx, std::string_view what);
std::optional<lua_Integer> OptInteger(lua_State* L, int idx, std::string_view what);
double CheckNumber(lua_State* L, int idx, std::string_view what);
std::optional<double> OptNumber(lua_State* L, int idx, std::string_view what);
/// Requires a table at idx.
void CheckTable(lua_State* L, int idx, std::string_view what);
/// Requires a function at idx.
void CheckFunction(lua_State* L, int idx, std::string_view what);

/// [-0, +0, m] Typed optional fields of the options table at idx (which may
/// be nil/none: then every field is absent). Fields are read raw (no
/// __index), so a strict table cannot raise over the caller's C++ objects;
/// a wrong type throws "bad option 'key': <type> expected, got <type>".
std::optional<std::string> OptStringField(lua_State* L, int idx, const char* key);
std::optional<lua_Integer> OptIntegerField(lua_State* L, int idx, const char* key);
std::optional<double> OptNumberField(lua_State* L, int idx, const char* key);
std::optional<bool> OptBooleanField(lua_State* L, int idx, const char* key);
std::string CheckStringField(lua_State* L, int idx, const char* key);
/// An array of strings ({"a","b"}); absent = nullopt.
std::optional<std::vector<std::string>> OptStringListField(lua_State* L, int idx, const char* key);
/// [-0, +0, m] The array of strings at idx (numbers are taken as strings),
/// read raw: its length is lua_rawlen, never __len.
std::vector<std::string> CheckStringList(lua_State* L, int idx, std::string_view what);
/// [-0, +1, m] Pushes t[key] of the table at idx read raw (no __index), or
/// nil when idx is not a table; returns its type. For bindings reading a
/// user's table: lua_getfield would run __index, which may raise.
int RawField(lua_State* L, int idx, const char* key);
/// [-0, +0, m] A field mapping names to strings ({ PATH = "/bin" }; numbers
/// are taken as strings), read raw; absent = {}. Throws "bad option 'env':
/// table expected, got string", "env.PATH must be a string, got boolean" or
/// "env keys must be names, got a number key".
std::map<std::string, std::string> OptStringMapField(lua_State* L, int idx, const char* key);

/// [-0, +0, -] Throws when the options table at idx has a key outside `allowed`:
/// "unknown option 'tiemout' for proc.run (expected one of: argv, env, ...)".
void CheckKeys(lua_State* L, int idx, std::string_view fn,
               std::initializer_list<std::string_view> allowed);

/// [-0, +0, m|e] Lua value -> JSON, tables read raw. Tables with keys 1..n
/// are arrays, others objects; hoist.json.null is null. Functions/userdata
/// throw unless lenient (then they become their __tostring, for journal
/// records: only that metamethod runs, hence e when lenient).
json ToJson(lua_State* L, int idx, bool lenient = false);
/// [-0, +1, m] JSON -> Lua value (null becomes hoist.json.null).
void PushJson(lua_State* L, const json& value);
/// [-0, +1, -] The unique null sentinel (a light userdata).
void PushNull(lua_State* L);
bool IsNull(lua_State* L, int idx);

/// [-0, +1, m] Pushes a std::string exactly (embedded NULs kept).
inline void PushString(lua_State* L, std::string_view s) { lua_pushlstring(L, s.data(), s.size()); }

/// [-0, +0, m] t[key] = value on the table at the top of the stack.
void SetField(lua_State* L, const char* key, std::string_view value);
void SetField(lua_State* L, const char* key, lua_Integer value);
void SetFieldNumber(lua_State* L, const char* key, double value);
void SetFieldBool(lua_State* L, const char* key, bool value);

}  // namespace hoist::lua

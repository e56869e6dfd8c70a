// The one error boundary between C++ and Lua (STYLE.md). Debian's liblua5.4
// is C: lua_error longjmps over C++ destructors, so bindings throw and
// Protect<> raises the Lua error only after every C++ frame has unwound.
#pragma once

#include <lua.hpp>

#include <stdexcept>
#include <string>

#include "core/error.h"

namespace hoist::lua {

/// A Lua error that reached C++ through Call(). Keeps the structured fields
/// when the error value was a hoist error table.
class ScriptError : public hoist::Error {
 public:
  ScriptError(std::string area, std::string code, std::string message, std::string where,
              std::string traceback)
      : hoist::Error(std::move(area), std::move(code), std::move(message)),
        where_(std::move(where)), traceback_(std::move(traceback)), display_(BuildDisplay()) {}

  /// Includes the Lua position: "playbooks/x.lua:12: db: no such table: users".
  const char* what() const noexcept override { return display_.c_str(); }

  /// "file:line:" of the raising Lua code, or "" when unknown.
  const std::string& where() const { return where_; }
  const std::string& traceback() const { return traceback_; }
  std::string Display() const { return display_; }

 private:
  std::string BuildDisplay() const;

  std::string where_;
  std::string traceback_;
  std::string display_;
};

/// [-0, +1, m] Pushes a hoist error table {area, code, message, where} with
/// the "hoist.Error" metatable; where is "chunk:line:" of the Lua caller at
/// `level` (1 = the function that called the current C function).
void PushError(lua_State* L, const std::string& area, const std::string& code,
               const std::string& message, const std::string& where);

/// Installs the "hoist.Error" metatable (its __tostring). Called by State.
void RegisterErrorType(lua_State* L);

/// Converts any error value at idx into a ScriptError (no traceback).
ScriptError ErrorFromValue(lua_State* L, int idx, std::string traceback);

namespace detail {
/// [-0, +1, m] Pushes the pending C++ exception as a Lua error value.
void PushCurrentException(lua_State* L);
}  // namespace detail

/// Wraps a throwing binding as a lua_CFunction. The exception is converted
/// into a Lua error after the try block, once no C++ object is alive.
template <int (*F)(lua_State*)>
int Protect(lua_State* L) {
  bool failed = false;
  try {
    return F(L);
  } catch (...) {
    failed = true;
    detail::PushCurrentException(L);
  }
  if (failed) return lua_error(L);
  return 0;
}

/// [-(nargs+1), +nresults, -] pcall with a traceback handler. The function
/// and its nargs arguments are on the stack. On failure the stack is restored
/// and ScriptError is thrown. nresults may be LUA_MULTRET.
void Call(lua_State* L, int nargs, int nresults);

}  // namespace hoist::lua

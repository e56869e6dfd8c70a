// Running Lua chunks in-process for tests: a fresh VM per chunk (the
// embedded stdlib, no run context: journal records are no-ops), the chunk's
// return value as JSON, Lua errors as lua::ScriptError or as the text the
// user would see.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "lua/boundary.h"
#include "lua/check.h"
#include "lua/state.h"

namespace hoist::test {

/// Runs code (a chunk that may `return` one value) and returns it as JSON.
inline nlohmann::json RunLua(const std::string& code) {
  lua::State vm;
  vm.LoadChunk(code, "=test");
  lua::Call(vm.get(), 0, 1);
  nlohmann::json out = lua::ToJson(vm.get(), -1, /*lenient=*/true);
  lua_pop(vm.get(), 1);
  return out;
}

/// Runs a chunk; returns "" or the error as the user would see it.
inline std::string RunLuaError(const std::string& source) {
  lua::State vm;
  try {
    vm.LoadChunk(source, "=test");
    lua::Call(vm.get(), 0, 0);
  } catch (const lua::ScriptError& e) {
    return e.Display();
  }
  return "";
}

/// Runs code that must raise; returns the error (area, code, message).
inline lua::ScriptError LuaError(const std::string& code) {
  try {
    RunLua(code);
  } catch (const lua::ScriptError& e) {
    return e;
  }
  FAIL("the Lua chunk did not raise");
  return lua::ScriptError("", "", "", "", "");
}

/// A Lua string literal for s (long brackets, safe for any text without "]==]").
/// (Lua drops a newline right after the opening bracket: one is added back.)
inline std::string LuaStr(const std::string& s) {
  return "[==[" + std::string(!s.empty() && s[0] == '\n' ? "\n" : "") + s + "]==]";
}

}  // namespace hoist::test

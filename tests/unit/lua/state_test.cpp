// The Lua host through a real VM: the allow-list, locked globals, the error
// boundary, the stop hook, and JSON conversion.
#include "lua/state.h"

#include "core/interrupt.h"
#include "core/secrets.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "support/support.h"

namespace hoist::lua {
namespace {

// Runs `code` and returns its first result as a string (tostring'd).
std::string Eval(State& vm, const std::string& code) {
  vm.LoadChunk(code, "=test");
  Call(vm.get(), 0, 1);
  size_t n = 0;
  const char* s = luaL_tolstring(vm.get(), -1, &n);
  std::string out(s, n);
  lua_pop(vm.get(), 2);
  return out;
}

ScriptError EvalError(State& vm, const std::string& code) {
  try {
    Eval(vm, code);
  } catch (const ScriptError& e) {
    return e;
  }
  FAIL("no error raised by: " << code);
  return ScriptError("", "", "", "", "");
}

int l_throws(lua_State*) {
  std::string owned = "a C++ string alive when the error happens";
  (void)owned;
  throw Error("db", "not_found", "no such table: users");
}

int l_needs_string(lua_State* L) {
  std::string s = CheckString(L, 1, "name");
  PushString(L, s + "!");
  return 1;
}

TEST_SUITE("lua/state") {

TEST_CASE("dangerous globals are not reachable") {
  State vm;
  CHECK(Eval(vm, "return type(rawget(_G, 'io'))") == "nil");
  CHECK(Eval(vm, "return type(rawget(_G, 'debug'))") == "nil");
  CHECK(Eval(vm, "return type(rawget(_G, 'load'))") == "nil");
  CHECK(Eval(vm, "return type(rawget(_G, 'dofile'))") == "nil");
  CHECK(Eval(vm, "return type(os.execute)") == "nil");
  CHECK(Eval(vm, "return type(os.exit)") == "nil");
  CHECK(Eval(vm, "return type(string.dump)") == "nil");
  CHECK(Eval(vm, "return type(package.loadlib)") == "nil");
  CHECK(Eval(vm, "return type(os.time)") == "function");
  CHECK(EvalError(vm, "return require 'io'").message().find("no module 'io'") != std::string::npos);
}

TEST_CASE("undeclared globals cannot be read or written") {
  State vm;
  CHECK(EvalError(vm, "return undefined_thing").message() ==
        "test:1: undeclared global 'undefined_thing' (playbooks cannot read globals that do not exist; declare a local)");
  CHECK(EvalError(vm, "newglobal = 1").message() == "test:1: assignment to undeclared global 'newglobal' (use a local)");
  CHECK(Eval(vm, "local x = 1; return x + 1") == "2");
}

TEST_CASE("bytecode is refused") {
  State vm;
  // A precompiled chunk starts with "\x1bLua".
  CHECK_THROWS_AS(vm.LoadChunk(std::string("\x1bLuaT\x00", 6), "=bytecode"), ScriptError);
}

TEST_CASE("the stdlib is served from the embedded copy") {
  State vm;
  CHECK(Eval(vm, "return require('hoist').version") == HOIST_VERSION);
  CHECK(Eval(vm, "return type(require('hoist.fs').write_atomic)") == "function");
}

TEST_CASE("a C++ exception becomes a structured Lua error with the caller's position") {
  State vm;
  lua_pushcfunction(vm.get(), Protect<l_throws>);
  lua_setfield(vm.get(), LUA_REGISTRYINDEX, "throws");
  lua_pushcfunction(vm.get(), Protect<l_needs_string>);
  lua_setfield(vm.get(), LUA_REGISTRYINDEX, "needs_string");
  // Reach the functions without globals: through a chunk argument.
  vm.LoadChunk("local throws = ...\nlocal ok, e = pcall(function() throws() end)\nreturn e.area .. '|' .. e.code .. '|' .. tostring(e)", "=t");
  lua_getfield(vm.get(), LUA_REGISTRYINDEX, "throws");
  Call(vm.get(), 1, 1);
  CHECK(std::string(lua_tostring(vm.get(), -1)) == "db|not_found|t:2: db: no such table: users");
  lua_pop(vm.get(), 1);
  vm.LoadChunk("local f = ...\nreturn f(42)", "=t2");
  lua_getfield(vm.get(), LUA_REGISTRYINDEX, "needs_string");
  try {
    Call(vm.get(), 1, 1);
    FAIL("no error");
  } catch (const ScriptError& e) {
    CHECK(e.Display() == "t2:2: lua: bad argument #1 (name): string expected, got number");
    CHECK(e.code() == "invalid");
    CHECK(e.traceback().find("stack traceback") != std::string::npos);
  }
}

TEST_CASE("an error raised inside hoist's own Lua shows no internal position, the project's keeps it") {
  State vm;
  lua_pushcfunction(vm.get(), Protect<l_throws>);
  lua_setfield(vm.get(), LUA_REGISTRYINDEX, "throws");
  for (const char* chunk : {"@stdlib/hoist/bluegreen.lua", "@hoist:playbooks/deploy.lua", "@playbooks/mine.lua"}) {
    CAPTURE(chunk);
    bool internal = std::string(chunk).find("mine") == std::string::npos;
    vm.LoadChunk("local throws = ...\nlocal ok, e = pcall(function() throws() end)\nreturn tostring(e)", chunk);
    lua_getfield(vm.get(), LUA_REGISTRYINDEX, "throws");
    Call(vm.get(), 1, 1);
    std::string shown = lua_tostring(vm.get(), -1);
    lua_pop(vm.get(), 1);
    CHECK(shown == (internal ? "" : std::string(chunk + 1) + ":2: ") + "db: no such table: users");
    vm.LoadChunk("local throws = ...\nthrows()", chunk);
    lua_getfield(vm.get(), LUA_REGISTRYINDEX, "throws");
    try {
      Call(vm.get(), 1, 0);
      FAIL("no error");
    } catch (const ScriptError& e) {
      CHECK(e.where() == std::string(chunk + 1) + ":2:");  // kept for -v and the journal
      CHECK(e.Display() == (internal ? "" : std::string(chunk + 1) + ":2: ") + "db: no such table: users");
    }
  }
}

TEST_CASE("a timeout cannot be swallowed by pcall") {
  State vm;
  DeadlineScope deadline(std::chrono::milliseconds(50));
  auto e = EvalError(vm, "while true do pcall(function() for i = 1, 100 do end end) end");
  CHECK(e.code() == "timeout");
  CHECK(e.Display() == "test:1: run: step timeout reached");
}

TEST_CASE("an interrupt stops Lua code") {
  State vm;
  RequestInterrupt();
  auto e = EvalError(vm, "local n = 0; while true do n = n + 1 end");
  ClearInterrupt();
  CHECK(e.code() == "interrupted");
  CHECK(Eval(vm, "return 1 + 1") == "2");  // the VM is usable again
}

TEST_CASE("JSON converts both ways with null and empty arrays kept") {
  State vm;
  lua_State* L = vm.get();
  json in = {{"a", 1}, {"b", 2.5}, {"s", "x"}, {"t", true}, {"n", nullptr}, {"arr", {1, 2}}, {"empty", json::array()},
             {"obj", {{"k", "v"}}}};
  PushJson(L, in);
  CHECK(ToJson(L, -1) == in);
  lua_pop(L, 1);
  CHECK(Eval(vm, "local j = require 'hoist.json'; return j.encode(j.decode('{\"x\":[1,null,{}],\"y\":[]}'))") ==
        R"({"x":[1,null,{}],"y":[]})");
  CHECK(EvalError(vm, "local j = require 'hoist.json'; return j.decode('{bad')").message().find("cannot decode: ") !=
        std::string::npos);
}

TEST_CASE("secrets are masked and a missing one is a clear error") {
  ClearSecrets();
  ::setenv("HOIST_TEST_SECRET", "correct-horse-battery", 1);
  State vm;
  CHECK(Eval(vm, "local h = require 'hoist'; local s = h.secret('HOIST_TEST_SECRET'); return h.mask('pw=' .. s)") ==
        "pw=***");
  CHECK(Mask("x correct-horse-battery y") == "x *** y");
  ::unsetenv("HOIST_TEST_SECRET");
  auto e = EvalError(vm, "return require('hoist').secret('HOIST_TEST_MISSING')");
  CHECK(e.code() == "not_found");
  ClearSecrets();
}

TEST_CASE("option tables reject unknown keys") {
  State vm;
  auto e = EvalError(vm, "return require('hoist.proc').run({'true'}, { tiemout = 1 })");
  CHECK(e.message() ==
        "unknown option 'tiemout' for proc.run (expected one of: env, cwd, stdin, timeout, kill_grace, check, "
        "inherit_env, capture, max_output)");
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::lua

// The boundary's own helpers read option tables raw: a strict table (whose
// __index raises on unknown keys) must get a hoist error, not a longjmp over
// the binding's live C++ objects.
#include <unistd.h>

#include <fstream>

#include "lua/boundary.h"
#include "lua/check.h"
#include "lua/state.h"
#include "support/support.h"

namespace hoist::lua {
namespace {

// Resident set size of this process, in bytes.
long ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// Under ASan every leaked allocation costs more and each call is slower.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kCalls = 2000;
#else
constexpr int kCalls = 20000;
#endif

TEST_SUITE("lua/check") {

TEST_CASE("a strict options table gets the option error and leaks nothing") {
  State vm;
  // A bad `timeout` the binding must report, and an __index that raises on
  // every key it was not given (cwd, stdin, ...) as strict-mode tables do.
  vm.LoadChunk(R"lua(
    local proc = require "hoist.proc"
    local strict = setmetatable({ timeout = "soon" }, {
      __index = function(_, k) error("strict: no option '" .. tostring(k) .. "'", 2) end,
    })
    local n = ...
    local bad
    for _ = 1, n do
      local ok, err = pcall(proc.run, { "true" }, strict)
      -- No break: every call must go through the binding, so a leak shows.
      if not bad and (ok or type(err) ~= "table" or err.message ~= "bad option 'timeout': number expected, got string") then
        bad = tostring(err)
      end
    end
    return bad
  )lua", "=strict");
  lua_State* L = vm.get();
  auto run = [&](int n) {
    lua_pushvalue(L, -1);
    lua_pushinteger(L, n);
    Call(L, 1, 1);
    std::string bad = lua_isnil(L, -1) ? "" : lua_tostring(L, -1);
    lua_pop(L, 1);
    lua_gc(L, LUA_GCCOLLECT);
    return bad;
  };
  CHECK(run(200) == "");  // warms the allocator and the string caches up
  long before = ResidentBytes();
  std::string bad = run(kCalls);
  long grown = ResidentBytes() - before;

  CHECK(bad == "");
  CHECK_MESSAGE(grown < 50L * 1024 * 1024, "RSS grew by " << grown / 1024 << " KiB over " << kCalls << " calls");
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::lua

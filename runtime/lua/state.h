// The Lua VM of one run: allow-listed and locked globals, the require
// searcher for native modules, the embedded stdlib and the project's own Lua
// dirs, text-only chunk loading, and the hook for timeouts and Ctrl-C.
#pragma once

#include <lua.hpp>

#include <memory>
#include <string>
#include <vector>

namespace hoist::lua {

/// The VM's memory bound: a default no real playbook meets (a runaway loop
/// that doubles a string reached 24 GB before the OOM killer).
constexpr size_t kDefaultMemoryLimit = size_t{1024} * 1024 * 1024;

/// Sets the most memory L's allocator hands out (bytes); an allocation past
/// it fails as "not enough memory", which the error boundary reports as the
/// limit with the playbook's file:line.
void SetMemoryLimit(lua_State* L, size_t bytes);
/// The limit, and whether an allocation hit it since last asked (clears it).
size_t MemoryLimit(lua_State* L);
bool MemoryLimitHit(lua_State* L);
/// "playbooks/x.lua:12:": the line that ran when the limit was last hit.
std::string MemoryLimitWhere(lua_State* L);

struct StateOptions {
  /// Overrides the embedded stdlib (development); default: $HOIST_STDLIB_PATH.
  std::string stdlib_path;
  /// Extra dirs searched by require ("?.lua" and "?/init.lua" in each).
  std::vector<std::string> lua_path;
};

/// Owns a lua_State. Globals are allow-listed: no io, debug, load, dofile,
/// loadfile, os.exit, os.execute, os.remove, io.popen. Reading or writing
/// an undeclared global raises an error.
class State {
 public:
  explicit State(StateOptions options = {});
  ~State();
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  lua_State* get() const { return L_; }

  /// [-0, +1, -] Loads a text chunk (never bytecode) named `chunkname`
  /// ("@playbooks/x.lua" style). Throws ScriptError on a syntax error.
  void LoadChunk(std::string_view source, const std::string& chunkname);
  /// [-0, +1, -] Loads a file as a text chunk; display_path names it in errors.
  void LoadFile(const std::string& path, const std::string& display_path);

  struct Memory;  ///< the allocator's accounting (state.cpp)

 private:
  std::unique_ptr<Memory> memory_;  // before L_: the allocator's state outlives the VM
  lua_State* L_;
};

}  // namespace hoist::lua

// The Lua VM of one run: allow-listed and locked globals, the require
// searcher for native modules, the embedded stdlib and the project's own Lua
// dirs, text-only chunk loading, and the hook for timeouts and Ctrl-C.
#pragma once

#include <lua.hpp>

#include <string>
#include <vector>

namespace hoist::lua {

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

  /// [-0, +1, -] require(name) through the VM's own searchers.
  void Require(const std::string& name);

 private:
  lua_State* L_;
};

}  // namespace hoist::lua

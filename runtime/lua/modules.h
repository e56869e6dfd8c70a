// The one table of native modules (luaopen_hoist_<name>), served to require
// by State's searcher before the Lua stdlib.
#pragma once

#include <lua.hpp>

#include <span>
#include <string_view>

namespace hoist::lua {

struct NativeModule {
  std::string_view name;   // "hoist.fs"
  lua_CFunction open;
};

std::span<const NativeModule> NativeModules();

}  // namespace hoist::lua

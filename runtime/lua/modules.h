// The table of native modules (luaopen_hoist_<name>) that State's searcher
// serves to require before the Lua stdlib. lua/ knows no binding: the host
// hands the table over once, before its first State (app/modules).
#pragma once

#include <lua.hpp>

#include <span>
#include <string_view>

namespace hoist::lua {

struct NativeModule {
  std::string_view name;   // "hoist.fs"
  lua_CFunction open;
};

/// The modules require serves natively from now on (the span must outlive
/// every State).
void SetNativeModules(std::span<const NativeModule> modules);
std::span<const NativeModule> NativeModules();

}  // namespace hoist::lua

// hoist's native Lua modules, one binding file each (bind/modules.h), as
// the table the VM serves to require.
#pragma once

namespace hoist::app {

/// Hands the table to the VM (lua::SetNativeModules); call once before the
/// first lua::State (the CLI's Main, a test executable's main).
void InstallNativeModules();

}  // namespace hoist::app

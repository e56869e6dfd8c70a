// proc.service: the constructor of local process services, defined in
// bind/service.cpp and also exported by hoist.proc (bind/proc.cpp).
#pragma once

#include <lua.hpp>

namespace hoist::bind {

/// [-0, +1, e] proc.service{ name, argv, env, cwd, port, host, pid_file,
/// log_file, stop_grace } -> a hoist.service.Service (already Protect-wrapped).
int ServiceNew(lua_State* L);

}  // namespace hoist::bind

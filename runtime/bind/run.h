// The run object a playbook's run function receives: run:step (journaled,
// with retries, timeout and undo), run:confirm, run:remember / recall /
// facts, run:history and run:lease. The run itself is app/run.
#pragma once

#include <lua.hpp>

#include <cstdint>
#include <string>

namespace hoist::bind {

/// [-0, +1] The run object for run run_id of playbook@version; env_idx and
/// params_idx are its environment table and params.
void PushRunObject(lua_State* L, int64_t run_id, const std::string& playbook, const std::string& version, int env_idx,
                   int params_idx, bool sandbox);

}  // namespace hoist::bind

// The shape of hoist.lua, checked as a whole before anything runs: every key
// hoist or a canned playbook reads (nested ones included) by name and type,
// with a did-you-mean for a misspelt one. Environment tables stay open for a
// playbook's own keys, except names one typo away from hoist's (`databse`).
#pragma once

#include <nlohmann/json.hpp>

namespace hoist::engine {

/// config: hoist.lua's table as JSON (functions as "<function>" strings).
/// Throws Error{"config","invalid"} naming the first problem's key path,
/// e.g. "hoist.lua: environments.prod.app.colors: unknown key (did you mean
/// 'colours'? app takes: kind, argv, ...)". Never echoes a value (it may be
/// a secret): only key paths, types and allowed names.
void CheckConfig(const nlohmann::json& config);

}  // namespace hoist::engine

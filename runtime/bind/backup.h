// hoist.backup helpers other bindings share: the safety backup hoist itself
// takes before an operation that can destroy data.
#pragma once

#include <lua.hpp>

#include <string>

#include "db/connection.h"

namespace hoist::bind {

/// Before `what` (a contract or destructive migration, a migrate down) on
/// conn: a safety backup of conn's database taken in this run at its current
/// migration version (backup.create{safety = true}, or an earlier call), or
/// else one taken now in the environment's backups dir (label
/// "pre-destructive", verified by the copy's integrity check, journaled).
/// No-op outside a run and for a database without tables of its own.
void EnsureSafetyBackup(lua_State* L, db::Connection& conn, const std::string& what);

/// Notes that a safety backup of conn's database was just taken in this run.
void RecordSafetyBackup(lua_State* L, db::Connection& conn);

}  // namespace hoist::bind

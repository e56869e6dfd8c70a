// hoist.db binding helpers other bindings share (hoist.backup takes a
// connection argument).
#pragma once

#include <lua.hpp>

#include "db/connection.h"

namespace hoist::bind {

struct DbHandle;

/// The open connection of the "hoist.db.Connection" userdata at idx.
/// Throws Error{"lua","invalid","bad argument #idx (connection): ..."} for
/// another value and Error{"db","closed",...} for a closed connection.
/// The reference stays valid while the userdata is on the stack and the
/// caller runs no Lua code that could close it (use ConnectionUse for that).
db::Connection& CheckConnection(lua_State* L, int idx);

/// RAII: marks the connection at idx in use, so a close() from Lua code run
/// meanwhile (a callback) is deferred until the use ends.
class ConnectionUse {
 public:
  ConnectionUse(lua_State* L, int idx);
  ~ConnectionUse();
  ConnectionUse(const ConnectionUse&) = delete;
  ConnectionUse& operator=(const ConnectionUse&) = delete;
  db::Connection& get() const { return conn_; }

 private:
  DbHandle* handle_;
  db::Connection& conn_;
};

}  // namespace hoist::bind

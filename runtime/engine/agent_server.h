// The agent's side of the agent protocol (net/agent_protocol.h): serves
// World calls, and the database-file operations that must run where the
// SQLite file lives (backup, verify, integrity check, and the db.* methods
// of a connection opened there: engine/remote_db), on the world of the
// host it runs on. `hoist agent --stdio` (app/agent) runs it on stdin and
// stdout; tests run it on a pipe pair.
#pragma once

#include <string>

#include "engine/world.h"

namespace hoist::engine {

struct AgentServerOptions {
  /// The version this agent says it is in its hello (tests give another).
  std::string hoist_version = HOIST_VERSION;
  /// How this host is named in messages ("" = its hostname).
  std::string host_name;
};

/// Answers one conversation: a hello first (a client of another protocol
/// or hoist version gets a version_mismatch error in the hello and the
/// conversation ends), then each call in order, until EOF on in_fd. A
/// call's hoist::Error goes back with its area, code and message; an
/// unknown method is Error{"agent","unknown_method"} naming it. Returns 0
/// after a clean EOF, 2 after a protocol error or a mismatched hello (its
/// reason logged to stderr). Nothing but frames is written to out_fd.
int ServeAgent(int in_fd, int out_fd, World& world, const AgentServerOptions& options = {});

}  // namespace hoist::engine

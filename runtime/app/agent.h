// `hoist agent --stdio`: the agent another hoist starts on this host over
// ssh (engine/agent_server on the real world of this machine). Frames on
// stdin and stdout only; logs and anything a stray write produces go to
// stderr, which ssh carries back to the hoist that started it.
#pragma once

namespace hoist::app {

/// Serves one conversation on stdin/stdout; returns the exit code (0 after
/// a clean end, 2 after a protocol error or a version mismatch).
int RunAgentStdio();

}  // namespace hoist::app

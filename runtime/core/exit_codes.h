// Process exit codes, documented in docs/cli.md. Scripts depend on them.
#pragma once

namespace hoist {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;        // run failed, undo completed
inline constexpr int kExitUsage = 2;         // usage or validation error, nothing ran
inline constexpr int kExitUndoFailed = 3;    // run failed and an undo failed
inline constexpr int kExitLeaseHeld = 4;     // another run holds the environment's lease
inline constexpr int kExitInterrupted = 130; // SIGINT / SIGTERM

}  // namespace hoist

// Process-wide cancellation: the SIGINT/SIGTERM flag and the current step
// deadline. Long-running primitives poll StopReason() / ThrowIfStopped() so Ctrl-C and step
// timeouts reach a child process or a sleep, not only Lua code.
#pragma once

#include <chrono>
#include <string>

namespace hoist {

using Clock = std::chrono::steady_clock;

/// Installs SIGINT/SIGTERM handlers that set the interrupt flag.
void InstallInterruptHandlers();
/// True once SIGINT/SIGTERM arrived (or RequestInterrupt was called).
bool Interrupted();
void RequestInterrupt();
void ClearInterrupt();

/// The innermost active deadline (Clock::time_point::max() when none).
Clock::time_point CurrentDeadline();

/// RAII: narrows the current deadline for its lifetime (never widens it).
class DeadlineScope {
 public:
  explicit DeadlineScope(Clock::duration timeout);
  ~DeadlineScope();
  DeadlineScope(const DeadlineScope&) = delete;
  DeadlineScope& operator=(const DeadlineScope&) = delete;

 private:
  Clock::time_point saved_;
};

/// Why a long operation must stop now: "" to go on, else "interrupted" or "timeout".
std::string StopReason();

/// Throws hoist::Error{area, "interrupted"|"timeout", ...} when StopReason() is set.
void ThrowIfStopped(const std::string& area);

}  // namespace hoist

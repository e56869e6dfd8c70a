#include "core/interrupt.h"

#include <atomic>
#include <csignal>

#include "core/error.h"

namespace hoist {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
thread_local Clock::time_point t_deadline = Clock::time_point::max();

void OnSignal(int) { g_interrupted = 1; }

}  // namespace

void InstallInterruptHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A file-size limit (ulimit -f) must surface as a failed write (EFBIG)
  // that the journal and backups handle, not kill hoist mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
}

bool Interrupted() { return g_interrupted != 0; }
void RequestInterrupt() { g_interrupted = 1; }
void ClearInterrupt() { g_interrupted = 0; }

Clock::time_point CurrentDeadline() { return t_deadline; }

DeadlineScope::DeadlineScope(Clock::duration timeout) : saved_(t_deadline) {
  auto d = Clock::now() + timeout;
  if (d < t_deadline) t_deadline = d;
}

DeadlineScope::~DeadlineScope() { t_deadline = saved_; }

std::string StopReason() {
  if (Interrupted()) return "interrupted";
  if (t_deadline != Clock::time_point::max() && Clock::now() >= t_deadline) return "timeout";
  return "";
}

void ThrowIfStopped(const std::string& area) {
  auto reason = StopReason();
  if (reason == "interrupted") throw Error(area, "interrupted", "interrupted (Ctrl-C)");
  if (reason == "timeout") throw Error(area, "timeout", "step timeout reached");
}

}  // namespace hoist

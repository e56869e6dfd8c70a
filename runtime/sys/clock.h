// Wall-clock helpers: UTC timestamps for journals and file names.
#pragma once

#include <chrono>
#include <string>

namespace hoist::sys {

/// Seconds since the epoch, with sub-second precision.
double NowEpoch();
/// "2026-11-21T10:15:00.123Z"
std::string IsoUtc(double epoch);
inline std::string NowIso() { return IsoUtc(NowEpoch()); }
/// Monotonic seconds (for durations).
double Monotonic();
/// Seconds elapsed on the steady clock since t0.
inline double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace hoist::sys

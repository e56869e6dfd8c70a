#include "sys/clock.h"

#include <chrono>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

namespace hoist::sys {

double NowEpoch() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string IsoUtc(double epoch) {
  auto secs = static_cast<time_t>(std::floor(epoch));
  int ms = static_cast<int>((epoch - static_cast<double>(secs)) * 1000.0);
  if (ms > 999) ms = 999;
  struct tm tm {};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

double Monotonic() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace hoist::sys

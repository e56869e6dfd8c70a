#include "engine/state_rows.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/secrets.h"
#include "sys/clock.h"

namespace hoist::engine::rows {

std::string ExactJson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string MaskedJson(const json& j) { return Mask(ExactJson(j)); }

json ParseStored(const std::string& s) {
  if (s.empty()) return nullptr;
  return json::parse(s, nullptr, false);
}

std::string KilledReason(int64_t pid, const std::string& host, const std::string& by_operator,
                         const std::string& by_host) {
  return fmt::format("its process (pid {}) is gone on {}: the run was killed; found by {}@{}", pid, host, by_operator,
                     by_host);
}

std::string TakeoverReason(const Lease& cur, const Lease& want, bool expired) {
  if (!expired) {
    return fmt::format("its process (pid {}) is gone on {}: the run was killed; taken over by {}@{} at {}", cur.pid,
                       cur.host, want.owner, want.host, sys::NowIso());
  }
  return fmt::format("lease expired at {}: the run stopped heart-beating (killed or host down); taken over by {}@{}",
                     sys::IsoUtc(cur.expires_at), want.owner, want.host);
}

std::string ForceReleasedReason(const std::string& by, const std::string& reason) {
  return Mask(fmt::format("its lease was released with --force by {}{}", by.empty() ? "an operator" : by,
                          reason.empty() ? "" : ": " + reason));
}

}  // namespace hoist::engine::rows

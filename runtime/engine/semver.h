// Semantic versions of playbooks and the `requires = { hoist = ">=0.1" }`
// check, modelled on ninja's CheckNinjaVersion().
#pragma once

#include <optional>
#include <string>

namespace hoist::engine {

struct Semver {
  int major = 0, minor = 0, patch = 0;
  std::string pre;  // "rc.1"
  auto operator<=>(const Semver& o) const {
    if (auto c = major <=> o.major; c != 0) return c;
    if (auto c = minor <=> o.minor; c != 0) return c;
    if (auto c = patch <=> o.patch; c != 0) return c;
    if (pre == o.pre) return std::strong_ordering::equal;
    if (pre.empty()) return std::strong_ordering::greater;  // 1.0.0 > 1.0.0-rc
    if (o.pre.empty()) return std::strong_ordering::less;
    return pre <=> o.pre;
  }
  bool operator==(const Semver& o) const = default;
};

/// Strict "MAJOR.MINOR.PATCH[-pre][+build]"; nullopt when malformed.
std::optional<Semver> ParseSemver(const std::string& s);
/// Lenient for constraints: "0.1" means 0.1.0.
std::optional<Semver> ParseVersionLoose(const std::string& s);

/// Checks `version` against a constraint list such as ">=0.1, <1.0",
/// "^0.2", "~1.2.3", "=0.1.0" or "0.1.0". Throws Error{"playbook",
/// "invalid",...} on a malformed constraint; returns false when unmet.
bool SatisfiesConstraint(const Semver& version, const std::string& constraint);

}  // namespace hoist::engine

#include "engine/semver.h"

#include <cctype>
#include <regex>
#include <sstream>

#include "core/error.h"

namespace hoist::engine {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

}  // namespace

std::optional<Semver> ParseSemver(const std::string& s) {
  static const std::regex re(R"(^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$)");
  std::smatch m;
  if (!std::regex_match(s, m, re)) return std::nullopt;
  Semver v;
  v.major = std::stoi(m[1]);
  v.minor = std::stoi(m[2]);
  v.patch = std::stoi(m[3]);
  v.pre = m[4];
  return v;
}

std::optional<Semver> ParseVersionLoose(const std::string& s) {
  static const std::regex re(R"(^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?$)");
  std::smatch m;
  if (!std::regex_match(s, m, re)) return std::nullopt;
  Semver v;
  v.major = std::stoi(m[1]);
  v.minor = m[2].matched ? std::stoi(m[2]) : 0;
  v.patch = m[3].matched ? std::stoi(m[3]) : 0;
  v.pre = m[4];
  return v;
}

bool SatisfiesConstraint(const Semver& version, const std::string& constraint) {
  std::stringstream ss(constraint);
  std::string part;
  bool any = false;
  while (std::getline(ss, part, ',')) {
    part = Trim(part);
    if (part.empty()) continue;
    any = true;
    std::string op;
    size_t i = 0;
    while (i < part.size() && std::string("<>=^~!").find(part[i]) != std::string::npos) op += part[i++];
    auto v = ParseVersionLoose(Trim(part.substr(i)));
    if (!v) {
      throw Error("playbook", "invalid", "malformed version constraint '" + part + "' (expected e.g. \">=0.1\")");
    }
    bool ok;
    if (op == ">=") {
      ok = version >= *v;
    } else if (op == ">") {
      ok = version > *v;
    } else if (op == "<=") {
      ok = version <= *v;
    } else if (op == "<") {
      ok = version < *v;
    } else if (op == "=" || op == "==" || op.empty()) {
      ok = version == *v;
    } else if (op == "!=") {
      ok = !(version == *v);
    } else if (op == "^") {
      Semver upper = v->major > 0 ? Semver{v->major + 1, 0, 0, ""} : Semver{0, v->minor + 1, 0, ""};
      ok = version >= *v && version < upper;
    } else if (op == "~") {
      ok = version >= *v && version < Semver{v->major, v->minor + 1, 0, ""};
    } else {
      throw Error("playbook", "invalid", "unknown operator '" + op + "' in version constraint '" + part + "'");
    }
    if (!ok) return false;
  }
  if (!any) throw Error("playbook", "invalid", "empty version constraint");
  return true;
}

}  // namespace hoist::engine

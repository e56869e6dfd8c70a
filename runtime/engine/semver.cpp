#include "engine/semver.h"

#include <cctype>
#include <sstream>

#include "core/error.h"
#include "core/strings.h"

namespace hoist::engine {
namespace {

}  // namespace

namespace {

// Reads a numeric identifier at s[*i] (no leading zeros unless "0").
bool Number(const std::string& s, size_t* i, int* out) {
  size_t start = *i;
  while (*i < s.size() && s[*i] >= '0' && s[*i] <= '9') ++*i;
  size_t n = *i - start;
  if (n == 0 || n > 9 || (n > 1 && s[start] == '0')) return false;
  *out = std::stoi(s.substr(start, n));
  return true;
}

bool Ident(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// parts: how many of MAJOR.MINOR.PATCH are required (3 strict, 1 loose).
std::optional<Semver> Parse(const std::string& s, int required, bool allow_build) {
  Semver v;
  int* fields[] = {&v.major, &v.minor, &v.patch};
  size_t i = 0;
  for (int f = 0; f < 3; ++f) {
    if (f > 0) {
      if (i >= s.size() || s[i] != '.') {
        if (f < required) return std::nullopt;
        break;
      }
      ++i;
    }
    if (!Number(s, &i, fields[f])) return std::nullopt;
  }
  if (i < s.size() && s[i] == '-') {
    size_t end = s.find('+', i);
    v.pre = s.substr(i + 1, end == std::string::npos ? std::string::npos : end - i - 1);
    if (!Ident(v.pre)) return std::nullopt;
    i = end == std::string::npos ? s.size() : end;
  }
  if (i < s.size() && s[i] == '+' && allow_build) {
    if (!Ident(s.substr(i + 1))) return std::nullopt;
    i = s.size();
  }
  if (i != s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<Semver> ParseSemver(const std::string& s) { return Parse(s, 3, true); }

std::optional<Semver> ParseVersionLoose(const std::string& s) { return Parse(s, 1, false); }

bool SatisfiesConstraint(const Semver& version, const std::string& constraint) {
  std::stringstream ss(constraint);
  std::string part;
  bool any = false;
  while (std::getline(ss, part, ',')) {
    part = Trim(part, " \t");
    if (part.empty()) continue;
    any = true;
    std::string op;
    size_t i = 0;
    while (i < part.size() && std::string("<>=^~!").find(part[i]) != std::string::npos) op += part[i++];
    auto v = ParseVersionLoose(Trim(part.substr(i), " \t"));
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

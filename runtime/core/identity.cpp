#include "core/identity.h"

#include <limits.h>
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

namespace hoist {

std::string OperatorName() {
  for (const char* var : {"HOIST_OPERATOR", "SUDO_USER", "USER", "LOGNAME"}) {
    if (const char* v = std::getenv(var); v && *v) return v;
  }
  if (const passwd* pw = getpwuid(getuid())) return pw->pw_name;
  return "uid" + std::to_string(getuid());
}

std::string HostName() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string OperatorAtHost() { return OperatorName() + "@" + HostName(); }

}  // namespace hoist

#include "sys/dynlib.h"

#include <dlfcn.h>

#include "core/error.h"

namespace hoist::sys {

DynLib::DynLib(std::initializer_list<const char*> sonames, const std::string& area, const std::string& what,
               const std::string& package)
    : area_(area) {
  std::string last_error;
  for (const char* so : sonames) {
    handle_ = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (handle_) {
      soname_ = so;
      return;
    }
    const char* e = dlerror();
    last_error = e ? e : "unknown error";
  }
  std::string first = sonames.size() ? *sonames.begin() : "?";
  throw Error(area, "unavailable",
              what + " needs " + first + " (install the Debian package " + package + "): " + last_error);
}

DynLib::~DynLib() {
  if (handle_) dlclose(handle_);
}

void* DynLib::Symbol(const char* name) const {
  dlerror();
  void* p = dlsym(handle_, name);
  if (!p) {
    const char* e = dlerror();
    throw Error(area_, "unavailable", soname_ + " has no symbol " + name + (e ? std::string(": ") + e : ""));
  }
  return p;
}

}  // namespace hoist::sys

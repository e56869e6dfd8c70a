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

// Never dlclose: libpq pulls in libraries with thread-local storage and
// exit handlers (krb5, gnutls); unloading them at static destruction left
// stale TLS that the leak checker then read and crashed on. The process
// keeps them until it exits.
DynLib::~DynLib() = default;

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

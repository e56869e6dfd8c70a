// Loads a shared library on first use. libpq and libcurl pull in ~30 shared
// libraries whose loading would cost ~7 ms on every `hoist run`
// (docs/performance.md); a playbook that never touches PostgreSQL or Docker
// must not pay for them.
#pragma once

#include <initializer_list>
#include <string>

namespace hoist::sys {

class DynLib {
 public:
  /// Tries each soname in turn (e.g. {"libpq.so.5"}). Throws
  /// Error{area, "unavailable", "<what> needs <soname> (install the Debian
  /// package <package>): <dlerror>"} when none loads.
  DynLib(std::initializer_list<const char*> sonames, const std::string& area, const std::string& what,
         const std::string& package);
  ~DynLib();
  DynLib(const DynLib&) = delete;
  DynLib& operator=(const DynLib&) = delete;

  /// The symbol's address; throws Error{area, "unavailable", ...} if missing.
  void* Symbol(const char* name) const;

  /// Typed: auto f = lib.Get<decltype(&PQconnectdb)>("PQconnectdb");
  template <typename Fn>
  Fn Get(const char* name) const {
    return reinterpret_cast<Fn>(Symbol(name));
  }

 private:
  void* handle_ = nullptr;
  std::string area_;
  std::string soname_;
};

}  // namespace hoist::sys

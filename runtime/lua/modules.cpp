#include "lua/modules.h"

#include "bind/modules.h"

namespace hoist::lua {

std::span<const NativeModule> NativeModules() {
  static const NativeModule kModules[] = {
      {"hoist.core", bind::OpenCore},     {"hoist.json", bind::OpenJson}, {"hoist.log", bind::OpenLog},
      {"hoist.time", bind::OpenTime},     {"hoist.crypto", bind::OpenCrypto},
      {"hoist.proc", bind::OpenProc},     {"hoist.fs", bind::OpenFs},
      {"hoist.db", bind::OpenDb},
      {"hoist.service", bind::OpenService},
      {"hoist.traffic", bind::OpenTraffic},
      {"hoist.http", bind::OpenHttp},
      {"hoist.docker", bind::OpenDocker},
      {"hoist.backup", bind::OpenBackup},
      {"hoist.migrate", bind::OpenMigrate},
      {"hoist.sandbox", bind::OpenSandbox},
  };
  return kModules;
}

}  // namespace hoist::lua

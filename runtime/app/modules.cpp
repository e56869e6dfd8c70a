#include "app/modules.h"

#include "bind/modules.h"
#include "lua/modules.h"

namespace hoist::app {

void InstallNativeModules() {
  static const lua::NativeModule kModules[] = {
      {"hoist.core", bind::OpenCore},       {"hoist.json", bind::OpenJson},       {"hoist.log", bind::OpenLog},
      {"hoist.time", bind::OpenTime},       {"hoist.crypto", bind::OpenCrypto},   {"hoist.proc", bind::OpenProc},
      {"hoist.fs", bind::OpenFs},           {"hoist.db", bind::OpenDb},           {"hoist.service", bind::OpenService},
      {"hoist.traffic", bind::OpenTraffic}, {"hoist.http", bind::OpenHttp},       {"hoist.docker", bind::OpenDocker},
      {"hoist.backup", bind::OpenBackup},   {"hoist.migrate", bind::OpenMigrate}, {"hoist.sandbox", bind::OpenSandbox},
      {"hoist.hosts", bind::OpenHosts},
  };
  lua::SetNativeModules(kModules);
}

}  // namespace hoist::app

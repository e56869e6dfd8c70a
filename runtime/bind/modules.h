// luaopen_* functions of the native modules (one binding file each); the
// table that serves them to require is in lua/modules.cpp.
#pragma once

#include <lua.hpp>

namespace hoist::bind {

int OpenCore(lua_State* L);    // hoist.core
int OpenJson(lua_State* L);    // hoist.json
int OpenLog(lua_State* L);     // hoist.log
int OpenTime(lua_State* L);    // hoist.time
int OpenCrypto(lua_State* L);  // hoist.crypto
int OpenProc(lua_State* L);    // hoist.proc
int OpenFs(lua_State* L);      // hoist.fs
int OpenDb(lua_State* L);  // hoist.db
int OpenService(lua_State* L);  // hoist.service (proc.service)
int OpenTraffic(lua_State* L);  // hoist.traffic (internal to hoist.nginx/hoist.health)
int OpenHttp(lua_State* L);    // hoist.http
int OpenDocker(lua_State* L);  // hoist.docker
int OpenBackup(lua_State* L);  // hoist.backup
int OpenMigrate(lua_State* L);  // hoist.migrate
int OpenSandbox(lua_State* L);  // hoist.sandbox (internal to hoist.testing)
int OpenHosts(lua_State* L);    // hoist.hosts (also run:hosts, run:on, run:each)

}  // namespace hoist::bind

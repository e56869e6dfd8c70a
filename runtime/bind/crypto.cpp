// hoist.crypto: sha256 of a string or (streamed) of a file, via OpenSSL.
#include <lua.hpp>

#include "bind/modules.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/sha256.h"

namespace hoist::bind {
namespace {

int l_sha256(lua_State* L) {
  std::string data = lua::CheckString(L, 1, "data");
  lua::PushString(L, sys::Sha256Hex(data));
  return 1;
}

int l_sha256_file(lua_State* L) {
  std::string path = lua::CheckString(L, 1, "path");
  lua::PushString(L, sys::Sha256FileHex(path));
  return 1;
}

}  // namespace

int OpenCrypto(lua_State* L) {
  const luaL_Reg fns[] = {{"sha256", lua::Protect<l_sha256>},
                          {"sha256_file", lua::Protect<l_sha256_file>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind

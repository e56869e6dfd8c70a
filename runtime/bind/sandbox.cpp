// hoist.sandbox, the native half of hoist.testing: sandbox.run runs a
// playbook in a sandbox built from a test's script and hands back the run,
// its journal, the world changes and where the database copy is. The work
// is the host's (app/test_runner installs it in the context).
#include <lua.hpp>

#include "bind/context.h"
#include "bind/modules.h"
#include "core/error.h"
#include "lua/boundary.h"
#include "lua/check.h"

namespace hoist::bind {
namespace {

using json = nlohmann::json;

SandboxHost& HostOf(lua_State* L, const char* fn) {
  Context* ctx = GetContext(L);
  if (!ctx || !ctx->sandbox_host) {
    throw Error("testing", "invalid", std::string(fn) + " needs a project (run it under hoist test)");
  }
  return *ctx->sandbox_host;
}

int l_run(lua_State* L) {
  lua::CheckTable(L, 1, "sandbox spec");
  lua::CheckKeys(L, 1, "sandbox.run",
                 {"playbook", "params", "env", "env_table", "db", "world", "lease", "facts", "yes"});
  SandboxHost& host = HostOf(L, "sandbox.run");
  lua::CheckStringField(L, 1, "playbook");
  json out = host.Run(lua::ToJson(L, 1, /*lenient=*/true));
  lua::PushJson(L, out);
  return 1;
}

/// sandbox.replay(file, db_url) -> { status, recorded_status, calls, divergence? }
int l_replay(lua_State* L) {
  std::string file = lua::CheckString(L, 1, "recording");
  std::string db_url = lua::OptString(L, 2, "db url").value_or("");
  lua::PushJson(L, HostOf(L, "sandbox.replay").Replay(file, db_url));
  return 1;
}

int l_remove(lua_State* L) {
  HostOf(L, "sandbox.remove").Remove(lua::CheckString(L, 1, "dir"));
  return 0;
}

/// sandbox.diff(a, b) -> "- old\n+ new\n" (for readable assertion failures)
int l_diff(lua_State* L) {
  std::string a = lua::CheckString(L, 1, "a");
  std::string b = lua::CheckString(L, 2, "b");
  lua::PushString(L, HostOf(L, "sandbox.diff").Diff(a, b));
  return 1;
}

}  // namespace

int OpenSandbox(lua_State* L) {
  const luaL_Reg fns[] = {{"run", lua::Protect<l_run>},
                          {"remove", lua::Protect<l_remove>},
                          {"replay", lua::Protect<l_replay>},
                          {"diff", lua::Protect<l_diff>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind

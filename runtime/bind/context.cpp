#include "bind/context.h"

namespace hoist::bind {
namespace {
constexpr const char* kKey = "hoist.context";
}

Context* GetContext(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kKey);
  auto* ctx = static_cast<Context*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return ctx;
}

void SetContext(lua_State* L, Context* ctx) {
  lua_pushlightuserdata(L, ctx);
  lua_setfield(L, LUA_REGISTRYINDEX, kKey);
}

engine::World& WorldOf(lua_State* L) {
  if (Context* ctx = GetContext(L); ctx && ctx->world) return *ctx->world;
  static auto real = engine::MakeRealWorld();
  return *real;
}

std::string SandboxPath(lua_State* L, const std::string& path) {
  Context* ctx = GetContext(L);
  if (!ctx || ctx->sandbox_dir.empty() || path.empty()) return path;
  if (path.rfind(ctx->sandbox_dir, 0) == 0) return path;
  std::string abs = path[0] == '/' ? path : ctx->project_root + "/" + path;
  return ctx->sandbox_dir + "/fs" + abs;
}

void RecordWorld(lua_State* L, const std::string& kind, const std::string& name, const nlohmann::json& data,
                 double seconds) {
  if (Context* ctx = GetContext(L); ctx && ctx->runner) ctx->runner->World(kind, name, data, seconds);
}

}  // namespace hoist::bind

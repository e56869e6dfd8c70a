#include "bind/context.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "core/error.h"
#include "engine/notify.h"
#include "sys/clock.h"

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

void RaiseEvent(lua_State* L, const std::string& event, const nlohmann::json& data) {
  const auto& names = engine::NotifyEventNames();
  if (event.rfind("run.", 0) == 0 || std::find(names.begin(), names.end(), event) == names.end()) {
    throw Error("notify", "invalid",
                fmt::format("unknown event '{}': a run raises switch.done, rollback.done or backup.failed "
                            "(run.* come from the run itself)",
                            event));
  }
  Context* ctx = GetContext(L);
  if (!ctx || !ctx->runner) return;
  ctx->events.push_back({{"event", event}, {"at", sys::NowIso()}, {"data", data}});
  ctx->runner->Note("notify", "raised " + event, data);
}

namespace {

constexpr const char* kLoadingKey = "hoist.loading_playbook";

bool Loading(lua_State* L) {
  lua_pushstring(L, kLoadingKey);
  lua_rawget(L, LUA_REGISTRYINDEX);
  bool on = lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  return on;
}

// "proc.run": the running C function's name, found in the loaded module
// that holds it (raw access only: this runs inside a binding).
std::string CurrentFunctionName(lua_State* L) {
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "nf", &ar)) return "a world call";
  std::string name = ar.name ? ar.name : "";
  int fn = lua_gettop(L);
  std::string found;
  lua_pushstring(L, "_LOADED");
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (found.empty() && lua_next(L, -2) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
          if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, fn)) {
            std::string mod = lua_tostring(L, -4);
            if (mod.rfind("hoist.", 0) == 0) mod = mod.substr(6);
            found = mod + "." + lua_tostring(L, -2);
            lua_pop(L, 2);
            break;
          }
          lua_pop(L, 1);
        }
      }
      lua_pop(L, 1);
    }
    if (!found.empty()) lua_pop(L, 1);  // the key lua_next left
  }
  lua_settop(L, fn - 1);
  if (!found.empty()) return found;
  return name.empty() ? "a world call" : name;
}

}  // namespace

void SetLoadingPlaybook(lua_State* L, bool on) {
  lua_pushstring(L, kLoadingKey);
  lua_pushboolean(L, on ? 1 : 0);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

namespace {
thread_local engine::World* t_host_world = nullptr;
}

HostScope::HostScope(engine::World* world) : saved_(t_host_world) { t_host_world = world; }
HostScope::~HostScope() { t_host_world = saved_; }

engine::World& WorldOf(lua_State* L) {
  if (Loading(L)) {
    // Top-level code runs on hoist list, describe and a params error too,
    // unjournaled: nothing of the world may be touched before run().
    throw Error("playbook", "load_time", CurrentFunctionName(L) + " at load time: move it into run");
  }
  if (t_host_world) return *t_host_world;
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

bool Ask(lua_State* L, const std::string& question) {
  Context* ctx = GetContext(L);
  auto note = [&](const char* how, bool answer) {
    if (ctx && ctx->runner) ctx->runner->Note("confirm", question, {{"answer", answer}, {"by", how}});
  };
  if (ctx && ctx->assume_yes) {
    note("--yes", true);
    return true;
  }
  if (!ctx || !ctx->interactive) {
    throw Error("run", "not_confirmed",
                fmt::format("cannot ask \"{}\": no terminal to answer on; pass --yes to confirm", question));
  }
  fmt::print(stderr, "{} [y/N] ", question);
  std::fflush(stderr);
  char buf[64] = {};
  bool yes = std::fgets(buf, sizeof buf, stdin) && (buf[0] == 'y' || buf[0] == 'Y');
  note("prompt", yes);
  return yes;
}

void Confirm(lua_State* L, bool confirmed, const std::string& question) {
  Context* ctx = GetContext(L);
  if (confirmed) {
    if (ctx && ctx->runner) ctx->runner->Note("confirm", question, {{"answer", true}, {"by", "confirm option"}});
    return;
  }
  // The hint names the option too: a playbook that asked already passes it.
  if (!ctx || (!ctx->assume_yes && !ctx->interactive)) {
    throw Error("run", "not_confirmed",
                question + ": needs confirmation: pass --yes, or set confirm = true after run:confirm");
  }
  if (!Ask(L, question)) throw Error("run", "not_confirmed", question + ": not confirmed");
}

}  // namespace hoist::bind

#include "bind/run.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bind/context.h"
#include "bind/hosts.h"
#include "core/error.h"
#include "core/secrets.h"
#include "core/turn.h"
#include "engine/lease.h"
#include "engine/runner.h"
#include "engine/state_store.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/clock.h"

namespace hoist::bind {
namespace {

using json = nlohmann::json;

// A registry reference released with its owner (luaL_unref cannot raise).
struct Ref {
  lua_State* L;
  int ref;
  Ref(lua_State* l, int idx) : L(l) {
    lua_pushvalue(L, idx);
    ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  ~Ref() { luaL_unref(L, LUA_REGISTRYINDEX, ref); }
  void Push() const { lua_rawgeti(L, LUA_REGISTRYINDEX, ref); }
};

int l_step(lua_State* L) {
  Context* ctx = GetContext(L);
  if (!ctx || !ctx->runner) throw Error("run", "invalid", "run:step can only be called while a playbook runs");
  if (!ctx->hook.empty()) {
    throw Error("run", "invalid",
                fmt::format("run:step in the {} hook: the run's steps are over; call what the step would do directly",
                            ctx->hook));
  }
  std::string name = lua::CheckString(L, 2, "step name");
  lua::CheckFunction(L, 3, "step function");
  if (TakingTurns()) {
    // Hosts worked at once share one step stack: their steps would interleave.
    throw Error("run", "invalid",
                fmt::format("run:step(\"{}\") inside run:each: the hosts run at once inside the caller's step; "
                            "return what each host did (run:each journals every host's world calls)",
                            name));
  }
  engine::StepOptions opts;
  std::shared_ptr<Ref> undo_fn;
  if (!lua_isnoneornil(L, 4)) {
    lua::CheckTable(L, 4, "step options");
    lua::CheckKeys(L, 4, "run:step", {"undo", "retries", "timeout", "retry_delay"});
    opts.retries = static_cast<int>(lua::OptIntegerField(L, 4, "retries").value_or(0));
    if (opts.retries < 0) throw Error("run", "invalid", "step option 'retries' must be >= 0");
    opts.retry_delay = lua::OptNumberField(L, 4, "retry_delay").value_or(1.0);
    opts.timeout = lua::OptNumberField(L, 4, "timeout");
    if (opts.timeout && *opts.timeout <= 0) throw Error("run", "invalid", "step option 'timeout' must be > 0 seconds");
    lua::RawField(L, 4, "undo");
    if (!lua_isnil(L, -1)) {
      if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        throw Error("run", "invalid", "step option 'undo' must be a function");
      }
      undo_fn = std::make_shared<Ref>(L, -1);
    }
    lua_pop(L, 1);
  }
  Ref body(L, 3);
  // The step's Lua return value: handed back to the caller and, later, to
  // the undo, which may run after this frame is gone.
  auto result = std::make_shared<std::shared_ptr<Ref>>();
  auto run_body = [&]() -> json {
    result->reset();
    body.Push();
    lua::Call(L, 0, 1);
    *result = std::make_shared<Ref>(L, -1);
    json j = lua::ToJson(L, -1, /*lenient=*/true);
    lua_pop(L, 1);
    return j;
  };
  if (undo_fn) {
    opts.undo = [L, undo_fn, result](const json&) {
      undo_fn->Push();
      if (*result) {
        (*result)->Push();
      } else {
        lua_pushnil(L);
      }
      lua::Call(L, 1, 0);
    };
  }
  ctx->runner->Step(name, run_body, std::move(opts));
  if (*result) {
    (*result)->Push();
  } else {
    lua_pushnil(L);
  }
  return 1;
}

int l_confirm(lua_State* L) {
  std::string question = lua::CheckString(L, 2, "question");
  lua_pushboolean(L, Ask(L, question));
  return 1;
}

// run:print(...): the playbook's report, on stdout (a "message" event in
// --json), masked and journaled; log.* lines are diagnostics on stderr.
int l_print(lua_State* L) {
  std::string text;
  for (int i = 2, n = lua_gettop(L); i <= n; ++i) {
    if (i > 2) text += ' ';
    size_t len = 0;
    const char* s = luaL_tolstring(L, i, &len);
    text.append(s, len);
    lua_pop(L, 1);
  }
  text = Mask(text);
  Context* ctx = GetContext(L);
  if (ctx && ctx->runner) {
    ctx->runner->Note("print", "print", {{"text", text}});
    ctx->runner->reporter().Emit({{"event", "message"}, {"text", text}});
  } else {
    std::fputs((text + "\n").c_str(), stdout);
  }
  return 0;
}

engine::StateStore& StoreOf(Context* ctx, const char* what) {
  if (!ctx || !ctx->store) throw Error("run", "invalid", fmt::format("run:{} can only be called while a playbook runs", what));
  return *ctx->store;
}

std::string CheckKey(lua_State* L) {
  std::string key = lua::CheckString(L, 2, "key");
  if (key.empty() || key.size() > 200) throw Error("run", "invalid", "a remembered key must be 1 to 200 characters");
  return key;
}

// run:remember(key, value): value is any JSON-able Lua value; nil forgets.
int l_remember(lua_State* L) {
  Context* ctx = GetContext(L);
  engine::StateStore& store = StoreOf(ctx, "remember");
  std::string key = CheckKey(L);
  json value = lua_isnoneornil(L, 3) ? json(nullptr) : lua::ToJson(L, 3);
  // Facts are stored exactly (a masked copy would come back corrupted), so
  // one holding a secret would sit in the state store in clear: refused.
  if (ContainsSecret(value.dump(-1, ' ', false, json::error_handler_t::replace))) {
    throw Error("run", "secret",
                fmt::format("run:remember(\"{}\"): the value holds a secret (hoist.secret, a secret param or a URL "
                            "password); facts are stored in clear in the state store, so it is refused: remember "
                            "where to find the secret (its name), not the secret",
                            key));
  }
  store.Remember(ctx->env, key, value, ctx->runner ? ctx->runner->run_id() : 0);
  if (ctx->runner) ctx->runner->Note("state", "remember " + key, {{"value", value}});
  return 0;
}

// run:recall(key) -> value, {run_id, updated_at}  (nil when never remembered)
int l_recall(lua_State* L) {
  Context* ctx = GetContext(L);
  engine::StateStore& store = StoreOf(ctx, "recall");
  std::string key = CheckKey(L);
  auto row = store.Recall(ctx->env, key);
  // Journaled with what it returned, so a replay recalls the same.
  if (ctx->runner) ctx->runner->Note("state", "recall " + key, row ? *row : json{{"value", nullptr}});
  if (!row || (*row)["value"].is_null()) {
    lua_pushnil(L);
    return 1;
  }
  lua::PushJson(L, (*row)["value"]);
  json meta = {{"run_id", (*row)["run_id"]}, {"updated_at", (*row)["updated_at"]}};
  lua::PushJson(L, meta);
  return 2;
}

// run:facts() -> { key = { value, run_id, updated_at } } for this environment.
int l_facts(lua_State* L) {
  Context* ctx = GetContext(L);
  lua::PushJson(L, StoreOf(ctx, "facts").RecallAll(ctx->env));
  return 1;
}

// run:history(n) -> the newest n runs of this environment (this one included).
int l_history(lua_State* L) {
  Context* ctx = GetContext(L);
  auto n = lua::OptInteger(L, 2, "count").value_or(10);
  auto runs = StoreOf(ctx, "history").History(ctx->env, static_cast<int>(std::clamp<int64_t>(n, 1, 1000)));
  lua::PushJson(L, json(runs));
  return 1;
}

// run:lease() -> who holds this environment's lease (nil when free).
int l_lease(lua_State* L) {
  Context* ctx = GetContext(L);
  for (const auto& l : StoreOf(ctx, "lease").Leases()) {
    if (l.env != ctx->env) continue;
    json j = {{"owner", l.owner},   {"host", l.host},     {"pid", l.pid},
              {"run_id", l.run_id}, {"reason", l.reason}, {"started_at", sys::IsoUtc(l.started_at)},
              {"expires_at", sys::IsoUtc(l.expires_at)}, {"expired", l.expires_at <= sys::NowEpoch()},
              {"holder_gone", engine::HolderGoneHere(l)},
              {"ours", ctx->runner && l.run_id == ctx->runner->run_id()}};
    lua::PushJson(L, j);
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

int l_hosts(lua_State* L) { return HostsList(L, 2); }
int l_host(lua_State* L) { return HostsGet(L, 2); }
int l_on(lua_State* L) { return HostsOn(L, 2); }
int l_each(lua_State* L) { return HostsEach(L, 2); }

}  // namespace

void PushRunObject(lua_State* L, int64_t run_id, const std::string& playbook, const std::string& version, int env_idx,
                   int params_idx, bool sandbox) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, run_id);
  lua_setfield(L, -2, "id");
  lua_pushvalue(L, env_idx);
  lua_setfield(L, -2, "env");
  lua_pushvalue(L, params_idx);
  lua_setfield(L, -2, "params");
  lua::SetField(L, "playbook", playbook);
  lua::SetField(L, "version", version);
  lua::SetFieldBool(L, "sandbox", sandbox);
  if (Context* ctx = GetContext(L)) lua::SetField(L, "project_root", ctx->project_root);
  if (luaL_newmetatable(L, "hoist.Run")) {
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, lua::Protect<l_step>);
    lua_setfield(L, -2, "step");
    lua_pushcfunction(L, lua::Protect<l_confirm>);
    lua_setfield(L, -2, "confirm");
    lua_pushcfunction(L, lua::Protect<l_print>);
    lua_setfield(L, -2, "print");
    lua_pushcfunction(L, lua::Protect<l_remember>);
    lua_setfield(L, -2, "remember");
    lua_pushcfunction(L, lua::Protect<l_recall>);
    lua_setfield(L, -2, "recall");
    lua_pushcfunction(L, lua::Protect<l_facts>);
    lua_setfield(L, -2, "facts");
    lua_pushcfunction(L, lua::Protect<l_history>);
    lua_setfield(L, -2, "history");
    lua_pushcfunction(L, lua::Protect<l_lease>);
    lua_setfield(L, -2, "lease");
    lua_pushcfunction(L, lua::Protect<l_hosts>);
    lua_setfield(L, -2, "hosts");
    lua_pushcfunction(L, lua::Protect<l_host>);
    lua_setfield(L, -2, "host");
    lua_pushcfunction(L, lua::Protect<l_on>);
    lua_setfield(L, -2, "on");
    lua_pushcfunction(L, lua::Protect<l_each>);
    lua_setfield(L, -2, "each");
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
}

}  // namespace hoist::bind

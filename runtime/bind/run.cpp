#include "bind/run.h"

#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "bind/context.h"
#include "core/error.h"
#include "core/exit_codes.h"
#include "core/identity.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/secrets.h"
#include "db/url.h"
#include "engine/config_check.h"
#include "engine/lease.h"
#include "engine/recorded_world.h"
#include "engine/sim_world.h"
#include "engine/runner.h"
#include "engine/semver.h"
#include "engine/state_store.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "lua/embedded.h"
#include "lua/state.h"
#include "sys/clock.h"
#include "sys/sha256.h"

namespace hoist::bind {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kPlaybookMeta = "hoist.Playbook";
constexpr double kDefaultLeaseTtl = 60;

struct PlaybookRef {
  std::string name;
  std::string display_path;
  std::string source;
  std::string origin;
};

struct Config {
  std::string state_path;
  std::string default_env;
  double lease_ttl = kDefaultLeaseTtl;
  size_t memory_limit = lua::kDefaultMemoryLimit;
  std::vector<std::string> envs;
};

[[noreturn]] void Invalid(const std::string& where, const std::string& msg) {
  throw Error("playbook", "invalid", where + ": " + msg);
}

// Param names: [A-Za-z_][A-Za-z0-9_-]*; playbook names: [a-z0-9][a-z0-9_.-]*.
bool IsIdentifier(const std::string& s, bool lowercase) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool digit = c >= '0' && c <= '9';
    bool lower = c >= 'a' && c <= 'z';
    bool alpha = lower || (!lowercase && c >= 'A' && c <= 'Z');
    bool first_ok = lowercase ? (lower || digit) : (alpha || c == '_');
    bool rest_ok = alpha || digit || c == '_' || c == '-' || (lowercase && c == '.');
    if (!(i == 0 ? first_ok : rest_ok)) return false;
  }
  return true;
}

bool ReadFile(const std::string& path, std::string* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char buf[65536];
  size_t n;
  out->clear();
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  std::fclose(f);
  return true;
}

lua::StateOptions VmOptions(const Project& p) {
  lua::StateOptions o;
  o.lua_path.push_back(p.root + "/lib");
  return o;
}

void RegisterJsonUrlSecrets(const json& j) {
  if (j.is_string()) {
    db::RegisterUrlSecrets(j.get<std::string>());
  } else if (j.is_structured()) {
    for (const auto& v : j) RegisterJsonUrlSecrets(v);
  }
}

// [-0, +0] The passwords of every URL-looking string in the table at idx
// (hoist.lua), nested tables included, registered as secrets.
void RegisterTableUrlSecrets(lua_State* L, int idx, int depth = 0) {
  if (depth > 16 || !lua_checkstack(L, 3)) return;
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -1) == LUA_TSTRING) {
      size_t n = 0;
      const char* s = lua_tolstring(L, -1, &n);
      db::RegisterUrlSecrets(std::string_view(s, n));
    } else if (lua_type(L, -1) == LUA_TTABLE) {
      RegisterTableUrlSecrets(L, -1, depth + 1);
    }
    lua_pop(L, 1);
  }
}

// [-0, +1] Loads hoist.lua (or pushes an empty table) and reads its top level.
Config LoadConfig(lua::State& vm, const Project& p) {
  lua_State* L = vm.get();
  Config c;
  c.state_path = p.root + "/.hoist/state.db";
  if (p.config_path.empty()) {
    lua_newtable(L);
    return c;
  }
  vm.LoadFile(p.config_path, "hoist.lua");
  lua::Call(L, 0, 1);
  if (!lua_istable(L, -1)) {
    std::string got = luaL_typename(L, -1);
    lua_pop(L, 1);
    throw Error("config", "invalid", "hoist.lua must return a table (got " + got + ")");
  }
  int idx = lua_gettop(L);
  RegisterTableUrlSecrets(L, idx);
  // The whole table, every environment, before anything runs (exit 2).
  json shape;
  try {
    shape = lua::ToJson(L, idx, true);
  } catch (const Error& e) {
    throw Error("config", "invalid", "hoist.lua: " + e.message());
  }
  engine::CheckConfig(shape);
  // A malformed database URL is a config error too, found before any step.
  if (shape.contains("environments") && shape["environments"].is_object()) {
    for (const auto& [name, env] : shape["environments"].items()) {
      if (!env.is_object() || !env.contains("database") || !env["database"].is_string()) continue;
      try {
        db::ParseUrl(env["database"].get<std::string>(), p.root);
      } catch (const Error& e) {
        throw Error("config", "invalid", fmt::format("hoist.lua: environments.{}.database: {}", name, e.message()));
      }
    }
  }
  try {
    if (auto s = lua::OptStringField(L, idx, "state")) c.state_path = fs::path(*s).is_absolute() ? *s : p.root + "/" + *s;
    if (auto d = lua::OptStringField(L, idx, "default_env")) c.default_env = *d;
    lua_getfield(L, idx, "lease");
    if (lua_istable(L, -1)) {
      if (auto ttl = lua::OptNumberField(L, -1, "ttl")) c.lease_ttl = *ttl;
    }
    lua_pop(L, 1);
    if (auto mb = lua::OptIntegerField(L, idx, "memory_limit_mb")) {
      if (*mb < 16 || *mb > 1024 * 1024) {
        throw Error("config", "invalid", "memory_limit_mb must be an integer between 16 and 1048576 (MiB)");
      }
      c.memory_limit = static_cast<size_t>(*mb) << 20;
    }
  } catch (const Error& e) {
    throw Error("config", "invalid", "hoist.lua: " + e.message());
  }
  if (c.lease_ttl <= 0) throw Error("config", "invalid", "hoist.lua: lease.ttl must be a positive number of seconds");
  lua_getfield(L, idx, "environments");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) c.envs.push_back(lua_tostring(L, -2));
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    lua_pop(L, 2);
    throw Error("config", "invalid", "hoist.lua: 'environments' must be a table of environment tables");
  }
  lua_pop(L, 1);
  std::sort(c.envs.begin(), c.envs.end());
  return c;
}

// Picks the environment and pushes its table (with .name set).
std::string PushEnvironment(lua_State* L, int config_idx, const Config& c, const std::string& wanted) {
  std::string name = wanted;
  if (name.empty()) name = c.default_env;
  if (name.empty() && c.envs.size() == 1) name = c.envs[0];
  if (name.empty() && c.envs.empty()) name = "default";
  if (name.empty()) {
    throw Error("config", "usage",
                fmt::format("hoist.lua defines several environments ({}): choose one with --env NAME",
                            fmt::join(c.envs, ", ")));
  }
  if (c.envs.empty() && name == "default") {
    lua_newtable(L);
  } else {
    lua_getfield(L, config_idx, "environments");
    if (!lua_istable(L, -1) || lua_getfield(L, -1, name.c_str()) != LUA_TTABLE) {
      lua_pop(L, lua_istable(L, -1) ? 2 : 1);
      std::string hint = engine::Suggest(name, c.envs);
      throw Error("config", "usage",
                  fmt::format("unknown environment '{}'{} (hoist.lua defines: {})", name,
                              hint.empty() ? "" : " (did you mean '" + hint + "'?)",
                              c.envs.empty() ? "none" : fmt::format("{}", fmt::join(c.envs, ", "))));
    }
    lua_remove(L, -2);
  }
  lua_pushstring(L, name.c_str());
  lua_setfield(L, -2, "name");
  return name;
}

PlaybookRef Resolve(const Project& p, const std::string& ref) {
  PlaybookRef r;
  bool is_path = ref.find('/') != std::string::npos || (ref.size() > 4 && ref.ends_with(".lua"));
  std::error_code ec;
  if (is_path) {
    // fopen succeeds on a directory and reads nothing: say what it is.
    if (fs::is_directory(ref, ec)) {
      throw Error("playbook", "invalid",
                  ref + " is a directory, not a playbook file (give a .lua file, or a playbook name: hoist list shows them)");
    }
    if (!ReadFile(ref, &r.source)) {
      throw Error("playbook", "not_found", "cannot read playbook file " + ref + ": no such file");
    }
    r.name = fs::path(ref).stem().string();
    r.display_path = ref;
    r.origin = "file";
    return r;
  }
  std::string project_file = p.root + "/playbooks/" + ref + ".lua";
  if (fs::is_directory(project_file, ec)) {
    throw Error("playbook", "invalid", "playbooks/" + ref + ".lua is a directory, not a playbook file");
  }
  if (ReadFile(project_file, &r.source)) {
    r.name = ref;
    r.display_path = "playbooks/" + ref + ".lua";
    r.origin = "project";
    return r;
  }
  if (const auto* f = lua::FindEmbedded(lua::EmbeddedKind::kPlaybook, ref)) {
    r.name = ref;
    r.source.assign(f->source);
    r.display_path = "hoist:" + std::string(f->path);
    r.origin = "canned";
    return r;
  }
  std::string hint = engine::Suggest(ref, PlaybookNames(p));
  throw Error("playbook", "not_found",
              fmt::format("no playbook '{}' in {}/playbooks or among the canned playbooks{}", ref, p.root,
                          hint.empty() ? " (hoist list shows them)" : " (did you mean '" + hint + "'?)"));
}

std::vector<engine::ParamSpec> ReadParams(lua_State* L, int desc, const std::string& where) {
  std::vector<engine::ParamSpec> out;
  lua_getfield(L, desc, "params");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return out;
  }
  if (!lua_istable(L, -1)) Invalid(where, "'params' must be a table of param specs");
  int pt = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, pt) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) Invalid(where, "param names must be strings");
    engine::ParamSpec s;
    s.name = lua_tostring(L, -2);
    std::string pw = fmt::format("{}: param '{}'", where, s.name);
    if (!IsIdentifier(s.name, /*lowercase=*/false)) {
      throw Error("playbook", "invalid", pw + ": name must be letters, digits, '_' or '-'");
    }
    if (!lua_istable(L, -1)) throw Error("playbook", "invalid", pw + ": spec must be a table like { type = \"string\" }");
    int st = lua_gettop(L);
    try {
      lua::CheckKeys(L, st, "a param spec", {"type", "required", "default", "help", "values", "secret"});
      s.type = engine::ParseParamType(lua::OptStringField(L, st, "type").value_or("string"));
      s.required = lua::OptBooleanField(L, st, "required").value_or(false);
      s.help = lua::OptStringField(L, st, "help").value_or("");
      s.secret = lua::OptBooleanField(L, st, "secret").value_or(false);
      if (auto values = lua::OptStringListField(L, st, "values")) s.choices = *values;
    } catch (const Error& e) {
      throw Error("playbook", "invalid", pw + ": " + e.message());
    }
    if (s.type == engine::ParamType::kEnum && s.choices.empty()) {
      throw Error("playbook", "invalid", pw + ": an enum needs values = { ... }");
    }
    lua_getfield(L, st, "default");
    if (!lua_isnil(L, -1)) {
      json d = lua::ToJson(L, -1);
      engine::ParamInput probe;
      probe.file = {{s.name, d}};
      try {
        engine::ValidateParams({s}, probe);
      } catch (const Error& e) {
        lua_pop(L, 1);
        // ValidateParams names the param itself; pw already does.
        std::string why = e.message();
        std::string own = "param '" + s.name + "': ";
        if (why.rfind(own, 0) == 0) why = why.substr(own.size());
        throw Error("playbook", "invalid", pw + ": bad default: " + why);
      }
      s.default_value = d;
    }
    lua_pop(L, 2);
    out.push_back(std::move(s));
  }
  lua_pop(L, 1);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

// [-0, +1] Runs the playbook chunk and validates the description it returns.
PlaybookInfo LoadDescription(lua::State& vm, const PlaybookRef& ref) {
  lua_State* L = vm.get();
  std::string source = ref.source;
  if (source.rfind("#!", 0) == 0) source.insert(0, "--");
  vm.LoadChunk(source, "@" + ref.display_path);
  SetLoadingPlaybook(L, true);
  try {
    lua::Call(L, 0, 1);
  } catch (...) {
    SetLoadingPlaybook(L, false);
    throw;
  }
  SetLoadingPlaybook(L, false);
  const std::string& where = ref.display_path;
  bool ok = lua_istable(L, -1) && lua_getmetatable(L, -1);
  if (ok) {
    luaL_getmetatable(L, kPlaybookMeta);
    ok = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (!ok) {
    Invalid(where, fmt::format("must return hoist.playbook{{ ... }} (got a {})", luaL_typename(L, -1)));
  }
  int desc = lua_gettop(L);
  PlaybookInfo info;
  info.origin = ref.origin;
  info.display_path = ref.display_path;
  static const std::vector<std::string> kKeys = {"name", "version", "summary", "requires", "params", "run", "lock",
                                                 "description"};
  lua_pushnil(L);
  while (lua_next(L, desc) != 0) {
    lua_pop(L, 1);
    std::string key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      std::string hint = engine::Suggest(key, kKeys);
      Invalid(where, fmt::format("unknown playbook field '{}'{}", key,
                                 hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
    }
  }
  try {
    info.name = lua::CheckStringField(L, desc, "name");
    info.version = lua::CheckStringField(L, desc, "version");
    info.summary = lua::OptStringField(L, desc, "summary").value_or("");
    info.description = lua::OptStringField(L, desc, "description").value_or("");
    info.lock = lua::OptBooleanField(L, desc, "lock").value_or(true);
  } catch (const Error& e) {
    Invalid(where, e.message());
  }
  if (!IsIdentifier(info.name, /*lowercase=*/true)) {
    Invalid(where, fmt::format("playbook name '{}' must be lowercase letters, digits, '-', '_' or '.'", info.name));
  }
  // A project playbook is found by its file name: another declared name
  // would be listed under one and journaled under the other.
  if (ref.origin == "project" && info.name != ref.name) {
    throw Error("playbook", "invalid",
                fmt::format("{} declares name \"{}\": rename the file or the name", where, info.name));
  }
  if (!engine::ParseSemver(info.version)) {
    Invalid(where, fmt::format("version '{}' is not semver (expected MAJOR.MINOR.PATCH, e.g. 1.2.0)", info.version));
  }
  lua_getfield(L, desc, "requires");
  if (lua_istable(L, -1)) {
    lua::CheckKeys(L, -1, "requires", {"hoist"});
    info.requires_hoist = lua::OptStringField(L, -1, "hoist").value_or("");
  } else if (!lua_isnil(L, -1)) {
    Invalid(where, "'requires' must be a table like { hoist = \">=0.1\" }");
  }
  lua_pop(L, 1);
  if (!info.requires_hoist.empty()) {
    auto self = *engine::ParseSemver(HOIST_VERSION);
    bool met;
    try {
      met = engine::SatisfiesConstraint(self, info.requires_hoist);
    } catch (const Error& e) {
      Invalid(where, e.message());
    }
    if (!met) {
      Invalid(where, fmt::format("requires hoist {} but this is hoist {}; upgrade hoist", info.requires_hoist,
                                 HOIST_VERSION));
    }
  }
  lua_getfield(L, desc, "run");
  if (!lua_isfunction(L, -1)) Invalid(where, "'run' must be a function(run, params)");
  lua_pop(L, 1);
  info.params = ReadParams(L, desc, where);
  return info;
}

// ---- the run object -------------------------------------------------------

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
  std::string name = lua::CheckString(L, 2, "step name");
  lua::CheckFunction(L, 3, "step function");
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
    lua_getfield(L, 4, "undo");
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
  Context* ctx = GetContext(L);
  std::string question = lua::CheckString(L, 2, "question");
  auto note = [&](const char* how, bool answer) {
    if (ctx && ctx->runner) ctx->runner->Note("confirm", question, {{"answer", answer}, {"by", how}});
  };
  if (ctx && ctx->assume_yes) {
    note("--yes", true);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!ctx || !ctx->interactive) {
    throw Error("run", "not_confirmed",
                fmt::format("cannot ask \"{}\": no terminal to answer on; pass --yes to confirm", question));
  }
  fmt::print(stderr, "{} [y/N] ", question);
  std::fflush(stderr);
  char buf[64] = {};
  bool yes = false;
  if (std::fgets(buf, sizeof buf, stdin)) yes = buf[0] == 'y' || buf[0] == 'Y';
  note("prompt", yes);
  lua_pushboolean(L, yes);
  return 1;
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

// [-0, +1] The run object handed to the playbook's run function.
void PushRunObject(lua_State* L, int64_t run_id, const PlaybookInfo& info, int env_idx, int params_idx, bool sandbox) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, run_id);
  lua_setfield(L, -2, "id");
  lua_pushvalue(L, env_idx);
  lua_setfield(L, -2, "env");
  lua_pushvalue(L, params_idx);
  lua_setfield(L, -2, "params");
  lua::SetField(L, "playbook", info.name);
  lua::SetField(L, "version", info.version);
  lua::SetFieldBool(L, "sandbox", sandbox);
  if (Context* ctx = GetContext(L)) lua::SetField(L, "project_root", ctx->project_root);
  if (luaL_newmetatable(L, "hoist.Run")) {
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, lua::Protect<l_step>);
    lua_setfield(L, -2, "step");
    lua_pushcfunction(L, lua::Protect<l_confirm>);
    lua_setfield(L, -2, "confirm");
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
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
}

std::string ErrorText(const std::exception& e) { return Mask(e.what()); }

}  // namespace



Project FindProject(const std::string& start_dir) {
  std::error_code ec;
  fs::path dir = fs::weakly_canonical(fs::absolute(start_dir), ec);
  if (ec) dir = fs::absolute(start_dir);
  for (fs::path d = dir;; d = d.parent_path()) {
    if (fs::exists(d / "hoist.lua", ec)) return {d.string(), (d / "hoist.lua").string()};
    if (d == d.root_path() || d.parent_path() == d) break;
  }
  return {dir.string(), ""};
}

std::string StatePath(const Project& project) {
  lua::State vm(VmOptions(project));
  Config c = LoadConfig(vm, project);
  return c.state_path;
}

std::string EnvironmentDatabase(const Project& project, const std::string& env) {
  lua::State vm(VmOptions(project));
  Config c = LoadConfig(vm, project);
  lua_State* L = vm.get();
  PushEnvironment(L, lua_gettop(L), c, env);
  std::string url = lua::OptStringField(L, -1, "database").value_or("");
  // As hoist.project resolves it: relative to the project root, not the cwd.
  if (url.rfind("sqlite:", 0) == 0 && url.size() > 7 && url[7] != '/' && url != "sqlite::memory:") {
    url = "sqlite://" + project.root + "/" + url.substr(7);
  }
  return url;
}

std::vector<std::pair<int, std::string>> EnvironmentFrontends(const Project& project, const std::string& env) {
  lua::State vm(VmOptions(project));
  Config c = LoadConfig(vm, project);
  lua_State* L = vm.get();
  PushEnvironment(L, lua_gettop(L), c, env);
  int env_idx = lua_gettop(L);
  std::vector<std::pair<int, std::string>> out;
  lua_getfield(L, env_idx, "nginx");
  if (!lua_istable(L, -1)) return out;
  int nginx_idx = lua_gettop(L);
  std::string conf = lua::OptStringField(L, nginx_idx, "conf").value_or("");
  if (conf.empty()) return out;
  if (conf[0] != '/') conf = project.root + "/" + conf;
  std::vector<std::string> urls;
  lua_getfield(L, nginx_idx, "verify");
  if (lua_istable(L, -1)) {
    if (auto u = lua::OptStringField(L, lua_gettop(L), "url")) urls.push_back(*u);
  }
  lua_pop(L, 1);
  if (auto u = lua::OptStringField(L, nginx_idx, "verify_url")) urls.push_back(*u);
  lua_getfield(L, env_idx, "bake");
  if (lua_istable(L, -1)) {
    if (auto u = lua::OptStringField(L, lua_gettop(L), "url")) urls.push_back(*u);
  }
  lua_pop(L, 1);
  static const std::regex loopback(R"(^https?://(127\.0\.0\.1|localhost|\[::1\])(:([0-9]+))?(/.*)?$)");
  for (const auto& u : urls) {
    std::smatch m;
    if (!std::regex_match(u, m, loopback)) continue;
    int port = m[3].matched ? std::stoi(m[3].str()) : (u.rfind("https", 0) == 0 ? 443 : 80);
    out.emplace_back(port, conf);
  }
  return out;
}

std::vector<std::string> EnvironmentNames(const Project& project) {
  lua::State vm(VmOptions(project));
  return LoadConfig(vm, project).envs;
}

std::optional<std::string> CannedSource(const std::string& name) {
  if (const auto* f = lua::FindEmbedded(lua::EmbeddedKind::kPlaybook, name)) return std::string(f->source);
  return std::nullopt;
}

PlaybookInfo DescribePlaybook(const Project& project, const std::string& ref) {
  PlaybookRef r = Resolve(project, ref);
  lua::State vm(VmOptions(project));
  return LoadDescription(vm, r);
}

std::vector<std::string> PlaybookNames(const Project& project) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(project.root + "/playbooks", ec)) {
    if (e.path().extension() == ".lua") names.insert(e.path().stem().string());
  }
  for (const auto& f : lua::EmbeddedFiles()) {
    if (f.kind == lua::EmbeddedKind::kPlaybook) names.insert(std::string(f.name));
  }
  return {names.begin(), names.end()};
}

std::vector<PlaybookInfo> ListPlaybooks(const Project& project) {
  std::vector<PlaybookInfo> out;
  for (const auto& name : PlaybookNames(project)) {
    try {
      out.push_back(DescribePlaybook(project, name));
    } catch (const std::exception& e) {
      PlaybookInfo bad;
      bad.name = name;
      bad.version = "?";
      bad.summary = std::string("BROKEN: ") + e.what();
      bad.origin = "project";
      out.push_back(bad);
    }
  }
  return out;
}

RunOutcome RunPlaybook(const Project& project, const RunOptions& options, engine::Reporter& reporter) {
  RunOutcome outcome;
  auto usage_error = [&](const std::string& msg, const std::string& hint = "") {
    outcome.exit_code = kExitUsage;
    outcome.status = "invalid";
    json ev = {{"event", "run_finished"}, {"status", "invalid"}, {"exit_code", kExitUsage}, {"error", Mask(msg)},
               {"run_id", 0}};
    if (!hint.empty()) ev["hint"] = hint;
    reporter.Emit(ev);
    return outcome;
  };

  std::unique_ptr<engine::World> real_world;
  engine::World* world = options.world;
  if (!world) {
    real_world = engine::MakeRealWorld();
    world = real_world.get();
  }
  bool sandbox = !options.sandbox_dir.empty();
  Context ctx;
  // Every world call and its answer is journaled, so `hoist replay` can
  // feed the same answers back (a replay itself is not re-recorded).
  std::unique_ptr<engine::RecordingWorld> recorder;
  if (std::string_view(world->mode()) != "replay") {
    recorder = std::make_unique<engine::RecordingWorld>(
        *world, [&ctx](const std::string& op, const json& call, const json& response) {
          if (ctx.runner) ctx.runner->NoteBuffered("call", op, {{"call", call}, {"response", response}});
        });
    world = recorder.get();
  }
  ctx.world = world;
  ctx.sandbox_dir = options.sandbox_dir;
  ctx.db_redirects = options.db_redirects;
  ctx.reporter = &reporter;
  ctx.assume_yes = options.assume_yes;
  ctx.interactive = isatty(STDIN_FILENO) != 0;
  ctx.project_root = project.root;

  lua::State vm(VmOptions(project));
  lua_State* L = vm.get();
  SetContext(L, &ctx);

  // Everything before the first step: any problem is a usage error (exit 2).
  Config config;
  PlaybookInfo info;
  PlaybookRef ref;
  std::string env_name;
  json params;
  int config_idx, env_idx, desc_idx;
  try {
    config = LoadConfig(vm, project);
    lua::SetMemoryLimit(L, config.memory_limit);
    config_idx = lua_gettop(L);
    if (options.env_table.is_object()) {
      env_name = options.env.empty() ? "test" : options.env;
      lua::PushJson(L, options.env_table);
      lua::PushString(L, env_name);
      lua_setfield(L, -2, "name");
    } else {
      env_name = PushEnvironment(L, config_idx, config, options.env);
    }
    env_idx = lua_gettop(L);
    lua_getfield(L, env_idx, "backups");
    ctx.env_backups = lua::ToJson(L, -1, true);
    lua_pop(L, 1);
    if (!options.sandbox_database.empty()) {
      // The playbook sees the copy wherever it reads env.database.
      lua::PushString(L, options.sandbox_database);
      lua_setfield(L, env_idx, "database");
    }
    ref = Resolve(project, options.playbook);
    info = LoadDescription(vm, ref);
    desc_idx = lua_gettop(L);
    params = engine::ValidateParams(info.params, options.params);
  } catch (const Error& e) {
    std::string hint;
    if (e.area() == "params" && !info.name.empty()) hint = "hoist describe " + info.name + " lists its params";
    return usage_error(ErrorText(e), hint);
  } catch (const std::exception& e) {
    return usage_error(ErrorText(e));
  }
  for (const auto& s : info.params) {
    if (s.secret && params.contains(s.name) && params[s.name].is_string()) RegisterSecret(params[s.name].get<std::string>());
  }
  // A URL with a password is a secret wherever it came from (-e, --params).
  RegisterJsonUrlSecrets(params);

  if (!options.state_path.empty()) config.state_path = options.state_path;
  std::unique_ptr<engine::StateStore> store;
  try {
    store = engine::OpenStateStore(config.state_path);
    if (!options.facts_from.empty()) store->SeedFacts(env_name, engine::ReadFacts(options.facts_from, env_name));
    if (options.facts.is_object() && !options.facts.empty()) store->SeedFacts(env_name, options.facts);
  } catch (const Error& e) {
    bool says_what_to_do = e.code() == "busy" || e.code() == "not_a_store";
    return usage_error(ErrorText(e), says_what_to_do ? "" : "check the 'state' setting in hoist.lua and the directory's permissions");
  }

  engine::RunMeta meta;
  meta.playbook = info.name;
  meta.version = info.version;
  meta.source = ref.source;
  meta.source_sha256 = sys::Sha256Hex(ref.source);
  meta.origin = ref.origin + ":" + ref.display_path;
  meta.params = engine::MaskParams(info.params, params);
  meta.operator_name = OperatorName();
  meta.host = HostName();
  meta.env = env_name;
  meta.hoist_version = HOIST_VERSION;
  meta.sandbox = sandbox;
  int64_t run_id = store->BeginRun(meta);
  outcome.run_id = run_id;
  double started = sys::Monotonic();
  reporter.Emit({{"event", "run_started"},
                 {"run_id", run_id},
                 {"playbook", info.name},
                 {"version", info.version},
                 {"source_sha256", meta.source_sha256},
                 {"origin", meta.origin},
                 {"env", env_name},
                 {"params", json::parse(Mask(meta.params.dump()))},
                 {"operator", meta.operator_name},
                 {"host", meta.host},
                 {"sandbox", sandbox}});

  engine::Runner* active_runner = nullptr;
  auto finish = [&](const std::string& status, int code, const std::string& error, json extra) {
    if (active_runner) active_runner->FlushBuffered();
    try {
      store->FinishRun(run_id, status, code, error);
    } catch (const std::exception& e) {
      // The outcome stands (it is reported below); only its record is lost.
      log::Error(fmt::format("run {} ended {} but {} could not record it ({}): the history shows it as running",
                             run_id, status, config.state_path, Mask(e.what())));
    }
    outcome.exit_code = code;
    outcome.status = status;
    json ev = {{"event", "run_finished"}, {"run_id", run_id}, {"status", status}, {"exit_code", code},
               {"seconds", sys::Monotonic() - started}};
    if (!error.empty()) ev["error"] = Mask(error);
    for (auto& [k, v] : extra.items()) ev[k] = v;
    reporter.Emit(ev);
    return outcome;
  };

  // The lease: one mutating run per environment.
  engine::Lease lease;
  std::unique_ptr<engine::LeaseKeeper> keeper;
  if (info.lock) {
    lease.env = env_name;
    lease.owner = meta.operator_name;
    lease.host = meta.host;
    lease.pid = getpid();
    lease.run_id = run_id;
    lease.reason = options.reason.empty() ? fmt::format("{} {}", info.name, info.version) : options.reason;
    lease.token = engine::NewLeaseToken();
    try {
      store->AcquireLease(lease, config.lease_ttl);
    } catch (const engine::LeaseHeldError& e) {
      return finish("lease_held", kExitLeaseHeld, e.what(),
                    {{"hint", fmt::format("wait for run {} to finish; if it is dead, its lease expires by itself, or "
                                          "run: hoist lock release --env {} --force --reason \"...\"",
                                          e.holder().run_id, env_name)},
                     {"holder", {{"owner", e.holder().owner}, {"host", e.holder().host}, {"pid", e.holder().pid},
                                 {"run_id", e.holder().run_id}, {"reason", e.holder().reason}}}});
    }
    std::string state_path = config.state_path;
    keeper = std::make_unique<engine::LeaseKeeper>([state_path] { return engine::OpenStateStore(state_path); }, lease,
                                                   config.lease_ttl);
  }
  auto release = [&] {
    keeper.reset();
    if (info.lock) {
      try {
        store->ReleaseLease(lease.env, lease.token);
      } catch (const std::exception& e) {
        log::Warn(fmt::format("could not release the lease on '{}' in {} ({}): it expires by itself within {} s",
                              lease.env, config.state_path, Mask(e.what()), config.lease_ttl));
      }
    }
  };

  engine::Runner runner(*store, reporter, run_id);
  runner.SetJournalName(config.state_path);
  active_runner = &runner;
  if (sandbox) runner.SetSleep([world](double s) { world->Sleep(s, false); });
  auto* sim = dynamic_cast<engine::SimWorld*>(options.world);
  if (sim) sim->SetStepName([&runner] { return runner.CurrentStepName(); });
  struct ForgetRunner {  // the world outlives this run's runner
    engine::SimWorld* sim;
    ~ForgetRunner() {
      if (sim) sim->SetStepName(nullptr);
    }
  } forget_runner{sim};
  ctx.runner = &runner;
  ctx.store = store.get();
  ctx.env = env_name;

  lua_getfield(L, desc_idx, "run");
  lua::PushJson(L, params);
  int params_idx = lua_gettop(L);
  PushRunObject(L, run_id, info, env_idx, params_idx, sandbox);
  // Every environment of hoist.lua, for playbooks that look across them
  // (compare dev with prod); run.env stays the one the lease covers.
  if (lua_getfield(L, config_idx, "environments") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  lua_setfield(L, -2, "environments");
  lua_pushvalue(L, params_idx);
  lua_remove(L, params_idx);

  std::string error, code, traceback;
  bool failed = false;
  try {
    lua::Call(L, 2, 0);
    ThrowIfStopped("run");
  } catch (const lua::ScriptError& e) {
    failed = true;
    error = ErrorText(e);
    code = e.code();
    traceback = Mask(e.traceback());
  } catch (const std::exception& e) {
    failed = true;
    error = ErrorText(e);
    code = "error";
  }
  if (!failed) {
    release();
    ctx.runner = nullptr;
    ctx.store = nullptr;
    return finish("ok", kExitOk, "", json::object());
  }
  bool interrupted = code == "interrupted" || Interrupted();
  ClearInterrupt();  // let the undos run; a second Ctrl-C interrupts them
  engine::UnwindResult undo = runner.Unwind();
  release();
  ctx.runner = nullptr;
  ctx.store = nullptr;
  json extra = {{"undone", undo.undone}, {"code", code}};
  if (!traceback.empty()) extra["traceback"] = traceback;
  if (!undo.ok()) {
    extra["undo_failed_step"] = undo.failed_step;
    extra["undo_error"] = undo.failed_error;
    extra["not_undone"] = undo.not_undone;
    return finish("failed_undo", kExitUndoFailed, error, extra);
  }
  if (interrupted) return finish("interrupted", kExitInterrupted, error, extra);
  return finish("failed", kExitFailed, error, extra);
}

}  // namespace hoist::bind

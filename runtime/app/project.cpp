#include "app/project.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"
#include "db/url.h"
#include "engine/config_check.h"
#include "engine/params.h"
#include "engine/state_store_pg.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/fs.h"

namespace hoist::app {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void RegisterJsonUrlSecretsIn(const json& j) {
  if (j.is_string()) {
    db::RegisterUrlSecrets(j.get<std::string>());
  } else if (j.is_structured()) {
    for (const auto& v : j) RegisterJsonUrlSecretsIn(v);
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

}  // namespace

void RegisterJsonUrlSecrets(const json& j) { RegisterJsonUrlSecretsIn(j); }

lua::StateOptions VmOptions(const Project& p) {
  lua::StateOptions o;
  o.lua_path.push_back(p.root + "/lib");
  return o;
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
  if (shape.contains("notify")) c.notify = engine::NotifyTargets(shape["notify"]);
  for (const auto& t : c.notify) engine::RegisterNotifySecrets(t);
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
    if (auto s = lua::OptStringField(L, idx, "state")) {
      if (engine::IsPostgresState(*s)) {
        try {
          db::ParseUrl(*s);  // a malformed URL is a config error, found before anything runs
        } catch (const Error& e) {
          throw Error("config", "invalid", "state: " + e.message());
        }
        c.state_path = *s;
      } else {
        c.state_path = fs::path(*s).is_absolute() ? *s : p.root + "/" + *s;
      }
    }
    if (auto d = lua::OptStringField(L, idx, "default_env")) c.default_env = *d;
    lua::RawField(L, idx, "lease");
    if (lua_istable(L, -1)) {
      if (auto ttl = lua::OptNumberField(L, -1, "ttl")) c.lease_ttl = *ttl;
    }
    lua_pop(L, 1);
    // Its range (16 to 1048576 MiB) was checked with the rest by CheckConfig.
    if (auto mb = lua::OptIntegerField(L, idx, "memory_limit_mb")) c.memory_limit = static_cast<size_t>(*mb) << 20;
  } catch (const Error& e) {
    throw Error("config", "invalid", "hoist.lua: " + e.message());
  }
  if (c.lease_ttl <= 0) throw Error("config", "invalid", "hoist.lua: lease.ttl must be a positive number of seconds");
  lua::RawField(L, idx, "environments");
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
    lua::RawField(L, config_idx, "environments");
    if (!lua_istable(L, -1) || lua::RawField(L, -1, name.c_str()) != LUA_TTABLE) {
      lua_pop(L, lua_istable(L, -1) ? 2 : 1);
      std::string hint = Suggest(name, c.envs);
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

Project OpenProject(const std::string& dir) {
  sys::Stat st = sys::StatPath(dir);
  if (!st.exists) {
    throw Error("", "usage", fmt::format("--project {}: no such directory (give the directory that holds hoist.lua)", dir));
  }
  if (st.type != "dir") throw Error("", "usage", fmt::format("--project {}: not a directory", dir));
  return FindProject(dir);
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
  lua::RawField(L, env_idx, "nginx");
  if (!lua_istable(L, -1)) return out;
  int nginx_idx = lua_gettop(L);
  std::string conf = lua::OptStringField(L, nginx_idx, "conf").value_or("");
  if (conf.empty()) return out;
  if (conf[0] != '/') conf = project.root + "/" + conf;
  std::vector<std::string> urls;
  lua::RawField(L, nginx_idx, "verify");
  if (lua_istable(L, -1)) {
    if (auto u = lua::OptStringField(L, lua_gettop(L), "url")) urls.push_back(*u);
  }
  lua_pop(L, 1);
  if (auto u = lua::OptStringField(L, nginx_idx, "verify_url")) urls.push_back(*u);
  lua::RawField(L, env_idx, "bake");
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

}  // namespace hoist::app

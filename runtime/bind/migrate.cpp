// hoist.migrate: versioned, checksummed, locked migrations of a hoist.db
// connection — status, validate, up, down, baseline (and imports), repair,
// lint. Results are tables (absent values are nil); every migration-level
// action is journaled as a world call of kind "migrate". Lua migrations
// (NNNN_name.lua returning { up = function(db) ... end, down = ... }) run
// here, in the playbook's VM, with the hoist.db connection. The work is in
// db/migrator.h and db/migrate_lint.h.
#include <lua.hpp>

#include <fmt/format.h>

#include "bind/backup.h"
#include "bind/context.h"
#include "bind/db.h"
#include "bind/modules.h"
#include "core/error.h"
#include "core/log.h"
#include "core/secrets.h"
#include "db/migrate_lint.h"
#include "db/migrator.h"
#include "engine/remote_db.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/clock.h"

namespace hoist::bind {
namespace {

using json = nlohmann::json;

/// Objects lose their null members, so a playbook tests `r.current == nil`.
json StripNulls(const json& j) {
  if (j.is_object()) {
    json out = json::object();
    for (const auto& [k, v] : j.items()) {
      if (!v.is_null()) out[k] = StripNulls(v);
    }
    return out;
  }
  if (j.is_array()) {
    json out = json::array();
    for (const auto& v : j) out.push_back(StripNulls(v));
    return out;
  }
  return j;
}

void PushResult(lua_State* L, const json& j) { lua::PushJson(L, StripNulls(j)); }

/// A relative migrations dir is relative to the project root during a run.
std::string ResolveDir(lua_State* L, const std::string& dir) {
  if (dir.empty() || dir[0] == '/') return dir;
  Context* ctx = GetContext(L);
  if (ctx && !ctx->project_root.empty()) return ctx->project_root + "/" + dir;
  return dir;
}

/// Runs Lua migrations in this VM. The connection at conn_idx is the
/// caller's; a sandbox connection (lint) gets a hoist.db connection of its own.
class VmHost : public db::LuaMigrationHost {
 public:
  VmHost(lua_State* L, int conn_idx, db::Connection* caller) : L_(L), conn_idx_(conn_idx), caller_(caller) {}

  Info Inspect(const std::string& source, const std::string& chunkname) override {
    Guard g(L_);
    LoadTable(source, chunkname);
    Info info;
    lua_pushstring(L_, "down");
    lua_rawget(L_, -2);
    info.has_down = lua_isfunction(L_, -1);
    bool bad_down = !lua_isnil(L_, -1) && !info.has_down;
    lua_pop(L_, 1);
    if (bad_down) Invalid(chunkname, "down must be a function");
    lua_pushstring(L_, "phase");
    lua_rawget(L_, -2);
    if (lua_type(L_, -1) == LUA_TSTRING) {
      info.phase = lua_tostring(L_, -1);
    } else if (!lua_isnil(L_, -1)) {
      lua_pop(L_, 1);
      Invalid(chunkname, "phase must be \"expand\" or \"contract\"");
    }
    lua_pop(L_, 1);
    lua_pushstring(L_, "transaction");
    lua_rawget(L_, -2);
    if (lua_isboolean(L_, -1)) {
      info.transaction = lua_toboolean(L_, -1) != 0;
    } else if (!lua_isnil(L_, -1)) {
      lua_pop(L_, 1);
      Invalid(chunkname, "transaction must be a boolean");
    }
    lua_pop(L_, 1);
    return info;
  }

  void Run(db::Connection& conn, const std::string& source, const std::string& chunkname, bool up) override {
    Guard g(L_);
    LoadTable(source, chunkname);
    lua_pushstring(L_, up ? "up" : "down");
    lua_rawget(L_, -2);
    if (!lua_isfunction(L_, -1)) Invalid(chunkname, std::string("no ") + (up ? "up" : "down") + " function");
    const int fn = lua_gettop(L_);
    bool own = &conn != caller_;
    if (own) {
      // db.open(url) for the sandbox copy: SQLite file or libpq conninfo.
      std::string url = conn.url().engine == db::Engine::kSqlite ? "sqlite://" + conn.url().path : conn.url().conninfo;
      lua_getglobal(L_, "require");
      lua_pushstring(L_, "hoist.db");
      lua::Call(L_, 1, 1);
      lua_pushstring(L_, "open");
      lua_rawget(L_, -2);
      lua_pushlstring(L_, url.data(), url.size());
      lua::Call(L_, 1, 1);
    } else {
      lua_pushvalue(L_, conn_idx_);
    }
    const int db = lua_gettop(L_);
    auto close_own = [&] {
      if (!own) return;
      lua_getfield(L_, db, "close");
      lua_pushvalue(L_, db);
      lua::Call(L_, 1, 0);
    };
    lua_pushvalue(L_, fn);
    lua_pushvalue(L_, db);
    try {
      lua::Call(L_, 1, 0);
    } catch (const lua::ScriptError& e) {
      try {
        close_own();
      } catch (...) {
      }
      throw Error(e.area().empty() ? "lua" : e.area(), e.code(), e.Display());
    }
    close_own();
  }

 private:
  struct Guard {
    lua_State* L;
    int top;
    explicit Guard(lua_State* s) : L(s), top(lua_gettop(s)) {}
    ~Guard() { lua_settop(L, top); }
  };

  [[noreturn]] static void Invalid(const std::string& chunkname, const std::string& why) {
    std::string name = chunkname.size() > 1 && chunkname[0] == '@' ? chunkname.substr(1) : chunkname;
    throw Error("migrate", "invalid",
                fmt::format("{}: {} (a Lua migration returns {{ up = function(db) ... end, down = function(db) ... "
                            "end }})",
                            name, why));
  }

  // [-0, +1] Loads and runs the chunk; leaves its table on the stack.
  void LoadTable(const std::string& source, const std::string& chunkname) {
    if (luaL_loadbufferx(L_, source.data(), source.size(), chunkname.c_str(), "t") != LUA_OK) {
      std::string msg = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "syntax error";
      lua_pop(L_, 1);
      throw Error("migrate", "invalid", msg);
    }
    try {
      lua::Call(L_, 0, 1);
    } catch (const lua::ScriptError& e) {
      throw Error("migrate", "invalid", e.Display());
    }
    if (!lua_istable(L_, -1)) Invalid(chunkname, std::string("returned a ") + luaL_typename(L_, -1));
    lua_pushstring(L_, "up");
    lua_rawget(L_, -2);
    bool has_up = lua_isfunction(L_, -1);
    lua_pop(L_, 1);
    if (!has_up) Invalid(chunkname, "up must be a function");
  }

  lua_State* L_;
  int conn_idx_;
  db::Connection* caller_;
};

/// The shared environment: Lua host, run id, journal of each action.
db::MigrateEnv EnvFor(lua_State* L, db::LuaMigrationHost* host, int opts_idx) {
  db::MigrateEnv env;
  env.lua = host;
  Context* ctx = GetContext(L);
  if (ctx && ctx->runner) env.run_id = ctx->runner->run_id();
  if (auto t = lua::OptNumberField(L, opts_idx, "lock_timeout")) {
    if (*t < 0) throw Error("migrate", "invalid", "lock_timeout must be >= 0 seconds");
    env.lock.timeout = *t;
  }
  if (auto t = lua::OptNumberField(L, opts_idx, "lock_ttl")) {
    if (*t <= 0) throw Error("migrate", "invalid", "lock_ttl must be > 0 seconds");
    env.lock.ttl = *t;
  }
  env.on_event = [L](const db::MigrationEvent& e) {
    json data = e.data;
    data["version"] = e.version;
    data["file"] = e.file;
    RecordWorld(L, "migrate", e.action + " " + e.file, data, e.seconds);
  };
  // The safety backup is hoist's, not each playbook's to remember: only an
  // explicit safety_backup = false goes without.
  if (lua::OptBooleanField(L, opts_idx, "safety_backup").value_or(true)) {
    env.before_destructive = [L, conn_idx = lua_absindex(L, 1)](const std::string& what) {
      EnsureSafetyBackup(L, CheckConnection(L, conn_idx), what);
    };
  } else {
    env.before_destructive = [L](const std::string& what) {
      log::Warn("no safety backup before " + what + " (safety_backup = false)");
      if (Context* c = GetContext(L); c && c->runner) {
        c->runner->Note("log", "warn", {{"message", Mask("no safety backup before " + what + " (safety_backup = false)")}});
      }
    };
  }
  env.log = [L](const std::string& line) {
    log::Info(line);
    if (Context* c = GetContext(L); c && c->runner) c->runner->Note("log", "info", {{"message", Mask(line)}});
  };
  return env;
}

template <typename F>
void Journaled(lua_State* L, const std::string& name, json data, F&& f) {
  bind::Journaled(L, "migrate", name, std::move(data), std::forward<F>(f));
}

// With the table `hoist migrate status` prints, so playbooks show the same.
json StatusJson(const db::MigrationStatus& st) {
  json j = st.ToJson();
  j["text"] = st.Text();
  return j;
}

/// migrate.status(db, dir) -> {current, pending, changed, missing, failed, out_of_order, migrations, text, ...}
int l_status(lua_State* L) {
  ConnectionUse use(L, 1);
  std::string dir = ResolveDir(L, lua::CheckString(L, 2, "dir"));
  PushResult(L, StatusJson(db::Status(use.get(), dir)));
  return 1;
}

/// migrate.validate(db, dir, {allow_changed, allow_missing, allow_out_of_order}) -> status; raises on problems
int l_validate(lua_State* L) {
  ConnectionUse use(L, 1);
  std::string dir = ResolveDir(L, lua::CheckString(L, 2, "dir"));
  lua::CheckKeys(L, 3, "migrate.validate", {"allow_changed", "allow_missing", "allow_out_of_order"});
  db::ValidateOptions o;
  o.allow_changed = lua::OptBooleanField(L, 3, "allow_changed").value_or(false);
  o.allow_missing = lua::OptBooleanField(L, 3, "allow_missing").value_or(false);
  o.allow_out_of_order = lua::OptBooleanField(L, 3, "allow_out_of_order").value_or(false);
  PushResult(L, StatusJson(db::Validate(use.get(), dir, o)));
  return 1;
}

/// migrate.up(db, dir, {to, policy, allow_contract, dry_run, allow_missing,
/// allow_out_of_order, lock_timeout, lock_ttl}) -> {from, to, applied, skipped, plan, ...}
int l_up(lua_State* L) {
  ConnectionUse use(L, 1);
  std::string dir = ResolveDir(L, lua::CheckString(L, 2, "dir"));
  lua::CheckKeys(L, 3, "migrate.up",
                 {"to", "policy", "allow_contract", "dry_run", "allow_missing", "allow_out_of_order", "lock_timeout",
                  "lock_ttl", "safety_backup"});
  db::UpOptions o;
  if (auto to = lua::OptIntegerField(L, 3, "to")) o.to = *to;
  o.policy = lua::OptStringField(L, 3, "policy").value_or("expand");
  o.allow_contract = lua::OptBooleanField(L, 3, "allow_contract").value_or(false);
  o.dry_run = lua::OptBooleanField(L, 3, "dry_run").value_or(false);
  o.allow_missing = lua::OptBooleanField(L, 3, "allow_missing").value_or(false);
  o.allow_out_of_order = lua::OptBooleanField(L, 3, "allow_out_of_order").value_or(false);
  VmHost host(L, 1, &use.get());
  db::MigrateEnv env = EnvFor(L, &host, 3);
  db::UpResult r;
  Journaled(L, "up " + dir, {{"dir", dir}, {"policy", o.policy}, {"dry_run", o.dry_run}}, [&](json& d) {
    r = db::Up(use.get(), dir, o, env);
    d["applied"] = r.applied.size();
    d["to"] = r.to ? json(*r.to) : json(nullptr);
  });
  PushResult(L, r.ToJson());
  return 1;
}

/// migrate.down(db, {steps = N} | {to = V}, dry_run, lock_timeout, lock_ttl) -> {from, to, rolled_back, plan}
int l_down(lua_State* L) {
  ConnectionUse use(L, 1);
  lua::CheckKeys(L, 2, "migrate.down", {"steps", "to", "dry_run", "lock_timeout", "lock_ttl", "safety_backup"});
  db::DownOptions o;
  if (auto s = lua::OptIntegerField(L, 2, "steps")) o.steps = *s;
  if (auto t = lua::OptIntegerField(L, 2, "to")) o.to = *t;
  o.dry_run = lua::OptBooleanField(L, 2, "dry_run").value_or(false);
  VmHost host(L, 1, &use.get());
  db::MigrateEnv env = EnvFor(L, &host, 2);
  db::DownResult r;
  Journaled(L, "down", {{"dry_run", o.dry_run}}, [&](json& d) {
    r = db::Down(use.get(), o, env);
    d["rolled_back"] = r.rolled_back.size();
  });
  PushResult(L, r.ToJson());
  return 1;
}

/// migrate.baseline(db, version [, opts]) or migrate.baseline(db, dir, {version | import, table, column, reason})
int l_baseline(lua_State* L) {
  ConnectionUse use(L, 1);
  db::BaselineOptions o;
  int opts = 3;
  if (lua_isinteger(L, 2)) {
    o.version = lua_tointeger(L, 2);
  } else if (lua_type(L, 2) == LUA_TSTRING) {
    o.dir = ResolveDir(L, lua_tostring(L, 2));
  } else if (lua_istable(L, 2)) {
    opts = 2;
  } else {
    throw Error("lua", "invalid",
                fmt::format("bad argument #2 to 'migrate.baseline' (a version, a dir or an options table expected, "
                            "got {})",
                            luaL_typename(L, 2)));
  }
  lua::CheckKeys(L, opts, "migrate.baseline", {"version", "dir", "import", "table", "column", "reason",
                                               "lock_timeout", "lock_ttl"});
  if (auto v = lua::OptIntegerField(L, opts, "version")) o.version = *v;
  if (auto d = lua::OptStringField(L, opts, "dir")) o.dir = ResolveDir(L, *d);
  o.import = lua::OptStringField(L, opts, "import").value_or("");
  o.table = lua::OptStringField(L, opts, "table").value_or(o.table);
  o.column = lua::OptStringField(L, opts, "column").value_or("");
  o.reason = lua::OptStringField(L, opts, "reason").value_or("");
  db::MigrateEnv env = EnvFor(L, nullptr, opts);
  db::BaselineResult r;
  Journaled(L, o.import.empty() ? "baseline" : "import " + o.import,
            {{"dir", o.dir}, {"import", o.import}, {"reason", o.reason}},
            [&](json& d) {
              r = db::Baseline(use.get(), o, env);
              d["recorded"] = r.recorded.size();
            });
  PushResult(L, r.ToJson());
  return 1;
}

/// migrate.repair(db, {reason, dir, version}) or migrate.repair(db, dir, {reason, version})
int l_repair(lua_State* L) {
  ConnectionUse use(L, 1);
  db::RepairOptions o;
  int opts = 2;
  if (lua_type(L, 2) == LUA_TSTRING) {
    o.dir = ResolveDir(L, lua_tostring(L, 2));
    opts = 3;
  }
  lua::CheckTable(L, opts, "options");
  lua::CheckKeys(L, opts, "migrate.repair", {"reason", "dir", "version", "lock_timeout", "lock_ttl"});
  o.reason = lua::OptStringField(L, opts, "reason").value_or("");
  if (auto d = lua::OptStringField(L, opts, "dir")) o.dir = ResolveDir(L, *d);
  if (auto v = lua::OptIntegerField(L, opts, "version")) o.version = *v;
  db::MigrateEnv env = EnvFor(L, nullptr, opts);
  db::RepairResult r;
  Journaled(L, "repair", {{"dir", o.dir}, {"reason", o.reason}, {"by", db::DefaultOperator()}}, [&](json& d) {
    r = db::Repair(use.get(), o, env);
    d["accepted"] = r.accepted;
    d["dropped"] = r.dropped;
  });
  PushResult(L, r.ToJson());
  return 1;
}

/// migrate.lint(db, dir, {data, pg_bin, scratch_dir}) -> {ok, migrations, problems, warnings, text}
int l_lint(lua_State* L) {
  ConnectionUse use(L, 1);
  if (auto* r = dynamic_cast<engine::RemoteDbConnection*>(&use.get())) {
    // Lint rehearses on a copy it makes with SQLite's backup API in this
    // process: another host's file is not within reach of it.
    throw Error("migrate", "unsupported",
                fmt::format("migrate.lint({} on host {}): lint rehearses pending migrations on a copy made here, "
                            "and that file is on another host: lint a copy of it here (hoist backup there, then "
                            "db.open the copy), or run hoist on {}",
                            use.get().redacted(), r->host(), r->host()));
  }
  std::string dir = ResolveDir(L, lua::CheckString(L, 2, "dir"));
  lua::CheckKeys(L, 3, "migrate.lint", {"data", "pg_bin", "scratch_dir"});
  db::LintOptions o;
  o.data = lua::OptBooleanField(L, 3, "data").value_or(true);
  o.pg_bin = lua::OptStringField(L, 3, "pg_bin").value_or("");
  o.scratch_dir = lua::OptStringField(L, 3, "scratch_dir").value_or("");
  VmHost host(L, 1, &use.get());
  db::MigrateEnv env = EnvFor(L, &host, 3);
  db::LintReport r;
  Journaled(L, "lint " + dir, {{"dir", dir}}, [&](json& d) {
    r = db::Lint(use.get(), dir, o, env);
    d["ok"] = r.ok();
    d["problems"] = r.problems;
  });
  PushResult(L, r.ToJson());
  return 1;
}

}  // namespace

int OpenMigrate(lua_State* L) {
  const luaL_Reg fns[] = {{"status", lua::Protect<l_status>},   {"validate", lua::Protect<l_validate>},
                          {"up", lua::Protect<l_up>},           {"down", lua::Protect<l_down>},
                          {"baseline", lua::Protect<l_baseline>}, {"repair", lua::Protect<l_repair>},
                          {"lint", lua::Protect<l_lint>},       {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind

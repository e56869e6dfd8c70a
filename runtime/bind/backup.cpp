// hoist.backup: verified backups of a hoist.db connection — create, list,
// verify, prune, restore (into the live database, after confirmation) and
// drill. Results are tables; mutations are journaled as world calls and
// long phases report progress. The work is in db/backup.h.
#include <lua.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "bind/backup.h"
#include "bind/context.h"
#include "bind/db.h"
#include "bind/modules.h"
#include "core/error.h"
#include "core/log.h"
#include "core/secrets.h"
#include "db/backup.h"
#include "db/connection.h"
#include "engine/remote_db.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "sys/clock.h"

namespace hoist::bind {
namespace {

namespace bk = db::backup;
using json = nlohmann::json;

/// Progress to the run's reporter (none outside a run).
bk::ProgressFn ProgressOf(lua_State* L) {
  Context* ctx = GetContext(L);
  if (!ctx || !ctx->reporter) return nullptr;
  engine::Reporter* reporter = ctx->reporter;
  return [reporter](const std::string& label, double done, double total, const std::string& unit) {
    reporter->Progress(label, done, total, unit);
  };
}

std::optional<int64_t> RunIdOf(lua_State* L) {
  Context* ctx = GetContext(L);
  if (ctx && ctx->runner) return ctx->runner->run_id();
  return std::nullopt;
}

/// What a backup needs from a connection: the SQLite file, or the libpq
/// conninfo (password included, never printed) and its printable form; for
/// a file on another host (db.open with host=), that connection: its agent
/// backs up and restores there.
struct Source {
  bool sqlite = true;
  std::string path;
  std::string conninfo;
  std::string redacted;
  engine::RemoteDbConnection* remote = nullptr;
};

Source SourceOf(lua_State* L, int idx) {
  db::Connection& conn = CheckConnection(L, idx);
  Source s;
  s.sqlite = conn.url().engine == db::Engine::kSqlite;
  s.redacted = conn.redacted();
  s.remote = dynamic_cast<engine::RemoteDbConnection*>(&conn);
  if (s.sqlite) {
    if (conn.url().memory()) throw Error("backup", "invalid", "an in-memory SQLite database has no file to back up");
    s.path = conn.url().path;
  } else {
    s.conninfo = conn.url().conninfo;
  }
  return s;
}

/// A backups dir for a file on another host: an absolute dir is that path on
/// the host; a relative one is beside the database file there (the project
/// is not on that host).
std::string RemoteDir(const engine::RemoteDbConnection& conn, const std::string& dir) {
  if (!dir.empty() && dir[0] == '/') return dir;
  const std::string& path = conn.url().path;
  return path.substr(0, path.find_last_of('/')) + "/" + dir;
}

/// The key of a database in the run's safety backups: a file on another
/// host is another database than the same path here.
std::string SafetyKey(db::Connection& conn) {
  auto* remote = dynamic_cast<engine::RemoteDbConnection*>(&conn);
  return remote ? "host " + remote->host() + ": " + conn.redacted() : conn.redacted();
}

/// compress = true | false | level.
int CompressOption(lua_State* L, int idx) {
  lua::RawField(L, idx, "compress");
  int level = 0;
  if (lua_isboolean(L, -1)) {
    level = lua_toboolean(L, -1) ? -1 : 0;
  } else if (lua_isinteger(L, -1)) {
    level = static_cast<int>(lua_tointeger(L, -1));
  } else if (!lua_isnil(L, -1)) {
    lua_pop(L, 1);
    throw Error("backup", "invalid", "compress must be a boolean or a compression level");
  }
  lua_pop(L, 1);
  if (level < -1) throw Error("backup", "invalid", "compress must be a boolean or a compression level");
  return level;
}

/// A string or a list of strings (smoke_sql).
std::vector<std::string> StringOrList(lua_State* L, int idx, const char* key) {
  lua::RawField(L, idx, key);
  bool is_string = lua_type(L, -1) == LUA_TSTRING;
  std::string one = is_string ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  if (is_string) return {one};
  return lua::OptStringListField(L, idx, key).value_or(std::vector<std::string>{});
}

/// The optional `conn` field of an options table (a PostgreSQL server for
/// deep verify and drills).
std::string ServerOption(lua_State* L, int idx) {
  if (!lua_istable(L, idx)) return "";
  lua::RawField(L, idx, "conn");
  int field = lua_gettop(L);
  std::string conninfo;
  if (!lua_isnil(L, field)) {
    try {
      Source s = SourceOf(L, field);
      if (s.sqlite) throw Error("backup", "invalid", "conn must be a PostgreSQL connection");
      conninfo = s.conninfo;
    } catch (...) {
      lua_settop(L, field - 1);
      throw;
    }
  }
  lua_settop(L, field - 1);
  return conninfo;
}

void PushResult(lua_State* L, const json& j) { lua::PushJson(L, j); }

/// In a sandbox (`dir` is the sandbox's stand-in for `real`), the real
/// backups dir, read-only: listing, verifying and restoring *from* it
/// writes nothing real, so `restore`/`verify --sandbox` rehearse with the
/// backups a real run would use, and prune and a create's retention count
/// them as the real run does. A real backup of the environment's database
/// names the real file as its source: it is named as the copy's, which is
/// what the run's connection says it is. Outside a sandbox: none.
bk::ReadOnlyBackups RealBackups(lua_State* L, const std::string& real, const std::string& dir) {
  Context* ctx = GetContext(L);
  if (!ctx || dir == real) return {};
  bk::ReadOnlyBackups r;
  r.dir = real[0] == '/' ? real : ctx->project_root + "/" + real;
  r.gone = &ctx->sandbox_pruned;
  r.source = [redirects = ctx->db_redirects](const std::string& source) {
    std::error_code ec;
    std::string canon = std::filesystem::weakly_canonical(source, ec).string();
    auto it = redirects.find(ec || source.empty() ? source : canon);
    if (it == redirects.end()) it = redirects.find(source);
    if (it == redirects.end()) return source;
    db::DbUrl u = db::ParseUrl(it->second);
    return u.engine == db::Engine::kSqlite ? u.path : u.redacted;
  };
  return r;
}

/// Runs create(); when it throws, the run raises backup.failed (for
/// hoist.lua's notify targets) before the error goes on. host: the host a
/// file on another host is on ("" here).
template <typename F>
auto CreateOrRaise(lua_State* L, const std::string& database, const std::string& label, F&& create,
                   const std::string& host = "") -> decltype(create()) {
  try {
    return create();
  } catch (const std::exception& e) {
    auto* he = dynamic_cast<const Error*>(&e);
    try {
      json data = {{"database", database}, {"label", label}, {"error", Mask(e.what())}, {"code", he ? he->code() : "error"}};
      if (!host.empty()) data["host"] = host;
      RaiseEvent(L, "backup.failed", data);
    } catch (const std::exception&) {
      // The backup's own error is what the run reports.
    }
    throw;
  }
}

/// backup.create(conn, { dir, label, keep, keep_safety, compress, protect, safety, reason,
///   format, data_only, schema_only, tables, pg_bin }) -> { path, sha256, size, manifest, pruned, ... }
int l_create(lua_State* L) {
  Source src = SourceOf(L, 1);
  lua::CheckTable(L, 2, "options");
  lua::CheckKeys(L, 2, "backup.create",
                 {"dir", "label", "keep", "keep_safety", "compress", "protect", "safety", "reason", "format", "data_only",
                  "schema_only", "tables", "pg_bin"});
  bk::CreateOptions o;
  std::string real_dir = lua::CheckStringField(L, 2, "dir");
  o.dir = SandboxPath(L, real_dir);
  o.read_only = RealBackups(L, real_dir, o.dir);
  if (auto v = lua::OptStringField(L, 2, "label")) o.label = *v;
  if (auto v = lua::OptIntegerField(L, 2, "keep")) o.keep = static_cast<int>(*v);
  if (auto v = lua::OptIntegerField(L, 2, "keep_safety")) o.keep_safety = static_cast<int>(*v);
  o.compress = CompressOption(L, 2);
  o.protect = lua::OptBooleanField(L, 2, "protect").value_or(false);
  o.safety = lua::OptBooleanField(L, 2, "safety").value_or(false);
  if (auto v = lua::OptStringField(L, 2, "reason")) o.reason = *v;
  if (auto v = lua::OptStringField(L, 2, "format")) o.format = *v;
  o.data_only = lua::OptBooleanField(L, 2, "data_only").value_or(false);
  o.schema_only = lua::OptBooleanField(L, 2, "schema_only").value_or(false);
  if (auto v = lua::OptStringListField(L, 2, "tables")) o.tables = *v;
  if (auto v = lua::OptStringField(L, 2, "pg_bin")) o.pg_bin = *v;
  if (src.sqlite && (o.format != "custom" || o.data_only || o.schema_only || !o.tables.empty())) {
    throw Error("backup", "invalid", "format, data_only, schema_only and tables apply to PostgreSQL only");
  }
  o.run_id = RunIdOf(L);
  o.progress = ProgressOf(L);
  double start = sys::Monotonic();
  if (src.remote) {
    // Taken on the host by its agent, with db::backup::CreateSqlite there.
    json options = {{"label", o.label},     {"keep", o.keep},       {"keep_safety", o.keep_safety},
                    {"compress", o.compress}, {"protect", o.protect}, {"safety", o.safety},
                    {"reason", o.reason}};
    if (o.run_id) options["run_id"] = *o.run_id;
    json r = CreateOrRaise(
        L, src.redacted, o.label, [&] { return src.remote->Backup(RemoteDir(*src.remote, real_dir), options); },
        src.remote->host());
    RecordWorld(L, "backup", "create " + r.value("path", ""),
                {{"source", src.redacted}, {"host", src.remote->host()}, {"path", r.value("path", "")},
                 {"sha256", r.value("sha256", "")}, {"size", r.value("size", 0)},
                 {"pruned", r.value("pruned", json::array())}},
                sys::Monotonic() - start);
    if (o.safety) RecordSafetyBackup(L, CheckConnection(L, 1));
    r["host"] = src.remote->host();
    PushResult(L, r);
    return 1;
  }
  bk::CreateResult r = CreateOrRaise(L, src.redacted, o.label, [&] {
    return src.sqlite ? bk::CreateSqlite(src.path, o) : bk::CreatePostgres(src.conninfo, src.redacted, o);
  });
  RecordWorld(L, "backup", "create " + r.path,
              {{"source", src.redacted}, {"path", r.path}, {"sha256", r.sha256}, {"size", r.size}, {"pruned", r.pruned}},
              sys::Monotonic() - start);
  if (o.safety) RecordSafetyBackup(L, CheckConnection(L, 1));
  PushResult(L, json{{"path", r.path},
                     {"manifest_path", r.manifest_path},
                     {"sha256", r.sha256},
                     {"size", r.size},
                     {"seconds", r.seconds},
                     {"manifest", r.manifest},
                     {"pruned", r.pruned}});
  return 1;
}

/// backup.list(dir) -> { {path, name, engine, source, label, created_at, size, verified, protected, safety, manifest}, ... }
int l_list(lua_State* L) {
  std::string real = lua::CheckString(L, 1, "dir");
  std::string dir = SandboxPath(L, real);
  std::vector<bk::Entry> entries = bk::List(dir, RealBackups(L, real, dir));
  json out = json::array();
  for (const auto& e : entries) {
    out.push_back({{"path", e.path},
                   {"name", e.name},
                   {"engine", e.engine},
                   {"source", e.source},
                   {"label", e.label},
                   {"created_at", e.created_at},
                   {"size", e.size},
                   {"verified", e.verified},
                   {"protected", e.is_protected},
                   {"safety", e.is_safety},
                   {"has_manifest", e.has_manifest},
                   {"manifest", e.manifest}});
  }
  PushResult(L, out);
  return 1;
}

/// backup.verify(file, { deep, conn, pg_bin }) -> { ok, problems, message, sha256, integrity, ... }
/// A damaged backup is an answer (ok = false), not an error.
int l_verify(lua_State* L) {
  std::string file = lua::CheckString(L, 1, "file");
  lua::CheckKeys(L, 2, "backup.verify", {"deep", "conn", "pg_bin"});
  bk::VerifyOptions o;
  o.deep = lua::OptBooleanField(L, 2, "deep").value_or(false);
  o.conninfo = ServerOption(L, 2);
  if (auto v = lua::OptStringField(L, 2, "pg_bin")) o.pg_bin = *v;
  o.progress = ProgressOf(L);
  double start = sys::Monotonic();
  bk::VerifyResult r = bk::Verify(file, o);
  json j = r.ToJson();
  std::string message;
  for (const auto& p : r.problems) message += (message.empty() ? "" : "; ") + p;
  j["message"] = r.ok ? "ok" : message;
  RecordWorld(L, "backup", "verify " + file, {{"ok", r.ok}, {"problems", r.problems}, {"deep", o.deep}},
              sys::Monotonic() - start);
  PushResult(L, j);
  return 1;
}

/// backup.prune(dir, { keep, keep_safety, older_than = "30d", source, dry_run }) -> { removed, kept, stale }
int l_prune(lua_State* L) {
  std::string real = lua::CheckString(L, 1, "dir");
  std::string dir = SandboxPath(L, real);
  lua::CheckTable(L, 2, "options");
  lua::CheckKeys(L, 2, "backup.prune", {"keep", "keep_safety", "older_than", "source", "dry_run"});
  bk::PruneOptions o;
  if (auto v = lua::OptIntegerField(L, 2, "keep")) o.keep = static_cast<int>(*v);
  if (auto v = lua::OptIntegerField(L, 2, "keep_safety")) o.keep_safety = static_cast<int>(*v);
  lua::RawField(L, 2, "older_than");
  bool is_number = lua_type(L, -1) == LUA_TNUMBER;
  double seconds = is_number ? lua_tonumber(L, -1) : 0;
  lua_pop(L, 1);
  if (is_number) {
    o.older_than = seconds;
  } else if (auto v = lua::OptStringField(L, 2, "older_than")) {
    o.older_than = bk::ParseAge(*v);
  }
  if (auto v = lua::OptStringField(L, 2, "source")) o.source = *v;
  o.dry_run = lua::OptBooleanField(L, 2, "dry_run").value_or(false);
  // A rehearsal counts the real backups and lists those the real prune
  // would remove, removing none of them.
  o.read_only = RealBackups(L, real, dir);
  double start = sys::Monotonic();
  bk::PruneResult r = bk::Prune(dir, o);
  if (!o.dry_run) {
    RecordWorld(L, "backup", "prune " + dir, {{"removed", r.removed}, {"stale", r.stale}}, sys::Monotonic() - start);
  }
  PushResult(L, json{{"removed", r.removed}, {"kept", r.kept}, {"stale", r.stale}, {"dry_run", o.dry_run}});
  return 1;
}

/// backup.restore(file, conn, { safety_backup = true, safety_dir, confirm, pg_bin }) -> { target, safety_backup, pages, verified, ... }
int l_restore(lua_State* L) {
  std::string file = lua::CheckString(L, 1, "file");
  Source target = SourceOf(L, 2);
  if (target.remote && (file.empty() || file[0] != '/')) {
    throw Error("backup", "invalid",
                fmt::format("restore into {} on host {}: the backup file \"{}\" is read there: give its absolute "
                            "path on {}",
                            target.redacted, target.remote->host(), file, target.remote->host()));
  }
  lua::CheckKeys(L, 3, "backup.restore", {"safety_backup", "safety_dir", "confirm", "pg_bin"});
  bk::RestoreOptions o;
  o.safety_backup = lua::OptBooleanField(L, 3, "safety_backup").value_or(true);
  if (auto v = lua::OptStringField(L, 3, "safety_dir")) o.safety_dir = SandboxPath(L, *v);
  if (auto v = lua::OptStringField(L, 3, "pg_bin")) o.pg_bin = *v;
  bool confirmed = lua::OptBooleanField(L, 3, "confirm").value_or(false);
  Confirm(L, confirmed,
          "restore " + file + " into " + target.redacted + (target.remote ? " on host " + target.remote->host() : ""));
  o.run_id = RunIdOf(L);
  o.progress = ProgressOf(L);
  double start = sys::Monotonic();
  if (target.remote) {
    // The backup file and the database are on the host: its agent verifies,
    // takes the safety backup and restores there (db::backup::RestoreSqlite).
    json options = {{"safety_backup", o.safety_backup}};
    if (!o.safety_dir.empty()) options["safety_dir"] = RemoteDir(*target.remote, o.safety_dir);
    if (o.run_id) options["run_id"] = *o.run_id;
    json r = target.remote->Restore(file, options);
    r["target"] = target.redacted;
    r["host"] = target.remote->host();
    RecordWorld(L, "backup", "restore " + file,
                {{"file", file}, {"target", target.redacted}, {"host", target.remote->host()},
                 {"safety_backup", r.value("safety_backup", "")}, {"pages", r.value("pages", 0)}},
                sys::Monotonic() - start);
    PushResult(L, r);
    return 1;
  }
  bk::RestoreResult r = target.sqlite ? bk::RestoreSqlite(file, target.path, o)
                                      : bk::RestorePostgres(file, target.conninfo, target.redacted, o);
  r.target = target.redacted;
  RecordWorld(L, "backup", "restore " + file,
              {{"file", file}, {"target", target.redacted}, {"safety_backup", r.safety_backup}, {"pages", r.pages}},
              sys::Monotonic() - start);
  PushResult(L, r.ToJson());
  return 1;
}

/// backup.drill(file, { smoke_sql = "..." | {...}, conn, pg_bin }) -> { ok, integrity, fingerprint_ok, smoke, problems }
int l_drill(lua_State* L) {
  std::string file = lua::CheckString(L, 1, "file");
  lua::CheckKeys(L, 2, "backup.drill", {"smoke_sql", "conn", "pg_bin"});
  bk::DrillOptions o;
  o.smoke_sql = StringOrList(L, 2, "smoke_sql");
  o.conninfo = ServerOption(L, 2);
  if (auto v = lua::OptStringField(L, 2, "pg_bin")) o.pg_bin = *v;
  o.progress = ProgressOf(L);
  // A rehearsal may drill the real backups (read-only), never record into them.
  o.record = SandboxPath(L, file) == file;
  double start = sys::Monotonic();
  bk::DrillResult r = bk::Drill(file, o);
  RecordWorld(L, "backup", "drill " + file, {{"ok", r.ok}, {"problems", r.problems}}, sys::Monotonic() - start);
  PushResult(L, r.ToJson());
  return 1;
}

// The migration version recorded in the database (null: none).
json MigrationVersionOf(db::Connection& conn) {
  auto tables = conn.Tables();
  if (std::find(tables.begin(), tables.end(), "hoist_schema_migrations") == tables.end()) return nullptr;
  auto r = conn.Query("SELECT max(version) FROM hoist_schema_migrations WHERE success");
  if (r.rows.empty()) return nullptr;
  return db::ValueToJson(r.rows[0][0]);
}

}  // namespace

void RecordSafetyBackup(lua_State* L, db::Connection& conn) {
  if (Context* ctx = GetContext(L); ctx && ctx->runner) ctx->safety_backups[SafetyKey(conn)] = MigrationVersionOf(conn);
}

namespace {

/// The safety backup of a file on another host, taken there by its agent
/// (db::backup::CreateSqlite on that host): into the environment's backups
/// dir when it is absolute (the same path on that host), else into
/// .hoist/backups beside the database file (the project is not there).
void RemoteSafetyBackup(lua_State* L, engine::RemoteDbConnection& conn, const std::string& backups_dir,
                        const bk::CreateOptions& o, const std::string& what) {
  const std::string dir = RemoteDir(conn, backups_dir);
  json options = {{"label", "pre-destructive"}, {"safety", true},  {"keep_safety", o.keep_safety},
                  {"compress", o.compress}, {"reason", Mask("before " + what)}};
  if (o.run_id) options["run_id"] = *o.run_id;
  double start = sys::Monotonic();
  json r = CreateOrRaise(L, conn.redacted(), "pre-destructive", [&] { return conn.Backup(dir, options); }, conn.host());
  RecordWorld(L, "backup", "create " + r.value("path", ""),
              {{"source", conn.redacted()}, {"host", conn.host()}, {"path", r.value("path", "")},
               {"sha256", r.value("sha256", "")}, {"size", r.value("size", 0)}, {"pruned", r.value("pruned", json::array())},
               {"safety", true}, {"reason", options["reason"]}},
              sys::Monotonic() - start);
  std::string line = fmt::format("safety backup before {}: host {}: {}", what, conn.host(), r.value("path", ""));
  log::Info(Mask(line));
  if (Context* ctx = GetContext(L); ctx && ctx->runner) ctx->runner->Note("log", "info", {{"message", Mask(line)}});
}

}  // namespace

void EnsureSafetyBackup(lua_State* L, db::Connection& conn, const std::string& what) {
  Context* ctx = GetContext(L);
  if (!ctx || !ctx->runner) return;
  const json version = MigrationVersionOf(conn);
  auto* remote = dynamic_cast<engine::RemoteDbConnection*>(&conn);
  const std::string key = SafetyKey(conn);
  auto it = ctx->safety_backups.find(key);
  if (it != ctx->safety_backups.end() && it->second == version) return;
  // Tables() leaves hoist's own out: nothing of the user's to lose.
  auto tables = conn.Tables();
  tables.erase(std::remove(tables.begin(), tables.end(), "hoist_schema_migrations"), tables.end());
  if (tables.empty()) return;
  if (conn.url().engine == db::Engine::kSqlite && conn.url().memory()) return;

  bk::CreateOptions o;
  std::string real_dir = ".hoist/backups";
  const json& b = ctx->env_backups;
  if (b.is_string()) real_dir = b.get<std::string>();
  if (b.is_object()) {
    if (b.contains("dir") && b["dir"].is_string()) real_dir = b["dir"].get<std::string>();
    if (b.contains("keep_safety") && b["keep_safety"].is_number_integer()) o.keep_safety = b["keep_safety"].get<int>();
    if (b.contains("compress")) {
      const json& c = b["compress"];
      o.compress = c.is_boolean() ? (c.get<bool>() ? 3 : 0) : c.is_number_integer() ? c.get<int>() : 0;
    }
    if (b.contains("format") && b["format"].is_string()) o.format = b["format"].get<std::string>();
    if (b.contains("pg_bin") && b["pg_bin"].is_string()) o.pg_bin = b["pg_bin"].get<std::string>();
  }
  if (remote) {
    RemoteSafetyBackup(L, *remote, real_dir, o, what);
    ctx->safety_backups[key] = version;
    return;
  }
  if (real_dir[0] != '/') real_dir = ctx->project_root + "/" + real_dir;
  o.dir = SandboxPath(L, real_dir);
  o.read_only = RealBackups(L, real_dir, o.dir);
  o.label = "pre-destructive";
  o.safety = true;
  o.reason = Mask("before " + what);
  o.run_id = RunIdOf(L);
  o.progress = ProgressOf(L);
  const bool sqlite = conn.url().engine == db::Engine::kSqlite;
  if (sqlite) o.format = "custom";  // the format setting is pg_dump's
  double start = sys::Monotonic();
  bk::CreateResult r = CreateOrRaise(L, conn.redacted(), o.label, [&] {
    return sqlite ? bk::CreateSqlite(conn.url().path, o) : bk::CreatePostgres(conn.url().conninfo, conn.redacted(), o);
  });
  RecordWorld(L, "backup", "create " + r.path,
              {{"source", conn.redacted()}, {"path", r.path}, {"sha256", r.sha256}, {"size", r.size},
               {"pruned", r.pruned}, {"safety", true}, {"reason", o.reason}},
              sys::Monotonic() - start);
  std::string line = fmt::format("safety backup before {}: {}", what, r.path);
  log::Info(Mask(line));
  ctx->runner->Note("log", "info", {{"message", Mask(line)}});
  ctx->safety_backups[conn.redacted()] = version;
}

int OpenBackup(lua_State* L) {
  const luaL_Reg fns[] = {{"create", lua::Protect<l_create>}, {"list", lua::Protect<l_list>},
                          {"verify", lua::Protect<l_verify>}, {"prune", lua::Protect<l_prune>},
                          {"restore", lua::Protect<l_restore>}, {"drill", lua::Protect<l_drill>},
                          {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind

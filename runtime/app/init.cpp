#include "app/init.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"
#include "db/url.h"
#include "sys/fs.h"

namespace hoist::app {
namespace {

[[noreturn]] void Invalid(const std::string& msg) { throw Error("init", "invalid", msg); }

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(sep, start);
    out.push_back(Trim(s.substr(start, at == std::string::npos ? std::string::npos : at - start)));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

// "5001" -> 5001, anything else -> 0.
int Port(const std::string& s) {
  if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return 0;
  }
  int p = std::stoi(s);
  return p >= 1 && p <= 65535 ? p : 0;
}

bool IsLuaName(const std::string& s) {
  static const std::set<std::string> kKeywords = {"and", "break", "do", "else", "elseif", "end", "false", "for",
                                                  "function", "goto", "if", "in", "local", "nil", "not", "or",
                                                  "repeat", "return", "then", "true", "until", "while"};
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return kKeywords.count(s) == 0;
}

// A Lua string literal holding s exactly.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\{:03d}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string Key(const std::string& name) { return IsLuaName(name) ? name : "[" + Quote(name) + "]"; }

// A name for an environment or a colour: it becomes a key, a service name
// (app-<colour>) and a word nginx's verify looks for.
std::string CheckName(const std::string& flag, const std::string& what, const std::string& v) {
  if (v.empty()) return fmt::format("--{}: give {}", flag, what);
  for (unsigned char c : v) {
    if (!std::isalnum(c) && c != '_' && c != '-') {
      return fmt::format("--{}: '{}' is not a name (letters, digits, '_' and '-' only)", flag, v);
    }
  }
  return "";
}

std::string Value(const InitAnswers& a, const std::string& key) {
  if (auto v = a.Get(key)) return *v;
  for (const auto& f : InitFields()) {
    if (key == f.key) return f.fallback;
  }
  return "";
}

std::vector<std::string> Argv(const std::string& start) {
  std::vector<std::string> out;
  for (const auto& w : Split(start, ' ')) {
    if (!w.empty()) out.push_back(w);
  }
  return out;
}

std::string LuaList(const std::vector<std::string>& items) {
  std::vector<std::string> q;
  for (const auto& i : items) q.push_back(Quote(i));
  return "{ " + Join(q, ", ") + " }";
}

}  // namespace

const std::vector<InitField>& InitFields() {
  static const std::vector<InitField> fields = {
      {"env", "Environment name", "prod", "prod", false},
      {"db", "Database URL (sqlite:data/app.db, or postgres://user@host/db)", "", "sqlite:data/app.db", true},
      {"start", "The app's command, split at spaces ({port}: the colour's port)", "", "'bin/app --port {port}'",
       true},
      {"ports", "The two colours' ports", "", "5001,5002", true},
      {"colours", "The two colours' names", "blue,green", "blue,green", false},
      {"health", "Health check path, on each colour's own port", "", "/health", true},
      {"nginx-include", "The nginx include holding the upstream hoist switches", "",
       "/etc/nginx/conf.d/app-upstream.conf", true},
      {"upstream", "The upstream block's name in it", "api", "api", false},
      {"nginx-pid", "nginx's pid file (empty: none; hoist then reloads with nginx -s reload)", "",
       "/run/nginx.pid", false},
      {"nginx-url", "A URL through nginx that reaches the app (empty: http://127.0.0.1 + the health path)", "",
       "http://127.0.0.1/health", false},
      {"colour-header", "A response header in which the app names its colour (empty: none)", "", "X-Colour", false},
      {"migrations", "Migrations directory", "migrations", "migrations", false},
      {"backups", "Backups directory", ".hoist/backups", ".hoist/backups", false},
  };
  return fields;
}

std::optional<std::string> InitAnswers::Get(const std::string& key) const {
  for (const auto& [k, v] : values) {
    if (k == key) return v;
  }
  return std::nullopt;
}

void InitAnswers::Set(const std::string& key, const std::string& value) {
  for (auto& [k, v] : values) {
    if (k == key) {
      v = value;
      return;
    }
  }
  values.emplace_back(key, value);
}

std::string CheckInitValue(const std::string& key, const std::string& v) {
  if (key == "env") return CheckName(key, "an environment name, e.g. prod", v);
  if (key == "db") {
    if (v.empty()) return "--db: give a database URL, e.g. sqlite:data/app.db or postgres://app@db1/app";
    if (v.rfind("sqlite:", 0) != 0 && v.rfind("postgres://", 0) != 0 && v.rfind("postgresql://", 0) != 0) {
      return "--db: a database URL starts with sqlite: or postgres:// (e.g. sqlite:data/app.db)";
    }
    try {
      db::DbUrl u = db::ParseUrl(v, "/");
      if (u.engine == db::Engine::kSqlite && u.path == ":memory:") {
        return "--db: an in-memory database does not outlive a deploy: give a file, e.g. sqlite:data/app.db";
      }
      if (u.engine == db::Engine::kSqlite && !u.mode.empty()) {
        return "--db: leave ?mode= out of the URL: deploy creates the file and writes to it";
      }
      if (u.has_password) {
        return "--db: the URL holds a password, which hoist.lua would then hold in clear: give the URL without it "
               "and add password = hoist.secret(\"DB_PASSWORD\") with db.url{...} (docs/config.md)";
      }
    } catch (const Error& e) {
      return "--db: " + e.message();
    }
    return "";
  }
  if (key == "start") {
    if (Argv(v).empty()) return "--start: give the app's command, e.g. --start 'bin/app --port {port}'";
    if (v.find_first_of("\"'\\`$|;&<>") != std::string::npos) {
      return "--start: the command is split at spaces and run without a shell, so quotes, $, |, ;, & and "
             "redirections would reach the app as they are: give the plain words, and edit app.argv in "
             "hoist.lua afterwards for an argument holding a space";
    }
    return "";
  }
  if (key == "ports") {
    auto parts = Split(v, ',');
    if (parts.size() != 2) {
      return fmt::format("--ports: give two ports, one per colour, e.g. 5001,5002 (got {})",
                         v.empty() ? "nothing" : "'" + v + "'");
    }
    for (const auto& p : parts) {
      if (!Port(p)) return fmt::format("--ports: '{}' is not a port (a whole number from 1 to 65535)", p);
    }
    if (Port(parts[0]) == Port(parts[1])) {
      return fmt::format("--ports: the two colours need different ports (got {} twice)", parts[0]);
    }
    return "";
  }
  if (key == "colours") {
    auto parts = Split(v, ',');
    if (parts.size() != 2) return fmt::format("--colours: give two names, e.g. blue,green (got '{}')", v);
    for (const auto& p : parts) {
      if (auto why = CheckName(key, "two colour names, e.g. blue,green", p); !why.empty()) return why;
    }
    if (parts[0] == parts[1]) return fmt::format("--colours: the two colours need different names (got {} twice)", parts[0]);
    return "";
  }
  if (key == "health") {
    if (v.empty() || v[0] != '/') {
      return fmt::format("--health: '{}' is not a path: it starts with / (e.g. /health)", v);
    }
    if (v.find_first_of(" \t\r\n") != std::string::npos) return "--health: a path has no spaces (e.g. /health)";
    return "";
  }
  if (key == "nginx-include") {
    if (v.empty()) return "--nginx-include: give the include file's path, e.g. /etc/nginx/conf.d/app-upstream.conf";
    if (v.back() == '/') return fmt::format("--nginx-include: '{}' names a directory: give the include file in it", v);
    return "";
  }
  if (key == "upstream") {
    if (v.empty() || !std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-' || c == '.'; })) {
      return fmt::format("--upstream: '{}' is not an nginx upstream name (letters, digits, '_', '-', '.')", v);
    }
    return "";
  }
  if (key == "nginx-pid") {
    if (!v.empty() && v.back() == '/') return fmt::format("--nginx-pid: '{}' names a directory: give the pid file", v);
    return "";
  }
  if (key == "nginx-url") {
    if (v.empty()) return "";
    if (v.rfind("http://", 0) != 0 && v.rfind("https://", 0) != 0) {
      return fmt::format("--nginx-url: '{}' is not an http:// or https:// URL (e.g. http://127.0.0.1/health)", v);
    }
    return "";
  }
  if (key == "colour-header") {
    if (v.empty()) return "";
    if (!std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; })) {
      return fmt::format("--colour-header: '{}' is not a header name (e.g. X-Colour)", v);
    }
    return "";
  }
  if (key == "migrations" || key == "backups") {
    if (v.empty()) return fmt::format("--{}: give a directory", key);
    return "";
  }
  return fmt::format("--{}: not an init option", key);
}

std::vector<InitFile> RenderInit(const InitAnswers& answers, bool first_migration) {
  std::vector<std::string> missing;
  for (const auto& f : InitFields()) {
    auto v = answers.Get(f.key);
    if (!v && f.required) {
      missing.push_back(std::string("--") + f.key);
      continue;
    }
    if (v) {
      if (auto why = CheckInitValue(f.key, *v); !why.empty()) Invalid(why);
    }
  }
  if (!missing.empty()) Invalid("missing " + Join(missing, ", "));

  const std::string env = Value(answers, "env");
  const std::string db = Value(answers, "db");
  const bool sqlite = db.rfind("sqlite:", 0) == 0;
  const auto ports = Split(Value(answers, "ports"), ',');
  const auto colours = Split(Value(answers, "colours"), ',');
  const std::string health = Value(answers, "health");
  const std::string include = Value(answers, "nginx-include");
  const std::string upstream = Value(answers, "upstream");
  std::string nginx_url = Value(answers, "nginx-url");
  if (nginx_url.empty()) nginx_url = "http://127.0.0.1" + health;
  const std::string header = Value(answers, "colour-header");
  const std::string migrations = Value(answers, "migrations");
  const std::string backups = Value(answers, "backups");
  const auto argv = Argv(Value(answers, "start"));
  const size_t cw = std::max(colours[0].size(), colours[1].size());

  std::string lua;
  lua += "-- hoist.lua: how hoist deploys this project (written by `hoist init`; edit it).\n"
         "-- hoist checks every key below before anything runs: a typo or a wrong type\n"
         "-- stops it with exit 2, naming the key. All keys: docs/config.md. Relative\n"
         "-- paths are relative to this file's directory, not to where you run hoist.\n"
         "return {\n"
         "  -- The environment commands use without --env.\n";
  lua += fmt::format("  default_env = {},\n\n", Quote(env));
  lua += "  environments = {\n";
  lua += fmt::format("    {} = {{\n", Key(env));
  lua += "      -- The database both colours share.";
  if (sqlite) {
    lua += " The first deploy creates this SQLite\n"
           "      -- file; once a release went live on it, a missing file is refused (its\n"
           "      -- path may be a typo; -e new_database=true moves on purpose).\n";
  } else {
    lua += " The role needs CREATEDB: deploys rehearse\n"
           "      -- migrations in a scratch database first. A password comes from\n"
           "      -- hoist.secret(\"DB_PASSWORD\") with db.url{...}, never written here.\n";
  }
  lua += fmt::format("      database = {},\n\n", Quote(db));
  lua += "      -- NNNN_name.sql files, each applied once, in order: deploy applies the\n"
         "      -- expand ones, `hoist contract` the contract ones (docs/migrations.md).\n";
  lua += fmt::format("      migrations = {},\n\n", Quote(migrations));
  lua += "      -- Every deploy first takes a backup here and verifies it; keep = how many.\n";
  lua += fmt::format("      backups = {{ dir = {}, keep = 10 }},\n\n", Quote(backups));
  lua += fmt::format("      -- The app runs twice: one colour serves traffic, the other is the\n"
                     "      -- standby that `hoist rollback` switches back to in about a second.\n"
                     "      app = {{\n"
                     "        kind = \"process\",   -- a local process, started without a shell (or \"docker\")\n"
                     "        -- Placeholders: {{port}} and {{colour}} per colour, {{version}} from\n"
                     "        -- `hoist deploy -e version=...`, {{database_path}} (the SQLite file).\n"
                     "        argv = {},\n"
                     "        env = {{ PORT = \"{{port}}\" }},   -- added to hoist's own environment\n"
                     "        cwd = \".\",                   -- the app runs in the project directory\n"
                     "        colours = {{\n",
                     LuaList(argv));
  if (!sqlite) {
    // {database_path} is empty for PostgreSQL: the app gets the URL by its environment.
    const std::string env_line = "        env = { PORT = \"{port}\" },";
    lua.insert(lua.find(env_line),
               "        -- PostgreSQL: hand the app its URL here (DATABASE_URL = ...), not in argv,\n"
               "        -- where anyone running ps would see its password.\n");
  }
  for (int i = 0; i < 2; ++i) {
    lua += fmt::format("          {:<{}} = {{ port = {} }},\n", Key(colours[i]), cw, Port(ports[i]));
  }
  lua += "        },\n"
         "        start_timeout = 30,   -- seconds for the new colour to open its port\n"
         "        stop_grace = 10,      -- seconds from SIGTERM to SIGKILL\n"
         "      },\n\n";
  lua += fmt::format(
      "      -- hoist switches traffic by rewriting the server line of one upstream\n"
      "      -- block in this include, then `nginx -t` and a reload. It never starts\n"
      "      -- nginx: nginx must be running with this file included, and the file\n"
      "      -- must already route to one colour: upstream {} {{ server 127.0.0.1:{}; }}\n"
      "      nginx = {{\n"
      "        conf = {},\n"
      "        upstream = {},\n",
      upstream, Port(ports[0]), Quote(include), Quote(upstream));
  const std::string pid = Value(answers, "nginx-pid");
  lua += "        -- With nginx's pid file, hoist sees new workers take each reload, and\n"
         "        -- stops an old colour only once the old workers are done with it.\n";
  lua += pid.empty() ? "        -- pid_file = \"/run/nginx.pid\",\n" : fmt::format("        pid_file = {},\n", Quote(pid));
  if (header.empty()) {
    lua += fmt::format(
        "        -- After a switch, hoist can prove by traffic that nginx serves the new\n"
        "        -- colour, when the app names its colour in a response header:\n"
        "        -- verify = {{ url = {}, expect_header = \"X-Colour\" }},\n"
        "        verify = false,\n",
        Quote(nginx_url));
  } else {
    lua += fmt::format(
        "        -- After a switch, probes through nginx until the answers come from the\n"
        "        -- new colour (the app names it in this header); else the switch is undone.\n"
        "        verify = {{ url = {}, expect_header = {} }},\n",
        Quote(nginx_url), Quote(header));
  }
  lua += "      },\n\n";
  lua += fmt::format(
      "      -- The gate before the switch, on the new colour's own port: this path\n"
      "      -- must answer 2xx within timeout seconds, or nothing is switched.\n"
      "      health = {{\n"
      "        path = {},\n"
      "        timeout = 30,\n"
      "        -- sql = \"SELECT 1 FROM users LIMIT 1\",   -- a query the new release needs to work\n"
      "      }},\n\n"
      "      -- After the switch, probes through nginx for this many seconds; a failed\n"
      "      -- probe switches traffic back to the old colour.\n"
      "      bake = {{ seconds = 10, url = {} }},\n"
      "    }},\n"
      "  }},\n"
      "}}\n",
      Quote(health), Quote(nginx_url));

  std::string migration =
      "-- The first migration (written by `hoist init`): replace its statements\n"
      "-- with your schema's first step. Each file runs once, in number order, and\n"
      "-- is recorded in the database's hoist_schema_migrations table.\n"
      "-- `expand`: it adds and removes nothing the running release needs, so it\n"
      "-- can run while the old colour serves (docs/migrations.md).\n"
      "-- hoist:phase expand\n"
      "-- hoist:up\n"
      "CREATE TABLE app_settings (\n"
      "  name TEXT PRIMARY KEY,\n"
      "  value TEXT NOT NULL\n"
      ");\n"
      "\n"
      "-- hoist:down\n"
      "DROP TABLE app_settings;\n";
  std::vector<InitFile> files = {{"hoist.lua", lua, false}, {"playbooks", "", true}};
  // releases/{version}/migrations: each release brings its own.
  if (first_migration && migrations.find('{') == std::string::npos) {
    files.push_back({migrations, "", true});
    files.push_back({migrations + "/0001_app_settings.sql", migration, false});
  }
  return files;
}

std::string InitNextSteps(const InitAnswers& answers, bool include_exists) {
  const auto ports = Split(Value(answers, "ports"), ',');
  const auto colours = Split(Value(answers, "colours"), ',');
  const std::string include = Value(answers, "nginx-include");
  const std::string upstream = Value(answers, "upstream");
  const std::string db = Value(answers, "db");
  std::string out = "\nnext steps (the first deploy, docs/runbook.md):\n";
  out += fmt::format(
      "  1. {} {} so that it routes to {} only:\n"
      "         upstream {} {{\n"
      "             server 127.0.0.1:{};\n"
      "         }}\n"
      "     and include it in nginx's http {{ }} block, with a server {{ }} that has\n"
      "     proxy_pass http://{}; hoist rewrites only that server line.\n",
      include_exists ? "Check" : "Create", include, colours[0], upstream, ports[0], upstream);
  out += "  2. Start nginx yourself (hoist never starts it; a switch reloads a running\n"
         "     nginx, and fails and is undone when none runs).\n";
  if (db.rfind("sqlite:", 0) == 0) {
    out += "  3. Nothing to do for the database: the first deploy creates the SQLite file\n"
           "     and applies the migrations; after that a missing file is refused.\n";
  } else {
    out += "  3. The database must exist; its role needs CREATEDB (deploys rehearse\n"
           "     migrations in a scratch database first).\n";
  }
  // hoist.lua's default_env is this environment: no --env needed.
  out += fmt::format(
      "  4. hoist doctor\n"
      "     hoist deploy -e version=1 --sandbox   # a rehearsal: changes nothing\n"
      "     hoist deploy -e version=1\n"
      "     The first deploy starts {0} (the colour the include does not name),\n"
      "     health-checks it and switches nginx to it; the next one starts {1}, and\n"
      "     from then on the previous release stays running as the standby.\n",
      colours[1], colours[0]);
  return out;
}

std::string InitProject(const std::string& dir, const InitAnswers& answers) {
  // A project that has migrations keeps them: a second 0001 would be refused
  // by every later migration run.
  RenderInit(answers);
  std::string migrations_dir = dir + "/" + Value(answers, "migrations");
  if (Value(answers, "migrations")[0] == '/') migrations_dir = Value(answers, "migrations");
  size_t existing = 0;
  if (sys::StatPath(migrations_dir).type == "dir") existing = sys::ListDir(migrations_dir).size();
  auto files = RenderInit(answers, existing == 0);
  // Refuse before writing anything: init is all or nothing.
  std::vector<std::string> there;
  for (const auto& f : files) {
    struct stat st {};
    std::string path = f.path[0] == '/' ? f.path : dir + "/" + f.path;
    if (::lstat(path.c_str(), &st) == 0 && !(f.dir && S_ISDIR(st.st_mode))) there.push_back(f.path);
  }
  if (!there.empty()) {
    throw Error("init", "exists",
                fmt::format("{0} already exist{1} in {2}: nothing was written (move {3} aside, or edit {3} by hand)",
                            Join(there, ", "), there.size() == 1 ? "s" : "", dir, there.size() == 1 ? "it" : "them"));
  }
  std::vector<std::string> created;  // to remove again, newest first, if a write fails
  try {
    for (const auto& f : files) {
      std::string path = f.path[0] == '/' ? f.path : dir + "/" + f.path;
      if (f.dir) {
        std::vector<std::string> missing;
        for (std::string p = path; !sys::StatPath(p).exists && p.size() > dir.size();
             p = p.substr(0, p.rfind('/'))) {
          missing.push_back(p);
        }
        sys::MkdirP(path, 0755);
        created.insert(created.end(), missing.rbegin(), missing.rend());
        continue;
      }
      // O_EXCL: a file that appeared since the check above is not replaced.
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) {
        throw Error("init", errno == EEXIST ? "exists" : "failed",
                    fmt::format("cannot create {}: {}", path, std::strerror(errno)));
      }
      created.push_back(path);
      sys::Fd owned(fd);
      sys::WriteFull(fd, f.content.data(), f.content.size(), path, "init");
      sys::FsyncFd(fd, path, "init");
    }
  } catch (...) {
    for (auto it = created.rbegin(); it != created.rend(); ++it) ::remove(it->c_str());
    throw;
  }
  struct stat st {};
  std::string include = Value(answers, "nginx-include");
  std::string include_path = include[0] == '/' ? include : dir + "/" + include;
  bool include_exists = ::stat(include_path.c_str(), &st) == 0;
  std::string out = "wrote hoist.lua, playbooks/";
  if (files.size() > 2) {
    out += ", " + files[3].path + "\n";
  } else if (existing > 0) {
    out += fmt::format(", and kept the {} file(s) in {}/ (no first migration)\n", existing, Value(answers, "migrations"));
  } else {
    out += fmt::format(" (no first migration: {} is each release's own)\n", Value(answers, "migrations"));
  }
  return out + InitNextSteps(answers, include_exists);
}

}  // namespace hoist::app

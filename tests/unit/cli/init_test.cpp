// `hoist init` through the real binary: an empty project becomes one that
// `hoist doctor` and `hoist deploy --sandbox` accept; a file already there,
// a bad or missing flag each exit 2 with one message and write nothing; the
// questions on a terminal. Every generated hoist.lua passes the config check.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "app/init.h"
#include "app/project.h"
#include "support/support.h"
#include "sys/sha256.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kFlags = {"init",          "--db",      "sqlite:data/app.db",
                                         "--nginx-include", "nginx/app-upstream.conf",
                                         "--ports",       "5001,5002", "--health",
                                         "/health",       "--start",   "bin/app --port {port}"};

// Every path under root (dirs too) with its sha256: "byte-identical" as a value.
std::map<std::string, std::string> Tree(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    std::string rel = fs::relative(e.path(), root).string();
    out[rel] = e.is_regular_file() ? sys::Sha256Hex(ReadAll(e.path().string())) : "dir";
  }
  return out;
}

std::vector<std::string> With(std::vector<std::string> args, const std::string& flag, const std::string& value) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag) {
      args[i + 1] = value;
      return args;
    }
  }
  args.push_back(flag);
  args.push_back(value);
  return args;
}

std::vector<std::string> Without(std::vector<std::string> args, const std::string& flag) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag) {
      args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
      break;
    }
  }
  return args;
}

// hoist on a new pty in dir: each time the next question appears, types its
// answer. Returns the exit code and everything the terminal showed.
std::pair<int, std::string> OnTerminal(const std::string& dir, const std::vector<std::string>& args,
                                       const std::vector<std::pair<std::string, std::string>>& script) {
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    ::setenv("NO_COLOR", "1", 1);
    std::vector<char*> argv{const_cast<char*>(HOIST_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(HOIST_BINARY, argv.data());
    ::_exit(127);
  }
  std::string out;
  size_t next = 0, seen = 0;  // seen: where the last answered question ended
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO: hoist exited
    out.append(buf, static_cast<size_t>(n));
    while (next < script.size()) {
      size_t at = out.find(script[next].first, seen);
      if (at == std::string::npos) break;
      seen = at + script[next].first.size();
      std::string line = script[next].second + "\n";
      REQUIRE(::write(master, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
      ++next;
    }
  }
  int status = 0;
  if (std::chrono::steady_clock::now() >= deadline) ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  ::close(master);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

TEST_SUITE("cli/init") {
  TEST_CASE("init then doctor then deploy --sandbox in an empty project") {
    TempDir dir("init");
    auto r = RunHoist(dir.path, kFlags);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("wrote hoist.lua, playbooks/, migrations/0001_app_settings.sql\n") == 0);
    CHECK(r.out.find("1. Create nginx/app-upstream.conf so that it routes to blue only:\n"
                     "         upstream api {\n"
                     "             server 127.0.0.1:5001;\n"
                     "         }\n") != std::string::npos);
    CHECK(r.out.find("2. Start nginx yourself") != std::string::npos);
    CHECK(r.out.find("the first deploy creates the SQLite file") != std::string::npos);
    CHECK(r.out.find("hoist deploy -e version=1 --sandbox") != std::string::npos);
    CHECK(fs::is_directory(dir / "playbooks"));
    CHECK(fs::is_empty(dir / "playbooks"));
    CHECK(ReadAll(dir / "migrations/0001_app_settings.sql").find("-- hoist:phase expand\n-- hoist:up\n") !=
          std::string::npos);
    CHECK((fs::status(dir / "hoist.lua").permissions() & fs::perms::all) == (fs::perms(0644)));

    auto doctor = RunHoist(dir.path, {"doctor"});
    INFO(doctor.out << doctor.err);
    CHECK(doctor.exit_code == 0);
    CHECK(doctor.err.find("no hoist.lua") == std::string::npos);

    // The recipe's step 1, as printed.
    WriteFile(dir / "nginx/app-upstream.conf", "upstream api {\n    server 127.0.0.1:5001;\n}\n");
    auto sb = RunHoist(dir.path, {"deploy", "-e", "version=1", "--sandbox"});
    INFO(sb.out << sb.err);
    CHECK(sb.exit_code == 0);
    CHECK(sb.out.find("sandbox report: ok (no database yet at sqlite://" + dir.path + "/data/app.db)") !=
          std::string::npos);
    CHECK(sb.out.find("start app-green") != std::string::npos);
    CHECK(sb.out.find("-     server 127.0.0.1:5001;\n        +     server 127.0.0.1:5002;") != std::string::npos);
    CHECK(sb.out.find("+ table app_settings") != std::string::npos);
    CHECK(sb.err.find("info: release 1 serves on green") != std::string::npos);
    // A rehearsal: no database file, and the include as it was.
    CHECK_FALSE(fs::exists(dir / "data/app.db"));
    CHECK(ReadAll(dir / "nginx/app-upstream.conf") == "upstream api {\n    server 127.0.0.1:5001;\n}\n");
  }

  TEST_CASE("init refuses to overwrite and leaves the tree byte-identical") {
    TempDir dir("init");
    WriteFile(dir / "hoist.lua", "return {}\n");
    WriteFile(dir / "migrations/0001_app_settings.sql", "-- mine\n");
    WriteFile(dir / "src/main.c", "int main(void) { return 0; }\n");
    auto before = Tree(dir.path);
    auto r = RunHoist(dir.path, kFlags);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err == "hoist: init: hoist.lua already exists in " + dir.path +
                       ": nothing was written (move it aside, or edit it by hand)\n");
    CHECK(Tree(dir.path) == before);  // no playbooks/ either: all or nothing

    // A directory where init writes a file, a file where it makes a
    // directory: refused the same way, every one named.
    TempDir other("init");
    fs::create_directories(other / "hoist.lua");
    WriteFile(other / "playbooks", "not a directory\n");
    auto before2 = Tree(other.path);
    auto r2 = RunHoist(other.path, kFlags);
    CHECK(r2.exit_code == 2);
    CHECK(r2.err == "hoist: init: hoist.lua, playbooks already exist in " + other.path +
                        ": nothing was written (move them aside, or edit them by hand)\n");
    CHECK(Tree(other.path) == before2);

    auto nowhere = RunHoist(other.path, [] {
      auto a = kFlags;
      a.insert(a.begin(), {"-C", "/nonexistent/project"});
      return a;
    }());
    CHECK(nowhere.exit_code == 2);
    CHECK(nowhere.err == "hoist: init: /nonexistent/project is not a directory: init writes into an existing project "
                         "directory\n");
  }

  TEST_CASE("init keeps a project's existing migrations and writes no first one") {
    TempDir dir("init");
    WriteFile(dir / "migrations/0001_users.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY);\n");
    auto r = RunHoist(dir.path, kFlags);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("wrote hoist.lua, playbooks/, and kept the 1 file(s) in migrations/ (no first migration)\n") == 0);
    CHECK(fs::directory_iterator(dir / "migrations")->path().filename() == "0001_users.sql");
    CHECK_FALSE(fs::exists(dir / "migrations/0001_app_settings.sql"));
  }

  TEST_CASE("init: each bad flag value exits 2 with one precise message and writes nothing") {
    struct Bad {
      std::string flag, value, message;
    };
    const std::vector<Bad> cases = {
        {"--ports", "50x1,5002", "--ports: '50x1' is not a port (a whole number from 1 to 65535)"},
        {"--ports", "5001", "--ports: give two ports, one per colour, e.g. 5001,5002 (got '5001')"},
        {"--ports", "5001,5001", "--ports: the two colours need different ports (got 5001 twice)"},
        {"--ports", "5001,70000", "--ports: '70000' is not a port (a whole number from 1 to 65535)"},
        {"--db", "mysql://db1/app", "--db: a database URL starts with sqlite: or postgres:// (e.g. sqlite:data/app.db)"},
        {"--db", "postgres://app:s3cretpw@db1:99999/app",
         "--db: invalid database URL \"postgres://app:***@db1:99999/app\": port \"99999\" is not a number between 1 "
         "and 65535 (expected postgres://user:password@host:5432/dbname?sslmode=require)"},
        {"--db", "postgres://app:s3cretpw@db1/app",
         "--db: the URL holds a password, which hoist.lua would then hold in clear: give the URL without it and add "
         "password = hoist.secret(\"DB_PASSWORD\") with db.url{...} (docs/config.md)"},
        {"--health", "health", "--health: 'health' is not a path: it starts with / (e.g. /health)"},
        {"--start", "bin/app --name 'my app'",
         "--start: the command is split at spaces and run without a shell, so quotes, $, |, ;, & and redirections "
         "would reach the app as they are: give the plain words, and edit app.argv in hoist.lua afterwards for an "
         "argument holding a space"},
        {"--env", "prod env", "--env: 'prod env' is not a name (letters, digits, '_' and '-' only)"},
        {"--colours", "blue", "--colours: give two names, e.g. blue,green (got 'blue')"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.flag);
      CAPTURE(c.value);
      TempDir dir("init");
      auto r = RunHoist(dir.path, With(kFlags, c.flag, c.value));
      CHECK(r.exit_code == 2);
      CHECK(r.err == "hoist: init: " + c.message + "\n");
      CHECK(r.err.find("s3cretpw") == std::string::npos);
      CHECK(fs::is_empty(dir.path));
    }
  }

  TEST_CASE("init without a terminal names the missing flags and writes nothing") {
    TempDir dir("init");
    auto r = RunHoist(dir.path, Without(Without(kFlags, "--db"), "--start"), {}, std::string());
    CHECK(r.exit_code == 2);
    CHECK(r.err ==
          "hoist: init: --db, --start are missing and stdin is not a terminal to ask on: nothing was written; "
          "give --db sqlite:data/app.db --start 'bin/app --port {port}'\n");
    CHECK(fs::is_empty(dir.path));
    auto one = RunHoist(dir.path, Without(kFlags, "--ports"), {}, std::string());
    CHECK(one.exit_code == 2);
    CHECK(one.err.find("hoist: init: --ports is missing and stdin") == 0);
  }

  TEST_CASE("init on a terminal asks for what the flags did not give, again after a bad answer") {
    TempDir dir("init");
    // --db given; the rest answered, the defaults taken with Enter.
    auto [code, out] = OnTerminal(dir.path, {"init", "--db", "sqlite:data/app.db"},
                                  {{"Environment name [prod]: ", "staging"},
                                   {"The app's command", "bin/app --port {port}"},
                                   {"The two colours' ports (e.g. 5001,5002): ", "5001"},
                                   {"give two ports, one per colour", "6001,6002"},
                                   {"The two colours' names [blue,green]: ", ""},
                                   {"Health check path", "/healthz"},
                                   {"The nginx include holding", "nginx/up.conf"},
                                   {"The upstream block's name in it [api]: ", ""},
                                   {"nginx's pid file", ""},
                                   {"A URL through nginx", ""},
                                   {"A response header", "X-Colour"},
                                   {"Migrations directory [migrations]: ", ""},
                                   {"Backups directory [.hoist/backups]: ", ""}});
    INFO(out);
    CHECK(code == 0);
    CHECK(out.find("Database URL") == std::string::npos);  // given as a flag: not asked
    CHECK(out.find("  --ports: give two ports, one per colour, e.g. 5001,5002 (got '5001')") != std::string::npos);
    std::string lua = ReadAll(dir / "hoist.lua");
    CHECK(lua.find("default_env = \"staging\"") != std::string::npos);
    CHECK(lua.find("blue  = { port = 6001 }") != std::string::npos);
    CHECK(lua.find("verify = { url = \"http://127.0.0.1/healthz\", expect_header = \"X-Colour\" }") !=
          std::string::npos);
    CHECK(out.find("hoist deploy -e version=1 --sandbox") != std::string::npos);
    WriteFile(dir / "nginx/up.conf", "upstream api {\n    server 127.0.0.1:6001;\n}\n");
    auto sb = RunHoist(dir.path, {"deploy", "-e", "version=1", "--sandbox"});
    INFO(sb.out << sb.err);
    CHECK(sb.exit_code == 0);
  }

  TEST_CASE("every generated hoist.lua passes the config check") {
    struct Variant {
      std::string name;
      std::vector<std::pair<std::string, std::string>> set;
    };
    const std::vector<Variant> variants = {
        {"defaults", {}},
        {"postgres", {{"db", "postgres://app@db1:5432/app"}}},
        {"absolute sqlite", {{"db", "sqlite:///srv/app/data/app.db"}}},
        {"colour header and a nginx url", {{"colour-header", "X-Colour"}, {"nginx-url", "http://127.0.0.1:8080/api/health"}}},
        {"other colours and names", {{"colours", "left,right"}, {"env", "my-env"}, {"upstream", "app.v1"}}},
        {"a Lua keyword as the environment", {{"env", "local"}, {"colours", "end,and"}}},
        {"other dirs", {{"migrations", "db/migrations"}, {"backups", "/var/backups/app"}}},
        {"a pid file", {{"nginx-pid", "/run/nginx.pid"}}},
        {"a command with placeholders", {{"start", "releases/{version}/bin/api --port {port} --db {database_path}"}}},
    };
    for (const auto& v : variants) {
      CAPTURE(v.name);
      app::InitAnswers a;
      a.Set("db", "sqlite:data/app.db");
      a.Set("start", "bin/app --port {port}");
      a.Set("ports", "5001,5002");
      a.Set("health", "/health");
      a.Set("nginx-include", "/etc/nginx/conf.d/app-upstream.conf");
      for (const auto& [k, val] : v.set) a.Set(k, val);
      TempDir dir("init");
      WriteFile(dir / "hoist.lua", app::RenderInit(a).at(0).content);
      app::Project p = app::FindProject(dir.path);
      REQUIRE(p.config_path == dir / "hoist.lua");
      lua::State vm(app::VmOptions(p));
      CHECK_NOTHROW(app::LoadConfig(vm, p));
      auto envs = app::EnvironmentNames(p);
      CHECK(envs == std::vector<std::string>{a.Get("env").value_or("prod")});
    }
  }
}

}  // namespace
}  // namespace hoist::test

// Chaos: hoist killed (SIGKILL) at random points of a backup, a restore,
// migrate up and a blue/green deploy (its nginx switch included), many
// times each. After every kill: no partial or unverified file under a final
// backup name, a database entirely before or entirely after (integrity_check
// ok, schema = tracking table), traffic served by the colour the include
// names once the next run is done, and a next run that succeeds with the
// killed run shown as abandoned. Seeded: a failure prints its seed
// (HOIST_CHAOS_SEED=N reruns it); HOIST_CHAOS_ROUNDS sets the kills per case.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <filesystem>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "db/backup.h"
#include "db/connection.h"
#include "integration/playbooks/bluegreen_rig.h"
#include "support/support.h"
#include "sys/clock.h"

extern char** environ;

namespace hoist::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

uint64_t Seed() {
  static const uint64_t seed = [] {
    const char* s = std::getenv("HOIST_CHAOS_SEED");
    return s && *s ? std::stoull(s) : static_cast<uint64_t>(std::random_device{}());
  }();
  return seed;
}

int Rounds() {
  const char* s = std::getenv("HOIST_CHAOS_ROUNDS");
  return s && *s ? std::stoi(s) : 10;
}

/// Starts `hoist args` in dir (output to dir/.chaos.log), kills it with
/// SIGKILL after `after` seconds unless it ended first. Returns its exit
/// status (128 + 9 when killed) and, in *seconds, how long it ran.
int RunAndKill(double* seconds, const std::string& dir, std::vector<std::string> args, double after,
               const std::map<std::string, std::string>& extra_env = {}) {
  std::vector<std::string> argv_s = {HOIST_BINARY};
  for (auto& a : args) argv_s.push_back(std::move(a));
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) env_s.push_back(*e);
  for (const auto& [k, v] : extra_env) env_s.push_back(k + "=" + v);
  env_s.push_back("NO_COLOR=1");
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  std::string log = dir + "/.chaos.log";
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::string cwd = fs::current_path();
  fs::current_path(dir);  // the child inherits it (glibc 2.36 has no posix_spawn chdir action)
  pid_t pid = 0;
  int rc = posix_spawn(&pid, HOIST_BINARY, &fa, nullptr, argv.data(), envp.data());
  fs::current_path(cwd);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  const double t0 = sys::Monotonic();
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(after);
  int status = 0;
  while (true) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() >= until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  *seconds = sys::Monotonic() - t0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Kill times drawn over a run's duration, measured beforehand. The load of
/// a shared machine changes under a test: a run that ends before its kill
/// time shows runs got faster, so later times are drawn from that shorter
/// run (a failed one says nothing of a whole run's length); and rounds go on (up to three times as many) until at least half
/// of them really killed, so a faster machine cannot turn the test into
/// rounds that end on their own.
class KillTimes {
 public:
  KillTimes(uint64_t seed, double took) : rng_(seed), took_(took) {}

  bool More() const { return round_ < Rounds() || (killed_ * 2 < Rounds() && round_ < 3 * Rounds()); }
  int round() const { return round_; }
  int killed() const { return killed_; }
  double Next() { return std::uniform_real_distribution<double>(0, took_)(rng_); }

  /// Runs `hoist args` killed after `at` seconds (from Next()); returns its exit status.
  int Run(double at, const std::string& dir, std::vector<std::string> args,
          const std::map<std::string, std::string>& env = {}) {
    double seconds = 0;
    int rc = RunAndKill(&seconds, dir, std::move(args), at, env);
    ++round_;
    if (rc == 128 + SIGKILL) {
      ++killed_;
    } else if (rc == 0) {
      took_ = std::min(took_, seconds);  // a whole run, faster than measured
    }
    return rc;
  }

 private:
  std::mt19937_64 rng_;
  double took_;
  int round_ = 0, killed_ = 0;
};

/// Seconds an uninterrupted `hoist args` takes (and asserts it succeeds).
double Timed(const std::string& dir, const std::vector<std::string>& args) {
  double t0 = sys::Monotonic();
  auto r = RunHoist(dir, args);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  return sys::Monotonic() - t0;
}

/// The fastest of three runs: on a loaded machine one slow calibration
/// would put most kill times after the run has finished.
double Fastest(const std::string& dir, const std::vector<std::string>& args) {
  double best = Timed(dir, args);
  for (int i = 0; i < 2; ++i) best = std::min(best, Timed(dir, args));
  return best;
}

std::unique_ptr<db::Connection> Sqlite(const std::string& path) {
  db::OpenOptions o;
  o.create = true;
  return db::Open("sqlite://" + path, o);
}

std::string Scalar(db::Connection& c, const std::string& sql) {
  auto r = c.Query(sql);
  if (r.rows.empty() || r.rows[0].empty()) return "";
  const auto& v = r.rows[0][0];
  if (std::holds_alternative<int64_t>(v)) return std::to_string(std::get<int64_t>(v));
  if (std::holds_alternative<std::string>(v)) return std::get<std::string>(v);
  return "";
}

/// Every backup under a final name verifies; nothing but hidden temp files,
/// the lock and complete backups is left.
void CheckBackupsDir(const std::string& dir) {
  if (!fs::exists(dir)) return;
  for (const auto& e : db::backup::List(dir)) {
    CAPTURE(e.path);
    auto v = db::backup::Verify(e.path, {});
    CHECK(v.ok);
  }
}

/// No run is left "running"; killed ones are "abandoned".
void CheckHistory(const std::string& dir, const KillTimes& kills) {
  const int killed = kills.killed();
  MESSAGE("killed " << killed << " of " << kills.round() << " runs");
  // Kill times spread over the whole run: most rounds must really kill.
  CHECK(killed * 2 >= Rounds());
  auto r = RunHoist(dir, {"history", "--json", "--limit", "1000"});
  REQUIRE(r.exit_code == 0);
  int abandoned = 0;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line);
    CAPTURE(line);
    CHECK(j["status"] != "running");
    if (j["status"] == "abandoned") ++abandoned;
  }
  // A kill before the run was journaled (or after it ended) leaves nothing to abandon.
  CHECK(abandoned <= killed);
}

struct SqliteProject {
  TempDir dir{"chaos"};
  explicit SqliteProject(const std::string& extra_env = "") {
    fs::create_directories(dir / "data");
    fs::create_directories(dir / "migrations");
    WriteFile(dir / "hoist.lua", "return { lease = { ttl = 60 }, environments = { prod = {\n"
                                 "  database = \"sqlite:data/app.db\", migrations = \"migrations\",\n"
                                 "  backups = { dir = \"backups\" }, " + extra_env + "\n} } }\n");
  }
  std::string db() const { return dir / "data/app.db"; }
};

/// A WAL database of about `mb` MB of notes.
void Populate(const std::string& path, int mb, const std::string& table = "notes") {
  auto c = Sqlite(path);
  c->Exec("PRAGMA journal_mode=WAL");
  c->Exec("CREATE TABLE IF NOT EXISTS " + table + " (id INTEGER PRIMARY KEY, body BLOB NOT NULL)");
  c->Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(mb * 256) +
          ") INSERT INTO " + table + " (body) SELECT randomblob(4096) FROM n");
  c->Close();
}

TEST_SUITE("chaos") {
  TEST_CASE("chaos: backup killed at random points: every backup under a final name verifies, the next one succeeds") {
    INFO("seed " << Seed());
    SqliteProject p;
    Populate(p.db(), 48);
    KillTimes kills(Seed(), Fastest(p.dir.path, {"backup"}));
    while (kills.More()) {
      double at = kills.Next();
      CAPTURE(at);
      kills.Run(at, p.dir.path, {"backup"});
      CheckBackupsDir(p.dir / "backups");
      auto c = Sqlite(p.db());
      CHECK(Scalar(*c, "PRAGMA integrity_check") == "ok");
    }
    auto last = RunHoist(p.dir.path, {"backup"});
    INFO(last.out << last.err);
    CHECK(last.exit_code == 0);
    CheckBackupsDir(p.dir / "backups");
    CheckHistory(p.dir.path, kills);
  }

  TEST_CASE("chaos: restore killed at random points: the database is entirely the old or entirely the backup") {
    INFO("seed " << Seed());
    SqliteProject p;
    Populate(p.db(), 16);
    auto b = RunHoist(p.dir.path, {"backup", "-e", "label=base"});
    REQUIRE(b.exit_code == 0);
    const std::string base_rows = Scalar(*Sqlite(p.db()), "SELECT count(*) FROM notes");
    // The live database moves on: more rows, a new table.
    {
      auto c = Sqlite(p.db());
      c->Exec("INSERT INTO notes (body) SELECT body FROM notes LIMIT 1000");
      c->Exec("CREATE TABLE later (x INTEGER)");
      c->Close();
    }
    const std::string moved_rows = Scalar(*Sqlite(p.db()), "SELECT count(*) FROM notes");
    REQUIRE(base_rows != moved_rows);
    // A pristine copy of the moved-on state to start every round from.
    const std::string pristine = p.dir / "moved.db";
    {
      auto c = Sqlite(p.db());
      c->Exec("VACUUM INTO '" + pristine + "'");
      c->Close();
    }
    KillTimes kills(Seed() + 1, Fastest(p.dir.path, {"restore", "-e", "backup=latest", "-e", "label=base", "--yes"}));
    while (kills.More()) {
      for (const char* ext : {"", "-wal", "-shm"}) fs::remove(p.db() + ext);
      fs::copy_file(pristine, p.db());
      double at = kills.Next();
      CAPTURE(at);
      kills.Run(at, p.dir.path, {"restore", "-e", "backup=latest", "-e", "label=base", "--yes"});
      auto c = Sqlite(p.db());
      CHECK(Scalar(*c, "PRAGMA integrity_check") == "ok");
      std::string rows = Scalar(*c, "SELECT count(*) FROM notes");
      std::string later = Scalar(*c, "SELECT count(*) FROM sqlite_master WHERE name = 'later'");
      CAPTURE(rows);
      CHECK(((rows == base_rows && later == "0") || (rows == moved_rows && later == "1")));
      c->Close();
      CheckBackupsDir(p.dir / "backups");
    }
    auto last = RunHoist(p.dir.path, {"restore", "-e", "backup=latest", "-e", "label=base", "--yes"});
    INFO(last.out << last.err);
    CHECK(last.exit_code == 0);
    CHECK(Scalar(*Sqlite(p.db()), "SELECT count(*) FROM notes") == base_rows);
    CheckHistory(p.dir.path, kills);
  }

  TEST_CASE("chaos: migrate up killed at random points: the schema is exactly what the tracking table says") {
    INFO("seed " << Seed());
    SqliteProject p;
    const int kMigrations = 6;
    for (int v = 1; v <= kMigrations; ++v) {
      std::string t = "t" + std::to_string(v);
      WriteFile(p.dir / ("migrations/000" + std::to_string(v) + "_" + t + ".sql"),
                "CREATE TABLE " + t + " (id INTEGER PRIMARY KEY, body BLOB);\n"
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)\n"
                "INSERT INTO " + t + " (body) SELECT randomblob(64) FROM n;\n");
    }
    Populate(p.db(), 4);
    const std::string pristine = p.dir / "before.db";
    {
      auto c = Sqlite(p.db());
      c->Exec("VACUUM INTO '" + pristine + "'");
      c->Close();
    }
    auto reset = [&] {
      for (const char* ext : {"", "-wal", "-shm"}) fs::remove(p.db() + ext);
      fs::copy_file(pristine, p.db());
    };
    // The fastest of three full runs: on a loaded machine one slow
    // calibration would put most kill times after the run has finished.
    double took = 1e9;
    for (int i = 0; i < 3; ++i) {
      reset();
      took = std::min(took, Timed(p.dir.path, {"migrate", "-e", "action=up"}));
    }
    KillTimes kills(Seed() + 2, took);
    while (kills.More()) {
      reset();
      double at = kills.Next();
      CAPTURE(at);
      kills.Run(at, p.dir.path, {"migrate", "-e", "action=up"});
      auto c = Sqlite(p.db());
      CHECK(Scalar(*c, "PRAGMA integrity_check") == "ok");
      bool tracked = Scalar(*c, "SELECT count(*) FROM sqlite_master WHERE name = 'hoist_schema_migrations'") == "1";
      for (int v = 1; v <= kMigrations; ++v) {
        std::string t = "t" + std::to_string(v);
        CAPTURE(t);
        bool applied = tracked && Scalar(*c, "SELECT count(*) FROM hoist_schema_migrations WHERE version = " +
                                                 std::to_string(v) + " AND success") == "1";
        bool exists = Scalar(*c, "SELECT count(*) FROM sqlite_master WHERE name = '" + t + "'") == "1";
        CHECK(applied == exists);
        if (exists) CHECK(Scalar(*c, "SELECT count(*) FROM " + t) == "20000");
      }
      c->Close();
      CheckBackupsDir(p.dir / "backups");
    }
    // The last kill may have left the migration lock held by a dead process.
    double t0 = sys::Monotonic();
    auto last = RunHoist(p.dir.path, {"migrate", "-e", "action=up"});
    INFO(last.out << last.err);
    CHECK(last.exit_code == 0);
    CHECK(sys::Monotonic() - t0 < 20);
    CHECK(Scalar(*Sqlite(p.db()), "SELECT count(*) FROM hoist_schema_migrations WHERE success") ==
          std::to_string(kMigrations));
    CheckHistory(p.dir.path, kills);
  }

  TEST_CASE("chaos: deploy killed at random points (switch included): the next deploy succeeds and nginx serves what the include names") {
    INFO("seed " << Seed());
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    double t0 = sys::Monotonic();
    rig.HoistOk({"deploy", "-e", "version=2"});
    // A little past the run's end: a kill after the last step too.
    KillTimes kills(Seed() + 3, (sys::Monotonic() - t0) * 1.1);
    const std::vector<std::string> releases = {"3", "2"};
    while (kills.More()) {
      const std::string& release = releases[static_cast<size_t>(kills.round()) % releases.size()];
      double at = kills.Next();
      CAPTURE(at);
      CAPTURE(release);
      kills.Run(at, rig.root(), {"deploy", "-e", "version=" + release}, rig.env());
      // Whatever the kill left, the next deploy must bring the release live.
      auto next = rig.Hoist({"deploy", "-e", "version=" + release});
      INFO(Describe(next));
      REQUIRE(next.exit_code == 0);
      std::string traffic = rig.Traffic();
      CAPTURE(traffic);
      // The message leads with what nginx served: the deploy's output above can be long.
      CHECK_MESSAGE(traffic.rfind("release " + release + " (", 0) == 0, "nginx served: " << traffic);
      // nginx serves what the include names.
      std::string conf = rig.UpstreamConf();
      std::string colour = traffic.find("(blue)") != std::string::npos ? "blue" : "green";
      std::string other = colour == "blue" ? "green" : "blue";
      CHECK(conf.find(":" + std::to_string(rig.Port(colour)) + ";") != std::string::npos);
      CHECK(conf.find(":" + std::to_string(rig.Port(other)) + ";") == std::string::npos);
      CHECK(rig.Db("PRAGMA integrity_check") == "ok");
    }
    CheckBackupsDir(rig.path(".hoist/backups"));
    CheckHistory(rig.root(), kills);
  }
}

}  // namespace
}  // namespace hoist::test

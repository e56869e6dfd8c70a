// A sandbox rehearsal of each canned playbook against the real example
// project (real nginx, the example app, a WAL SQLite file; its Docker
// colours on a private dockerd): it must leave the database, the nginx
// include, the backups and the processes (and containers) exactly as they
// were, and report the same world calls, in the same order, as the real
// run that follows it makes.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "integration/playbooks/bluegreen_rig.h"
#include "integration/playbooks/example_image.h"
#include "net/docker.h"
#include "support/dockerd.h"
#include "sys/sha256.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// What a rehearsal must not touch: the database files, the include, the
/// backups dir listing and the pid files, as name=sha256 lines.
std::string Sums(const BlueGreenRig& rig) {
  std::string out;
  for (const char* f : {"data/app.db", "data/app.db-wal", ".hoist/nginx/upstream.conf", ".hoist/run/blue.pid",
                        ".hoist/run/green.pid"}) {
    std::string p = rig.path(f);
    out += std::string(f) + "=" + (fs::exists(p) ? sys::Sha256Hex(ReadAll(p)) : "missing") + "\n";
  }
  std::error_code ec;
  std::vector<std::string> backups;
  for (auto& e : fs::directory_iterator(rig.path(".hoist/backups"), ec)) backups.push_back(e.path().filename());
  std::sort(backups.begin(), backups.end());
  for (const auto& b : backups) out += "backup " + b + "\n";
  return out;
}

// World calls whose target names a value that legitimately differs between
// a rehearsal and the real run: the database (the copy's URL vs the real
// one), backup files (under the sandbox's dir, and named by the time they
// were taken), pids (simulated ones are above pid_max) and times.
std::string Normalise(std::string name, const std::string& root) {
  static const std::regex sandbox_fs("/tmp/hoist-sandbox-[A-Za-z0-9]+/fs");
  static const std::regex sandbox_db("sqlite:///tmp/hoist-sandbox-[A-Za-z0-9]+/db/[^ ]+");
  const std::regex real_db("sqlite://" + root + "/data/app\\.db");
  static const std::regex stamp("[0-9]{8}T[0-9]{6}Z");
  static const std::regex number("\\b[0-9]+\\b");
  name = std::regex_replace(name, sandbox_db, "DB");
  name = std::regex_replace(name, real_db, "DB");
  name = std::regex_replace(name, sandbox_fs, "");
  name = std::regex_replace(name, stamp, "TIME");
  name = std::regex_replace(name, number, "N");
  return name;
}

// The kinds that are world calls a run makes (not its own bookkeeping:
// log lines, state-store writes, raw clock reads, the report `print`
// writes, the notify events a run raises to send after it ends).
bool Compared(const std::string& kind) {
  for (const char* own : {"log", "call", "state", "confirm", "print", "notify"}) {
    if (kind == own) return false;
  }
  return true;
}

/// "kind name" lines; runs of the same line collapse into one, since
/// how often a poll repeats (health waits, bake probes) depends on real
/// time, which a rehearsal skips.
std::vector<std::string> Calls(const std::vector<json>& events, const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    std::string kind = e.value("kind", "");
    if (!Compared(kind)) continue;
    std::string line = kind + " " + Normalise(e.value("name", ""), root);
    // A probe is an http call and the health verdict on it: one line.
    if (kind == "health" && !out.empty() && out.back().rfind("http ", 0) == 0 &&
        line.rfind("health " + out.back() + ":", 0) == 0) {
      out.pop_back();
    }
    if (out.empty() || out.back() != line) out.push_back(line);
  }
  return out;
}

std::vector<json> JsonLines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty() && l[0] == '{') out.push_back(json::parse(l));
  }
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& l : v) s += "  " + l + "\n";
  return s;
}

struct ParityRuns {
  std::vector<json> rehearsed, real;  ///< the world events of each run
};

/// The data of the one world event named `name` (normalised) in events.
json DataOf(const std::vector<json>& events, const std::string& name, const std::string& root) {
  json found;
  int n = 0;
  for (const auto& e : events) {
    if (e.value("kind", "") + " " + Normalise(e.value("name", ""), root) != name) continue;
    found = e.value("data", json::object());
    ++n;
  }
  INFO("world event " << name);
  CHECK(n == 1);
  return found;
}

struct ParityWorld {
  std::map<std::string, std::string> env;    ///< for hoist (Docker colours)
  std::function<std::string()> snapshot;     ///< more real state a rehearsal must leave as it was
};

/// Rehearses `args` with --sandbox, checks nothing real changed, runs it
/// for real and compares the world calls of both, which must include `must`
/// (so an early failure on both sides cannot pass as parity).
ParityRuns Parity(BlueGreenRig& rig, std::vector<std::string> args, const std::string& must,
                  const ParityWorld& world = {}) {
  auto sums = [&] { return Sums(rig) + (world.snapshot ? world.snapshot() : ""); };
  std::string before = sums();
  std::string traffic = rig.Traffic();
  std::vector<std::string> sb_args = {"--json"};
  sb_args.insert(sb_args.end(), args.begin(), args.end());
  sb_args.push_back("--sandbox");
  auto sb = rig.Hoist(sb_args, world.env);
  INFO("sandbox: " << Describe(sb));
  REQUIRE(sb.exit_code == 0);
  CHECK(sums() == before);
  CHECK(rig.Traffic() == traffic);
  ParityRuns runs;
  for (auto& j : JsonLines(sb.out)) {
    if (j.value("event", "") == "world") runs.rehearsed.push_back(j);
  }

  rig.HoistOk(args, world.env);
  std::string id = rig.State("SELECT max(id) FROM runs WHERE sandbox = 0");
  auto show = rig.Hoist({"show", id, "--json"});
  INFO("show: " << Describe(show));
  REQUIRE(show.exit_code == 0);
  json run = json::parse(show.out);
  runs.real.assign(run["events"].begin(), run["events"].end());

  auto rehearsed = Calls(runs.rehearsed, rig.root());
  auto real = Calls(runs.real, rig.root());
  INFO("rehearsed:\n" << Join(rehearsed) << "real:\n" << Join(real));
  CHECK(std::find(rehearsed.begin(), rehearsed.end(), must) != rehearsed.end());
  CHECK(rehearsed == real);
  return runs;
}

std::string Version(const BlueGreenRig& rig) {
  return rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success");
}

/// The rig's real backups (data files), by name.
std::vector<std::string> Backups(const BlueGreenRig& rig) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(rig.path(".hoist/backups"), ec)) {
    std::string name = e.path().filename();
    if (name.size() > 3 && name.compare(name.size() - 3, 3, ".db") == 0) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// doctor is not here: it only looks (stat, free disk, PATH) and makes no
// world call a rehearsal could differ in.
TEST_SUITE("playbooks/sandbox") {
  TEST_CASE("a --sandbox rehearsal of each canned playbook changes nothing real and makes the calls the real run makes") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});   // green live on release 1, a database to rehearse on
    SUBCASE("deploy") { Parity(rig, {"deploy", "-e", "version=2"}, "service start app-blue"); }
    SUBCASE("backup") {
      Parity(rig, {"backup"}, "backup create " + rig.path(".hoist/backups/app-manual-TIME.db"));
    }
    SUBCASE("verify") {
      // A real backup to verify: the rehearsal verifies it read-only.
      rig.HoistOk({"backup"});
      Parity(rig, {"verify"}, "backup verify " + rig.path(".hoist/backups/app-manual-TIME.db"));
    }
    SUBCASE("migrate up") {
      Parity(rig, {"migrate", "-e", "action=up", "-e", "version=2"}, "migrate apply 0002_add_author_name.sql");
    }
    SUBCASE("migrate down") {
      rig.HoistOk({"migrate", "-e", "action=up", "-e", "version=2"});
      REQUIRE(Version(rig) == "3");
      // No -e version: the migrations dir defaults to the release deployed
      // last, which the rehearsal must know as the real run does.
      Parity(rig, {"migrate", "-e", "action=down"}, "migrate rollback 0003_backfill_author_name.sql");
      CHECK(Version(rig) == "2");
    }
    SUBCASE("status") { Parity(rig, {"status"}, "db open DB"); }
    SUBCASE("compare") {
      // A rehearsal may open only the copy of the environment's database
      // (any other is refused, so it cannot write to one): comparing the
      // environment with itself named by URL is what can be rehearsed, and
      // it reads both schemas and histories as the real run does.
      Parity(rig, {"compare", "-e", "a=demo", "-e", "b=sqlite:data/app.db"}, "db schema");
      // Another database is refused in a rehearsal.
      auto sb = rig.Hoist({"compare", "-e", "a=demo", "-e", "b=sqlite:data/other.db", "--sandbox"});
      INFO("sandbox: " << Describe(sb));
      CHECK(sb.exit_code == 1);
      CHECK(sb.err.find("db.open(sqlite://" + rig.path("data/other.db") + ") refused in a sandbox run") !=
            std::string::npos);
    }
  }

  TEST_CASE("a --sandbox rehearsal of rollback and contract after real deploys makes the calls the real run makes") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    SUBCASE("rollback") {
      rig.HoistOk({"deploy", "-e", "version=2"});   // blue live on 2, green standby on 1
      Parity(rig, {"rollback"}, "fs write_atomic " + rig.path(".hoist/nginx/upstream.conf"));
      CHECK(rig.Traffic() == "release 1 (green)");
    }
    SUBCASE("contract") {
      // Release 3 holds its contract migration (0004) back for `hoist contract`.
      rig.HoistOk({"deploy", "-e", "version=3"});   // blue live on 3, green standby on 1
      REQUIRE(Version(rig) == "3");
      Parity(rig, {"contract"}, "migrate apply 0004_drop_author.sql");
      CHECK(Version(rig) == "4");
      CHECK_FALSE(rig.Running("green"));
      CHECK(rig.Traffic() == "release 3 (blue)");
    }
  }

  TEST_CASE("a --sandbox rehearsal of restore, prune and backup retention uses the real backups read-only and makes the calls the real run makes") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    SUBCASE("restore") {
      rig.HoistOk({"backup"});   // at version 1
      rig.HoistOk({"migrate", "-e", "action=up", "-e", "version=2"});
      REQUIRE(Version(rig) == "3");
      auto backups = Backups(rig);
      REQUIRE(backups.size() == 2);   // the manual one and migrate's safety backup
      Parity(rig, {"restore", "-e", "backup=" + fs::path(backups[0]).filename().string(), "--yes"},
             "backup restore " + rig.path(".hoist/backups/app-manual-TIME.db"));
      CHECK(Version(rig) == "1");
    }
    SUBCASE("prune") {
      for (int i = 0; i < 3; ++i) rig.HoistOk({"backup"});
      REQUIRE(Backups(rig).size() == 3);
      auto runs = Parity(rig, {"prune", "-e", "keep=1"}, "backup prune " + rig.path(".hoist/backups"));
      // The call's name is the same whatever it removes: the rehearsal must
      // name the real backups the real run removed.
      std::string call = "backup prune " + rig.path(".hoist/backups");
      json rehearsed = DataOf(runs.rehearsed, call, rig.root())["removed"];
      json real = DataOf(runs.real, call, rig.root())["removed"];
      CHECK(real.size() == 2);
      CHECK(rehearsed == real);
      CHECK(Backups(rig).size() == 1);
    }
    SUBCASE("backup's retention") {
      for (int i = 0; i < 2; ++i) rig.HoistOk({"backup"});
      std::string call = "backup create " + rig.path(".hoist/backups/app-nightly-TIME.db");
      auto runs = Parity(rig, {"backup", "-e", "label=nightly", "-e", "keep=1"}, call);
      json rehearsed = DataOf(runs.rehearsed, call, rig.root())["pruned"];
      json real = DataOf(runs.real, call, rig.root())["pruned"];
      CHECK(real.size() == 2);
      CHECK(rehearsed == real);
      CHECK(Backups(rig).size() == 1);
    }
  }

  TEST_CASE("a --sandbox rehearsal with Docker colours sees the containers of the real dockerd") {
    Dockerd& dockerd = Dockerd::Shared();
    BlueGreenRig rig;
    BuildExampleImage(dockerd);
    ParityWorld world;
    world.env = {{"EXAMPLE_IMAGE", kExampleImage}, {"EXAMPLE_DOCKER_SOCKET", dockerd.socket()}};
    world.snapshot = [&] {
      std::vector<std::string> lines;
      for (const auto& c : dockerd.Client().ListContainers(true)) {
        lines.push_back("container " + c["Names"][0].get<std::string>() + " " + c.value("Id", "") + " " +
                        c.value("State", ""));
      }
      std::sort(lines.begin(), lines.end());
      std::string out;
      for (const auto& l : lines) out += l + "\n";
      return out;
    };
    rig.HoistOk({"deploy", "-e", "version=1"}, world.env);
    rig.HoistOk({"deploy", "-e", "version=2"}, world.env);   // blue live on 2, green standby on 1
    // The standby container exists only on the real dockerd: a rehearsal
    // that did not see it would start release 3 on green without stopping it.
    Parity(rig, {"deploy", "-e", "version=3"}, "docker stop app-green", world);
    CHECK(rig.Traffic() == "release 3 (green)");
  }
}

}  // namespace
}  // namespace hoist::test

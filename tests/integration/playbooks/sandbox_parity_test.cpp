// A sandbox rehearsal of the canned playbooks (deploy, backup, verify,
// migrate, status) against the real example project
// (real nginx, the example app, a WAL SQLite file): it must leave the
// database, the nginx include, the backups and the processes exactly as
// they were, and report the same world calls, in the same order, as the
// real run that follows it makes.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "integration/playbooks/bluegreen_rig.h"
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
// log lines, state-store writes, raw clock reads).
bool Compared(const std::string& kind) {
  return kind != "log" && kind != "call" && kind != "state" && kind != "confirm";
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

/// Rehearses `args` with --sandbox, checks nothing real changed, runs it
/// for real and compares the world calls of both, which must include `must`
/// (so an early failure on both sides cannot pass as parity).
void Parity(BlueGreenRig& rig, std::vector<std::string> args, const std::string& must) {
  std::string before = Sums(rig);
  std::string traffic = rig.Traffic();
  std::vector<std::string> sb_args = {"--json"};
  sb_args.insert(sb_args.end(), args.begin(), args.end());
  sb_args.push_back("--sandbox");
  auto sb = rig.Hoist(sb_args);
  INFO("sandbox: " << Describe(sb));
  REQUIRE(sb.exit_code == 0);
  CHECK(Sums(rig) == before);
  CHECK(rig.Traffic() == traffic);
  std::vector<json> sb_events;
  for (auto& j : JsonLines(sb.out)) {
    if (j.value("event", "") == "world") sb_events.push_back(j);
  }

  rig.HoistOk(args);
  std::string id = rig.State("SELECT max(id) FROM runs WHERE sandbox = 0");
  auto show = rig.Hoist({"show", id, "--json"});
  INFO("show: " << Describe(show));
  REQUIRE(show.exit_code == 0);
  json run = json::parse(show.out);
  std::vector<json> real_events(run["events"].begin(), run["events"].end());

  auto rehearsed = Calls(sb_events, rig.root());
  auto real = Calls(real_events, rig.root());
  INFO("rehearsed:\n" << Join(rehearsed) << "real:\n" << Join(real));
  CHECK(std::find(rehearsed.begin(), rehearsed.end(), must) != rehearsed.end());
  CHECK(rehearsed == real);
}

TEST_SUITE("playbooks/sandbox") {
  TEST_CASE("a rehearsal of each canned playbook changes nothing real and makes the calls the real run makes") {
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
    SUBCASE("migrate") {
      Parity(rig, {"migrate", "-e", "action=up", "-e", "version=2"}, "migrate apply 0002_add_author_name.sql");
    }
    SUBCASE("status") { Parity(rig, {"status"}, "db open DB"); }
  }
}

}  // namespace
}  // namespace hoist::test

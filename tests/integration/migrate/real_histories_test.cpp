// Vaultwarden's and Plume's own diesel histories (tests/fixtures/real-histories,
// issue 16): tests/tools/diesel-history-check applies each up over populated
// databases (real-populate/), down to zero and up again, with `hoist migrate`
// and with raw sqlite3/psql side by side. Its output must be exactly the
// history's expected.txt: equal at every step but for the differences
// written down there (hoist refusing what would leave rows pointing at
// nothing, the projects' own failures shared with raw), so a new difference
// fails with the lines shown.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <vector>

#include "support/pg_cluster.h"
#include "support/support.h"
#include "sys/process.h"

namespace hoist::test {
namespace {

const std::string kTests = HOIST_TEST_DIR;
const std::string kTool = kTests + "/tools/diesel-history-check";
const std::string kFixtures = kTests + "/fixtures/real-histories";
const std::string kPopulate = kTests + "/unit/migrate/histories/real-populate";

bool OnPath(const std::string& program) {
  return sys::RunProcess({.argv = {"sh", "-c", "command -v " + program}}).ok();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

/// The tool's output without what differs from run to run: its temp dir
/// and the PostgreSQL database names it derives from its pid.
std::string Normalized(std::string out) {
  out = std::regex_replace(out, std::regex(R"([^ '"]*/diesel-history-check\.[A-Za-z0-9]+)"), "<tmp>");
  return std::regex_replace(out, std::regex(R"(dhc_(hoist|raw)_[0-9]+)"), "dhc_$1_<pid>");
}

/// Runs the tool over fixture `history` with populate dir `populate` and
/// compares its output with `expected` (a file of kFixtures), line by line.
/// HOIST_UPDATE_EXPECTED=1 writes the output there instead.
void Check(const std::string& history, const std::string& engine, const std::string& populate,
           const std::string& expected) {
  SkipUnless(OnPath("bash"), "bash is not installed");
  // --values too: a row whose values changed is lost data as well (it adds
  // about a quarter on PostgreSQL, little on SQLite; README "How long").
  std::vector<std::string> argv = {"bash",   kTool, "--values", "-q", "--hoist", HOIST_BINARY,
                                   "--pop", kPopulate + "/" + populate};
  if (engine == "sqlite") {
    SkipUnless(OnPath("sqlite3"), "sqlite3 is not installed (apt-get install sqlite3)");
  } else {
    SkipUnless(OnPath("psql") && OnPath("pg_dump"), "psql/pg_dump are not on PATH (apt-get install postgresql-client)");
    argv.push_back("--url");
    argv.push_back(PgCluster::Get().Url("postgres"));
  }
  argv.push_back(kFixtures + "/" + history);
  argv.push_back(engine);
  const auto r = sys::RunProcess({.argv = argv, .timeout = std::chrono::minutes(10)});
  MESSAGE(history << " (" << populate << "): " << r.seconds << " s");
  REQUIRE_MESSAGE(!r.timed_out, "diesel-history-check timed out\n" << r.out << r.err);
  REQUIRE_MESSAGE(r.exit_code != 2, "diesel-history-check could not run: " << r.err << r.out);
  const std::string out = Normalized(r.out);
  const std::string path = kFixtures + "/" + expected;
  const char* update = std::getenv("HOIST_UPDATE_EXPECTED");
  if (update && std::string(update) == "1") WriteFile(path, out);
  const auto want = Lines(ReadAll(path));
  const auto got = Lines(out);
  std::ostringstream diff;
  for (size_t i = 0; i < std::max(want.size(), got.size()); ++i) {
    const std::string w = i < want.size() ? want[i] : "(no line)";
    const std::string g = i < got.size() ? got[i] : "(no line)";
    if (w != g) diff << "line " << i + 1 << ":\n  expected: " << w << "\n  got:      " << g << "\n";
  }
  INFO("stderr: " << r.err);
  CHECK_MESSAGE(diff.str().empty(), "output differs from " << expected << ":\n" << diff.str());
  // 0 = equal at every step, 1 = differences: the summary line says which.
  CHECK(r.exit_code == (out.find("diesel-history-check: equal at every step") != std::string::npos ? 0 : 1));
}

TEST_SUITE("migrate/real-histories") {

TEST_CASE("Vaultwarden SQLite applies as raw sqlite3 does, but for the differences in its expected.txt") {
  Check("vaultwarden-sqlite", "sqlite", "vaultwarden-sqlite", "vaultwarden-sqlite/expected.txt");
}

TEST_CASE("Vaultwarden PostgreSQL applies as raw psql does, but for the failures in its expected.txt") {
  Check("vaultwarden-postgres", "postgres", "vaultwarden-postgres", "vaultwarden-postgres/expected.txt");
}

TEST_CASE("Plume SQLite applies as raw sqlite3 does, but for the failure in its expected.txt") {
  Check("plume-sqlite", "sqlite", "plume-sqlite", "plume-sqlite/expected.txt");
}

TEST_CASE("Plume SQLite with users written by diesel is refused where raw sqlite3 orphans their rows") {
  Check("plume-sqlite", "sqlite", "plume-sqlite-intbool", "plume-sqlite/expected-intbool.txt");
}

TEST_CASE("Plume PostgreSQL applies as raw psql does, but for the failures in its expected.txt") {
  Check("plume-postgres", "postgres", "plume-postgres", "plume-postgres/expected.txt");
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test

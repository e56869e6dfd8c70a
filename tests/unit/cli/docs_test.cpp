// The docs name what the binary has: every module require can load is in
// docs/playbooks.md's stdlib table, and every canned playbook's version in
// docs/playbooks-canned.md and docs/customising.md is the one `hoist list`
// shows. A module or a version bump without its docs fails here.
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "app/playbook.h"
#include "app/project.h"
#include "lua/embedded.h"
#include "lua/modules.h"
#include "support/support.h"

namespace hoist::test {
namespace {

std::string Doc(const std::string& name) {
  std::ifstream in(std::string(HOIST_SOURCE_DIR) + "/docs/" + name);
  REQUIRE_MESSAGE(in.good(), "docs/" << name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::map<std::string, std::string> CannedVersions() {
  TempDir dir;
  std::map<std::string, std::string> out;
  for (const auto& p : app::ListPlaybooks(app::FindProject(dir.path))) {
    if (p.origin == "canned") out[p.name] = p.version;
  }
  return out;
}

TEST_SUITE("cli/docs") {

TEST_CASE("docs/playbooks.md's stdlib table lists every module require can load") {
  std::string doc = Doc("playbooks.md");
  std::vector<std::string> modules;
  for (const auto& m : lua::NativeModules()) modules.emplace_back(m.name);
  for (const auto& f : lua::EmbeddedFiles()) {
    if (f.kind == lua::EmbeddedKind::kStdlib) modules.emplace_back(f.name);
  }
  REQUIRE(modules.size() > 15);
  for (const auto& m : modules) {
    CAPTURE(m);
    CHECK(doc.find("| `" + m + "` |") != std::string::npos);
  }
}

TEST_CASE("the canned playbooks' versions in the docs are the ones hoist list shows") {
  auto canned = CannedVersions();
  REQUIRE(canned.count("deploy") == 1);
  std::string table = Doc("playbooks-canned.md");
  for (const auto& [name, version] : canned) {
    CAPTURE(name);
    std::smatch m;
    REQUIRE(std::regex_search(table, m, std::regex("\\| `" + name + "` \\| ([0-9.]+) \\|")));
    CHECK(m[1].str() == version);
  }
  // Prose such as "`hoist list` shows `deploy 1.2.0`": any canned name
  // followed by a version, outside `version = "..."` examples.
  std::string prose = Doc("customising.md");
  std::regex mention("\\b([a-z]+) ([0-9]+\\.[0-9]+\\.[0-9]+)\\b");
  int checked = 0;
  for (auto it = std::sregex_iterator(prose.begin(), prose.end(), mention); it != std::sregex_iterator(); ++it) {
    auto found = canned.find((*it)[1].str());
    if (found == canned.end()) continue;
    CAPTURE((*it)[0].str());
    CHECK((*it)[2].str() == found->second);
    ++checked;
  }
  CHECK(checked > 0);
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test

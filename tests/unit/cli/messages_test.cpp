// Messages that used to mislead (issue 12): each test runs the real hoist
// binary on the input that misled and asserts the one precise message, the
// exit code, and that nothing ran or changed.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "db/connection.h"
#include "support/support.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct Project {
  TempDir dir{"msg"};
  explicit Project(const std::string& config = "return {}") { WriteFile(dir / "hoist.lua", config); }
  void Playbook(const std::string& file, const std::string& body) { WriteFile(dir / ("playbooks/" + file + ".lua"), body); }
  sys::ProcessResult Run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    return RunHoist(dir.path, std::move(args), std::move(env));
  }
  // No run was journaled (the state store may not even exist).
  bool NothingRan() {
    auto r = Run({"history", "--json"});
    return r.exit_code == 0 && r.out.empty();
  }
};

const char* kParamsPlaybook = R"lua(return require("hoist").playbook {
  name = "pp", version = "1.0.0",
  params = { n = { type = "number", default = 1 }, b = { type = "boolean", default = false } },
  run = function(run, p) end,
})lua";

bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST_SUITE("cli/messages") {

TEST_CASE("did you mean prefers the same name in another case") {
  Project p;
  p.Playbook("pp", kParamsPlaybook);
  auto r = p.Run({"pp", "-e", "N=1"});
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(Has(r.err, "error: params: param 'N' is not declared; did you mean 'n'?\n"));
  CHECK(p.NothingRan());
}

TEST_CASE("a bad param spec names the param once") {
  Project p;
  p.Playbook("pp", R"lua(return require("hoist").playbook {
  name = "pp", version = "1.0.0", params = { n = { type = "numbr" } }, run = function() end })lua");
  auto r = p.Run({"pp"});
  CHECK(r.exit_code == 2);
  CHECK(Has(r.err, "error: playbook: playbooks/pp.lua: param 'n': unknown type 'numbr' (expected string, number, "
                   "integer, boolean, enum or list)\n"));
  p.Playbook("pp", R"lua(return require("hoist").playbook {
  name = "pp", version = "1.0.0", params = { n = { type = "number", default = "x" } }, run = function() end })lua");
  r = p.Run({"pp"});
  CHECK(r.exit_code == 2);
  CHECK(Has(r.err, "error: playbook: playbooks/pp.lua: param 'n': bad default: expected a number, got string (number)\n"));
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test

// hoist(1) and the completions come from the command table behind --help:
// every command --help lists is in each of them, hidden ones in none.
// tests/package/deb_test.sh reads the page with man and runs the completions.
#include <algorithm>
#include <sstream>

#include "support/support.h"

namespace hoist::test {
namespace {

// The commands `hoist --help` lists under "Subcommands:".
std::vector<std::string> HelpCommands() {
  TempDir dir{"docgen"};
  auto r = RunHoist(dir.path, {"--help"});
  REQUIRE(r.exit_code == 0);
  std::vector<std::string> out;
  std::istringstream in(r.out);
  bool in_list = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "Subcommands:") {
      in_list = true;
    } else if (in_list && line.rfind("  ", 0) == 0) {
      out.push_back(line.substr(2, line.find(' ', 2) - 2));
    } else if (in_list) {
      break;
    }
  }
  return out;
}

TEST_SUITE("cli/docgen") {

TEST_CASE("the man page and both completions name every command of --help and not the hidden man") {
  TempDir dir{"docgen"};
  auto commands = HelpCommands();
  REQUIRE(commands.size() >= 12);
  CHECK(std::find(commands.begin(), commands.end(), "completions") != commands.end());
  CHECK(std::find(commands.begin(), commands.end(), "man") == commands.end());
  auto man = RunHoist(dir.path, {"man"});
  auto bash = RunHoist(dir.path, {"completions", "bash"});
  auto zsh = RunHoist(dir.path, {"completions", "zsh"});
  REQUIRE(man.exit_code == 0);
  REQUIRE(bash.exit_code == 0);
  REQUIRE(zsh.exit_code == 0);
  CHECK(man.out.find(std::string(".TH HOIST 1 \"\" \"hoist ") + HOIST_VERSION + "\"") != std::string::npos);
  for (const auto& c : commands) {
    CAPTURE(c);
    CHECK(man.out.find(".SS \"\\fBhoist " + c + "\\fR") != std::string::npos);
    CHECK(bash.out.find("    '" + c + "') opts=") != std::string::npos);
    CHECK(zsh.out.find("'" + c + ":") != std::string::npos);
  }
  CHECK(man.out.find(".SS \"\\fBhoist man") == std::string::npos);
  CHECK(bash.out.find("complete -F _hoist hoist\n") != std::string::npos);
  CHECK(zsh.out.rfind("#compdef hoist\n", 0) == 0);
}

TEST_CASE("docs/cli.md describes every command of --help") {
  std::string doc = ReadAll(std::string(HOIST_SOURCE_DIR) + "/docs/cli.md");
  for (const auto& c : HelpCommands()) {
    CAPTURE(c);
    bool row = doc.find("| `" + c + " ") != std::string::npos || doc.find("| `" + c + "`") != std::string::npos;
    CHECK((row || doc.find("`hoist " + c + " ") != std::string::npos));
  }
}

TEST_CASE("a mistyped word is never pointed at the hidden man command") {
  TempDir dir{"docgen"};
  auto r = RunHoist(dir.path, {"mann"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("neither a command nor a playbook") != std::string::npos);
  CHECK(r.err.find("'man'") == std::string::npos);
}

TEST_CASE("completions for another shell exits 2 naming the ones there are") {
  TempDir dir{"docgen"};
  auto r = RunHoist(dir.path, {"completions", "fish"});
  CHECK(r.exit_code == 2);
  CHECK(r.err == "hoist: completions: no completions for 'fish': give bash or zsh\n");
  CHECK(r.out.empty());
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test

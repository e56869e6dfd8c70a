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

// A project with a SQLite database and one backup of it; returns its file name.
std::string WithBackup(Project& p) {
  fs::create_directories(p.dir / "data");
  db::OpenOptions o;
  o.create = true;
  auto conn = db::Open("sqlite://" + (p.dir / "data/app.db"), o);
  conn->Exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)");
  conn->Close();
  auto r = p.Run({"backup"});
  REQUIRE(r.exit_code == 0);
  for (const auto& e : fs::directory_iterator(p.dir / "backups")) {
    if (e.path().extension() == ".db") return e.path().filename().string();
  }
  FAIL("no backup written");
  return "";
}

const char* kBackupConfig = R"lua(return { environments = { prod = {
  database = "sqlite:data/app.db", backups = "backups" } } })lua";

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

TEST_CASE("a --project dir that does not exist is said, and nothing is created there") {
  Project p;
  std::string missing = p.dir / "nope";
  for (std::vector<std::string> args : {std::vector<std::string>{"--project", missing, "lok"},
                                        {"--project", missing, "deploy"},
                                        {"-C", missing, "history"},
                                        {"--project", missing, "run", "status"}}) {
    auto r = p.Run(args);
    INFO(args[2] << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err == "hoist: --project " + missing + ": no such directory (give the directory that holds hoist.lua)\n");
    CHECK_FALSE(fs::exists(missing));
  }
  auto file = p.Run({"--project", p.dir / "hoist.lua", "list"});
  CHECK(file.exit_code == 2);
  CHECK(file.err == "hoist: --project " + (p.dir / "hoist.lua") + ": not a directory\n");
}

TEST_CASE("run of a directory says it is a directory, not a playbook file") {
  Project p;
  fs::create_directories(p.dir / "playbooks/sub");
  auto r = p.Run({"run", "./playbooks"});
  CHECK(r.exit_code == 2);
  CHECK(Has(r.err, "error: playbook: ./playbooks is a directory, not a playbook file (give a .lua file, or a playbook "
                   "name: hoist list shows them)\n"));
  fs::create_directories(p.dir / "playbooks/odd.lua");
  auto named = p.Run({"run", "odd"});
  CHECK(named.exit_code == 2);
  CHECK(Has(named.err, "error: playbook: playbooks/odd.lua is a directory, not a playbook file\n"));
  CHECK(p.NothingRan());
}

TEST_CASE("a project playbook declaring another name than its file is refused on list and run") {
  Project p;
  p.Playbook("x", R"lua(return require("hoist").playbook { name = "y", version = "1.0.0", run = function() end })lua");
  const std::string want = "playbooks/x.lua declares name \"y\": rename the file or the name";
  auto run = p.Run({"run", "x"});
  CHECK(run.exit_code == 2);
  CHECK(Has(run.err, "error: playbook: " + want + "\n"));
  auto by_name = p.Run({"run", "y"});
  CHECK(by_name.exit_code == 2);
  auto list = p.Run({"list"});
  CHECK(list.exit_code == 0);
  CHECK(Has(list.out, "BROKEN: playbook: " + want));
  CHECK(p.NothingRan());
}

TEST_CASE("playbook export elsewhere does not claim to take precedence") {
  Project p;
  auto other = p.Run({"playbook", "export", "backup", "-o", p.dir / "elsewhere/x.lua"});
  CHECK(other.exit_code == 0);
  CHECK(other.out == "wrote " + (p.dir / "elsewhere/x.lua") +
                         " — a copy of the canned 'backup'; hoist backup still runs the canned one (run the copy with: "
                         "hoist run " + (p.dir / "elsewhere/x.lua") + ", or move it to playbooks/backup.lua)\n");
  auto list = p.Run({"list"});
  CHECK(Has(list.out, "canned"));
  auto here = p.Run({"playbook", "export", "backup", "-o", "playbooks/backup.lua"});
  CHECK(here.exit_code == 0);
  CHECK(here.out == "wrote playbooks/backup.lua — it now takes precedence over the canned 'backup'\n");
}

TEST_CASE("--params with invalid JSON gives line, column and a short reason") {
  Project p;
  p.Playbook("pp", kParamsPlaybook);
  WriteFile(p.dir / "bad.json", "{\n  \"n\": 1,\n  \"b\": tru\n}\n");
  auto r = p.Run({"pp", "--params", "bad.json"});
  CHECK(r.exit_code == 2);
  CHECK(r.err == "hoist: --params: bad.json: invalid JSON at line 3 column 11: invalid literal near '\"b\": tru'\n");
  WriteFile(p.dir / "short.json", "{\"n\": ");
  auto s = p.Run({"pp", "--params", "short.json"});
  CHECK(s.exit_code == 2);
  CHECK(s.err == "hoist: --params: short.json: invalid JSON at line 1 column 7: unexpected end of input; expected '[', "
                 "'{', or a literal\n");
  CHECK_FALSE(Has(r.err + s.err, "json.exception"));
  CHECK(p.NothingRan());
}

TEST_CASE("numeric arguments that are not numbers say what to give") {
  Project p;
  auto replay = p.Run({"replay", "abc"});
  CHECK(replay.exit_code == 2);
  CHECK(replay.err == "hoist: replay: 'abc' is not a run id (a number, see hoist history)\n");
  auto show = p.Run({"show", "1x"});
  CHECK(show.exit_code == 2);
  CHECK(show.err == "hoist: show: '1x' is not a run id (a number, see hoist history)\n");
  for (const char* bad : {"abc", "0", "-3"}) {
    auto h = p.Run({"history", "-n", bad});
    CHECK(h.exit_code == 2);
    CHECK(h.err == std::string("hoist: history: --limit '") + bad + "' is not a number of runs (a whole number from 1)\n");
  }
  CHECK(p.Run({"history", "-n", "5"}).exit_code == 0);
}

TEST_CASE("a NAME_FILE secret naming a directory says it is a directory") {
  Project p;
  p.Playbook("sec", R"lua(local hoist = require "hoist"
return hoist.playbook { name = "sec", version = "1.0.0", lock = false,
  run = function() hoist.secret("MYPW") end })lua");
  fs::create_directories(p.dir / "secrets");
  auto r = p.Run({"sec"}, {{"MYPW_FILE", p.dir / "secrets"}});
  CHECK(r.exit_code == 1);
  CHECK(Has(r.err, "secret: MYPW: MYPW_FILE names " + (p.dir / "secrets") +
                       ", a directory: set it to the file holding the secret\n"));
  CHECK_FALSE(Has(r.err, "is empty"));
}

TEST_CASE("a state path that is not a database says so and what to do, and leaves the file alone") {
  Project p;
  p.Playbook("pp", kParamsPlaybook);
  const std::string text = "not a database, just some notes somebody saved here by mistake\n" + std::string(200, '.');
  WriteFile(p.dir / ".hoist/state.db", text);
  const std::string want = "state: " + (p.dir / ".hoist/state.db") +
                           " is not a hoist state store (SQLite: file is not a database): move it aside to start a new "
                           "journal there, or point 'state' in hoist.lua at the right file\n";
  auto run = p.Run({"pp"});
  CHECK(run.exit_code == 2);
  CHECK(Has(run.err, "error: " + want));
  CHECK_FALSE(Has(run.err, "locked"));
  auto history = p.Run({"history"});
  CHECK(history.exit_code == 2);
  CHECK(history.err == "hoist: " + want);
  CHECK(ReadAll(p.dir / ".hoist/state.db") == text);
}

TEST_CASE("a truncated backup is named once by verify and restore") {
  Project p(kBackupConfig);
  std::string name = WithBackup(p);
  fs::resize_file(p.dir / ("backups/" + name), 1000);
  auto verify = p.Run({"verify"});
  INFO(verify.err);
  CHECK(verify.exit_code == 1);
  CHECK(Has(verify.err, "verify: 1 problem(s): " + name + ": truncated: 1000 bytes, the manifest records "));
  CHECK_FALSE(Has(verify.err, name + ": " + name));
  auto restore = p.Run({"restore", "--yes", "-e", "backup=" + name});
  CHECK(restore.exit_code == 1);
  CHECK(Has(restore.err, "restore: refusing to restore: " + name + ": truncated: 1000 bytes"));
  CHECK_FALSE(Has(restore.err, name + ": " + name));
}

TEST_CASE("a backups dir that cannot be listed is said once") {
  Project p(R"lua(return { environments = { prod = { database = "sqlite:data/app.db", backups = "notes.txt" } } })lua");
  WriteFile(p.dir / "notes.txt", "not a directory\n");
  fs::create_directories(p.dir / "data");
  db::OpenOptions o;
  o.create = true;
  db::Open("sqlite://" + (p.dir / "data/app.db"), o)->Close();
  auto r = p.Run({"restore", "--yes"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK(Has(r.err, "backup: cannot list " + (p.dir / "notes.txt") + ": Not a directory\n"));
}

TEST_CASE("a backup whose manifest is missing is said, and nothing is restored") {
  Project p(kBackupConfig);
  std::string name = WithBackup(p);
  std::string dir = p.dir / "backups";
  fs::remove(dir + "/" + name + ".json");
  auto r = p.Run({"restore", "--yes", "-e", "backup=" + name});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK(Has(r.err, "config: " + name + " in " + dir + " has no manifest (" + name +
                       ".json is missing), so hoist cannot tell which database it is a backup of and will not use it; "
                       "nothing was changed. Put " + name +
                       ".json back beside it (a copy of the backups directory may have it), or choose another backup\n"));
  CHECK_FALSE(Has(r.err, "newest: none"));
  // Neither manifest nor checksum: not a hoist backup at all.
  fs::remove(dir + "/" + name + ".sha256");
  auto bare = p.Run({"verify", "-e", "backups=" + name});
  CHECK(bare.exit_code == 1);
  CHECK(Has(bare.err, "config: " + name + " in " + dir + " is not a hoist backup (it has neither " + name + ".json nor " +
                          name + ".sha256); nothing was changed\n"));
  // No safety backup was taken: the restore stopped before anything changed.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.path().filename().string()[0] != '.';  // not the lock
  CHECK(files == 1);
}

TEST_CASE("hoist.lua mistakes read by the canned playbooks name hoist.lua and the key, not a stdlib line") {
  Project p(R"lua(return { environments = { prod = { database = "sqlite:data/app.db", backups = 42 } } })lua");
  fs::create_directories(p.dir / "data");
  db::OpenOptions o;
  o.create = true;
  db::Open("sqlite://" + (p.dir / "data/app.db"), o)->Close();
  // The shape is checked before anything runs (exit 2), by key path.
  auto backups = p.Run({"backup"});
  CHECK(backups.exit_code == 2);
  CHECK(Has(backups.err, "error: config: hoist.lua: environments.prod.backups must be a string or a table (got an "
                         "integer)"));
  WriteFile(p.dir / "hoist.lua", R"lua(return { environments = { prod = { database = "sqlite:data/app.db", backups = { dir = 3 } } } })lua");
  auto dir = p.Run({"backup"});
  CHECK(Has(dir.err, "error: config: hoist.lua: environments.prod.backups.dir must be a string (got an integer)\n"));
  WriteFile(p.dir / "hoist.lua", R"lua(return { environments = { prod = { database = 42 } } })lua");
  auto url = p.Run({"backup"});
  CHECK(Has(url.err, "error: config: hoist.lua: environments.prod.database must be a string (got an integer)\n"));
  WriteFile(p.dir / "hoist.lua", R"lua(return { environments = { prod = { database = "sqlite:data/nope.db" } } })lua");
  auto open = p.Run({"backup"});
  CHECK(open.exit_code == 1);
  CHECK(Has(open.err, ": db: hoist.lua: environments.prod.database: no database file at " + (p.dir / "data/nope.db")));
  for (const auto* r : {&backups, &dir, &url, &open}) CHECK_FALSE(Has(r->err, "stdlib/hoist/project.lua"));
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test

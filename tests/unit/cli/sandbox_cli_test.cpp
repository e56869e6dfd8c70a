// `hoist run --sandbox`, `--expect-plan` and `hoist test` through the real
// binary. The sandbox test checksums the real database file and nginx
// include before and after: a rehearsal must leave them byte-identical.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "db/connection.h"
#include "support/support.h"
#include "sys/sha256.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kPlaybooks = std::string(HOIST_TEST_DIR) + "/playbooks";

void Sql(const std::string& path, const std::string& sql) {
  db::OpenOptions o;
  o.create = true;
  auto conn = db::Open("sqlite://" + path, o);
  conn->Exec(sql);
  conn->Close();
}

/// A project like a real blue/green host: a WAL SQLite database, an nginx
/// include, the test playbook and its migrations.
struct BlueGreenProject {
  TempDir dir{"sbx"};
  BlueGreenProject() {
    fs::create_directories(dir / "data");
    Sql(dir / "data/app.db",
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
        "CREATE TABLE releases (id INTEGER PRIMARY KEY, version TEXT NOT NULL, colour TEXT NOT NULL);"
        "INSERT INTO users (name) VALUES ('ada'), ('grace'), ('linus');"
        "INSERT INTO releases (version, colour) VALUES ('1.0.0', 'blue');");
    WriteFile(dir / "nginx/api.conf", "upstream api {\n    server 127.0.0.1:5001 max_fails=3;\n}\n");
    fs::copy(kPlaybooks + "/migrations", dir / "migrations");
    fs::copy(kPlaybooks + "/bluegreen.lua", dir / "bluegreen.lua");
    WriteFile(dir / "hoist.lua", R"(return { environments = { prod = {
      database = "sqlite:data/app.db", migrations = "migrations", backups = "backups",
      nginx = { conf = ")" + (dir / "nginx/api.conf") + R"(", upstream = "api" },
      service = { bin = "/bin/false", run_dir = ")" + (dir / "run") + R"(", ports = { blue = 5001, green = 5002 } },
    } } })");
  }
  std::string Sums() {
    std::string out;
    for (const char* f : {"data/app.db", "nginx/api.conf"}) {
      out += std::string(f) + "=" + (fs::exists(dir / f) ? sys::Sha256Hex(ReadAll(dir / f)) : "missing") + "\n";
    }
    return out;
  }
  sys::ProcessResult Run(std::vector<std::string> args) { return RunHoist(dir.path, std::move(args)); }
};

std::string PlanHash(const std::string& out) {
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex("plan hash: ([0-9a-f]{64})")));
  return m[1];
}

TEST_SUITE("cli/sandbox") {
  TEST_CASE("run --sandbox reports the changes and leaves the real database and nginx include byte-identical") {
    BlueGreenProject p;
    std::string before = p.Sums();
    auto r = p.Run({"run", "bluegreen.lua", "-e", "version=1.4.2", "--sandbox"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(p.Sums() == before);
    // Reading a WAL database (the online copy does) may leave SQLite's empty
    // -wal beside it, as any reader does; never a frame in it.
    CHECK((!fs::exists(p.dir / "data/app.db-wal") || fs::file_size(p.dir / "data/app.db-wal") == 0));
    CHECK_FALSE(fs::exists(p.dir / "run"));         // no pid file, no log
    CHECK_FALSE(fs::exists(p.dir / "backups"));     // the backup went to the sandbox
    CHECK_FALSE(fs::exists(p.dir / ".hoist/state.db"));  // nor the real journal
    CHECK(r.out.find("world changes it would make, in order:") != std::string::npos);
    CHECK(r.out.find(" 1. start api-green   (step \"start green\")") != std::string::npos);
    CHECK(r.out.find("write " + (p.dir / "nginx/api.conf")) != std::string::npos);
    CHECK(r.out.find("-     server 127.0.0.1:5001 max_fails=3;") != std::string::npos);
    CHECK(r.out.find("+     server 127.0.0.1:5002 max_fails=3;") != std::string::npos);
    CHECK(r.out.find("run nginx -s reload") != std::string::npos);
    CHECK(std::regex_search(r.out, std::regex("releases +1 -> 2 +\\(changed\\)")));
    CHECK(r.out.find("+ column users.email") != std::string::npos);
    PlanHash(r.out);
    // The real database is as it was: one release, no email column.
    db::OpenOptions ro;
    ro.readonly = true;
    auto conn = db::Open("sqlite://" + (p.dir / "data/app.db"), ro);
    CHECK(std::get<int64_t>(conn->Query("SELECT count(*) FROM releases").rows[0][0]) == 1);
    CHECK(conn->Columns("users").size() == 2);
  }

  TEST_CASE("run --sandbox --json ends with one sandbox_report event") {
    BlueGreenProject p;
    auto r = p.Run({"--json", "run", "bluegreen.lua", "-e", "version=1.4.2", "--sandbox"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    std::string last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
    json rep = json::parse(last);
    CHECK(rep["event"] == "sandbox_report");
    CHECK(rep["status"] == "ok");
    CHECK(rep["rows"]["releases"]["before"] == 1);
    CHECK(rep["rows"]["releases"]["after"] == 2);
    CHECK(rep["changes"][0]["what"] == "start api-green");
    CHECK(rep["plan_hash"].get<std::string>().size() == 64);
  }

  TEST_CASE("run --sandbox reports an fs.chmod and leaves the file's mode on disk, a real run changes it") {
    TempDir dir{"sbx"};
    WriteFile(dir / "app.env", "K=v\n");
    ::chmod((dir / "app.env").c_str(), 0644);
    WriteFile(dir / "hoist.lua", "return { environments = { prod = {} } }");
    WriteFile(dir / "perms.lua", R"(local hoist, fs = require "hoist", require "hoist.fs"
      return hoist.playbook { name = "perms", version = "1.0.0", summary = "Tighten the env file",
        run = function(run) run:step("tighten", function() fs.chmod(")" + (dir / "app.env") + R"(", "0600") end) end })");
    auto mode = [&] { return fs::status(dir / "app.env").permissions() & fs::perms::mask; };
    auto r = RunHoist(dir.path, {"run", "perms.lua", "--sandbox"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find(" 1. chmod 0600 " + (dir / "app.env") + "   (step \"tighten\")") != std::string::npos);
    CHECK(mode() == static_cast<fs::perms>(0644));
    r = RunHoist(dir.path, {"run", "perms.lua"});
    CHECK(r.exit_code == 0);
    CHECK(mode() == static_cast<fs::perms>(0600));
  }

  TEST_CASE("--expect-plan refuses to run when the database schema changed since the rehearsal, saying how") {
    BlueGreenProject p;
    auto r = p.Run({"run", "bluegreen.lua", "-e", "version=1.4.2", "--sandbox"});
    REQUIRE(r.exit_code == 0);
    std::string hash = PlanHash(r.out);
    // Same inputs: the same hash.
    auto again = p.Run({"run", "bluegreen.lua", "-e", "version=1.4.2", "--sandbox"});
    CHECK(PlanHash(again.out) == hash);
    Sql(p.dir / "data/app.db", "CREATE TABLE audit (id INTEGER PRIMARY KEY);");
    auto refused = p.Run({"run", "bluegreen.lua", "-e", "version=1.4.2", "--expect-plan", hash});
    CHECK(refused.exit_code == 2);
    CHECK(refused.err.find("the plan changed since the rehearsal") != std::string::npos);
    CHECK(refused.err.find("the database schema changed") != std::string::npos);
    CHECK_FALSE(fs::exists(p.dir / "run"));
  }

  TEST_CASE("--expect-plan: rows written since the rehearsal are observations, said but not a different plan") {
    BlueGreenProject p;
    auto r = p.Run({"--json", "run", "bluegreen.lua", "-e", "version=1.4.2", "--sandbox"});
    REQUIRE(r.exit_code == 0);
    json rep = json::parse(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1));
    CHECK(rep["observed"]["rows"]["users"] == 3);
    CHECK_FALSE(rep["plan"]["database"].contains("rows"));
    std::string hash = rep["plan_hash"];
    // An app taking writes between rehearsal and run: the same plan.
    Sql(p.dir / "data/app.db", "INSERT INTO users (name) VALUES ('margaret');");
    auto again = p.Run({"--json", "run", "bluegreen.lua", "-e", "version=1.4.2", "--sandbox"});
    json rep2 = json::parse(again.out.substr(again.out.rfind('\n', again.out.size() - 2) + 1));
    CHECK(rep2["plan_hash"] == hash);
    CHECK(rep2["observed"]["rows"]["users"] == 4);
  }

  TEST_CASE("--expect-plan covers migration file contents: an edited migration is a different plan, named") {
    BlueGreenProject p;
    auto r = p.Run({"run", "bluegreen.lua", "-e", "version=1.4.2", "--sandbox"});
    REQUIRE(r.exit_code == 0);
    std::string hash = PlanHash(r.out);
    std::string name;
    for (const auto& e : fs::directory_iterator(p.dir / "migrations")) {
      if (e.path().extension() == ".sql" && (name.empty() || e.path().filename().string() > name)) name = e.path().filename();
    }
    REQUIRE_FALSE(name.empty());
    std::ofstream(p.dir / ("migrations/" + name), std::ios::app) << "\nDELETE FROM users WHERE id > 1;\n";
    auto refused = p.Run({"run", "bluegreen.lua", "-e", "version=1.4.2", "--expect-plan", hash});
    INFO(refused.out << refused.err);
    CHECK(refused.exit_code == 2);
    CHECK(refused.err.find("migration file migrations/" + name + " changed") != std::string::npos);
    db::OpenOptions ro;
    ro.readonly = true;
    auto conn = db::Open("sqlite://" + (p.dir / "data/app.db"), ro);
    CHECK(std::get<int64_t>(conn->Query("SELECT count(*) FROM users").rows[0][0]) == 3);
    // hoist.lua is an input too.
    auto r2 = p.Run({"run", "bluegreen.lua", "-e", "version=1.4.2", "--sandbox"});
    std::string hash2 = PlanHash(r2.out);
    std::ofstream(p.dir / "hoist.lua", std::ios::app) << "\n-- edited\n";
    auto refused2 = p.Run({"run", "bluegreen.lua", "-e", "version=1.4.2", "--expect-plan", hash2});
    CHECK(refused2.exit_code == 2);
    CHECK(refused2.err.find("hoist.lua changed") != std::string::npos);
  }

  TEST_CASE("--expect-plan runs for real when nothing changed") {
    BlueGreenProject p;
    WriteFile(p.dir / "note.lua", R"lua(local hoist = require "hoist"
local project = require "hoist.project"
local fs = require "hoist.fs"
return hoist.playbook { name = "note", version = "1.0.0", params = { v = { type = "string", required = true } },
  run = function(run, p)
    run:step("note", function()
      local db <close> = project.database(run)
      fs.write_atomic(run.project_root .. "/note.txt", fs.read(run.project_root .. "/nginx/api.conf"))
      return db:exec("INSERT INTO releases (version, colour) VALUES (?, 'none')", p.v)
    end)
  end }
)lua");
    auto r = p.Run({"run", "note.lua", "-e", "v=2.0.0", "--sandbox"});
    REQUIRE(r.exit_code == 0);
    CHECK_FALSE(fs::exists(p.dir / "note.txt"));
    std::string hash = PlanHash(r.out);
    auto other = p.Run({"run", "note.lua", "-e", "v=2.0.1", "--expect-plan", hash});
    CHECK(other.exit_code == 2);
    CHECK(other.err.find("params was {\"v\":\"2.0.0\"} and is now {\"v\":\"2.0.1\"}") != std::string::npos);
    auto real = p.Run({"run", "note.lua", "-e", "v=2.0.0", "--expect-plan", hash});
    INFO(real.out << real.err);
    CHECK(real.exit_code == 0);
    CHECK(fs::exists(p.dir / "note.txt"));
  }

  TEST_CASE("replay: a run replays as recorded, diverges precisely on another database, and saves a test") {
    TempDir dir("rpl");
    fs::create_directories(dir / "data");
    Sql(dir / "data/app.db", "CREATE TABLE users (id INTEGER PRIMARY KEY);INSERT INTO users VALUES (1),(2),(3);");
    Sql(dir / "other.db", "CREATE TABLE users (id INTEGER PRIMARY KEY);INSERT INTO users VALUES (1),(2),(3),(4);");
    WriteFile(dir / "hoist.lua", "return { environments = { prod = { database = \"sqlite:data/app.db\" } } }");
    WriteFile(dir / "branch.lua", R"lua(local hoist = require "hoist"
local project = require "hoist.project"
local proc = require "hoist.proc"
local fs = require "hoist.fs"
return hoist.playbook { name = "branch", version = "1.0.0", run = function(run)
  run:step("count", function()
    local db <close> = project.database(run)
    local n = db:scalar("SELECT count(*) FROM users")
    local r = proc.run({ "echo", n > 3 and "big" or "small" })
    fs.write_atomic(run.project_root .. "/out.txt", r.stdout)
    return n
  end)
end }
)lua");
    auto real = RunHoist(dir.path, {"run", "branch.lua"});
    REQUIRE(real.exit_code == 0);
    CHECK(ReadAll(dir / "out.txt") == "small\n");
    fs::remove(dir / "out.txt");

    auto same = RunHoist(dir.path, {"replay", "1"});
    INFO(same.out << same.err);
    CHECK(same.exit_code == 0);
    CHECK(same.out.find("matched: all ") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "out.txt"));  // replayed, not redone

    auto other = RunHoist(dir.path, {"replay", "1", "--db", "sqlite:other.db"});
    INFO(other.out << other.err);
    CHECK(other.exit_code == 1);
    CHECK(other.out.find("DIVERGED at call 1 (in step \"count\"):") != std::string::npos);
    CHECK(other.out.find("expected: RunProcess {\"argv\":[\"echo\",\"small\"]") != std::string::npos);
    CHECK(other.out.find("actual:   RunProcess {\"argv\":[\"echo\",\"big\"]") != std::string::npos);

    auto saved = RunHoist(dir.path, {"replay", "1", "--save-test", "tests/run1_test.lua"});
    INFO(saved.out << saved.err);
    REQUIRE(saved.exit_code == 0);
    CHECK(fs::exists(dir / "tests/run1.replay.json"));
    CHECK(fs::exists(dir / "tests/run1.replay.db"));
    auto test = RunHoist(dir.path, {"test"});
    INFO(test.out << test.err);
    CHECK(test.exit_code == 0);
    CHECK(test.out.find("1 passed, 0 failed") != std::string::npos);
  }

  TEST_CASE("replay: a db.open that failed in the recorded run and succeeds in the replay is a divergence") {
    TempDir dir("rpl");
    WriteFile(dir / "hoist.lua", "return { environments = { prod = { database = \"sqlite:data/app.db\" } } }");
    // Tolerates a missing database, so both runs end ok: only the outcome of
    // db.open tells them apart.
    WriteFile(dir / "probe.lua", R"lua(local hoist = require "hoist"
local project = require "hoist.project"
return hoist.playbook { name = "probe", version = "1.0.0", run = function(run)
  run:step("open", function()
    local ok, conn = pcall(project.database, run)
    if ok then conn:close() end
    return ok
  end)
end }
)lua");
    auto real = RunHoist(dir.path, {"run", "probe.lua"});
    INFO(real.out << real.err);
    REQUIRE(real.exit_code == 0);
    fs::create_directories(dir / "data");
    Sql(dir / "data/app.db", "CREATE TABLE t (x);");

    auto replay = RunHoist(dir.path, {"replay", "1"});
    INFO(replay.out << replay.err);
    CHECK(replay.exit_code == 1);
    CHECK(replay.out.find("DIVERGED at step 1 (\"open\"): recorded db.open failed (not_found: db: no database file at " +
                          (dir / "data/app.db")) != std::string::npos);
    CHECK(replay.out.find("), replay succeeded\n") != std::string::npos);
    CHECK(replay.out.find("matched") == std::string::npos);

    auto j = RunHoist(dir.path, {"--json", "replay", "1"});
    REQUIRE(j.exit_code == 1);
    json ev = json::parse(j.out);
    CHECK(ev["matched"] == false);
    CHECK(ev["divergence"]["step"] == "open");
    CHECK(ev["divergence"]["actual"] == "db.open succeeded");
  }

  TEST_CASE("replay: a run that recalled remembered facts replays with them, whatever was remembered since") {
    TempDir dir("rpl");
    fs::create_directories(dir / "data");
    Sql(dir / "data/app.db", "CREATE TABLE t (x);");
    WriteFile(dir / "hoist.lua", "return { environments = { prod = { database = \"sqlite:data/app.db\" } } }");
    // What the canned contract and rollback do: act on what an earlier run remembered.
    WriteFile(dir / "facts.lua", R"lua(local hoist = require "hoist"
local proc = require "hoist.proc"
return hoist.playbook { name = "facts", version = "1.0.0", params = { set = { type = "string", default = "" } },
  run = function(run, p)
    if p.set ~= "" then run:remember("release", p.set) return end
    local release = run:recall("release")
    run:step("act", function() return proc.run({ "echo", "release " .. tostring(release) }).stdout end)
    run:remember("release", "after " .. tostring(release))
  end }
)lua");
    REQUIRE(RunHoist(dir.path, {"run", "facts.lua", "-e", "set=2"}).exit_code == 0);
    auto acted = RunHoist(dir.path, {"run", "facts.lua"});  // run 2 recalls release 2
    REQUIRE(acted.exit_code == 0);
    REQUIRE(RunHoist(dir.path, {"run", "facts.lua", "-e", "set=3"}).exit_code == 0);

    auto replay = RunHoist(dir.path, {"replay", "2"});
    INFO(replay.out << replay.err);
    CHECK(replay.exit_code == 0);
    CHECK(replay.out.find("matched: all ") != std::string::npos);
    // The replay remembered nothing into the real store.
    auto facts = RunHoist(dir.path, {"run", "facts.lua"});
    REQUIRE(facts.exit_code == 0);
    auto show = RunHoist(dir.path, {"show", "4", "--json"});
    REQUIRE(show.exit_code == 0);
    CHECK(show.out.find("release 3") != std::string::npos);
  }

  TEST_CASE("recorded world answers keep secrets masked in the journal") {
    TempDir dir("sec");
    WriteFile(dir / "secret.lua", R"lua(local hoist = require "hoist"
local proc = require "hoist.proc"
return hoist.playbook { name = "secret", version = "1.0.0",
  params = { token = { type = "string", secret = true, required = true } },
  run = function(run, p)
    run:step("use", function()
      return proc.run({ "sh", "-c", "echo $TOKEN" }, { env = { TOKEN = p.token } }).stdout
    end)
  end }
)lua");
    auto r = RunHoist(dir.path, {"run", "secret.lua", "-e", "token=s3cr3t-Tok3n-xyz"});
    REQUIRE(r.exit_code == 0);
    auto show = RunHoist(dir.path, {"show", "1", "--json"});
    REQUIRE(show.exit_code == 0);
    CHECK(show.out.find("RunProcess") != std::string::npos);  // the call is recorded...
    CHECK(show.out.find("s3cr3t-Tok3n-xyz") == std::string::npos);  // ...its env and output masked
    CHECK(ReadAll(dir / ".hoist/state.db").find("s3cr3t-Tok3n-xyz") == std::string::npos);
    CHECK(ReadAll(dir / ".hoist/state.db-wal").find("s3cr3t-Tok3n-xyz") == std::string::npos);
  }

  TEST_CASE("hoist test: the blue/green suite passes") {
    auto r = RunHoist(HOIST_TEST_DIR, {"test", "playbooks"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(std::regex_search(r.out, std::regex("\n(1[0-9]|[2-9][0-9]) passed, 0 failed")));
  }

  TEST_CASE("hoist test: the canned playbooks' cases pass") {
    // Rehearsals read the fixture backups (verify, drill, restore from them)
    // and must write nothing into them: a drill once appended its record to
    // the real manifest.
    auto snapshot = [] {
      std::map<std::string, std::string> files;
      for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(HOIST_TEST_DIR) +
                                                                           "/playbooks/canned/fixtures")) {
        if (e.is_regular_file()) files[e.path().string()] = ReadAll(e.path().string());
      }
      return files;
    };
    const auto before = snapshot();
    auto r = RunHoist(HOIST_TEST_DIR, {"--json", "test", "playbooks/canned"});
    CHECK(snapshot() == before);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    std::istringstream in(r.out);
    json summary;
    std::set<std::string> files;
    for (std::string l; std::getline(in, l);) {
      json j = json::parse(l);
      if (j["event"] == "test_summary") summary = j;
      if (j["event"] == "test_case") files.insert(j["file"].get<std::string>());
    }
    CHECK(summary.value("failed", -1) == 0);
    CHECK(summary.value("passed", 0) >= 25);
    // deploy, rollback/contract/status, migrate, backup/restore/verify/prune/compare
    CHECK(files.size() == 4);
  }

  TEST_CASE("hoist test: the broken playbook fails exactly the cases that catch its bugs") {
    auto r = RunHoist(HOIST_TEST_DIR, {"test", "--lib", "playbooks", "playbooks_broken/bluegreen_broken.cases.lua"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("  FAIL  green listens but answers 500: no switch") != std::string::npos);
    CHECK(r.out.find("run status: expected failed, got ok") != std::string::npos);
    CHECK(r.out.find("  FAIL  nginx -t fails: the include is restored and green stopped") != std::string::npos);
    CHECK(r.out.find("  FAIL  HTTP 500 through nginx after the switch: reverted to blue") != std::string::npos);
    CHECK(r.out.find("expected a world change containing \"stop api-green\"") != std::string::npos);
    CHECK(r.out.find("bluegreen_cases.lua:") != std::string::npos);  // the failing assertion's line
    CHECK(r.out.find("  ok    deploy: backup, migrate, start green, health, switch, record") != std::string::npos);
    CHECK(std::regex_search(r.out, std::regex("\n[0-9]+ passed, 3 failed")));
  }

  TEST_CASE("hoist test: relative paths, --yes and config deaths behave as on the CLI") {
    TempDir dir{"ht-rel"};
    WriteFile(dir / "hoist.lua", "return { environments = { prod = { } } }");
    // Reads env.conf (relative: the project root's), asks before writing.
    WriteFile(dir / "playbooks/touch.lua", R"(local hoist = require "hoist"
local fs = require "hoist.fs"
local project = require "hoist.project"
return hoist.playbook { name = "touch", version = "1.0.0", summary = "copy conf to out",
  run = function(run)
    if type(run.env.conf) ~= "string" then error(hoist.error("touch", "config", "env.conf must be a path")) end
    local text = run:step("read", function() return fs.read(project.path(run, run.env.conf)) end)
    if not run:confirm("write out.txt?") then error(hoist.error("touch", "not_confirmed", "not confirmed")) end
    run:step("write", function() fs.write_atomic(project.path(run, "conf/out.txt"), text .. "!") end)
  end }
)");
    WriteFile(dir / "tests/touch_test.lua", R"(local t = require "hoist.testing"
local case = t.case
local sb = t.sandbox { db = false, env = { conf = "conf/site.conf" },
  world = { files = { ["conf/site.conf"] = "hello" } } }
case("the env's relative path and the world's name the same file", function()
  local r = sb:run("touch", {}, { yes = true })
  t.status(r, "ok")
  t.eq(t.file(r, "conf/out.txt"), "hello!")
end)
case("without yes, as on the CLI with no terminal, run:confirm refuses", function()
  local r = sb:run("touch", {})
  t.status(r, "failed")
  t.contains(r.error, "no terminal to answer on; pass --yes to confirm")
  t.eq(t.file(r, "conf/out.txt"), nil)
end)
case("a config death is not a failed step", function()
  local r = t.sandbox { db = false, env = { } }:run("touch", {})
  t.status(r, "config")
  t.raises(function() t.status(r, "failed") end, "died on its configuration")
end)
)");
    auto r = RunHoist(dir.path, {"test"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("3 passed, 0 failed") != std::string::npos);
  }

  TEST_CASE("hoist test --json: one line per case and a summary") {
    auto r = RunHoist(HOIST_TEST_DIR, {"--json", "test", "playbooks/sandbox_guard_test.lua"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    std::istringstream in(r.out);
    std::vector<json> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(json::parse(l));
    REQUIRE(lines.size() == 3);
    CHECK(lines[0]["event"] == "test_case");
    CHECK(lines[0]["ok"] == true);
    CHECK(lines[2] == json({{"event", "test_summary"}, {"passed", 2}, {"failed", 0}, {"seconds", lines[2]["seconds"]}}));
  }
}

}  // namespace
}  // namespace hoist::test

// Secret flow (issue 12): one distinctive secret, holding the characters a
// URL reserves, pushed through every path a value takes in hoist — argv,
// env, process output longer than the journal's tail, logs, step results,
// facts, errors, URL params (plain and percent-encoded), hoist.lua, a
// backup manifest, --json, show, history, replay, a sandbox plan file — and
// then every output and every file of the project (state.db and its -wal
// included) is searched for any form of it.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/secrets.h"
#include "support/support.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;

const std::string kSecret = "Qx7@pa:ss/w%rd-ZZY";

std::vector<std::string> Forms() {
  return {kSecret, PercentEncode(kSecret), PercentEncode(kSecret, true),
          // the halves a cut through the secret would leave
          kSecret.substr(0, 8), kSecret.substr(8)};
}

const char* kPlaybook = R"lua(local hoist = require "hoist"
local proc = require "hoist.proc"
local log = require "hoist.log"
local db = require "hoist.db"
local backup = require "hoist.backup"
local project = require "hoist.project"

return hoist.playbook {
  name = "leak", version = "1.0.0", lock = false,
  params = {
    url = { type = "string", required = true, help = "a database URL with a password" },
  },
  run = function(run, p)
    local pw = hoist.secret("APP_DB_PASSWORD")
    run:step("argv and output", function()
      return proc.run({ "printf", "%s", pw }, { check = true }).stdout
    end)
    run:step("env", function()
      return proc.run({ "sh", "-c", "echo PW=$PW" }, { env = { PW = pw }, check = true }).stdout
    end)
    run:step("long output straddling the cut", function()
      -- 'x' * 6000, the secret, then 'y' * (4096 - 9): the 4 KiB tail starts inside the secret.
      proc.run({ "sh", "-c", "printf '%6000s' '' | tr ' ' x; printf %s \"$0\"; printf '%4087s' '' | tr ' ' y", pw },
        { check = true })
    end)
    run:step("logs", function()
      log.info("the password is " .. pw)
      log.info("and encoded " .. db.url { user = "app", password = pw, host = "db.internal", database = "app" })
      log.warn("the url param is " .. p.url)
    end)
    run:step("a result", function() return { pw = pw, url = p.url } end)
    run:step("facts", function()
      local ok, e = pcall(run.remember, run, "token", { value = pw })
      assert(not ok, "a fact holding a secret must be refused")
      log.info(tostring(e.message or e))
      run:remember("where", { secret = "APP_DB_PASSWORD" })
    end)
    run:step("url errors", function()
      local ok, e = pcall(db.open, "postgres://app:" .. pw .. "@127.0.0.1:1/app")
      assert(not ok)
      log.info("raw: " .. tostring(e.message or e))
      local ok2, e2 = pcall(db.open, "postgres://app:" .. pw .. "@127.0.0.1:1/app?password=" .. pw)
      log.info("raw twice: " .. tostring(ok2) .. " " .. tostring(e2 and (e2.message or e2)))
    end)
    run:step("backup with a reason", function()
      local conn <close> = project.database(run)
      return backup.create(conn, { dir = run.project_root .. "/backups", label = "flow", reason = "for " .. pw })
    end)
    error("giving up with " .. pw .. " and " .. p.url)
  end,
})lua";

struct Flow {
  TempDir dir{"flow"};
  std::string outputs;
  Flow() {
    WriteFile(dir / "hoist.lua",
              "return { environments = { prod = {\n"
              "  database = \"sqlite:data/app.db\",\n"
              "  replica = \"postgres://app:" + PercentEncode(kSecret) + "@replica.internal/app\",\n"
              "} } }\n");
    WriteFile(dir / "playbooks/leak.lua", kPlaybook);
    fs::create_directories(dir / "data");
    // A database to back up.
    sys::ProcessSpec spec;
    spec.argv = {"sqlite3", dir / "data/app.db", "PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);"};
    REQUIRE(sys::RunProcess(spec).exit_code == 0);
  }
  sys::ProcessResult Run(std::vector<std::string> args) {
    auto r = RunHoist(dir.path, std::move(args), {{"APP_DB_PASSWORD", kSecret}});
    outputs += r.out + "\n" + r.err + "\n";
    return r;
  }
};

TEST_SUITE("cli/secrets") {
  TEST_CASE("a secret with @ : / % never appears, in any form, in any output or file") {
    Flow f;
    const std::string url = "postgres://app:" + PercentEncode(kSecret) + "@db.internal:5432/app";
    auto run = f.Run({"leak", "-e", "url=" + url});
    INFO(run.out << run.err);
    CHECK(run.exit_code == 1);
    CHECK(run.err.find("giving up with *** and postgres://app:***@db.internal:5432/app") != std::string::npos);
    CHECK(run.err.find("run:remember(\"token\"): the value holds a secret") != std::string::npos);
    // The raw URL error says what is wrong without quoting any of the password.
    CHECK(run.err.find("its user name or password holds characters a URL reserves") != std::string::npos);
    f.Run({"--json", "leak", "-e", "url=" + url});
    WriteFile(f.dir / "params.json", "{\"url\": \"" + url + "\"}");
    f.Run({"leak", "--params", f.dir / "params.json"});
    f.Run({"show", "1"});
    f.Run({"show", "1", "--json"});
    f.Run({"history", "--json"});
    f.Run({"replay", "1"});
    f.Run({"run", "leak", "-e", "url=" + url, "--sandbox"});
    f.Run({"--json", "run", "leak", "-e", "url=" + url, "--sandbox"});
    // The canned compare takes URLs as params (it journals them).
    f.Run({"compare", "-e", "a=sqlite:data/app.db", "-e", "b=" + url});
    f.Run({"show", "--json", "2"});

    for (const auto& form : Forms()) {
      CAPTURE(form);
      CHECK(f.outputs.find(form) == std::string::npos);
    }
    size_t files = 0;
    for (const auto& e : fs::recursive_directory_iterator(f.dir.path)) {
      if (!e.is_regular_file()) continue;
      std::string rel = fs::relative(e.path(), f.dir.path);
      if (rel == "hoist.lua" || rel == "params.json" || rel.rfind("playbooks/", 0) == 0) continue;  // ours
      ++files;
      std::string data = ReadAll(e.path());
      for (const auto& form : Forms()) {
        CAPTURE(rel);
        CAPTURE(form);
        CHECK(data.find(form) == std::string::npos);
      }
    }
    CHECK(files >= 4);  // state.db (+ -wal), the backup and its manifest, plans
    CHECK(fs::exists(f.dir / ".hoist/state.db"));
    CHECK_FALSE(fs::is_empty(f.dir / "backups"));
    CHECK_FALSE(fs::is_empty(f.dir / ".hoist/plans"));
  }

  TEST_CASE("facts round-trip exactly, even when a secret is a substring of them") {
    TempDir dir{"facts"};
    WriteFile(dir / "playbooks/facts.lua", R"lua(local hoist = require "hoist"
return hoist.playbook { name = "facts", version = "1.0.0",
  run = function(run)
    hoist.secret("REL")   -- "release": a secret that is a word of the facts
    run:remember("colours", { blue = { release = "release-7" } })
    local back = run:recall("colours")
    assert(back.blue.release == "release-7", "recalled " .. tostring(back.blue.release))
  end })lua");
    auto r = RunHoist(dir.path, {"facts"}, {{"REL", "release-7"}});
    INFO(r.out << r.err);
    // "release-7" is the secret itself: refused, not stored masked.
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("run:remember(\"colours\"): the value holds a secret") != std::string::npos);
    auto ok = RunHoist(dir.path, {"facts"}, {{"REL", "relea"}});
    INFO(ok.out << ok.err);
    CHECK(ok.exit_code == 1);  // "relea" is inside "release-7": refused as well
    auto other = RunHoist(dir.path, {"facts"}, {{"REL", "unrelated-secret"}});
    INFO(other.out << other.err);
    CHECK(other.exit_code == 0);
  }

  TEST_CASE("a secret shorter than 4 characters is not masked, and hoist says so") {
    TempDir dir{"short"};
    WriteFile(dir / "playbooks/short.lua", R"lua(local hoist = require "hoist"
return hoist.playbook { name = "short", version = "1.0.0", run = function() hoist.secret("PIN") end })lua");
    auto r = RunHoist(dir.path, {"short"}, {{"PIN", "abc"}});
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("secret PIN is shorter than 4 characters: hoist cannot mask it") != std::string::npos);
  }

  TEST_CASE("a pre-existing .hoist at 0777 and state.db at 0644 are tightened, with a warning") {
    TempDir dir{"perm"};
    WriteFile(dir / "playbooks/q.lua", "return require('hoist').playbook { name = 'q', version = '1.0.0', run = function() end }");
    REQUIRE(RunHoist(dir.path, {"q"}).exit_code == 0);
    fs::permissions(dir / ".hoist", fs::perms::all);
    fs::permissions(dir / ".hoist/state.db", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                                 fs::perms::others_read);
    auto r = RunHoist(dir.path, {"q"});
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("(its directory) was 0777, readable by others: tightened to 0700") != std::string::npos);
    CHECK(r.err.find("state.db (the state store) was 0644, readable by others: tightened to 0600") != std::string::npos);
    CHECK((fs::status(dir / ".hoist").permissions() & fs::perms::all) == fs::perms::owner_all);
  }
}

}  // namespace
}  // namespace hoist::test

// `hoist show RUN --html FILE` and `hoist history --html DIR` through the
// real binary on a real run: what the page holds, that every journal
// string is escaped and stays masked, the files' modes, and the messages
// when a page cannot be written. tests/integration/html checks the same
// pages as headless Chromium renders them.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "app/run_page.h"
#include "support/support.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;

const char* kConfig = R"lua(return { environments = { staging = {}, prod = {} } })lua";

// Nested steps, a retry, a failing step and an undo; a name and a param
// that would be markup if they were not escaped.

const char* kSecretPlaybook = R"lua(local hoist = require "hoist"
local proc = require "hoist.proc"
return hoist.playbook {
  name = "token", version = "1.0.0",
  run = function(run, p)
    local t = hoist.secret("APP_TOKEN")
    run:step("use it", function() return proc.run({ "printf", "%s", t }, { check = true }).stdout end)
  end,
}
)lua";

struct Project {
  TempDir dir{"html"};
  Project() {
    WriteFile(dir / "hoist.lua", kConfig);
    WriteFile(dir / "playbooks/shape.lua", ReadAll(std::string(HOIST_TEST_DIR) + "/fixtures/html/shape.lua"));
    WriteFile(dir / "playbooks/token.lua", kSecretPlaybook);
  }
  sys::ProcessResult Run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    return RunHoist(dir.path, std::move(args), std::move(env));
  }
};

size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + needle.size())) ++n;
  return n;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

unsigned ModeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

TEST_SUITE("cli/html") {
  TEST_CASE("show --html writes one page with a bar per step, the failure, the retries and the undo") {
    Project p;
    auto r = p.Run({"shape", "--env", "staging", "-e", "note=<script>\"x\"</script>&amp;"});
    REQUIRE(r.exit_code == 1);
    auto w = p.Run({"show", "1", "--html", "page.html"});
    INFO(w.out << w.err);
    REQUIRE(w.exit_code == 0);
    CHECK(w.out == "wrote page.html (run 1, 6 steps)\n");
    std::string page = ReadAll(p.dir / "page.html");
    CHECK(ModeOf(p.dir / "page.html") == 0600);

    // The summary.
    CHECK(page.find("<h1>run 1 · shape@1.2.3 · <span class=\"status status-failed\">failed</span></h1>") !=
          std::string::npos);
    CHECK(page.find("<dt>environment</dt><dd>staging</dd>") != std::string::npos);
    CHECK(page.find("<dt>status</dt><dd>failed (exit 1)</dd>") != std::string::npos);
    CHECK(page.find("<div class=\"error\">playbooks/shape.lua:20: boom</div>") != std::string::npos);
    // One bar per step, nested under its parent.
    for (int seq = 1; seq <= 6; ++seq) CHECK(Count(page, "data-step=\"" + std::to_string(seq) + "\" data-name=") == 1);
    CHECK(Count(page, "data-parent=\"1\"") == 2);
    CHECK(page.find("class=\"bar step failed\" data-step=\"5\" data-name=\"break\" data-kind=\"step\" "
                    "data-status=\"failed\"") != std::string::npos);
    CHECK(page.find("data-step=\"4\" data-name=\"flaky\" data-kind=\"step\" data-status=\"ok\" data-attempts=\"3\"") !=
          std::string::npos);
    CHECK(Count(page, "<line class=\"retry\" data-step=\"4\"") == 2);
    CHECK(page.find("class=\"bar undo\" data-step=\"6\" data-name=\"undo write marker\" data-kind=\"undo\" "
                    "data-status=\"ok\" data-attempts=\"1\" data-depth=\"0\" data-undoes=\"2\"") != std::string::npos);
    // World calls as ticks on their step's row.
    CHECK(page.find("<rect class=\"call\" data-step=\"3\" data-kind=\"proc\" data-name=\"true\"") != std::string::npos);
    CHECK(page.find("<rect class=\"call\" data-step=\"2\" data-kind=\"fs\" data-name=\"write_atomic marker\"") !=
          std::string::npos);
  }

  TEST_CASE("every journal string on the page is escaped and the page fetches nothing") {
    Project p;
    REQUIRE(p.Run({"shape", "--env", "staging", "-e", "note=<script>\"x\"</script>&amp;"}).exit_code == 1);
    REQUIRE(p.Run({"show", "1", "--html", "page.html"}).exit_code == 0);
    std::string page = ReadAll(p.dir / "page.html");
    std::string lower = Lower(page);
    CHECK(lower.find("<script") == std::string::npos);
    CHECK(page.find("prepare &lt;script&gt;alert(1)&lt;/script&gt; &quot;q&quot;") != std::string::npos);
    CHECK(page.find("note=&lt;script&gt;&quot;x&quot;&lt;/script&gt;&amp;amp;") != std::string::npos);
    CHECK(page.find("alert(1)</script>") == std::string::npos);
    // Self-contained: nothing to load, and a policy that forbids loading anything.
    for (const char* ref : {" src=", " href=", "<link", "@import", "url(", "<iframe", "<object"}) {
      INFO(ref);
      CHECK(lower.find(ref) == std::string::npos);
    }
    CHECK(page.find("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                    "style-src 'unsafe-inline'\">") != std::string::npos);
  }

  TEST_CASE("a secret the run used is masked on the page as in the journal") {
    Project p;
    const std::string secret = "s3cr3t-T0ken-9981";
    REQUIRE(p.Run({"token", "--env", "staging"}, {{"APP_TOKEN", secret}}).exit_code == 0);
    REQUIRE(p.Run({"show", "1", "--html", "page.html"}, {{"APP_TOKEN", secret}}).exit_code == 0);
    REQUIRE(p.Run({"history", "--html", "site"}, {{"APP_TOKEN", secret}}).exit_code == 0);
    for (const char* f : {"page.html", "site/index.html", "site/run-1.html"}) {
      std::string page = ReadAll(p.dir / f);
      INFO(f);
      REQUIRE_FALSE(page.empty());
      CHECK(page.find(secret) == std::string::npos);
      CHECK(page.find(secret.substr(0, 8)) == std::string::npos);
    }
    CHECK(ReadAll(p.dir / "page.html").find("***") != std::string::npos);
  }

  TEST_CASE("history --html DIR writes index.html grouped by environment, linking a page per run") {
    Project p;
    REQUIRE(p.Run({"shape", "--env", "staging", "-e", "fail=false"}).exit_code == 0);
    REQUIRE(p.Run({"shape", "--env", "prod", "-e", "fail=false"}).exit_code == 0);
    REQUIRE(p.Run({"shape", "--env", "staging"}).exit_code == 1);
    auto w = p.Run({"history", "--html", "site"});
    INFO(w.out << w.err);
    REQUIRE(w.exit_code == 0);
    CHECK(w.out == "wrote site/index.html and 3 run pages\n");
    CHECK(ModeOf(p.dir / "site") == 0700);
    for (const char* f : {"site/index.html", "site/run-1.html", "site/run-2.html", "site/run-3.html"}) {
      INFO(f);
      CHECK(ModeOf(p.dir / f) == 0600);
    }
    std::string index = ReadAll(p.dir / "site/index.html");
    // Newest environment first, newest run first within it.
    size_t staging = index.find("<section class=\"env\" data-env=\"staging\">");
    size_t prod = index.find("<section class=\"env\" data-env=\"prod\">");
    REQUIRE(staging != std::string::npos);
    REQUIRE(prod != std::string::npos);
    CHECK(staging < prod);
    CHECK(index.find("<tr class=\"run status-failed\" data-run=\"3\"><td><a href=\"run-3.html\">3</a></td>") <
          index.find("<tr class=\"run status-ok\" data-run=\"1\"><td><a href=\"run-1.html\">1</a></td>"));
    CHECK(index.find("data-run=\"2\"><td><a href=\"run-2.html\">2</a></td>") > prod);
    CHECK(ReadAll(p.dir / "site/run-3.html").find("data-run=\"3\" data-status=\"failed\"") != std::string::npos);

    // -n and --env choose the runs, as for the text.
    REQUIRE(p.Run({"history", "--html", "one", "--env", "prod", "-n", "5"}).exit_code == 0);
    CHECK(fs::exists(p.dir / "one/run-2.html"));
    CHECK_FALSE(fs::exists(p.dir / "one/run-1.html"));
  }

  TEST_CASE("a run that never finished is drawn up to its last record, its open step grey") {
    // As the journal holds a run whose process was SIGKILLed: no end, a step still running.
    auto run = nlohmann::json::parse(R"({
      "id": 9, "playbook": "deploy", "version": "1.2.0", "env": "prod", "status": "running", "exit_code": null,
      "operator": "ops", "host": "h1", "started_at": "2026-01-21T10:15:00.000Z", "ended_at": null, "error": null,
      "sandbox": false, "origin": "canned", "source_sha256": "ab", "params": {}, "hoist_version": "0.1.0",
      "steps": [
        {"seq": 1, "parent": null, "name": "backup", "kind": "step", "status": "ok", "attempts": 1,
         "started_at": "2026-01-21T10:15:00.100Z", "ended_at": "2026-01-21T10:15:01.100Z", "seconds": 1.0,
         "result": null, "error": null},
        {"seq": 2, "parent": null, "name": "start green", "kind": "step", "status": "running", "attempts": null,
         "started_at": "2026-01-21T10:15:01.200Z", "ended_at": null, "seconds": 0.0, "result": null, "error": null}],
      "events": [{"seq": 1, "step": 2, "at": "2026-01-21T10:15:03.200Z", "kind": "service", "name": "start green",
                  "data": {"pid": 7}, "seconds": 0.5}]})");
    std::string page = app::RunPage(run);
    CHECK(page.find("<dt>ended</dt><dd>(running, or it crashed)</dd>") != std::string::npos);
    CHECK(page.find("data-span-seconds=\"3.200\"") != std::string::npos);
    CHECK(page.find("data-step=\"2\" data-name=\"start green\" data-kind=\"step\" data-status=\"running\" "
                    "data-attempts=\"1\"") != std::string::npos);
    CHECK(page.find("fill=\"#9e9e9e\"><title>start green — running, 2.00s</title>") != std::string::npos);
    // The axis: 0s to 3s in half seconds, nothing past the run's last record.
    CHECK(page.find(">0.5s</text>") != std::string::npos);
    CHECK(page.find(">3.5s</text>") == std::string::npos);
    CHECK(page.find(">3s</text>") != std::string::npos);
  }

  TEST_CASE("show --html under --json prints one line saying what it wrote") {
    Project p;
    REQUIRE(p.Run({"shape", "--env", "staging", "-e", "fail=false"}).exit_code == 0);
    auto r = p.Run({"--json", "show", "1", "--html", "page.html"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "{\"html\":\"page.html\",\"message\":\"wrote page.html (run 1, 4 steps)\"}\n");
  }

  TEST_CASE("show --html of an unknown run or into a missing directory says so and writes nothing") {
    Project p;
    REQUIRE(p.Run({"shape", "--env", "staging", "-e", "fail=false"}).exit_code == 0);
    auto r = p.Run({"show", "7", "--html", "page.html"});
    CHECK(r.exit_code == 2);
    CHECK(r.err == "hoist: show: no run 7 in the journal (hoist history lists them)\n");
    CHECK_FALSE(fs::exists(p.dir / "page.html"));
    r = p.Run({"show", "1", "--html", "nowhere/page.html"});
    CHECK(r.exit_code == 2);
    CHECK(r.err == "hoist: show: cannot write nowhere/page.html: No such file or directory (create its directory first)\n");
    r = p.Run({"history", "--html", "hoist.lua"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.rfind("hoist: history: cannot create hoist.lua: ", 0) == 0);
  }
}

}  // namespace
}  // namespace hoist::test

// The HTML pages of `hoist show --html` and `hoist history --html` as a real
// headless Chromium builds them (--dump-dom): the assertions are on the DOM
// it produced from real runs — a playbook with nested steps, retries, a
// failure and an undo, and a real blue/green deploy of the sqlite-bluegreen
// example behind a real nginx (the traffic switch, health probes, a backup).
//
// HOIST_HTML_SCREENSHOT=/abs/path.png makes the deploy case also write a
// 1200x700 screenshot of its timeline (docs/img/run-timeline.png is one).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>

#include <nlohmann/json.hpp>

#include "integration/playbooks/bluegreen_rig.h"
#include "support/chromium.h"
#include "support/support.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// One element of the serialized DOM: its tag and attributes (entities of
// attribute values decoded as Chromium's serializer writes them).
struct Element {
  std::string tag;
  std::map<std::string, std::string> attrs;
  bool Has(const std::string& k) const { return attrs.count(k) != 0; }
  std::string operator[](const std::string& k) const {
    auto it = attrs.find(k);
    return it == attrs.end() ? "" : it->second;
  }
  bool HasClass(const std::string& c) const { return (" " + (*this)["class"] + " ").find(" " + c + " ") != std::string::npos; }
};

std::string Decode(std::string s) {
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"&quot;", "\""}, {"&lt;", "<"}, {"&gt;", ">"}, {"&nbsp;", "\xC2\xA0"}, {"&amp;", "&"}}) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  }
  return s;
}

std::vector<Element> Elements(const std::string& dom) {
  static const std::regex tag_re(R"re(<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=>/]+(?:="[^"]*")?)*)\s*/?>)re");
  static const std::regex attr_re(R"re(([^\s=>/]+)(?:="([^"]*)")?)re");
  std::vector<Element> out;
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), tag_re); it != std::sregex_iterator(); ++it) {
    Element e;
    e.tag = (*it)[1];
    std::string attrs = (*it)[2];
    for (auto a = std::sregex_iterator(attrs.begin(), attrs.end(), attr_re); a != std::sregex_iterator(); ++a) {
      e.attrs[(*a)[1]] = Decode((*a)[2]);
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<Element> Select(const std::vector<Element>& all, const std::string& tag, const std::string& cls) {
  std::vector<Element> out;
  for (const auto& e : all) {
    if (e.tag == tag && (cls.empty() || e.HasClass(cls))) out.push_back(e);
  }
  return out;
}

// Nothing on the page makes the browser fetch anything.
void CheckSelfContained(const std::vector<Element>& dom, bool links_allowed) {
  for (const auto& e : dom) {
    INFO("<" << e.tag << " class=\"" << e["class"] << "\">");
    CHECK(e.tag != "link");
    CHECK(e.tag != "img");
    CHECK(e.tag != "iframe");
    for (const char* a : {"src", "srcset", "xlink:href", "action", "poster", "background"}) CHECK_FALSE(e.Has(a));
    if (e.Has("href")) {
      CHECK(links_allowed);
      CHECK(e["href"].find(':') == std::string::npos);  // relative: a page beside this one
    }
    CHECK(e["style"].find("url(") == std::string::npos);
  }
}

json Show(const std::string& dir, int64_t id, const std::map<std::string, std::string>& env = {}) {
  auto r = RunHoist(dir, {"show", std::to_string(id), "--json"}, env);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out);
}

TEST_SUITE("html/chromium") {
  TEST_CASE("a failed run's page in Chromium: a bar per step nested, the failure red, retries, the undo") {
    RequireChromium();
    TempDir dir("html");
    WriteFile(dir / "hoist.lua", "return { environments = { staging = {} } }");
    WriteFile(dir / "playbooks/shape.lua", ReadAll(std::string(HOIST_TEST_DIR) + "/fixtures/html/shape.lua"));
    auto r = RunHoist(dir.path, {"shape", "-e", "note=<script>\"x\"</script>"});
    REQUIRE(r.exit_code == 1);
    json run = Show(dir.path, 1);
    REQUIRE(RunHoist(dir.path, {"show", "1", "--html", dir / "run.html"}).exit_code == 0);
    std::string html = DumpDom(dir / "run.html");
    auto dom = Elements(html);
    CheckSelfContained(dom, false);
    // Markup in a step name and a param stayed text: Chromium serializes
    // text nodes with < and > escaped, and made no element of them.
    CHECK(html.find(">✓ prepare &lt;script&gt;alert(1)&lt;/script&gt; \"q\"<title>") != std::string::npos);
    CHECK(html.find(">note=&lt;script&gt;\"x\"&lt;/script&gt;</code>") != std::string::npos);
    for (const auto& e : dom) CHECK(e.tag.rfind("script", 0) != 0);

    auto body = Select(dom, "body", "run-page");
    REQUIRE(body.size() == 1);
    CHECK(body[0]["data-run"] == "1");
    CHECK(body[0]["data-status"] == "failed");

    // A bar per journaled step, with the journal's exact name (markup in it
    // stayed text) and its parent.
    auto bars = Select(dom, "rect", "bar");
    std::map<std::string, Element> by_step;
    for (const auto& b : bars) {
      if (b.Has("data-step")) by_step[b["data-step"]] = b;
    }
    REQUIRE(by_step.size() == run["steps"].size());
    for (const auto& s : run["steps"]) {
      const Element& b = by_step[std::to_string(s["seq"].get<int64_t>())];
      INFO("step " << s["seq"]);
      CHECK(b["data-name"] == s["name"].get<std::string>());
      CHECK(b["data-status"] == s["status"].get<std::string>());
      CHECK(b["data-parent"] == (s["parent"].is_null() ? "" : std::to_string(s["parent"].get<int64_t>())));
      CHECK(std::stod(b["width"]) >= 2);
    }
    CHECK(by_step["1"]["data-name"] == "prepare <script>alert(1)</script> \"q\"");
    CHECK(by_step["1"].HasClass("group"));
    CHECK(by_step["2"]["data-depth"] == "1");
    // The failure is red; the others are not.
    CHECK(by_step["5"].HasClass("failed"));
    CHECK(by_step["5"]["fill"] == "#d93025");
    for (const char* ok : {"1", "2", "3", "4"}) CHECK(by_step[ok]["fill"] != "#d93025");
    // Two failed attempts of "flaky" before it passed.
    CHECK(by_step["4"]["data-attempts"] == "3");
    auto retries = Select(dom, "line", "retry");
    REQUIRE(retries.size() == 2);
    CHECK(retries[0]["data-step"] == "4");
    CHECK(retries[1]["data-attempt"] == "2");
    // The undo, after the failure, of step 2.
    CHECK(by_step["6"].HasClass("undo"));
    CHECK(by_step["6"]["data-undoes"] == "2");
    CHECK(std::stod(by_step["6"]["x"]) >= std::stod(by_step["5"]["x"]));
    // Bars follow the time axis: each starts no earlier than the one before it.
    for (int seq = 2; seq <= 6; ++seq) {
      CHECK(std::stod(by_step[std::to_string(seq)]["x"]) + 0.5 >= std::stod(by_step[std::to_string(seq - 1)]["x"]));
    }
    // World calls as ticks on their step's rows.
    auto calls = Select(dom, "rect", "call");
    REQUIRE(calls.size() == 4);  // write_atomic, true, false, remove
    CHECK(calls[1]["data-step"] == "3");
    CHECK(calls[1]["data-kind"] == "proc");
    // The params, as text.
    auto params = Select(dom, "code", "param");
    REQUIRE(params.size() == 2);  // the fixture's defaults: fail, note
    CHECK(params[0]["data-param"] == "fail");
    CHECK(params[1]["data-param"] == "note");
    CHECK(Select(dom, "svg", "timeline").size() == 1);
    CHECK(Select(dom, "text", "tick").size() >= 3);
  }

  TEST_CASE("a real blue/green deploy's page in Chromium: the switch, health probes, the backup, linked from history") {
    RequireChromium();
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    rig.HoistOk({"deploy", "-e", "version=2"});
    REQUIRE(rig.Traffic() == "release 2 (blue)");
    json run = Show(rig.root(), 2, rig.env());
    std::string page = rig.path("run-2.html");
    rig.HoistOk({"show", "2", "--html", page});
    auto dom = Elements(DumpDom(page));
    CheckSelfContained(dom, false);

    // The moment traffic switched, where the journal says.
    auto switches = Select(dom, "g", "switch");
    REQUIRE(switches.size() == 1);
    CHECK(switches[0]["data-name"] == "switch green -> blue");
    std::string switched_at;
    for (const auto& e : run["events"]) {
      if (e["kind"] == "nginx" && e["name"].get<std::string>().rfind("switch ", 0) == 0) switched_at = e["at"];
    }
    CHECK(switches[0]["data-at"] == switched_at);
    // Health probes of the new colour.
    auto probes = Select(dom, "circle", "probe");
    CHECK(probes.size() >= 1);
    CHECK(Select(dom, "circle", "ok").size() >= 1);
    // The predeploy backup with its size and checksum, as journaled.
    auto backups = Select(dom, "rect", "backup");
    REQUIRE(backups.size() == 1);
    json created;
    for (const auto& e : run["events"]) {
      if (e["kind"] == "backup" && e["name"].get<std::string>().rfind("create ", 0) == 0) created = e["data"];
    }
    REQUIRE(created.is_object());
    CHECK(backups[0]["data-sha256"] == created["sha256"].get<std::string>());
    CHECK(backups[0]["data-sha256"].size() == 64);
    CHECK(backups[0]["data-size"] == created["size"].dump());
    CHECK(Select(dom, "tr", "backup").size() == 1);
    // No step failed.
    for (const auto& b : Select(dom, "rect", "bar")) CHECK_FALSE(b.HasClass("failed"));

    // history --html: both runs, linked to their pages, with the release.
    rig.HoistOk({"history", "--html", rig.path("site")});
    std::string index = rig.path("site/index.html");
    auto hdom = Elements(DumpDom(index));
    CheckSelfContained(hdom, true);
    auto rows = Select(hdom, "tr", "run");
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["data-run"] == "2");
    auto links = Select(hdom, "a", "");
    REQUIRE(links.size() == 2);
    for (const auto& a : links) CHECK(fs::exists(rig.path("site/" + a["href"])));
    CHECK(links[0]["href"] == "run-2.html");
    std::string text = ReadAll(index);
    CHECK(text.find("<td>2</td></tr>") != std::string::npos);  // release 2
    auto run2 = Elements(DumpDom(rig.path("site/run-2.html")));
    CHECK(Select(run2, "g", "switch").size() == 1);

    if (const char* png = std::getenv("HOIST_HTML_SCREENSHOT")) {
      Screenshot(page, png, 1200, 700);
      CHECK(fs::file_size(png) > 10000);
    }
  }
}

}  // namespace
}  // namespace hoist::test

// Notifications from real blue/green runs: a deploy's and a rollback's
// nginx switches (switch.done) and the rollback itself (rollback.done)
// reach a real loopback receiver, behind a real nginx.
#include <doctest/doctest.h>

#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "integration/playbooks/bluegreen_rig.h"
#include "unit/net/test_server.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;

TEST_SUITE("playbooks/notify") {
  TEST_CASE("deploys and a rollback notify each switch and the rollback, in order, with their data") {
    std::mutex mu;
    std::vector<json> got;
    TestServer rx([&](const ServedRequest& r) {
      std::lock_guard lock(mu);
      got.push_back(json::parse(r.body));
      return HttpAnswer(200, "ok");
    });
    BlueGreenRig rig;
    std::string config = ReadAll(rig.path("hoist.lua"));
    auto at = config.find("return {");
    REQUIRE(at != std::string::npos);
    config.insert(at + 8, "\n  notify = { { url = \"" + rx.Url("/hoist-events") +
                              "\", on = { \"switch.done\", \"rollback.done\", \"run.succeeded\" } } },");
    WriteFile(rig.path("hoist.lua"), config);

    rig.HoistOk({"deploy", "-e", "version=1"});
    rig.HoistOk({"deploy", "-e", "version=2"});
    rig.HoistOk({"rollback"});
    std::lock_guard lock(mu);
    std::vector<std::string> seen;
    for (const auto& b : got) {
      std::string what = b["run"]["playbook"].get<std::string>() + ":" + b["event"].get<std::string>();
      if (b["event"] == "switch.done") what += ":" + b["data"]["from"].get<std::string>() + "->" + b["data"]["to"].get<std::string>();
      seen.push_back(what);
    }
    CHECK(seen == std::vector<std::string>{"deploy:switch.done:blue->green", "deploy:run.succeeded",
                                           "deploy:switch.done:green->blue", "deploy:run.succeeded",
                                           "rollback:switch.done:blue->green", "rollback:rollback.done",
                                           "rollback:run.succeeded"});
    REQUIRE(got.size() == 7);
    CHECK(got[1]["run"]["release"] == "1");
    CHECK(got[5]["data"] == json{{"from", "blue"}, {"to", "green"}, {"release", "1"}, {"previous_release", "2"}});
    CHECK(got[5]["run"]["env"] == "demo");
  }
}

}  // namespace
}  // namespace hoist::test

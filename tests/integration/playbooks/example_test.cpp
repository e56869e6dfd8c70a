// examples/sqlite-bluegreen end to end under load: deploy, rollback and
// deploy again while four threads GET and POST through nginx. Zero failed
// requests, and every acknowledged write is in the database afterwards.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "integration/playbooks/bluegreen_rig.h"

namespace hoist::test {
namespace {

TEST_SUITE("playbooks/example") {
  TEST_CASE("sqlite-bluegreen: deploy, rollback, deploy again under load without a failed request or a lost write") {
    BlueGreenRig rig;
    rig.HoistOk({"deploy", "-e", "version=1"});
    std::string ready = rig.path("load.ready"), stop = rig.path("load.stop");
    sys::ProcessResult load;
    std::thread loader([&] {
      load = sys::RunProcess({.argv = {HOIST_EXAMPLE_APP, "load", "--port", std::to_string(rig.nginx().port()),
                                       "--threads", "4", "--db", rig.path("data/app.db"), "--ready-file", ready,
                                       "--stop-file", stop},
                              .timeout = std::chrono::milliseconds(240000)});
    });
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::access(ready.c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(::access(ready.c_str(), F_OK) == 0);

    auto step = [&](std::vector<std::string> args, const std::string& expect) {
      auto r = rig.Hoist(args);
      INFO(Describe(r));
      CHECK(r.exit_code == 0);
      CHECK(rig.Traffic() == expect);
    };
    step({"deploy", "-e", "version=2"}, "release 2 (blue)");
    step({"rollback"}, "release 1 (green)");
    step({"deploy", "-e", "version=2"}, "release 2 (blue)");

    WriteFile(stop, "stop");
    loader.join();
    INFO("load generator: " << load.out << load.err);
    REQUIRE(load.exit_code >= 0);
    auto j = nlohmann::json::parse(load.out);
    MESSAGE("load during deploy, rollback, deploy: " << j.dump());
    CHECK(j["failed"] == 0);
    CHECK(j["lost_writes"] == 0);
    CHECK(j["acknowledged_writes"].get<long>() > 50);
    // Traffic really moved: both releases answered the load.
    CHECK(j["served_by"].contains("release 1 (green)"));
    CHECK(j["served_by"].contains("release 2 (blue)"));
    CHECK(load.exit_code == 0);
  }

  TEST_CASE("an exported deploy playbook, edited, wins over the canned one and reuses hoist.bluegreen") {
    BlueGreenRig rig;
    rig.HoistOk({"playbook", "export", "deploy"});
    std::string src = ReadAll(rig.path("playbooks/deploy.lua"));
    auto at = src.find("version = \"");
    REQUIRE(at != std::string::npos);
    auto end = src.find('"', at + 11);
    REQUIRE(end != std::string::npos);
    src.replace(at, end + 1 - at, "version = \"9.3.0\"");
    WriteFile(rig.path("playbooks/deploy.lua"), src);
    auto list = rig.Hoist({"list"});
    CHECK(list.out.find("deploy    9.3.0     project") != std::string::npos);
    rig.HoistOk({"deploy", "-e", "version=1"});
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(rig.State("SELECT version || ' ' || origin FROM runs ORDER BY id DESC LIMIT 1") ==
          "9.3.0 project:playbooks/deploy.lua");
  }
}

}  // namespace
}  // namespace hoist::test

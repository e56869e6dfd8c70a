// net/docker_spec: hoist's container spec to the Engine API's JSON, and the
// filter and env translations, without Lua or a transport.
#include "net/docker_spec.h"

#include <doctest/doctest.h>

#include "core/error.h"
#include "support/support.h"

namespace hoist::net {
namespace {

TEST_SUITE("net/docker_spec") {

  TEST_CASE("ContainerCreateBody maps hoist's spec to Docker's JSON") {
    ContainerSpec s;
    s.image = "api:1.2";
    s.name = "api-green";
    s.cmd = std::vector<std::string>{"/bin/busybox", "httpd", "-f"};
    s.env = {"COLOUR=green"};
    s.ports = {"5002:8080", "127.0.0.1:9090:9090/udp", "7000"};
    s.binds = {"/srv/data:/data", "dbvol:/var/lib/db:ro"};
    s.labels = {{"hoist.colour", "green"}};
    s.healthcheck = Healthcheck{{"CMD", "/bin/busybox", "true"}, 0.5, 2, 1, 3};
    s.restart = "on-failure:5";
    s.network = "host";
    s.user = "1000:1000";
    s.workdir = "/app";
    json body = ContainerCreateBody(s);
    CHECK(body["Image"] == "api:1.2");
    CHECK(body["Cmd"] == json::array({"/bin/busybox", "httpd", "-f"}));
    CHECK_FALSE(body.contains("Entrypoint"));
    CHECK(body["Env"] == json::array({"COLOUR=green"}));
    CHECK(body["Labels"]["hoist.colour"] == "green");
    CHECK(body["User"] == "1000:1000");
    CHECK(body["WorkingDir"] == "/app");
    CHECK(body["ExposedPorts"] == json::parse(R"({"8080/tcp":{},"9090/udp":{},"7000/tcp":{}})"));
    CHECK(body["HostConfig"]["PortBindings"] == json::parse(R"({
      "8080/tcp":[{"HostIp":"","HostPort":"5002"}],
      "9090/udp":[{"HostIp":"127.0.0.1","HostPort":"9090"}],
      "7000/tcp":[{"HostIp":"","HostPort":""}]})"));
    CHECK(body["HostConfig"]["Binds"] == json::array({"/srv/data:/data", "dbvol:/var/lib/db:ro"}));
    CHECK(body["HostConfig"]["RestartPolicy"] == json::parse(R"({"Name":"on-failure","MaximumRetryCount":5})"));
    CHECK(body["HostConfig"]["NetworkMode"] == "host");
    CHECK(body["Healthcheck"] == json::parse(R"({"Test":["CMD","/bin/busybox","true"],
      "Interval":500000000,"Timeout":2000000000,"StartPeriod":1000000000,"Retries":3})"));
  }

  TEST_CASE("ContainerCreateBody rejects bad ports and restart policies") {
    ContainerSpec s;
    s.image = "x";
    s.ports = {"80:http"};
    Error port = test::CatchError([&] { ContainerCreateBody(s); });
    CHECK(port.code() == "invalid");
    CHECK(port.message() ==
          "bad port \"80:http\": container port must be 1-65535 (expected \"container\", \"host:container\" or "
          "\"ip:host:container\", with an optional /tcp or /udp)");
    s.ports = {};
    s.restart = "sometimes";
    Error restart = test::CatchError([&] { ContainerCreateBody(s); });
    CHECK(restart.message() ==
          "bad restart policy \"sometimes\" (expected no, always, unless-stopped, on-failure or on-failure:N)");
    ContainerSpec none;
    CHECK(test::CatchError([&] { ContainerCreateBody(none); }).message() == "create container: image is required");
  }

  TEST_CASE("a healthcheck argv gets CMD in front, CMD-SHELL and NONE stay") {
    ContainerSpec s;
    s.image = "x";
    s.healthcheck = Healthcheck{{"/bin/check", "--quick"}};
    CHECK(ContainerCreateBody(s)["Healthcheck"] == json::parse(R"({"Test":["CMD","/bin/check","--quick"]})"));
    s.healthcheck = Healthcheck{{"CMD-SHELL", "curl -f localhost"}};
    CHECK(ContainerCreateBody(s)["Healthcheck"]["Test"] == json::array({"CMD-SHELL", "curl -f localhost"}));
    s.healthcheck = Healthcheck{{"NONE"}};
    CHECK(ContainerCreateBody(s)["Healthcheck"]["Test"] == json::array({"NONE"}));
    s.healthcheck = Healthcheck{};
    CHECK(test::CatchError([&] { ContainerCreateBody(s); }).message() == "healthcheck.test must not be empty");
  }

  TEST_CASE("volumes are binds listed after the binds, and no HostConfig without any") {
    ContainerSpec s;
    s.image = "x";
    CHECK_FALSE(ContainerCreateBody(s).contains("HostConfig"));
    s.volumes = {"data:/data"};
    s.binds = {"/srv/conf:/conf:ro"};
    CHECK(ContainerCreateBody(s)["HostConfig"]["Binds"] == json::array({"/srv/conf:/conf:ro", "data:/data"}));
  }

  TEST_CASE("EnvEntries sorts NAME=value by name") {
    CHECK(EnvEntries({{"PORT", "8080"}, {"COLOUR", "green"}}) == std::vector<std::string>{"COLOUR=green", "PORT=8080"});
    CHECK(EnvEntries({}).empty());
  }

  TEST_CASE("FilterMap makes every filter a list and adds labels as label filters") {
    json f = FilterMap(json{{"name", "web"}, {"label", json::array({"tier=front"})}}, {{"app", "api"}});
    CHECK(f == json::parse(R"({"name":["web"],"label":["tier=front","app=api"]})"));
    CHECK(FilterMap(json::object(), {}) == json::object());
    Error bad = test::CatchError([&] { FilterMap(json{{"status", 1}}, {}); });
    CHECK(bad.code() == "invalid");
    CHECK(bad.message() == "filters.status must be a string or a list of strings");
  }
}

}  // namespace
}  // namespace hoist::net

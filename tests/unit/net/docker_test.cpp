// Unit tests for net/docker with a fake transport (what a sandbox world
// does): version negotiation, request shapes, error mapping, stream
// demultiplexing, build output, compose detection. The real dockerd is in
// tests/integration/net/docker_test.cpp.
#include "net/docker.h"

#include <doctest/doctest.h>

#include <deque>

#include "support/support.h"

namespace hoist::net {
namespace {

using std::chrono::milliseconds;

std::string Frame(int stream, const std::string& payload) {
  std::string h(8, '\0');
  h[0] = static_cast<char>(stream);
  uint32_t n = static_cast<uint32_t>(payload.size());
  h[4] = static_cast<char>(n >> 24);
  h[5] = static_cast<char>(n >> 16);
  h[6] = static_cast<char>(n >> 8);
  h[7] = static_cast<char>(n);
  return h + payload;
}

HttpResponse Answer(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

/// A scripted dockerd: answers by "METHOD path" (query removed), records requests.
struct FakeDocker {
  std::string api = "1.41";
  std::map<std::string, std::deque<HttpResponse>> answers;
  std::vector<HttpRequest> seen;
  HttpResponse transport_error;  // used when error is set

  void On(const std::string& key, HttpResponse r) { answers[key].push_back(std::move(r)); }

  HttpSend Sender() {
    return [this](const HttpRequest& req) {
      seen.push_back(req);
      if (!transport_error.error.empty()) return transport_error;
      std::string path = req.url.substr(std::string("http://localhost").size());
      path = path.substr(0, path.find('?'));
      if (path == "/version") return Answer(200, R"({"Version":"20.10.24","ApiVersion":")" + api + R"("})");
      std::string key = req.method + " " + path;
      auto it = answers.find(key);
      if (it == answers.end() || it->second.empty()) return Answer(599, "no scripted answer for " + key);
      HttpResponse r = it->second.front();
      if (it->second.size() > 1) it->second.pop_front();
      return r;
    };
  }
};

TEST_SUITE("net/docker") {
  TEST_CASE("Demultiplex splits stdout and stderr frames") {
    std::string stream = Frame(1, "out 1\n") + Frame(2, "err 1\n") + Frame(1, "out 2\n") + Frame(2, "");
    CHECK(LooksMultiplexed(stream));
    Output o = Demultiplex(stream);
    CHECK(o.out == "out 1\nout 2\n");
    CHECK(o.err == "err 1\n");
  }

  TEST_CASE("Demultiplex keeps a truncated last frame and binary payloads") {
    std::string binary("a\0b\r\n", 5);
    std::string stream = Frame(1, binary) + Frame(2, "partial-frame").substr(0, 12);
    CHECK_FALSE(LooksMultiplexed(stream));
    Output o = Demultiplex(stream);
    CHECK(o.out == binary);
    CHECK(o.err == "part");
  }

  TEST_CASE("LooksMultiplexed rejects TTY text and empty output") {
    CHECK_FALSE(LooksMultiplexed(""));
    CHECK_FALSE(LooksMultiplexed("hello world, a tty log line\n"));
    CHECK_FALSE(LooksMultiplexed(std::string("\x01\x00\x00\x00\x00\x00\x00\x09short", 13)));
    CHECK(LooksMultiplexed(Frame(1, "")));
  }

  TEST_CASE("MinApiVersion compares numerically") {
    CHECK(MinApiVersion("1.41", "1.43") == "1.41");
    CHECK(MinApiVersion("1.45", "1.43") == "1.43");
    CHECK(MinApiVersion("1.9", "1.43") == "1.9");
    CHECK(MinApiVersion("2.0", "1.43") == "1.43");
  }

  TEST_CASE("connect negotiates the API version") {
    FakeDocker fake;
    fake.api = "1.41";
    DockerClient old_server("/run/x.sock", fake.Sender());
    CHECK(old_server.api_version() == "1.41");
    REQUIRE(fake.seen.size() == 1);
    CHECK(fake.seen[0].url == "http://localhost/version");
    CHECK(fake.seen[0].unix_socket == "/run/x.sock");

    fake.api = "1.47";
    DockerClient new_server("unix:///run/y.sock", fake.Sender());
    CHECK(new_server.api_version() == "1.43");
    CHECK(fake.seen.back().unix_socket == "/run/y.sock");

    fake.api = "1.30";
    Error too_old = test::CatchError([&] { DockerClient("/run/z.sock", fake.Sender()); });
    CHECK(too_old.code() == "unavailable");
    CHECK(std::string(too_old.what()) == "docker: dockerd at /run/z.sock speaks API 1.30, hoist needs at least 1.40");
  }

  TEST_CASE("an unreachable dockerd is unavailable") {
    FakeDocker fake;
    fake.transport_error.error = "cannot connect: No such file or directory";
    fake.transport_error.error_code = "connect_failed";
    Error e = test::CatchError([&] { DockerClient("/nowhere/docker.sock", fake.Sender()); });
    CHECK(e.code() == "unavailable");
    CHECK(std::string(e.what()) ==
          "docker: cannot reach dockerd at /nowhere/docker.sock: cannot connect: No such file or directory");
  }

  TEST_CASE("Docker's error statuses map to codes with Docker's message") {
    FakeDocker fake;
    DockerClient d("/s", fake.Sender());
    fake.On("POST /v1.41/containers/create", Answer(404, R"({"message":"No such image: nope:latest"})"));
    ContainerSpec s;
    s.image = "nope";
    s.name = "web";
    Error missing = test::CatchError([&] { d.Create(s); });
    CHECK(missing.code() == "not_found");
    CHECK(std::string(missing.what()) == "docker: create container web: No such image: nope:latest (HTTP 404)");

    fake.On("POST /v1.41/containers/web/start", Answer(409, R"({"message":"container is paused"})"));
    try {
      d.Start("web");
      FAIL("no error");
    } catch (const DockerError& e) {
      CHECK(e.status() == 409);
      CHECK(e.code() == "conflict");
      CHECK(e.message() == "start container web: container is paused (HTTP 409)");
    }
    fake.On("POST /v1.41/containers/web/kill", Answer(400, R"({"message":"bad signal"})"));
    CHECK(test::CatchError([&] { d.Kill("web", "NOPE"); }).code() == "invalid");
    fake.On("DELETE /v1.41/containers/web", Answer(500, "driver failed\n"));
    Error server = test::CatchError([&] { d.Remove("web"); });
    CHECK(server.code() == "docker_error");
    CHECK(server.message() == "remove container web: driver failed (HTTP 500)");
  }

  TEST_CASE("start and stop report whether anything changed") {
    FakeDocker fake;
    DockerClient d("/s", fake.Sender());
    fake.On("POST /v1.41/containers/a/start", Answer(204, ""));
    fake.On("POST /v1.41/containers/b/start", Answer(304, ""));
    CHECK(d.Start("a"));
    CHECK_FALSE(d.Start("b"));
    fake.On("POST /v1.41/containers/a/stop", Answer(204, ""));
    CHECK(d.Stop("a", 3));
    CHECK(fake.seen.back().url == "http://localhost/v1.41/containers/a/stop?t=3");
  }

  TEST_CASE("queries and paths are encoded") {
    FakeDocker fake;
    DockerClient d("/s", fake.Sender());
    fake.On("GET /v1.41/containers/json", Answer(200, "[]"));
    d.ListContainers(true, {{"label", {"app=api v2"}}});
    CHECK(fake.seen.back().url ==
          "http://localhost/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22app%3Dapi%20v2%22%5D%7D");
    fake.On("GET /v1.41/images/registry:5000/team/app:1.2/json", Answer(200, "{}"));
    d.InspectImage("registry:5000/team/app:1.2");
    Error traversal = test::CatchError([&] { d.InspectImage("../../version"); });
    CHECK(traversal.message() == "bad image name \"../../version\"");
    fake.On("GET /v1.41/containers/a%2Fb/json", Answer(404, R"({"message":"No such container: a/b"})"));
    CHECK(test::CatchError([&] { d.Inspect("a/b"); }).code() == "not_found");
  }

  TEST_CASE("exec demultiplexes output and reads the exit code") {
    FakeDocker fake;
    DockerClient d("/s", fake.Sender());
    fake.On("POST /v1.41/containers/web/exec", Answer(201, R"({"Id":"e1"})"));
    fake.On("POST /v1.41/exec/e1/start", Answer(200, Frame(1, "hello\n") + Frame(2, "warn\n")));
    fake.On("GET /v1.41/exec/e1/json", Answer(200, R"({"Running":true,"ExitCode":null})"));
    fake.answers["GET /v1.41/exec/e1/json"].push_back(Answer(200, R"({"Running":false,"ExitCode":3})"));
    ExecResult r = d.Exec("web", {.cmd = {"/bin/busybox", "sh", "-c", "exit 3"}, .env = {"A=1"}});
    CHECK(r.exit_code == 3);
    CHECK(r.out == "hello\n");
    CHECK(r.err == "warn\n");
    json create = json::parse(fake.seen[1].body);
    CHECK(create["Cmd"] == json::array({"/bin/busybox", "sh", "-c", "exit 3"}));
    CHECK(create["Env"] == json::array({"A=1"}));
    CHECK(create["Tty"] == false);
  }

  TEST_CASE("logs: multiplexed and TTY streams") {
    FakeDocker fake;
    DockerClient d("/s", fake.Sender());
    fake.On("GET /v1.41/containers/web/logs", Answer(200, Frame(1, "line 1\n") + Frame(2, "oops\n")));
    Output o = d.Logs("web", {.tail = 10, .since = 1700000000.5, .timestamps = true});
    CHECK(o.out == "line 1\n");
    CHECK(o.err == "oops\n");
    CHECK(fake.seen.back().url ==
          "http://localhost/v1.41/containers/web/logs?stdout=1&stderr=1&tail=10&since=1700000000.500000000&"
          "timestamps=1");
    fake.answers["GET /v1.41/containers/web/logs"] = {Answer(200, "tty output\r\n")};
    Output tty = d.Logs("web");
    CHECK(tty.out == "tty output\r\n");
    CHECK(tty.err == "");
  }

  TEST_CASE("build returns the image id and raises the builder's error") {
    FakeDocker fake;
    DockerClient d("/s", fake.Sender());
    fake.On("POST /v1.41/build", Answer(200, "{\"stream\":\"Step 1/2 : FROM scratch\\n\"}\r\n"
                                             "{\"aux\":{\"ID\":\"sha256:abc\"}}\r\n"
                                             "{\"stream\":\"Successfully built abc\\n\"}\r\n"));
    BuildResult r = d.Build("tar-bytes", {.tag = "t:1"});
    CHECK(r.id == "sha256:abc");
    CHECK(r.log == "Step 1/2 : FROM scratch\nSuccessfully built abc\n");
    CHECK(fake.seen.back().headers == Headers{{"Content-Type", "application/x-tar"}});
    CHECK(fake.seen.back().body == "tar-bytes");
    CHECK(fake.seen.back().url.find("t=t%3A1") != std::string::npos);

    fake.answers["POST /v1.41/build"] = {
        Answer(200, "{\"stream\":\"Step 2/2 : COPY missing /x\\n\"}\n"
                    "{\"errorDetail\":{\"message\":\"COPY failed: file not found\"},\"error\":\"COPY failed: file not "
                    "found\"}\n")};
    Error e = test::CatchError([&] { d.Build("tar", {.tag = "t:2"}); });
    CHECK(e.code() == "failed");
    CHECK(std::string(e.what()) == "docker: build image t:2: COPY failed: file not found");
  }

  TEST_CASE("a dockerd timeout is a timeout, with the action") {
    FakeDocker fake;
    DockerClient d("/s", fake.Sender());
    fake.transport_error.error = "timed out after 2 s";
    fake.transport_error.error_code = "timeout";
    Error e = test::CatchError([&] { d.Wait("web", "not-running", milliseconds(2000)); });
    CHECK(e.code() == "timeout");
    CHECK(std::string(e.what()) == "docker: wait for container web: timed out after 2 s");
    CHECK(fake.seen.back().timeout == milliseconds(2000));
  }

  TEST_CASE("compose prefers the plugin, falls back to docker-compose, else says what is missing") {
    std::vector<std::vector<std::string>> ran;
    bool plugin = false, legacy = false;
    ProcessRunner run = [&](const sys::ProcessSpec& spec) {
      ran.push_back(spec.argv);
      CHECK(spec.env.at("DOCKER_HOST") == "unix:///run/d.sock");
      sys::ProcessResult r;
      bool is_plugin = spec.argv[0] == "docker";
      if ((is_plugin && !plugin) || (!is_plugin && !legacy)) {
        if (!is_plugin) throw Error("proc", "not_found", "no such program: docker-compose (searched PATH)");
        r.exit_code = 1;  // `docker compose` without the plugin: "'compose' is not a docker command"
        return r;
      }
      r.exit_code = 0;
      return r;
    };
    ComposeOptions o{.files = {"a.yml", "b.yml"}, .project = "shop", .args = {"up", "-d"}, .socket = "/run/d.sock"};
    Error none = test::CatchError([&] { Compose(o, run); });
    CHECK(none.code() == "unavailable");
    CHECK(none.message() ==
          "docker compose needs the Docker CLI with its compose plugin (docker compose) or docker-compose, and "
          "neither was found in PATH (install the Debian package docker-compose)");

    legacy = true;
    ran.clear();
    Compose(o, run);
    CHECK(ran.back() == std::vector<std::string>{"docker-compose", "-f", "a.yml", "-f", "b.yml", "-p", "shop", "up", "-d"});

    plugin = true;
    ran.clear();
    Compose(o, run);
    CHECK(ran.size() == 2);
    CHECK(ran.back() ==
          std::vector<std::string>{"docker", "compose", "-f", "a.yml", "-f", "b.yml", "-p", "shop", "up", "-d"});
  }

  TEST_CASE("a failing compose command raises with its stderr") {
    ProcessRunner run = [](const sys::ProcessSpec& spec) {
      sys::ProcessResult r;
      r.exit_code = spec.argv.back() == "version" ? 0 : 1;
      r.err = "service \"db\" refers to undefined volume\n";
      return r;
    };
    Error e = test::CatchError([&] { Compose({.args = {"up"}}, run); });
    CHECK(e.code() == "failed");
    CHECK(e.message() == "docker compose up exited with 1: service \"db\" refers to undefined volume");
  }
}

}  // namespace
}  // namespace hoist::net

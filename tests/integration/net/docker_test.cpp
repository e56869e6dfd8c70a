// The Docker client against a real, private dockerd (tests/support/dockerd.h)
// and a FROM-scratch busybox image: container lifecycle, exec, logs, copy
// in/out, HEALTHCHECK states, error mapping, images/volumes/networks, HTTP
// to a host-networked container, and hoist.docker from Lua.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <chrono>
#include <functional>
#include <thread>

#include "lua/boundary.h"
#include "lua/state.h"
#include "net/docker.h"
#include "net/http.h"
#include "net/tar.h"
#include "support/colour_server.h"
#include "support/dockerd.h"
#include "support/support.h"

namespace hoist::net {
namespace {

using std::chrono::milliseconds;
using test::Dockerd;
using test::FreePort;

const std::string kSh = "/bin/busybox";

/// A container name unique to this process, so runs never collide.
std::string Name(const std::string& what) { return "hoist-it-" + std::to_string(::getpid()) + "-" + what; }

/// Polls f every 50 ms until it returns true or `limit` passes.
bool WaitFor(const std::function<bool()>& f, milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return f();
}

/// Removes the container when the test ends, however it ends.
struct Cleanup {
  DockerClient& d;
  std::string name;
  ~Cleanup() {
    try {
      d.Remove(name, true, true);
    } catch (const std::exception&) {
    }
  }
};

std::string HealthOf(DockerClient& d, const std::string& name) {
  json s = d.Inspect(name)["State"];
  return s.contains("Health") ? s["Health"].value("Status", "") : "";
}


TEST_SUITE("net/docker") {
  TEST_CASE("dockerd answers ping and version with a negotiated API") {
    Dockerd& dockerd = Dockerd::Shared();
    DockerClient d = dockerd.Client();
    CHECK(d.Ping());
    CHECK(d.api_version() == MinApiVersion(d.server_version()["ApiVersion"].get<std::string>(), kDockerMaxApi));
    CHECK(d.Version().contains("Version"));
  }

  TEST_CASE("container lifecycle from a scratch image") {
    Dockerd& dockerd = Dockerd::Shared();
    DockerClient d = dockerd.Client();
    std::string name = Name("life");
    Cleanup cleanup{d, name};
    ContainerSpec spec;
    spec.image = dockerd.BusyboxImage();
    spec.name = name;
    // sh as PID 1 needs its own TERM trap: PID 1 has no default signal actions.
    spec.cmd = std::vector<std::string>{
        kSh, "sh", "-c",
        "trap 'echo bye; exit 0' TERM; echo started; echo oops >&2; while :; do /bin/busybox sleep 0.1; done"};
    spec.env = {"COLOUR=green"};
    spec.labels = {{"hoist.test", "lifecycle"}};
    spec.network = "none";
    json created = d.Create(spec);
    std::string id = created["Id"];
    CHECK(id.size() == 64);

    CHECK(d.Start(name));
    CHECK_FALSE(d.Start(name));  // already running: 304

    json info = d.Inspect(name);
    CHECK(info["Id"] == id);
    CHECK(info["Name"] == "/" + name);
    CHECK(info["State"]["Running"] == true);
    CHECK(info["Config"]["Labels"]["hoist.test"] == "lifecycle");
    auto env = info["Config"]["Env"].get<std::vector<std::string>>();
    CHECK(std::find(env.begin(), env.end(), "COLOUR=green") != env.end());

    json listed = d.ListContainers(false, {{"label", {"hoist.test=lifecycle"}}});
    REQUIRE(listed.size() == 1);
    CHECK(listed[0]["Id"] == id);

    ExecResult ex = d.Exec(name, {.cmd = {kSh, "sh", "-c", "echo $COLOUR $EXTRA; echo to-err >&2; exit 7"},
                                  .env = {"EXTRA=yes"}});
    CHECK(ex.exit_code == 7);
    CHECK(ex.out == "green yes\n");
    CHECK(ex.err == "to-err\n");

    Output logs;
    CHECK(WaitFor([&] { return (logs = d.Logs(name)).out == "started\n"; }, milliseconds(5000)));
    CHECK(logs.err == "oops\n");
    CHECK(d.Logs(name, {.stderr_ = false}).err == "");

    // Copy in: one file through the archive API, then a host directory.
    d.PutArchive(name, "/tmp", WriteTar({{.path = "in.txt", .mode = 0640, .data = "from the host\n"}}));
    CHECK(d.Exec(name, {.cmd = {kSh, "cat", "/tmp/in.txt"}}).out == "from the host\n");
    test::TempDir host("docker-copy");
    test::WriteFile(host / "site/index.html", "<h1>green</h1>");
    test::WriteFile(host / "site/css/app.css", "body{}");
    d.PutArchive(name, "/tmp", TarPath(host / "site"));
    CHECK(d.Exec(name, {.cmd = {kSh, "cat", "/tmp/site/index.html", "/tmp/site/css/app.css"}}).out ==
          "<h1>green</h1>body{}");

    // Copy out: a file, then a directory extracted on the host.
    auto file = ReadTar(d.GetArchive(name, "/tmp/in.txt"));
    REQUIRE(file.size() == 1);
    CHECK(file[0].path == "in.txt");
    CHECK(file[0].data == "from the host\n");
    CHECK(file[0].mode == 0640);
    ExtractTar(ReadTar(d.GetArchive(name, "/tmp/site")), host / "out");
    CHECK(test::ReadAll(host / "out/site/css/app.css") == "body{}");

    Error no_file = test::CatchError([&] { d.GetArchive(name, "/nope"); });
    CHECK(no_file.code() == "not_found");
    CHECK(no_file.message() ==
          "copy from container " + name + ":/nope: Could not find the file /nope in container " + name +
              " (HTTP 404)");

    auto t0 = std::chrono::steady_clock::now();
    CHECK(d.Stop(name, 5));
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));  // the trap ran, no KILL needed
    CHECK_FALSE(d.Stop(name, 5));  // already stopped: 304
    CHECK(d.Wait(name)["StatusCode"] == 0);
    CHECK(d.Logs(name).out == "started\nbye\n");
    CHECK(d.Inspect(name)["State"]["Running"] == false);

    d.Remove(name);
    Error gone = test::CatchError([&] { d.Inspect(name); });
    CHECK(gone.code() == "not_found");
    CHECK(gone.message() == "inspect container " + name + ": No such container: " + name + " (HTTP 404)");
  }

  TEST_CASE("kill, wait and restart") {
    Dockerd& dockerd = Dockerd::Shared();
    DockerClient d = dockerd.Client();
    std::string name = Name("kill");
    Cleanup cleanup{d, name};
    d.Create({.image = dockerd.BusyboxImage(), .name = name, .cmd = std::vector<std::string>{kSh, "sleep", "600"},
              .network = "none"});
    d.Start(name);
    d.Kill(name, "KILL");
    json w = d.Wait(name, "not-running", milliseconds(10000));
    CHECK(w["StatusCode"] == 137);
    CHECK(d.Inspect(name)["State"]["ExitCode"] == 137);
    d.Restart(name, 0);
    CHECK(d.Inspect(name)["State"]["Running"] == true);
    d.Kill(name);
  }

  TEST_CASE("a HEALTHCHECK turns healthy, then unhealthy") {
    Dockerd& dockerd = Dockerd::Shared();
    DockerClient d = dockerd.Client();
    std::string name = Name("health");
    Cleanup cleanup{d, name};
    ContainerSpec spec;
    spec.image = dockerd.BusyboxImage();
    spec.name = name;
    spec.cmd = std::vector<std::string>{kSh, "sleep", "600"};
    spec.network = "none";
    spec.healthcheck = Healthcheck{{"CMD", kSh, "test", "-f", "/tmp/ready"}, 0.1, 1, 0, 2};
    d.Create(spec);
    d.Start(name);
    CHECK(HealthOf(d, name) == "starting");

    d.PutArchive(name, "/tmp", WriteTar({{.path = "ready", .data = "ok"}}));
    CHECK(WaitFor([&] { return HealthOf(d, name) == "healthy"; }, milliseconds(10000)));

    CHECK(d.Exec(name, {.cmd = {kSh, "rm", "/tmp/ready"}}).exit_code == 0);
    CHECK(WaitFor([&] { return HealthOf(d, name) == "unhealthy"; }, milliseconds(10000)));
    json health = d.Inspect(name)["State"]["Health"];
    CHECK(health["FailingStreak"].get<int>() >= 2);
    CHECK(health["Log"].back()["ExitCode"] == 1);
    d.Kill(name);
  }

  TEST_CASE("errors: a missing image is not_found, a taken name is conflict") {
    Dockerd& dockerd = Dockerd::Shared();
    DockerClient d = dockerd.Client();
    std::string name = Name("conflict");
    Cleanup cleanup{d, name};

    ContainerSpec missing{.image = "hoist-test/nosuch:1", .name = Name("missing")};
    try {
      d.Create(missing);
      FAIL("created a container from a missing image");
    } catch (const DockerError& e) {
      CHECK(e.code() == "not_found");
      CHECK(e.status() == 404);
      CHECK(std::string(e.what()) ==
            "docker: create container " + Name("missing") + ": No such image: hoist-test/nosuch:1 (HTTP 404)");
    }

    ContainerSpec spec{.image = dockerd.BusyboxImage(), .name = name};
    std::string id = d.Create(spec)["Id"];
    try {
      d.Create(spec);
      FAIL("created two containers with one name");
    } catch (const DockerError& e) {
      CHECK(e.code() == "conflict");
      CHECK(e.status() == 409);
      CHECK(e.message() == "create container " + name + ": Conflict. The container name \"/" + name +
                               "\" is already in use by container \"" + id +
                               "\". You have to remove (or rename) that container to be able to reuse that name. "
                               "(HTTP 409)");
    }
    Error no_container = test::CatchError([&] { d.Remove(Name("never-created")); });
    CHECK(no_container.code() == "not_found");
    Error bad_port = test::CatchError([&] { d.Create({.image = dockerd.BusyboxImage(), .ports = {"99999"}}); });
    CHECK(bad_port.code() == "invalid");
  }

  TEST_CASE("images, volumes and networks") {
    Dockerd& dockerd = Dockerd::Shared();
    DockerClient d = dockerd.Client();
    const std::string& image = dockerd.BusyboxImage();
    json images = d.ListImages();
    bool found = false;
    for (const auto& i : images) {
      for (const auto& t : i.value("RepoTags", json::array())) found = found || t == image;
    }
    CHECK(found);
    json inspected = d.InspectImage(image);
    CHECK(inspected["Id"].get<std::string>().starts_with("sha256:"));

    std::string alias = "hoist-test/alias-" + std::to_string(::getpid());
    d.TagImage(image, alias, "v2");
    CHECK(d.InspectImage(alias + ":v2")["Id"] == inspected["Id"]);
    json removed = d.RemoveImage(alias + ":v2");
    CHECK(removed[0]["Untagged"] == alias + ":v2");
    CHECK(test::CatchError([&] { d.InspectImage(alias + ":v2"); }).code() == "not_found");

    // save, remove, load: the image comes back with its id.
    std::string saved_tag = "hoist-test/saved-" + std::to_string(::getpid()) + ":1";
    d.TagImage(image, "hoist-test/saved-" + std::to_string(::getpid()), "1");
    std::string archive = d.SaveImage(saved_tag);
    CHECK_FALSE(ReadTar(archive).empty());
    d.RemoveImage(saved_tag);
    CHECK(d.LoadImages(archive) == "Loaded image: " + saved_tag + "\n");
    CHECK(d.InspectImage(saved_tag)["Id"] == inspected["Id"]);
    d.RemoveImage(saved_tag);
    Error corrupt = test::CatchError([&] { d.LoadImages(WriteTar({{.path = "junk.txt", .data = "x"}})); });
    CHECK(corrupt.code() == "failed");

    std::string vol = Name("vol");
    json v = d.CreateVolume(vol, "", {{"hoist.test", "1"}});
    CHECK(v["Name"] == vol);
    CHECK(d.InspectVolume(vol)["Labels"]["hoist.test"] == "1");
    json vols = d.ListVolumes({{"label", {"hoist.test=1"}}});
    REQUIRE(vols.size() >= 1);
    d.RemoveVolume(vol);
    CHECK(test::CatchError([&] { d.InspectVolume(vol); }).code() == "not_found");

    std::vector<std::string> networks;
    for (const auto& n : d.ListNetworks()) networks.push_back(n["Name"]);
    CHECK(std::find(networks.begin(), networks.end(), "host") != networks.end());
    CHECK(std::find(networks.begin(), networks.end(), "none") != networks.end());
  }

  TEST_CASE("a failed build raises the builder's message") {
    Dockerd& dockerd = Dockerd::Shared();
    DockerClient d = dockerd.Client();
    std::string tar = WriteTar({{.path = "Dockerfile", .data = "FROM scratch\nCOPY missing.txt /x\n"}});
    Error e = test::CatchError([&] { d.Build(tar, {.tag = "hoist-test/broken:1"}); });
    CHECK(e.code() == "failed");
    CHECK(std::string(e.what()) ==
          "docker: build image hoist-test/broken:1: COPY failed: file not found in build context or excluded by "
          ".dockerignore: stat missing.txt: file does not exist");
  }

  TEST_CASE("HTTP to a host-networked container on loopback") {
    Dockerd& dockerd = Dockerd::Shared();
    DockerClient d = dockerd.Client();
    std::string name = Name("httpd");
    Cleanup cleanup{d, name};
    int port = FreePort();
    d.Create({.image = dockerd.BusyboxImage(),
              .name = name,
              .cmd = std::vector<std::string>{kSh, "httpd", "-f", "-p", "127.0.0.1:" + std::to_string(port), "-h",
                                              "/www"},
              .network = "host"});
    d.PutArchive(name, "/", WriteTar({{.path = "www", .type = '5', .mode = 0755},
                                      {.path = "www/index.html", .data = "green\n"}}));
    d.Start(name);
    HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(port) + "/index.html";
    req.timeout = milliseconds(2000);
    HttpResponse r;
    CHECK(WaitFor([&] { return (r = Send(req)).status == 200; }, milliseconds(5000)));
    CHECK(r.body == "green\n");
    req.url = "http://127.0.0.1:" + std::to_string(port) + "/missing";
    CHECK(Send(req).status == 404);
  }

  TEST_CASE("hoist.docker from Lua against dockerd") {
    Dockerd& dockerd = Dockerd::Shared();
    const std::string& image = dockerd.BusyboxImage();
    lua::State state;
    lua_State* L = state.get();
    state.LoadChunk(R"(
      local socket, image, name = ...
      local docker = require "hoist.docker"
      local d <close> = docker.connect{ socket = socket }
      local id = d:create{ image = image, name = name, cmd = { "/bin/busybox", "sleep", "600" }, network = "none",
                           env = { MODE = "lua" }, labels = { ["hoist.test"] = "lua" } }
      assert(d:start(name))
      local ex = d:exec(name, { "/bin/busybox", "sh", "-c", "echo $MODE" })
      d:put_file(name, "/tmp/note.txt", "written from lua")
      local note = d:get_file(name, "/tmp/note.txt")
      local listed = d:containers{ labels = { ["hoist.test"] = "lua" } }
      local state = d:inspect(name).State.Status
      local ok, e = pcall(d.create, d, { image = image, name = name })
      d:remove(name, { force = true })
      return #id, ex.code, ex.stdout, note, #listed, state, e.code, d:exists(name)
    )",
                    "=lua-docker");
    lua_pushstring(L, dockerd.socket().c_str());
    lua_pushstring(L, image.c_str());
    lua_pushstring(L, Name("lua").c_str());
    lua::Call(L, 3, 8);
    CHECK(lua_tointeger(L, -8) == 64);
    CHECK(lua_tointeger(L, -7) == 0);
    CHECK(std::string(lua_tostring(L, -6)) == "lua\n");
    CHECK(std::string(lua_tostring(L, -5)) == "written from lua");
    CHECK(lua_tointeger(L, -4) == 1);
    CHECK(std::string(lua_tostring(L, -3)) == "running");
    CHECK(std::string(lua_tostring(L, -2)) == "conflict");
    CHECK(lua_toboolean(L, -1) == 0);
    lua_pop(L, 8);
  }
}

}  // namespace
}  // namespace hoist::net

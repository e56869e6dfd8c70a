// The sqlite-bluegreen example with Docker colours: a FROM-scratch image
// holding the statically linked app, containers on the host network of a
// private dockerd (tests/support/dockerd), sharing the SQLite file through
// a bind mount, behind the same real nginx.
#include <doctest/doctest.h>

#include <filesystem>

#include "integration/playbooks/bluegreen_rig.h"
#include "integration/playbooks/example_image.h"
#include "net/docker.h"
#include "support/dockerd.h"

namespace hoist::test {
namespace {


std::string ContainerState(Dockerd& dockerd, const std::string& name) {
  net::DockerClient client = dockerd.Client();
  try {
    auto info = client.Inspect(name);
    return info["State"].value("Running", false) ? "running" : "stopped";
  } catch (const Error& e) {
    return e.code();
  }
}

TEST_SUITE("playbooks/docker") {
  TEST_CASE("Docker colours: deploy 1 and 2 from a scratch image, rollback, a failing release is removed") {
    Dockerd& dockerd = Dockerd::Shared();
    BlueGreenRig rig;
    BuildExampleImage(dockerd);
    std::map<std::string, std::string> env = {{"EXAMPLE_IMAGE", kExampleImage}, {"EXAMPLE_DOCKER_SOCKET", dockerd.socket()}};
    rig.HoistOk({"deploy", "-e", "version=1"}, env);
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(ContainerState(dockerd, "app-green") == "running");
    CHECK(ContainerState(dockerd, "app-blue") == "not_found");

    rig.HoistOk({"deploy", "-e", std::string("image=") + kExampleImage, "-e", "version=2"}, env);
    CHECK(rig.Traffic() == "release 2 (blue)");
    CHECK(rig.Direct("green") == "release 1 (green)");
    CHECK(rig.Db("SELECT max(version) FROM hoist_schema_migrations WHERE success") == "3");

    auto s = rig.Hoist({"status"}, env);
    CHECK((s.out + s.err).find("release 2        running") != std::string::npos);

    rig.HoistOk({"rollback"}, env);
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(ContainerState(dockerd, "app-blue") == "running");

    // A release whose container exits at once (the app refuses --release 5):
    // the deploy fails, its container is removed, and the standby it had
    // replaced on blue (release 2) runs again.
    std::filesystem::copy(rig.path("releases/2"), rig.path("releases/5"), std::filesystem::copy_options::recursive);
    auto r = rig.Hoist({"deploy", "-e", "version=5"}, env);
    INFO(Describe(r));
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("container app-blue exited before listening") != std::string::npos);
    CHECK(r.err.find("usage: hoist_example_app") != std::string::npos);
    CHECK(rig.Traffic() == "release 1 (green)");
    CHECK(rig.Direct("blue") == "release 2 (blue)");
    CHECK(ContainerState(dockerd, "app-blue") == "running");
  }
}

}  // namespace
}  // namespace hoist::test

#include "integration/playbooks/example_image.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include "net/docker.h"
#include "net/tar.h"
#include "support/support.h"
#include "sys/fs.h"

namespace hoist::test {

void BuildExampleImage(Dockerd& dockerd) {
  static bool built = false;
  if (built) return;
  TempDir ctx("notes-ctx");
  WriteFile(ctx / "Dockerfile", "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n");
  WriteFile(ctx / "app", sys::ReadFile(HOIST_EXAMPLE_APP_STATIC));
  ::chmod((ctx / "app").c_str(), 0755);
  net::DockerClient client = dockerd.Client();
  net::BuildResult r = client.Build(net::TarDirectory(ctx.path), {.tag = kExampleImage});
  REQUIRE_MESSAGE(r.id.starts_with("sha256:"), r.log);
  built = true;
}

}  // namespace hoist::test

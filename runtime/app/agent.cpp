#include "app/agent.h"

#include <fcntl.h>
#include <unistd.h>

#include "core/log.h"
#include "engine/agent_server.h"
#include "engine/world.h"

namespace hoist::app {

int RunAgentStdio() {
  // The frames get a descriptor of their own; fd 1 becomes stderr, so a
  // stray write to stdout (ours or a library's) can never corrupt a frame.
  int frames = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (frames < 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    log::Error("hoist agent: cannot set up its output");
    return 2;
  }
  log::Setup(log::Level::kWarn, /*json=*/false);
  engine::RealWorld world;
  int code = engine::ServeAgent(STDIN_FILENO, frames, world);
  ::close(frames);
  return code;
}

}  // namespace hoist::app

// The world seam (DESIGN.md): everything that touches the outside world is
// reached through this interface held by the run context. A real run wires
// RealWorld; sandbox and replay runs wire simulated or recorded worlds.
#pragma once

#include <memory>

#include "sys/process.h"

namespace hoist::engine {

class World {
 public:
  virtual ~World() = default;
  /// Runs a process (argv, never a shell unless the spec asks for one).
  virtual sys::ProcessResult RunProcess(const sys::ProcessSpec& spec) = 0;
  /// "real", "sandbox" or "replay": recorded with each world call.
  virtual const char* mode() const = 0;
};

std::unique_ptr<World> MakeRealWorld();

}  // namespace hoist::engine

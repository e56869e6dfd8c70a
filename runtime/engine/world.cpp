#include "engine/world.h"

namespace hoist::engine {
namespace {

class RealWorld final : public World {
 public:
  sys::ProcessResult RunProcess(const sys::ProcessSpec& spec) override { return sys::RunProcess(spec); }
  const char* mode() const override { return "real"; }
};

}  // namespace

std::unique_ptr<World> MakeRealWorld() { return std::make_unique<RealWorld>(); }

}  // namespace hoist::engine

#include "engine/world.h"

namespace hoist::engine {

sys::ProcessResult RealWorld::RunProcess(const sys::ProcessSpec& spec) { return sys::RunProcess(spec); }
net::HttpResponse RealWorld::Http(const net::HttpRequest& request) { return net::Send(request); }
std::string RealWorld::ReadFile(const std::string& path) { return sys::ReadFile(path); }
void RealWorld::WriteAtomic(const std::string& path, std::string_view data, mode_t mode) {
  sys::WriteAtomic(path, data, mode);
}
void RealWorld::WriteInPlace(const std::string& path, std::string_view data) { sys::WriteInPlace(path, data); }
void RealWorld::MkdirP(const std::string& path, mode_t mode) { sys::MkdirP(path, mode); }
bool RealWorld::Remove(const std::string& path, bool recursive) { return sys::Remove(path, recursive); }
sys::Stat RealWorld::StatPath(const std::string& path) { return sys::StatPath(path); }
std::vector<std::string> RealWorld::ListDir(const std::string& path) { return sys::ListDir(path); }
std::vector<std::string> RealWorld::Glob(const std::string& pattern) { return sys::Glob(pattern); }

std::unique_ptr<World> MakeRealWorld() { return std::make_unique<RealWorld>(); }

}  // namespace hoist::engine

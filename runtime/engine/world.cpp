#include "engine/world.h"

#include <thread>

#include "core/interrupt.h"
#include "sys/clock.h"

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
void RealWorld::Chmod(const std::string& path, mode_t mode) { sys::Chmod(path, mode); }
sys::Stat RealWorld::StatPath(const std::string& path) { return sys::StatPath(path); }
std::vector<std::string> RealWorld::ListDir(const std::string& path) { return sys::ListDir(path); }
std::vector<std::string> RealWorld::Glob(const std::string& pattern) { return sys::Glob(pattern); }

pid_t RealWorld::StartService(const sys::ServiceSpec& spec) { return sys::StartService(spec); }
sys::StopResult RealWorld::StopService(const sys::ServiceSpec& spec, std::chrono::milliseconds grace) {
  return sys::StopService(spec, grace);
}
sys::ServiceStatus RealWorld::ServiceStatusOf(const sys::ServiceSpec& spec) { return sys::StatusOf(spec); }
bool RealWorld::ProcessAlive(pid_t pid) { return sys::ProcessAlive(pid); }
std::optional<pid_t> RealWorld::ReadPidFile(const std::string& path) { return sys::ReadPidFile(path); }
std::vector<pid_t> RealWorld::ChildPids(pid_t pid) { return sys::ChildPids(pid); }
std::string RealWorld::CmdLine(pid_t pid) { return sys::CmdLine(pid); }
void RealWorld::SendSignal(pid_t pid, int sig) { sys::SendSignal(pid, sig); }
sys::TcpResult RealWorld::TcpConnect(const std::string& host, int port, std::chrono::milliseconds timeout) {
  return sys::TcpConnect(host, port, timeout);
}
double RealWorld::Monotonic() { return sys::Monotonic(); }
double RealWorld::Now() { return sys::NowEpoch(); }
void RealWorld::Sleep(double seconds, bool stoppable) {
  // Short slices so Ctrl-C and the step deadline cut a long sleep short.
  auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < until) {
    if (stoppable) ThrowIfStopped("time");
    auto left = until - Clock::now();
    std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::milliseconds(20)));
  }
}

std::unique_ptr<World> MakeRealWorld() { return std::make_unique<RealWorld>(); }

}  // namespace hoist::engine

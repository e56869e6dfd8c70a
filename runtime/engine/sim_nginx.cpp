#include "engine/sim_nginx.h"

#include <sstream>
#include <tuple>

namespace hoist::engine {

pid_t SimNginx::AddMaster(int workers) {
  pid_t master = host_.AddProcess("nginx: master process nginx", 0);
  for (int i = 0; i < workers; ++i) host_.AddProcess("nginx: worker process", master);
  return master;
}

void SimNginx::Reload(pid_t pid) {
  std::vector<pid_t> old = host_.ChildPids(pid);
  if (old.empty() || reload_ignored_) return;
  std::string title = host_.CmdLine(old[0]);
  for (pid_t o : old) host_.End(o);
  for (size_t i = 0; i < old.size(); ++i) host_.AddProcess(title, pid);
}

bool SimNginx::IsReloadCommand(const std::vector<std::string>& argv) {
  return !argv.empty() && SimBasename(argv[0]) == "nginx" && ArgvMatches(argv, "-s reload");
}

void SimNginx::ReloadAll() {
  for (pid_t m : host_.LivePids("nginx: master")) Reload(m);
}

std::optional<net::HttpResponse> SimNginx::Proxy(int port, int* target, std::string* target_address) {
  *target = port;
  target_address->clear();
  auto fe = frontends_.find(port);
  if (fe == frontends_.end()) return std::nullopt;
  // The first server line that is neither down nor backup.
  *target = 0;
  std::istringstream conf(host_.Lookup(fe->second).value_or(""));
  for (std::string line; std::getline(conf, line) && *target == 0;) {
    auto words = SimWords(line.substr(0, line.find('#')));
    if (words.size() < 2 || words[0] != "server" || line.find("down") != std::string::npos ||
        line.find("backup") != std::string::npos) {
      continue;
    }
    std::string addr = words[1];
    if (addr.ends_with(';')) addr.pop_back();
    std::tie(*target_address, *target) = HostPort("http://" + addr);
  }
  if (host_.ServiceListening(*target_address, *target)) return std::nullopt;
  net::HttpResponse r;
  r.status = 502;
  r.body = "502 Bad Gateway (simulated nginx: no upstream listening)";
  return r;
}

}  // namespace hoist::engine

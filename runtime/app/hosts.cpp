#include "app/hosts.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "engine/remote_world.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "lua/check.h"
#include "net/agent_upload.h"
#include "net/ssh.h"
#include "sys/clock.h"
#include "sys/process.h"

namespace hoist::app {
namespace {

using json = nlohmann::json;

bool HostName(const std::string& n) {
  return !n.empty() && n.size() <= 40 &&
         n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == std::string::npos;
}

std::string FirstLine(const std::string& s) { return Trim(s.substr(0, s.find('\n'))); }

HostCheck Check(const HostConfig& h, const std::string& control_dir) {
  HostCheck c;
  c.host = h;
  double t0 = sys::Monotonic();
  try {
    std::unique_ptr<net::SshHost> ssh;
    if (!h.local) {
      net::SshHostSpec s;
      s.name = h.name;
      s.target = h.ssh;
      s.port = h.port;
      s.config_file = h.ssh_config;
      s.max_channels = h.max_channels;
      ssh = std::make_unique<net::SshHost>(s, control_dir);
      ssh->Connect();
    }
    auto exec = [&](const std::vector<std::string>& argv) {
      return h.local ? sys::RunProcess({.argv = argv, .timeout = std::chrono::seconds(20)})
                     : ssh->Run(argv, {.timeout = std::chrono::seconds(20)});
    };
    c.system = FirstLine(exec({"uname", "-srm"}).out);
    if (h.local) {
      c.hoist_version = HOIST_VERSION;  // this very hoist: no agent needed
    } else {
      // The agent hoist would run there: this binary's versioned path under
      // the ssh user's cache dir (net/agent_upload.h), not whatever is on PATH.
      net::AgentInstall a = net::ProbeAgent(*ssh);
      c.agent_path = a.path;
      c.hoist_version = a.version;
    }
    c.ok = true;
  } catch (const Error& e) {
    c.error = Mask(e.what());
    c.code = e.code();
  }
  c.seconds = sys::Monotonic() - t0;
  return c;
}

}  // namespace

std::vector<HostConfig> EnvironmentHosts(const Project& project, const std::string& env, std::string* env_name) {
  lua::State vm(VmOptions(project));
  Config c = LoadConfig(vm, project);
  lua_State* L = vm.get();
  std::string name = PushEnvironment(L, lua_gettop(L), c, env);
  if (env_name) *env_name = name;
  int env_idx = lua_gettop(L);
  if (lua::RawField(L, env_idx, "hosts") != LUA_TTABLE) return {};
  return ParseHosts(lua::ToJson(L, -1), name, project.root);
}

std::vector<HostConfig> ParseHosts(const json& hosts, const std::string& name, const std::string& project_root) {
  std::vector<HostConfig> out;
  if (!hosts.is_object()) return out;
  for (auto& [key, spec] : hosts.items()) {
    std::string where = fmt::format("hoist.lua: environments.{}.hosts.{}", name, key);
    if (!HostName(key)) {
      throw Error("config", "invalid",
                  fmt::format("hoist.lua: environments.{}.hosts: host name \"{}\" must be 1 to 40 letters, digits, "
                              "'_' or '-' (it names the host in messages and its ssh socket)",
                              name, key));
    }
    HostConfig h;
    h.name = key;
    // ssh = false: this machine, no ssh (`local` is a Lua keyword).
    const json ssh = spec.value("ssh", json());
    h.local = ssh.is_boolean() && !ssh.get<bool>();
    if (ssh.is_string()) h.ssh = ssh.get<std::string>();
    h.port = spec.value("port", 0);
    h.ssh_config = spec.value("ssh_config", "");
    if (!h.ssh_config.empty() && h.ssh_config[0] != '/') h.ssh_config = project_root + "/" + h.ssh_config;
    h.max_channels = spec.value("max_channels", 8);
    // roles = {} reads as an empty object: no roles.
    if (spec.contains("roles") && spec["roles"].is_array()) h.roles = spec["roles"].get<std::vector<std::string>>();
    if (!h.local && h.ssh.empty()) {
      throw Error("config", "invalid",
                  where + ".ssh must be \"user@host\" (or an ~/.ssh/config alias), or false for this machine");
    }
    if (!h.ssh.empty() && h.ssh[0] == '-') throw Error("config", "invalid", where + ".ssh must not start with '-'");
    h.address = spec.value("address", "");
    if (h.address.empty()) h.address = h.local ? "127.0.0.1" : h.ssh.substr(h.ssh.find('@') + 1);
    out.push_back(std::move(h));
  }
  std::sort(out.begin(), out.end(), [](const HostConfig& a, const HostConfig& b) { return a.name < b.name; });
  return out;
}

json HostsForPlaybooks(const std::vector<HostConfig>& hosts) {
  json out = json::array();
  for (const auto& h : hosts) {
    out.push_back({{"name", h.name}, {"ssh", h.local ? json(false) : json(h.ssh)}, {"address", h.address},
                   {"roles", h.roles}, {"local", h.local}});
  }
  return out;
}

struct HostWorlds::Entry {
  std::mutex mu;  // one connection attempt per host; other hosts connect meanwhile
  bool tried = false;
  std::optional<Error> error;
  std::unique_ptr<net::SshHost> ssh;
  std::unique_ptr<engine::World> remote;
  std::unique_ptr<engine::RecordingWorld> recorded;
  engine::World* world = nullptr;
};

HostWorlds::HostWorlds(std::vector<HostConfig> hosts, engine::World& local, engine::CallSink journal,
                       std::function<engine::World*(const std::string&)> simulated)
    : hosts_(std::move(hosts)), local_(local), journal_(std::move(journal)), simulated_(std::move(simulated)) {}

HostWorlds::~HostWorlds() {
  for (auto& [name, e] : entries_) {
    // The journal first, then the agent, then its master.
    e->recorded.reset();
    e->remote.reset();
    e->ssh.reset();
  }
}

engine::World& HostWorlds::Get(const std::string& name) {
  const HostConfig* cfg = nullptr;
  for (const auto& h : hosts_) {
    if (h.name == name) cfg = &h;
  }
  if (!cfg) throw Error("hosts", "unknown", fmt::format("no host \"{}\" in this environment", name));
  Entry* e;
  {
    std::lock_guard lock(mu_);
    auto& slot = entries_[name];
    if (!slot) slot = std::make_unique<Entry>();
    e = slot.get();
  }
  std::lock_guard lock(e->mu);
  if (e->world) return *e->world;
  if (e->error) throw *e->error;
  if (cfg->local && !simulated_) return local_;
  try {
    engine::World* inner;
    if (simulated_) {
      inner = simulated_(name);
      if (!inner) throw Error("hosts", "invalid", fmt::format("host {}: no simulated world stands for it", name));
    } else {
      net::SshHostSpec s;
      s.name = cfg->name;
      s.target = cfg->ssh;
      s.port = cfg->port;
      s.config_file = cfg->ssh_config;
      s.max_channels = cfg->max_channels;
      e->ssh = std::make_unique<net::SshHost>(s, SshControlDir());
      e->ssh->Connect();
      e->remote = engine::ConnectRemoteWorld(*e->ssh);
      inner = e->remote.get();
    }
    if (!journal_ || std::string_view(inner->mode()) == "replay") {
      e->world = inner;
    } else {
      e->recorded = std::make_unique<engine::RecordingWorld>(*inner, journal_);
      e->world = e->recorded.get();
    }
  } catch (const Error& err) {
    e->error = Error(err.area(), err.code(), Mask(err.message()));
    e->remote.reset();
    e->ssh.reset();
    throw *e->error;
  }
  return *e->world;
}

std::string SshControlDir() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg && std::string(xdg).size() < 60) return std::string(xdg) + "/hoist-ssh";
  return fmt::format("/tmp/hoist-ssh-{}", ::geteuid());
}

std::vector<HostCheck> CheckHosts(const std::vector<HostConfig>& hosts) {
  std::vector<HostCheck> out(hosts.size());
  std::string dir = SshControlDir();
  // Hosts are checked at once, but by a bounded number of threads: a fleet
  // of 300 hosts must not start 300 ssh masters in the same instant.
  constexpr size_t kMaxParallel = 16;
  std::atomic<size_t> next = 0;
  std::vector<std::thread> threads;
  for (size_t w = 0; w < std::min(kMaxParallel, hosts.size()); ++w) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < hosts.size(); i = next++) out[i] = Check(hosts[i], dir);
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

std::string HostsText(const std::string& env, const std::vector<HostCheck>& checks) {
  if (checks.empty()) {
    return fmt::format("environment {} has no hosts: it deploys where hoist runs (add hosts = {{ ... }} to it in "
                       "hoist.lua, see docs/fleet.md)\n",
                       env);
  }
  std::string out = fmt::format("hosts of environment {}:\n", env);
  size_t width = 4;
  for (const auto& c : checks) width = std::max(width, c.host.name.size());
  for (const auto& c : checks) {
    std::string roles = c.host.roles.empty() ? "" : " [" + Join(c.host.roles, ", ") + "]";
    std::string via = c.host.local ? "local" : c.host.ssh;
    if (c.ok) {
      out += fmt::format("  {:<{}}  ok    {}{}: {}, {} ({})\n", c.host.name, width, via, roles, c.system,
                         c.host.local          ? "hoist " + c.hoist_version
                         : c.hoist_version.empty() ? std::string("agent not uploaded yet (hoist uploads it when it first needs the host)")
                                                   : "agent hoist " + c.hoist_version,
                         fmt::format("{:.2f}s", c.seconds));
    } else {
      out += fmt::format("  {:<{}}  FAIL  {}{}: {}\n", c.host.name, width, via, roles, c.error);
    }
  }
  return out;
}

json HostsJson(const std::string& env, const std::vector<HostCheck>& checks) {
  json hosts = json::array();
  for (const auto& c : checks) {
    json h = {{"name", c.host.name}, {"ssh", c.host.ssh},   {"local", c.host.local}, {"roles", c.host.roles},
              {"ok", c.ok},          {"seconds", c.seconds}};
    if (c.ok) {
      h["system"] = c.system;
      h["hoist_version"] = c.hoist_version.empty() ? json(nullptr) : json(c.hoist_version);
      if (!c.host.local) h["agent_path"] = c.agent_path;
    } else {
      h["error"] = c.error;
      h["code"] = c.code;
    }
    hosts.push_back(h);
  }
  return {{"event", "hosts"}, {"env", env}, {"hosts", hosts}};
}

}  // namespace hoist::app

#include "engine/sim_world.h"

#include <fnmatch.h>
#include <signal.h>

#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "sys/clock.h"
#include "sys/sha256.h"

namespace hoist::engine {
namespace {

using json = nlohmann::json;

std::string Parent(const std::string& p) {
  auto slash = p.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

json Sha(std::string_view data) { return sys::Sha256Hex(data); }

}  // namespace

std::string SimBasename(const std::string& p) {
  auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::vector<std::string> SimWords(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

bool ArgvMatches(const std::vector<std::string>& argv, const std::string& match) {
  for (const auto& w : SimWords(match)) {
    bool found = false;
    for (size_t i = 0; i < argv.size() && !found; ++i) found = (i == 0 ? SimBasename(argv[0]) == SimBasename(w) : false) || argv[i] == w;
    if (!found) return false;
  }
  return true;
}

std::pair<std::string, int> HostPort(const std::string& url) {
  auto scheme_end = url.find("://");
  bool tls = url.rfind("https", 0) == 0;
  std::string rest = scheme_end == std::string::npos ? url : url.substr(scheme_end + 3);
  std::string authority = rest.substr(0, rest.find('/'));
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']') == std::string::npos) {
    try {
      return {authority.substr(0, colon), std::stoi(authority.substr(colon + 1))};
    } catch (...) {
    }
  }
  return {authority, tls ? 443 : 80};
}

class SimWorld::Host : public SimHost {
 public:
  explicit Host(SimWorld& w) : w_(w) {}
  double Monotonic() override { return w_.Monotonic(); }
  pid_t AddProcess(const std::string& cmdline, pid_t parent) override { return w_.AddProcess(cmdline, parent); }
  pid_t AddListener(const std::string& cmdline, const std::string& name, int port, bool listens,
                    double listen_at) override {
    pid_t pid = w_.AddProcess(cmdline);
    Proc& p = w_.procs_[pid];
    p.name = name;
    p.port = port;
    p.listens = listens;
    p.listen_at = listen_at;
    return pid;
  }
  void End(pid_t pid) override { w_.procs_[pid].alive = false; }
  void Kill(pid_t pid) override { w_.Kill(pid); }
  std::vector<pid_t> LivePids(const std::string& part) override {
    std::vector<pid_t> out;
    for (const auto& [pid, p] : w_.procs_) {
      if (p.alive && p.cmdline.find(part) != std::string::npos) out.push_back(pid);
    }
    return out;
  }
  std::vector<pid_t> ChildPids(pid_t pid) override { return w_.ChildPids(pid); }
  std::string CmdLine(pid_t pid) override { return w_.CmdLine(pid); }
  bool ServiceListening(const std::string& address, int port) override {
    SimWorld* at = w_.At(address);
    return at && at->ServiceOn(port) != nullptr;
  }
  std::optional<std::string> Lookup(const std::string& path) override { return w_.Lookup(path); }
  SimServiceScript ScriptFor(const std::string& name) override {
    auto it = w_.scripts_.find(name);
    return it != w_.scripts_.end() ? it->second : SimServiceScript{};
  }
  void Record(std::string kind, std::string what, json detail) override {
    w_.Record(std::move(kind), std::move(what), std::move(detail));
  }
  void Observe(const std::string& what, const std::string& value) override { w_.observed_.emplace(what, value); }

 private:
  SimWorld& w_;
};

SimWorld::SimWorld(SimOptions options)
    : options_(std::move(options)),
      host_(std::make_unique<Host>(*this)),
      nginx_(*host_),
      docker_(*host_, options_.seed_from_disk) {}

SimWorld::~SimWorld() = default;

void SimWorld::Record(std::string kind, std::string what, json detail) {
  changes_.push_back({std::move(kind), std::move(what), step_name_ ? step_name_() : "", std::move(detail)});
}

// ---- files ----------------------------------------------------------------

bool SimWorld::Real(const std::string& path) const {
  for (const auto& d : real_dirs_) {
    if (path == d || (path.size() > d.size() && path.rfind(d, 0) == 0 && path[d.size()] == '/')) return true;
  }
  return false;
}

World& SimWorld::Seed() {
  static RealWorld machine;
  return options_.seed ? *options_.seed : machine;
}

sys::Stat SimWorld::OutsideStat(const std::string& path) { return Real(path) ? sys::StatPath(path) : Seed().StatPath(path); }

std::optional<std::string> SimWorld::Lookup(const std::string& path) {
  if (auto it = files_.find(path); it != files_.end()) return it->second;
  if (Real(path)) {
    sys::Stat st = sys::StatPath(path);
    if (!st.exists || st.type == "dir") return std::nullopt;
    return sys::ReadFile(path);
  }
  if (!options_.seed_from_disk) return std::nullopt;
  sys::Stat st = Seed().StatPath(path);
  if (!st.exists || st.type == "dir") {
    observed_.emplace(path, st.exists ? "dir" : "missing");
    return std::nullopt;
  }
  std::string data = Seed().ReadFile(path);
  // Kept, so the run sees one consistent copy however often it reads.
  files_[path] = data;
  modes_[path] = st.mode;
  observed_.emplace(path, sys::Sha256Hex(data));
  return data;
}

std::string SimWorld::ReadFile(const std::string& path) {
  if (auto data = Lookup(path)) return *data;
  if (dirs_.count(path) || (options_.seed_from_disk && Seed().StatPath(path).type == "dir")) {
    throw Error("fs", "failed", "cannot read " + path + ": Is a directory");
  }
  throw Error("fs", "not_found", "cannot read " + path + ": No such file or directory");
}

void SimWorld::WriteAtomic(const std::string& path, std::string_view data, mode_t mode) {
  std::string dir = Parent(path);
  if (!dirs_.count(dir) && !(options_.seed_from_disk && Seed().StatPath(dir).type == "dir")) {
    throw Error("fs", "not_found", "cannot create a temp file in " + dir + ": No such file or directory");
  }
  auto before = Lookup(path);
  json d = {{"path", path}, {"bytes", data.size()}, {"sha256", Sha(data)}, {"mode", fmt::format("{:04o}", mode)}};
  d["before"] = before ? json{{"bytes", before->size()}, {"sha256", Sha(*before)}} : json(nullptr);
  if (before) d["previous"] = *before;
  d["content"] = std::string(data);
  files_[path] = std::string(data);
  modes_[path] = mode;
  Record("file", "write " + path, d);
}

void SimWorld::WriteInPlace(const std::string& path, std::string_view data) {
  auto before = Lookup(path);
  if (!before) throw Error("fs", "not_found", "cannot open " + path + ": No such file or directory");
  json d = {{"path", path}, {"bytes", data.size()}, {"sha256", Sha(data)}, {"inplace", true},
            {"before", {{"bytes", before->size()}, {"sha256", Sha(*before)}}}, {"previous", *before},
            {"content", std::string(data)}};
  files_[path] = std::string(data);
  Record("file", "write " + path, d);
}

void SimWorld::MkdirP(const std::string& path, mode_t mode) {
  if (dirs_.count(path) || ((options_.seed_from_disk || Real(path)) && OutsideStat(path).type == "dir")) return;
  if (auto f = files_.find(path); f != files_.end() && f->second) {
    throw Error("fs", "conflict", "cannot create directory " + path + ": " + path + " exists and is not a directory");
  }
  for (std::string p = path; p != "/" && p != "." && !p.empty(); p = Parent(p)) dirs_.insert(p);
  Record("file", "mkdir " + path, {{"path", path}, {"mode", fmt::format("{:04o}", mode)}});
}

bool SimWorld::Remove(const std::string& path, bool recursive) {
  bool existed = Lookup(path).has_value();
  if (!existed && dirs_.count(path)) {
    dirs_.erase(path);
    existed = true;
  }
  if (!existed && options_.seed_from_disk && Seed().StatPath(path).exists) existed = true;
  if (!existed) return false;
  files_[path] = std::nullopt;
  Record("file", "remove " + path, {{"path", path}, {"recursive", recursive}});
  return true;
}

void SimWorld::Chmod(const std::string& path, mode_t mode) {
  sys::Stat st = StatPath(path);
  if (!st.exists) throw Error("fs", "not_found", "cannot chmod " + path + ": No such file or directory");
  // Kept beside the file (or the directory) so a later fs.stat reads it back.
  if (st.type == "dir") dirs_.insert(path);
  modes_[path] = mode & 07777;
  std::string octal = fmt::format("{:04o}", mode & 07777);
  // Named as the shell command, so the sandbox report says the new mode.
  Record("file", "chmod " + octal + " " + path, {{"path", path}, {"mode", octal}, {"before", fmt::format("{:04o}", st.mode)}});
}

sys::Stat SimWorld::StatPath(const std::string& path) {
  sys::Stat st;
  if (auto data = Lookup(path)) {
    st.exists = true;
    st.type = "file";
    st.size = data->size();
    st.mode = modes_.count(path) ? modes_[path] : 0644;
    st.mtime = Now();
    return st;
  }
  if (files_.count(path)) return st;  // removed in this run
  if (dirs_.count(path)) {
    st.exists = true;
    st.type = "dir";
    st.mode = modes_.count(path) ? modes_[path] : 0755;
    return st;
  }
  if (options_.seed_from_disk || Real(path)) return OutsideStat(path);
  return st;
}

std::vector<std::string> SimWorld::ListDir(const std::string& path) {
  std::set<std::string> names;
  bool found = dirs_.count(path) > 0;
  if ((options_.seed_from_disk || Real(path)) && OutsideStat(path).type == "dir") {
    found = true;
    for (auto& n : Real(path) ? sys::ListDir(path) : Seed().ListDir(path)) names.insert(n);
  }
  std::string prefix = path.ends_with('/') ? path : path + "/";
  for (const auto& [p, data] : files_) {
    if (p.rfind(prefix, 0) != 0 || p.find('/', prefix.size()) != std::string::npos) continue;
    found = true;
    if (data) {
      names.insert(p.substr(prefix.size()));
    } else {
      names.erase(p.substr(prefix.size()));
    }
  }
  for (const auto& d : dirs_) {
    if (d.rfind(prefix, 0) == 0 && d.find('/', prefix.size()) == std::string::npos) names.insert(d.substr(prefix.size()));
  }
  if (!found) throw Error("fs", "not_found", "cannot list " + path + ": No such file or directory");
  return {names.begin(), names.end()};
}

std::vector<std::string> SimWorld::Glob(const std::string& pattern) {
  std::set<std::string> out;
  if (options_.seed_from_disk) {
    for (auto& p : Seed().Glob(pattern)) out.insert(p);
  }
  for (const auto& [p, data] : files_) {
    if (fnmatch(pattern.c_str(), p.c_str(), FNM_PATHNAME) != 0) continue;
    if (data) {
      out.insert(p);
    } else {
      out.erase(p);
    }
  }
  return {out.begin(), out.end()};
}

void SimWorld::SetFile(const std::string& path, std::string data, mode_t mode) {
  files_[path] = std::move(data);
  modes_[path] = mode;
  for (std::string p = Parent(path); p != "/" && p != "." && !p.empty(); p = Parent(p)) dirs_.insert(p);
}

// ---- processes --------------------------------------------------------------

SimWorld::Proc* SimWorld::FindProc(pid_t pid) {
  if (auto it = procs_.find(pid); it != procs_.end()) return &it->second;
  if (!options_.seed_from_disk || pid <= 0 || !Seed().ProcessAlive(pid)) return nullptr;
  // A real process (the nginx master named by a real pid file): adopted as
  // it is now, with its children; from here on only the copy changes.
  Proc p;
  p.cmdline = Seed().CmdLine(pid);
  procs_[pid] = p;
  observed_.emplace(fmt::format("pid {}", pid), p.cmdline);
  for (pid_t child : Seed().ChildPids(pid)) {
    Proc c;
    c.cmdline = Seed().CmdLine(child);
    c.parent = pid;
    procs_.emplace(child, c);
  }
  return &procs_[pid];
}

pid_t SimWorld::AddProcess(const std::string& cmdline, pid_t parent) {
  pid_t pid = NewPid();
  Proc p;
  p.cmdline = cmdline;
  p.parent = parent;
  procs_[pid] = p;
  return pid;
}

pid_t SimWorld::AddNginx(const std::string& pid_file, int workers) {
  pid_t master = nginx_.AddMaster(workers);
  SetFile(pid_file, fmt::format("{}\n", master));
  return master;
}

pid_t SimWorld::AddService(const std::string& name, const std::string& pid_file, int port) {
  pid_t pid = AddProcess(name);
  procs_[pid].name = name;
  procs_[pid].port = port;
  procs_[pid].listens = port > 0;
  SetFile(pid_file, fmt::format("{}\n", pid));
  return pid;
}

void SimWorld::Kill(pid_t pid) {
  Proc* p = FindProc(pid);
  if (!p) return;
  p->alive = false;
  for (auto& [cpid, c] : procs_) {
    if (c.parent == pid) c.alive = false;
  }
}

bool SimWorld::ProcessAlive(pid_t pid) {
  Proc* p = FindProc(pid);
  return p && p->alive;
}

std::optional<pid_t> SimWorld::ReadPidFile(const std::string& path) {
  auto data = Lookup(path);
  if (!data) return std::nullopt;
  try {
    long v = std::stol(*data);
    if (v > 0) return static_cast<pid_t>(v);
  } catch (...) {
  }
  return std::nullopt;
}

std::vector<pid_t> SimWorld::ChildPids(pid_t pid) {
  std::vector<pid_t> out;
  if (!FindProc(pid)) return out;
  for (const auto& [cpid, c] : procs_) {
    if (c.parent == pid && c.alive) out.push_back(cpid);
  }
  return out;
}

std::string SimWorld::CmdLine(pid_t pid) {
  Proc* p = FindProc(pid);
  return p && p->alive ? p->cmdline : "";
}

void SimWorld::SendSignal(pid_t pid, int sig) {
  Proc* p = FindProc(pid);
  if (!p || !p->alive) {
    throw Error("proc", "not_found", fmt::format("cannot send signal {} to pid {}: No such process", sig, pid));
  }
  Record("signal", fmt::format("kill -{} {}", sig, pid), {{"pid", pid}, {"signal", sig}, {"process", p->cmdline}});
  if (sig == SIGHUP) {
    nginx_.Reload(pid);
  } else if (sig == SIGTERM || sig == SIGKILL || sig == SIGINT || sig == SIGQUIT) {
    Kill(pid);
  }
}

SimWorld::Proc* SimWorld::ServiceOn(int port) {
  for (auto& [pid, p] : procs_) {
    if (p.alive && p.listens && p.port == port && Monotonic() >= p.listen_at) return &p;
  }
  return nullptr;
}

SimWorld* SimWorld::At(const std::string& address) {
  if (address.empty() || address == "127.0.0.1" || address == "localhost" || address == "::1" || !peers_) return this;
  return peers_(address);
}

bool SimWorld::Listening(int port) { return listening_.count(port) || nginx_.IsFrontend(port) || ServiceOn(port); }

sys::TcpResult SimWorld::TcpConnect(const std::string& host, int port, std::chrono::milliseconds timeout) {
  sys::TcpResult r;
  if (Listening(port)) {
    r.ok = true;
    return r;
  }
  (void)timeout;
  r.code = "refused";
  r.error = fmt::format("cannot connect to {}:{}: Connection refused (simulated)", host, port);
  return r;
}

pid_t SimWorld::StartService(const sys::ServiceSpec& spec) {
  if (spec.argv.empty()) throw Error("service", "invalid", "service: argv must not be empty");
  if (spec.pid_file.empty()) throw Error("service", "invalid", "service: pid_file is required");
  if (auto old = ReadPidFile(spec.pid_file); old && ProcessAlive(*old)) {
    throw Error("service", "conflict",
                fmt::format("service {} is already running (pid {} from {})", spec.name, *old, spec.pid_file));
  }
  SimServiceScript script;
  if (auto it = scripts_.find(spec.name); it != scripts_.end()) script = it->second;
  if (auto it = scripts_.find(std::to_string(spec.port)); spec.port > 0 && it != scripts_.end()) script = it->second;
  std::string cmdline;
  for (const auto& a : spec.argv) cmdline += (cmdline.empty() ? "" : " ") + a;
  pid_t pid = AddProcess(cmdline);
  Proc& p = procs_[pid];
  p.name = spec.name.empty() ? SimBasename(spec.argv[0]) : spec.name;
  p.port = spec.port;
  p.listens = script.behaviour == "listens";
  p.listen_at = Monotonic() + script.listen_after;
  if (script.behaviour == "exits") {
    p.alive = false;
    if (!spec.log_file.empty()) files_[spec.log_file] = "simulated: the service exited during start-up\n";
  }
  files_[spec.pid_file] = fmt::format("{}\n", pid);
  Record("service", "start " + (spec.name.empty() ? spec.argv[0] : spec.name),
         {{"name", spec.name}, {"argv", spec.argv}, {"port", spec.port}, {"pid_file", spec.pid_file}, {"pid", pid}});
  return pid;
}

sys::StopResult SimWorld::StopService(const sys::ServiceSpec& spec, std::chrono::milliseconds grace) {
  (void)grace;
  sys::StopResult r;
  auto pid = ReadPidFile(spec.pid_file);
  r.pid = pid.value_or(0);
  if (!pid || !ProcessAlive(*pid)) {
    r.how = "not_running";
  } else {
    Kill(*pid);
    r.how = "term";
  }
  if (Lookup(spec.pid_file)) files_[spec.pid_file] = std::nullopt;
  Record("service", "stop " + (spec.name.empty() ? spec.argv[0] : spec.name),
         {{"name", spec.name}, {"pid", r.pid}, {"how", r.how}});
  return r;
}

sys::ServiceStatus SimWorld::ServiceStatusOf(const sys::ServiceSpec& spec) {
  sys::ServiceStatus st;
  auto pid = ReadPidFile(spec.pid_file);
  st.pid = pid.value_or(0);
  st.alive = pid && ProcessAlive(*pid);
  if (Proc* p = st.alive ? FindProc(*pid) : nullptr; p && p->port == 0 && spec.port > 0) {
    // A live real service seen through its pid file: taken to listen on its
    // port (probing it would be a request to the real world).
    p->port = spec.port;
    p->listens = true;
    p->name = spec.name;
  }
  st.listening = spec.port > 0 && Listening(spec.port);
  st.state = !st.alive ? "down" : (spec.port > 0 && !st.listening) ? "not_listening" : "running";
  return st;
}

sys::ProcessResult SimWorld::RunProcess(const sys::ProcessSpec& spec) {
  sys::ProcessResult r;
  r.exit_code = 0;
  std::string display;
  for (const auto& a : spec.argv) display += (display.empty() ? "" : " ") + a;
  for (auto& rule : process_rules_) {
    if (rule.times == 0 || !ArgvMatches(spec.argv, rule.match)) continue;
    if (rule.times > 0) --rule.times;
    r.exit_code = rule.exit_code;
    r.out = rule.out;
    r.err = rule.err;
    r.seconds = rule.seconds;
    offset_ += rule.seconds;
    Record("process", "run " + display, {{"argv", spec.argv}, {"exit_code", r.exit_code}, {"scripted", true}});
    return r;
  }
  // `nginx -s reload` reloads the simulated masters.
  if (SimNginx::IsReloadCommand(spec.argv)) nginx_.ReloadAll();
  Record("process", "run " + display, {{"argv", spec.argv}, {"exit_code", 0}});
  return r;
}

// ---- HTTP -------------------------------------------------------------------

net::HttpResponse SimWorld::Http(const net::HttpRequest& request) {
  net::HttpResponse r;
  bool mutating = request.method != "GET" && request.method != "HEAD";
  for (auto& rule : http_rules_) {
    if (rule.times == 0 || request.url.rfind(rule.url, 0) != 0) continue;
    if (!rule.method.empty() && rule.method != request.method) continue;
    if (rule.times > 0) --rule.times;
    offset_ += rule.seconds;
    r.seconds = rule.seconds;
    if (!rule.error_code.empty()) {
      r.error_code = rule.error_code;
      r.error = rule.error_code == "timeout" ? "timed out (simulated)" : "cannot connect (simulated)";
    } else {
      r.status = rule.status;
      r.body = rule.body;
    }
    if (mutating) Record("http", request.method + " " + request.url, {{"status", r.status}, {"scripted", true}});
    return r;
  }
  if (!request.unix_socket.empty()) return docker_.Handle(request);
  auto [host, port] = HostPort(request.url);
  int target = port;
  std::string target_address;
  if (auto answer = nginx_.Proxy(port, &target, &target_address)) {
    r = *answer;
    if (mutating) Record("http", request.method + " " + request.url, {{"status", r.status}});
    return r;
  }
  // Proxied to another simulated host of the fleet: its service answers.
  SimWorld* at = target_address.empty() ? this : At(target_address);
  Proc* svc = at ? at->ServiceOn(target) : nullptr;
  if (!svc && !Listening(port)) {
    r.error_code = "connect_failed";
    r.error = fmt::format("cannot connect to {}:{}: Connection refused (simulated)", host, port);
    return r;
  }
  // The simulated app answers like a healthy one and says who it is, so
  // health checks and the switch's verification by traffic can tell colours.
  std::string name = svc ? svc->name : "";
  r.status = 200;
  r.headers = {{"Content-Type", "application/json"}, {"X-Colour", name}, {"X-Service", name}};
  r.body = json{{"status", "ok"}, {"service", name}}.dump();
  if (mutating) Record("http", request.method + " " + request.url, {{"status", r.status}});
  return r;
}

// ---- Docker -----------------------------------------------------------------

void SimWorld::AddContainer(const std::string& name, const std::string& image) { docker_.AddContainer(name, image); }

// ---- time -------------------------------------------------------------------

double SimWorld::Monotonic() { return sys::Monotonic() + offset_; }
double SimWorld::Now() { return sys::NowEpoch() + offset_; }

void SimWorld::Sleep(double seconds, bool stoppable) {
  if (stoppable) ThrowIfStopped("time");
  if (seconds > 0) offset_ += seconds;
}

}  // namespace hoist::engine

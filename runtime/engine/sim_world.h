// The simulated world: what `hoist run --sandbox` and `hoist test` wire
// behind the world seam. It is stateful (a service started is then running
// and listening, a file written reads back, a HUP gives nginx a new worker
// generation) and scriptable (a service that never listens, `nginx -t`
// failing, HTTP 500 from a URL), and it never starts, signals, writes or
// requests anything real. With seed_from_disk it reads files and looks at
// processes of the real host read-only, then keeps its own copy in memory.
// SimWorld is the process, file, HTTP and clock world; nginx (sim_nginx.h)
// and the Docker Engine (sim_docker.h) are simulated in parts living in it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sim_docker.h"
#include "engine/sim_host.h"
#include "engine/sim_nginx.h"
#include "engine/world.h"

namespace hoist::engine {

/// An answer for processes whose argv holds every word of `match` (argv[0]
/// compared by base name: "nginx -t" matches {"/usr/sbin/nginx","-c","x","-t"}).
struct SimProcessRule {
  std::string match;
  int exit_code = 0;
  std::string out, err;
  int times = -1;        ///< how many calls it answers; -1 = all
  double seconds = 0;    ///< virtual time the call takes
};

/// An answer for HTTP requests whose URL starts with `url` (and method, if set).
struct SimHttpRule {
  std::string method;    ///< "" = any
  std::string url;
  int status = 200;
  std::string body;
  std::string error_code;  ///< "connect_failed" / "timeout": no response at all
  int times = -1;
  double seconds = 0;
};

/// One change the run would have made to the real world, in order.
struct SimChange {
  std::string kind;   ///< "file", "service", "signal", "process", "http"
  std::string what;   ///< "write /etc/nginx/conf.d/app.conf", "start green", ...
  std::string step;   ///< the step it was made in ("" outside steps)
  nlohmann::json detail;
};

struct SimOptions {
  /// Sandbox: reads that miss the in-memory state go to the real disk and
  /// /proc (read-only). Off for `hoist test`: the world is exactly what the
  /// test scripted.
  bool seed_from_disk = false;
  std::string mode = "sandbox";
  /// The hoist.lua host it stands for ("local": where hoist runs); a
  /// sandbox of a fleet has one simulated world per host.
  std::string host = "local";
  /// With seed_from_disk: the world those reads go to instead of this
  /// machine (another host's, through its agent; only ever read). Null:
  /// this machine's disk and /proc.
  World* seed = nullptr;
};

class SimWorld : public World {
 public:
  explicit SimWorld(SimOptions options = {});
  ~SimWorld() override;
  SimWorld(const SimWorld&) = delete;
  SimWorld& operator=(const SimWorld&) = delete;

  // The World seam.
  sys::ProcessResult RunProcess(const sys::ProcessSpec& spec) override;
  net::HttpResponse Http(const net::HttpRequest& request) override;
  std::string ReadFile(const std::string& path) override;
  void WriteAtomic(const std::string& path, std::string_view data, mode_t mode) override;
  void WriteInPlace(const std::string& path, std::string_view data) override;
  void MkdirP(const std::string& path, mode_t mode) override;
  bool Remove(const std::string& path, bool recursive) override;
  void Chmod(const std::string& path, mode_t mode) override;
  sys::Stat StatPath(const std::string& path) override;
  std::vector<std::string> ListDir(const std::string& path) override;
  std::vector<std::string> Glob(const std::string& pattern) override;
  pid_t StartService(const sys::ServiceSpec& spec) override;
  sys::StopResult StopService(const sys::ServiceSpec& spec, std::chrono::milliseconds grace) override;
  sys::ServiceStatus ServiceStatusOf(const sys::ServiceSpec& spec) override;
  bool ProcessAlive(pid_t pid) override;
  std::optional<pid_t> ReadPidFile(const std::string& path) override;
  std::vector<pid_t> ChildPids(pid_t pid) override;
  std::string CmdLine(pid_t pid) override;
  void SendSignal(pid_t pid, int sig) override;
  sys::TcpResult TcpConnect(const std::string& host, int port, std::chrono::milliseconds timeout) override;
  double Monotonic() override;
  double Now() override;
  void Sleep(double seconds, bool stoppable) override;
  const char* mode() const override { return options_.mode.c_str(); }
  std::string host() const override { return options_.host; }

  // Seeding and scripting (before the run).
  void SetFile(const std::string& path, std::string data, mode_t mode = 0644);
  /// A process (and its pid); parent 0 = none.
  pid_t AddProcess(const std::string& cmdline, pid_t parent = 0);
  /// An nginx master with `workers` workers whose pid is in pid_file.
  pid_t AddNginx(const std::string& pid_file, int workers = 2);
  /// A running service, as if started earlier: pid file written, port open.
  pid_t AddService(const std::string& name, const std::string& pid_file, int port);
  void Listen(int port) { listening_.insert(port); }
  /// nginx listening on `port`, routing to the first live `server` line of
  /// conf_path as the file reads in this world (so a switch takes effect).
  void AddFrontend(int port, const std::string& conf_path) { nginx_.AddFrontend(port, conf_path); }
  /// The other simulated hosts of a fleet, by the address they are reached
  /// at: a simulated nginx here proxies to their services (null: none there).
  using Peers = std::function<SimWorld*(const std::string& address)>;
  void SetPeers(Peers peers) { peers_ = std::move(peers); }
  /// One thread at a time: run:each keeps its turn while a simulated world answers.
  bool parallel_calls() const override { return false; }
  void AddProcessRule(SimProcessRule r) { process_rules_.push_back(std::move(r)); }
  void AddHttpRule(SimHttpRule r) { http_rules_.push_back(std::move(r)); }
  void ScriptService(const std::string& name_or_port, SimServiceScript s) { scripts_[name_or_port] = std::move(s); }
  /// A container already running (name, image) in the simulated Docker engine.
  void AddContainer(const std::string& name, const std::string& image);

  /// The sandbox's own private dir (the database copy, its backups): reads
  /// under it reach the real disk whatever seed_from_disk says, uncached and
  /// unobserved, because the run itself changes those files through the
  /// database and backup code, which bypass the world. Without it a
  /// playbook checking `fs.exists(database path)` sees no database.
  void AddRealDir(const std::string& dir) override { real_dirs_.push_back(dir); }

  /// nginx masters ignore HUP: no new worker generation ("reload fails").
  void SetReloadIgnored(bool ignored) { nginx_.SetReloadIgnored(ignored); }

  /// Names the step each change is made in (set by the run).
  void SetStepName(std::function<std::string()> f) override { step_name_ = std::move(f); }

  /// The changes made so far, in order.
  const std::vector<SimChange>& changes() const { return changes_; }
  /// What was read from the real host (path -> sha256 or "missing";
  /// "pid N" -> its command line): the observed state a plan depends on.
  const std::map<std::string, std::string>& observed() const { return observed_; }
  /// Files as the run left them (path -> bytes, nullopt = removed).
  const std::map<std::string, std::optional<std::string>>& files() const { return files_; }
  /// Virtual seconds added by sleeps.
  double skipped() const { return offset_; }

 private:
  struct Proc {
    std::string cmdline;
    std::string name;         // service name: what its default HTTP answer says
    pid_t parent = 0;
    bool alive = true;
    int port = 0;
    double listen_at = 0;     // Monotonic() from when the port accepts
    bool listens = false;
  };
  Proc* FindProc(pid_t pid);
  void Record(std::string kind, std::string what, nlohmann::json detail);
  std::optional<std::string> Lookup(const std::string& path);
  bool Real(const std::string& path) const;
  /// Where seed_from_disk reads go (options_.seed, else this machine).
  World& Seed();
  /// A path's state outside the simulation: the sandbox's own dirs on this
  /// machine, anything else on the seed.
  sys::Stat OutsideStat(const std::string& path);
  bool Listening(int port);
  /// The simulated service answering on port, or nullptr.
  Proc* ServiceOn(int port);
  /// The simulated host that answers at address: this one for loopback.
  SimWorld* At(const std::string& address);
  void Kill(pid_t pid);
  pid_t NewPid() { return next_pid_++; }

  SimOptions options_;
  Peers peers_;
  double offset_ = 0;
  pid_t next_pid_ = 4'500'000;  // above Linux's pid_max: never a real pid
  std::map<std::string, std::optional<std::string>> files_;
  std::map<std::string, mode_t> modes_;
  std::set<std::string> dirs_;
  std::map<pid_t, Proc> procs_;
  std::set<int> listening_;
  std::vector<SimProcessRule> process_rules_;
  std::vector<SimHttpRule> http_rules_;
  std::map<std::string, SimServiceScript> scripts_;
  std::vector<std::string> real_dirs_;
  std::vector<SimChange> changes_;
  std::map<std::string, std::string> observed_;
  std::function<std::string()> step_name_;
  class Host;  // the SimHost the parts below see: this world
  std::unique_ptr<Host> host_;
  SimNginx nginx_;
  SimDocker docker_;
};

}  // namespace hoist::engine

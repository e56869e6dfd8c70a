#include "integration/playbooks/fleet_rig.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "integration/playbooks/example_pg.h"
#include "support/pg_cluster.h"
#include "core/strings.h"
#include "support/support.h"
#include "sys/probe.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

}  // namespace

const std::vector<std::string>& FleetRig::AppHosts() {
  static const std::vector<std::string> hosts = {"web1", "web2", "web3"};
  return hosts;
}

FleetRig::FleetRig(const std::string& fleet_rules, std::vector<std::string> app_hosts, double bake_seconds)
    : lab_(std::make_unique<SshLab>(std::vector<std::string>{"lb1", "web1", "web2", "web3"})) {
  char tmpl[] = "/tmp/hoist-fleet-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  root_ = tmpl;
  ::chmod(root_.c_str(), 0755);
  const std::string example = std::string(HOIST_EXAMPLES_DIR) + "/sqlite-bluegreen";
  fs::copy(example + "/releases", root_ + "/releases", fs::copy_options::recursive);
  for (const auto& release : fs::directory_iterator(root_ + "/releases")) {
    WriteFile(release.path().string() + "/migrations/0001_create_notes.sql", kPgCreateNotes);
  }
  pg_ = &PgCluster::Get();
  db_ = pg_->CreateOwnedDatabase("fleet");
  state_db_ = pg_->CreateDatabase("fleetstate");

  NginxOptions o;
  o.worker_processes = 2;
  o.netns = lab_->host("lb1").netns;
  o.listen_address = "0.0.0.0";
  o.client_address = lab_->host("lb1").address;
  o.upstream_conf = "upstream api {\n";
  for (const auto& h : app_hosts) o.upstream_conf += "    server " + lab_->host(h).lan_address + ":5001;\n";
  o.upstream_conf += "}\n";
  nginx_ = std::make_unique<NginxServer>(root_ + "/nginx", o);
  nginx_->StartOrSkip();

  std::string hosts;
  for (const auto& name : {"lb1", "web1", "web2", "web3"}) {
    bool app = std::find(app_hosts.begin(), app_hosts.end(), name) != app_hosts.end();
    std::string role = std::string(name) == "lb1" ? "\"lb\"" : app ? "\"app\"" : "";
    hosts += std::string("      ") + name + " = { ssh = \"" + lab_->Target(name) + "\", ssh_config = \"" +
             lab_->ssh_config() + "\", address = \"" + lab_->host(name).lan_address + "\", roles = { " + role +
             " } },\n";
  }
  std::string local_health = "http://127.0.0.1:" + std::to_string(nginx_->port()) + "/api/health";
  WriteFile(root_ + "/hoist.lua", R"lua(return {
  state = ")lua" + pg_->Url(state_db_) + R"lua(",
  lease = { ttl = 60 },
  environments = { prod = {
    database = ")lua" + pg_->Url(db_, db_) + R"lua(",
    migrations = "releases/{version}/migrations",
    backups = { dir = ".hoist/backups", keep = 5 },
    hosts = {
)lua" + hosts + R"lua(    },
    fleet = )lua" + fleet_rules + R"lua(,
    app = {
      argv = { ")lua" + HOIST_EXAMPLE_APP + R"lua(", "--port", "{port}", "--colour", "{colour}",
               "--release", "{version}", "--listen", "0.0.0.0", "--instance", "{host}" },
      env = { APP_DB = ")lua" + SocketUrl() + R"lua(" },
      colours = { blue = { port = 5001 }, green = { port = 5002 } },
      run_dir = ")lua" + root_ + R"lua(/hosts/{host}/run",
      start_timeout = 15,
      stop_grace = 10,
    },
    nginx = {
      conf = ")lua" + nginx_->upstream_conf() + R"lua(", upstream = "api",
      main_conf = ")lua" + nginx_->main_conf() + R"lua(", prefix = ")lua" + nginx_->dir() + R"lua(",
      pid_file = ")lua" + nginx_->pid_file() + R"lua(", error_log = ")lua" + nginx_->error_log() + R"lua(",
      verify = { url = ")lua" + local_health + R"lua(", expect_header = "X-Colour", timeout = 5 },
    },
    health = { path = "/api/health", json = { status = "ok" }, timeout = 10, interval = 0.05 },
    bake = { seconds = )lua" + std::to_string(bake_seconds) + R"lua(, url = ")lua" + local_health + R"lua(", interval = 0.2 },
  } },
}
)lua");
}

FleetRig::~FleetRig() {
  for (const auto& h : AppHosts()) {
    for (const char* colour : {"blue", "green"}) {
      if (auto pid = sys::ReadPidFile(root_ + "/hosts/" + h + "/run/" + colour + ".pid"); pid && *pid > 0) {
        ::kill(-*pid, SIGKILL);
        ::kill(*pid, SIGKILL);
      }
    }
  }
  if (nginx_) nginx_->Stop();
  std::error_code ec;
  fs::remove_all(root_, ec);
}

// The app's database through the cluster's socket, which the cluster
// trusts: no password in the app's environment.
std::string FleetRig::SocketUrl() const {
  return "postgresql://" + db_ + "@/" + db_ + "?host=" + pg_->dir() + "&port=" + std::to_string(pg_->port());
}

sys::ProcessResult FleetRig::Hoist(std::vector<std::string> args) const {
  return RunHoist(root_, std::move(args), {{"XDG_RUNTIME_DIR", lab_->dir()}});
}

pid_t FleetRig::HoistInBackground(const std::vector<std::string>& args, const std::string& out_file,
                                  const std::map<std::string, std::string>& env, const std::string& hostname) const {
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    if (::chdir(root_.c_str()) != 0) ::_exit(127);
    if (!hostname.empty() && (::unshare(CLONE_NEWUTS) != 0 || ::sethostname(hostname.data(), hostname.size()) != 0)) {
      std::perror("unshare/sethostname");
      ::_exit(127);
    }
    ::setenv("XDG_RUNTIME_DIR", lab_->dir().c_str(), 1);
    ::setenv("NO_COLOR", "1", 1);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv = {const_cast<char*>(HOIST_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(HOIST_BINARY, argv.data());
    ::_exit(127);
  }
  return pid;
}

json FleetRig::RunLoad(std::vector<std::string> argv, const std::string& host) const {
  sys::ProcessResult r = host.empty() ? sys::RunProcess({.argv = argv, .timeout = std::chrono::seconds(600)})
                                      : lab_->Exec(host, argv, std::chrono::seconds(30));
  auto j = json::parse(r.out.substr(0, r.out.find('\n')), nullptr, false);
  if (!j.is_object()) throw std::runtime_error("the load client printed no summary: " + Describe(r));
  return j;
}

json FleetRig::Load(double seconds, int threads, const std::string& stop_file) const {
  std::vector<std::string> argv = {HOIST_EXAMPLE_APP, "load", "--threads", std::to_string(threads), "--host",
                                   lab_->host("lb1").address, "--port", std::to_string(nginx_->port())};
  if (stop_file.empty()) {
    argv.insert(argv.end(), {"--seconds", std::to_string(seconds)});
  } else {
    argv.insert(argv.end(), {"--stop-file", stop_file, "--db", pg_->Url(db_, db_)});
  }
  return RunLoad(argv, "");
}

std::string FleetRig::Traffic() const {
  json j = Load(0.6, 2);
  std::string out;
  for (auto& [k, v] : j["served_by"].items()) out += (out.empty() ? "" : ", ") + k;
  if (j["failed"].get<int>() > 0) out += " (failed: " + j.value("first_failure", "") + ")";
  return out;
}

std::string FleetRig::Direct(const std::string& host, const std::string& colour) const {
  json j = RunLoad({HOIST_EXAMPLE_APP, "load", "--threads", "1", "--seconds", "0.2", "--port",
                    colour == "blue" ? "5001" : "5002"},
                   host);
  if (j["served_by"].empty()) return "down";
  std::string out;
  for (auto& [k, v] : j["served_by"].items()) out += k;
  return out;
}

bool FleetRig::Running(const std::string& host, const std::string& colour) const {
  auto pid = sys::ReadPidFile(root_ + "/hosts/" + host + "/run/" + colour + ".pid");
  return pid && *pid > 0 && ::kill(*pid, 0) == 0;
}

void FleetRig::Kill(const std::string& host) const {
  auto r = sys::RunProcess({.argv = {"ip", "netns", "pids", lab_->host(host).netns}});
  std::istringstream in(r.out);
  for (pid_t pid; in >> pid;) ::kill(pid, SIGKILL);
}

std::string FleetRig::StateSql(const std::string& sql) const { return Trim(pg_->Psql(sql, state_db_)); }

std::string FleetRig::Upstream() const { return ReadAll(nginx_->upstream_conf()); }

}  // namespace hoist::test

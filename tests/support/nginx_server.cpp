#include "support/nginx_server.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <thread>

#include "support/colour_server.h"
#include "support/support.h"
#include "sys/probe.h"
#include "sys/process.h"

namespace hoist::test {
namespace {

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

void Write(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

}  // namespace

std::string NginxServer::Binary() {
  for (const char* p : {"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

NginxServer::NginxServer(const std::string& dir, NginxOptions o)
    : dir_(dir), netns_(o.netns), worker_processes_(o.worker_processes) {
  namespace fs = std::filesystem;
  client_address_ = o.client_address;
  if (client_address_.empty()) client_address_ = o.listen_address;
  if (client_address_ == "0.0.0.0") {
    // The test's loopback is not the namespace's.
    if (!netns_.empty()) throw std::invalid_argument("NginxServer in netns " + netns_ + ": set client_address");
    client_address_ = "127.0.0.1";
  }
  for (const char* sub : {"logs", "tmp", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"})
    fs::create_directories(dir_ + "/" + sub);
  // Workers run as nobody: they must reach the temp dirs.
  fs::permissions(dir_, fs::perms::all, fs::perm_options::add);
  fs::permissions(dir_ + "/tmp", fs::perms::all, fs::perm_options::add);
  main_conf_ = dir_ + "/nginx.conf";
  upstream_conf_ = dir_ + "/upstream.conf";
  maintenance_conf_ = dir_ + "/maintenance.conf";
  pid_file_ = dir_ + "/nginx.pid";
  error_log_ = dir_ + "/logs/error.log";
  port_ = FreePort();
  std::string t = dir_ + "/tmp/";
  std::string conf;
  conf += "worker_processes " + std::to_string(o.worker_processes) + ";\n";
  conf += "pid " + pid_file_ + ";\n";
  conf += "error_log " + error_log_ + " notice;\n";
  if (o.worker_shutdown_timeout > 0)
    conf += "worker_shutdown_timeout " + std::to_string(o.worker_shutdown_timeout) + "s;\n";
  conf += "events { worker_connections 4096; }\n";
  conf += "http {\n";
  conf += "    access_log off;\n";
  conf += "    client_body_temp_path " + t + "body;\n    proxy_temp_path " + t + "proxy;\n";
  conf += "    fastcgi_temp_path " + t + "fastcgi;\n    uwsgi_temp_path " + t + "uwsgi;\n";
  conf += "    scgi_temp_path " + t + "scgi;\n";
  conf += "    include " + upstream_conf_ + ";\n";
  conf += "    server {\n";
  conf += "        listen " + o.listen_address + ":" + std::to_string(port_) + ";\n";
  conf += "        include " + maintenance_conf_ + ";\n";
  conf += o.server_extra;
  conf += "        location / {\n";
  conf += "            proxy_pass http://api;\n";
  conf += "            proxy_next_upstream off;\n";
  conf += "        }\n";
  conf += "    }\n";
  conf += "}\n";
  Write(main_conf_, conf);
  Write(upstream_conf_, o.upstream_conf.empty() ? "upstream api {\n    server 127.0.0.1:1;\n}\n" : o.upstream_conf);
  Write(maintenance_conf_, "");
}

NginxServer::~NginxServer() { Stop(); }

bool NginxServer::Start(std::string* why) {
  std::string bin = Binary();
  if (bin.empty()) {
    *why = "nginx is not installed (Debian package nginx-light)";
    return false;
  }
  sys::ProcessResult r = sys::RunProcess(
      {.argv = Command({"-p", dir_, "-c", main_conf_, "-e", error_log_}), .timeout = std::chrono::milliseconds(10000)});
  if (!r.ok()) {
    *why = "nginx did not start: " + r.err + r.out;
    return false;
  }
  started_ = true;
  // The master listens (and writes its pid file) before it forks the workers:
  // a test that records the workers must not see half of them.
  bool up = WaitFor([&] {
    pid_t master = MasterPid();
    return master > 0 && sys::TcpConnect(client_address_, port_, std::chrono::milliseconds(200)).ok &&
           sys::ChildPids(master).size() >= static_cast<size_t>(worker_processes_);
  }, std::chrono::milliseconds(5000));
  if (!up) {
    *why = "nginx started but does not accept on " + client_address_ + ":" + std::to_string(port_) + " with " +
           std::to_string(worker_processes_) + " worker(s) within 5 s: " + ReadAll(error_log_);
    Stop();
    return false;
  }
  return true;
}

void NginxServer::StartOrSkip() {
  std::string why;
  bool ok = Start(&why);
  SkipUnless(ok, why);
}

pid_t NginxServer::MasterPid() const {
  auto pid = sys::ReadPidFile(pid_file_);
  return pid && sys::ProcessAlive(*pid) ? *pid : 0;
}

std::vector<std::string> NginxServer::Command(const std::vector<std::string>& args) const {
  std::vector<std::string> argv;
  if (!netns_.empty()) argv = {"ip", "netns", "exec", netns_};
  argv.push_back(Binary());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::string NginxServer::url(const std::string& path) const {
  return "http://" + client_address_ + ":" + std::to_string(port_) + path;
}

void NginxServer::Stop() {
  if (!started_) return;
  started_ = false;
  pid_t pid = MasterPid();
  if (pid <= 0) return;
  std::vector<pid_t> workers = sys::ChildPids(pid);
  ::kill(pid, SIGTERM);
  if (!WaitFor([&] { return !sys::ProcessAlive(pid); }, std::chrono::milliseconds(5000))) {
    ::kill(pid, SIGKILL);
    WaitFor([&] { return !sys::ProcessAlive(pid); }, std::chrono::milliseconds(2000));
  }
  // Workers of a killed master: nothing else would stop them.
  for (pid_t w : workers)
    if (sys::ProcessAlive(w)) ::kill(w, SIGKILL);
}

}  // namespace hoist::test

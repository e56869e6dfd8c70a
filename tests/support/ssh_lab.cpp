#include "support/ssh_lab.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "sys/probe.h"
#include "sys/process.h"
#include "sys/service.h"

namespace hoist::test {
namespace {

namespace fs = std::filesystem;

sys::ProcessResult Cmd(std::vector<std::string> argv) {
  sys::ProcessSpec p;
  p.argv = std::move(argv);
  p.timeout = std::chrono::seconds(20);
  return sys::RunProcess(p);
}

bool Ok(std::vector<std::string> argv, std::string* why = nullptr) {
  std::string shown;
  for (const auto& a : argv) shown += (shown.empty() ? "" : " ") + a;
  try {
    auto r = Cmd(std::move(argv));
    if (r.ok()) return true;
    if (why) *why = shown + ": " + r.err;
  } catch (const std::exception& e) {
    if (why) *why = shown + ": " + e.what();
  }
  return false;
}

bool Accepts(const std::string& address, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

// A namespace is kept alive by any process in it, with its links and their
// addresses in our namespace: deleting its name alone would leak them.
void KillAll(const std::string& netns) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    auto r = Cmd({"ip", "netns", "pids", netns});
    std::istringstream in(r.out);
    bool any = false;
    for (int p; in >> p; any = true) ::kill(p, SIGKILL);
    if (!any || std::chrono::steady_clock::now() > deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Namespaces left by a test process that died (their names carry its pid):
// the hosts' and the LAN's, which takes the bridge and the gateway link.
void RemoveStale() {
  auto r = Cmd({"ip", "netns", "list"});
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    std::string ns = line.substr(0, line.find(' '));
    if (ns.rfind("hoist-", 0) != 0) continue;
    int pid = std::atoi(ns.c_str() + 6);
    // A zombie is dead too: a SIGKILLed test lingers as one until reaped.
    if (pid > 0 && !sys::ProcessAlive(pid)) {
      KillAll(ns);
      Cmd({"ip", "netns", "del", ns});
    }
  }
}

// The third octets in use in this namespace under prefix ("10.231." for the
// hosts' /30s, "10.232." for the LANs' gateways).
std::set<int> UsedSubnets(const std::string& prefix) {
  std::set<int> used;
  auto r = Cmd({"ip", "-o", "-4", "addr", "show"});
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    auto at = line.find(" " + prefix);
    if (at != std::string::npos) used.insert(std::atoi(line.c_str() + at + 1 + prefix.size()));
  }
  return used;
}

std::string FirstTwoFields(const std::string& pub) {
  std::istringstream in(pub);
  std::string type, key;
  in >> type >> key;
  return type + " " + key;
}

}  // namespace

SshLab::SshLab(std::vector<std::string> names, int max_sessions) : max_sessions_(max_sessions) {
  SkipUnless(::geteuid() == 0, "network namespaces for the test hosts need root");
  SkipUnless(::access("/usr/sbin/sshd", X_OK) == 0, "no /usr/sbin/sshd (Debian package openssh-server)");
  SkipUnless(::access("/usr/bin/ssh", X_OK) == 0, "no /usr/bin/ssh (Debian package openssh-client)");
  std::string why;
  SkipUnless(Ok({"ip", "netns", "list"}, &why), "iproute2's ip netns does not work here: " + why);
  // sshd refuses to start without its privilege separation directory.
  ::mkdir("/run/sshd", 0755);

  std::string client = dir_ / "client";
  fs::create_directories(client);
  SkipUnless(Ok({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hoist-lab", "-f", client + "/id_ed25519"}, &why),
             "ssh-keygen: " + why);
  WriteFile(client + "/authorized_keys", ReadAll(client + "/id_ed25519.pub"));
  known_hosts_ = client + "/known_hosts";
  ssh_config_ = client + "/ssh_config";
  WriteFile(ssh_config_, "Host *\n  User root\n  IdentityFile " + client + "/id_ed25519\n  IdentitiesOnly yes\n" +
                             "  UserKnownHostsFile " + known_hosts_ + "\n  GlobalKnownHostsFile /dev/null\n" +
                             "  UpdateHostKeys no\n");

  REQUIRE(names.size() <= 253);  // a /24 for the LAN

  // Subnet choice and link set-up under one lock: two test processes at
  // once must not pick the same /30 or /24.
  int lock = ::open("/tmp/hoist-sshlab.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  auto unlock_and_skip = [&](const std::string& reason) {
    if (lock >= 0) ::close(lock);
    SkipUnless(false, reason);
  };
  RemoveStale();
  std::set<int> used = UsedSubnets("10.231.");
  std::set<int> used_lans = UsedSubnets("10.232.");
  int m = 0;
  while (used_lans.count(m)) ++m;
  if (m > 255) unlock_and_skip("no free 10.232.<m>.0/24 for the test hosts' LAN");
  // Numbered: two labs of one process (with other host names) coexist.
  static int labs = 0;
  std::string k = std::to_string(labs++);
  std::string tag = std::to_string(::getpid() % 100000);
  lan_prefix_ = "10.232." + std::to_string(m);
  lan_netns_ = "hoist-" + std::to_string(::getpid()) + "_lan" + k;  // "_": never a host's "-<name>"
  std::string bridge = "hb" + tag, gw_link = "hg" + tag + "l" + k;
  if (!(Ok({"ip", "netns", "add", lan_netns_}, &why) &&
        Ok({"ip", "-n", lan_netns_, "link", "add", bridge, "type", "bridge"}, &why) &&
        Ok({"ip", "-n", lan_netns_, "link", "set", bridge, "up"}, &why) &&
        Ok({"ip", "link", "add", gw_link, "type", "veth", "peer", "name", "gw", "netns", lan_netns_}, &why) &&
        Ok({"ip", "-n", lan_netns_, "link", "set", "gw", "master", bridge, "up"}, &why) &&
        Ok({"ip", "addr", "add", lan_gateway() + "/24", "dev", gw_link}, &why) &&
        Ok({"ip", "link", "set", gw_link, "up"}, &why))) {
    unlock_and_skip("cannot build the test hosts' LAN (a bridge in namespace " + lan_netns_ + "): " + why);
  }
  int n = 1;
  for (const auto& name : names) {
    while (used.count(n)) ++n;
    used.insert(n);
    Host h;
    h.name = name;
    h.netns = "hoist-" + std::to_string(::getpid()) + "-" + name;
    h.address = "10.231." + std::to_string(n) + ".2";
    h.lan_address = lan_prefix_ + "." + std::to_string(hosts_.size() + 2);
    h.dir = dir_ / ("host-" + name);
    h.home = h.dir + "/home";
    h.cache = h.home + "/.cache";
    fs::create_directories(h.dir);
    fs::create_directories(h.cache);
    std::string veth = "hl" + std::to_string(::getpid() % 100000) + "n" + std::to_string(n);
    std::string gw = "10.231." + std::to_string(n) + ".1";
    bool up = Ok({"ip", "netns", "add", h.netns}, &why) &&
              Ok({"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns}, &why) &&
              Ok({"ip", "addr", "add", gw + "/30", "dev", veth}, &why) && Ok({"ip", "link", "set", veth, "up"}, &why) &&
              Ok({"ip", "-n", h.netns, "addr", "add", h.address + "/30", "dev", "eth0"}, &why) &&
              Ok({"ip", "-n", h.netns, "link", "set", "eth0", "up"}, &why) &&
              Ok({"ip", "-n", h.netns, "link", "set", "lo", "up"}, &why);
    std::string port = "p" + std::to_string(hosts_.size());
    bool lan = up &&
               Ok({"ip", "-n", lan_netns_, "link", "add", port, "type", "veth", "peer", "name", "lan0", "netns", h.netns},
                  &why) &&
               Ok({"ip", "-n", lan_netns_, "link", "set", port, "master", bridge, "up"}, &why) &&
               Ok({"ip", "-n", h.netns, "addr", "add", h.lan_address + "/24", "dev", "lan0"}, &why) &&
               Ok({"ip", "-n", h.netns, "link", "set", "lan0", "up"}, &why);
    hosts_.push_back(h);
    if (!up) unlock_and_skip("cannot build the test hosts' network: " + why);
    if (!lan) unlock_and_skip("cannot join lab host " + name + " to the LAN: " + why);
    SkipUnless(Ok({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", h.dir + "/host_ed25519"}, &why),
               "ssh-keygen: " + why);
  }
  if (lock >= 0) ::close(lock);
  WriteKnownHosts();
  for (const auto& h : hosts_) StartSshd(h.name);
}

SshLab::~SshLab() {
  for (auto& h : hosts_) {
    if (h.sshd_pid > 0) StopSshd(h.name);
    KillAll(h.netns);  // what Spawn started, and whatever those started
    Cmd({"ip", "netns", "del", h.netns});  // takes its veth pairs with it
  }
  // Takes the bridge and every LAN link with it, the gateway's too.
  if (!lan_netns_.empty()) Cmd({"ip", "netns", "del", lan_netns_});
}

sys::ProcessResult SshLab::Exec(const std::string& name, std::vector<std::string> argv,
                                std::chrono::milliseconds timeout) {
  sys::ProcessSpec p;
  p.argv = {"ip", "netns", "exec", host(name).netns};
  p.argv.insert(p.argv.end(), argv.begin(), argv.end());
  p.timeout = timeout;
  return sys::RunProcess(p);
}

pid_t SshLab::Spawn(const std::string& name, std::vector<std::string> argv, const std::string& log_file) {
  sys::ServiceSpec s;
  s.name = name + ": " + (argv.empty() ? "" : argv[0]);
  s.argv = {"ip", "netns", "exec", host(name).netns};
  s.argv.insert(s.argv.end(), argv.begin(), argv.end());
  s.pid_file = dir_ / ("spawned-" + std::to_string(++spawned_) + ".pid");
  s.log_file = log_file;
  return sys::StartService(s);
}

SshLab::Host& SshLab::Mutable(const std::string& name) {
  for (auto& h : hosts_) {
    if (h.name == name) return h;
  }
  FAIL("no lab host " << name);
  return hosts_.front();
}

const SshLab::Host& SshLab::host(const std::string& name) const { return const_cast<SshLab*>(this)->Mutable(name); }

std::string SshLab::Target(const std::string& name) const { return "root@" + host(name).address; }

void SshLab::WriteKnownHosts() {
  std::string text;
  for (const auto& h : hosts_) {
    bool forgotten = false;
    for (const auto& f : forgotten_) forgotten = forgotten || f == h.name;
    if (!forgotten) text += h.address + " " + FirstTwoFields(ReadAll(h.dir + "/host_ed25519.pub")) + "\n";
  }
  WriteFile(known_hosts_, text);
}

void SshLab::StartSshd(const std::string& name) {
  Host& h = Mutable(name);
  WriteFile(h.dir + "/sshd_config",
            "ListenAddress " + h.address + ":22\nHostKey " + h.dir + "/host_ed25519\nPidFile " + h.dir +
                "/sshd.pid\nAuthorizedKeysFile " + dir_ / "client/authorized_keys" +
                "\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "UsePAM no\nStrictModes no\nMaxSessions " +
                std::to_string(max_sessions_) + "\nMaxStartups 100\nLogLevel INFO\n" +
                "SetEnv HOME=" + h.home + " XDG_CACHE_HOME=" + h.cache + "\n");
  std::string log = h.dir + "/sshd.log";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/usr/sbin/ip", "ip", "netns", "exec", h.netns.c_str(), "/usr/sbin/sshd", "-D", "-f",
            (h.dir + "/sshd_config").c_str(), "-E", log.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  REQUIRE(pid > 0);
  h.sshd_pid = pid;
  // Ready when it accepts on its address (or dead: say why).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!Accepts(h.address, 22)) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      h.sshd_pid = 0;
      SkipUnless(false, "sshd for lab host " + name + " exited: " + ReadAll(log));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      SkipUnless(false, "sshd for lab host " + name + " did not accept on " + h.address + ":22: " + ReadAll(log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void SshLab::StopSshd(const std::string& name) {
  Host& h = Mutable(name);
  if (h.sshd_pid <= 0) return;
  ::kill(h.sshd_pid, SIGTERM);  // ip netns exec execs sshd: the pid is sshd's
  int status = 0;
  ::waitpid(h.sshd_pid, &status, 0);
  h.sshd_pid = 0;
  // Connections it already accepted live on in their own processes.
  auto r = Cmd({"ip", "netns", "pids", h.netns});
  std::istringstream in(r.out);
  for (int p; in >> p;) ::kill(p, SIGKILL);
}

void SshLab::ChangeHostKey(const std::string& name) {
  Host& h = Mutable(name);
  bool was_running = h.sshd_pid > 0;
  if (was_running) StopSshd(name);
  fs::remove(h.dir + "/host_ed25519");
  fs::remove(h.dir + "/host_ed25519.pub");
  REQUIRE(Ok({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", h.dir + "/host_ed25519"}));
  if (was_running) StartSshd(name);
  // known_hosts keeps the old key: that is the point.
}

void SshLab::ForgetHostKey(const std::string& name) {
  forgotten_.push_back(name);
  WriteKnownHosts();
}

int SshLab::Logins(const std::string& name) const {
  std::string log = ReadAll(host(name).dir + "/sshd.log");
  int n = 0;
  for (size_t at = 0; (at = log.find("Accepted publickey", at)) != std::string::npos; ++at) ++n;
  return n;
}

}  // namespace hoist::test

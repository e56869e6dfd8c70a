#include "support/dockerd.h"

#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "net/http.h"
#include "net/tar.h"
#include "support/support.h"
#include "sys/fs.h"

namespace hoist::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kImage = "hoist-test/busybox:1";
constexpr const char* kBusybox = "/bin/busybox";

std::string FindProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path ? path : "") + ":/usr/sbin:/sbin:/usr/bin:/bin";
  std::stringstream ss(dirs);
  std::string d;
  while (std::getline(ss, d, ':')) {
    if (d.empty()) continue;
    std::string p = d + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::string LogTail(const std::string& path) {
  std::string all;
  try {
    all = sys::ReadFile(path);
  } catch (const Error&) {
    return "(no log)";
  }
  // The lines that say why, else the last few lines.
  std::vector<std::string> lines, errors;
  std::stringstream ss(all);
  for (std::string line; std::getline(ss, line);) {
    lines.push_back(line);
    if (line.find("level=error") != std::string::npos || line.find("level=fatal") != std::string::npos ||
        line.find("failed to start daemon") != std::string::npos) {
      errors.push_back(line);
    }
  }
  auto& pick = errors.empty() ? lines : errors;
  std::string out;
  for (size_t i = pick.size() > 4 ? pick.size() - 4 : 0; i < pick.size(); ++i) out += "\n  " + pick[i];
  return out;
}

/// A static executable has no PT_INTERP program header (no ld-linux).
bool IsStaticElf(const std::string& path) {
  std::string bin;
  try {
    bin = sys::ReadFile(path);
  } catch (const Error&) {
    return false;
  }
  if (bin.size() < sizeof(Elf64_Ehdr) || bin.compare(0, 4, ELFMAG) != 0 || bin[EI_CLASS] != ELFCLASS64) return false;
  Elf64_Ehdr eh;
  std::memcpy(&eh, bin.data(), sizeof eh);
  for (size_t i = 0; i < eh.e_phnum; ++i) {
    size_t off = eh.e_phoff + i * eh.e_phentsize;
    if (off + sizeof(Elf64_Phdr) > bin.size()) return false;
    Elf64_Phdr ph;
    std::memcpy(&ph, bin.data() + off, sizeof ph);
    if (ph.p_type == PT_INTERP) return false;
  }
  return true;
}

bool Ping(const std::string& socket) {
  net::HttpRequest req;
  req.url = "http://localhost/_ping";
  req.unix_socket = socket;
  req.timeout = milliseconds(2000);
  net::HttpResponse r = net::Send(req);
  return r.ok() && r.status == 200;
}

/// Mounts dockerd may leave under dir (the netns bind mount, overlays after
/// a KILL) would make removing the temp dir fail: detach them first.
void UnmountUnder(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::vector<std::string> points;
  for (std::string line; std::getline(in, line);) {
    std::stringstream ss(line);
    std::string id, parent, dev, root, point;
    ss >> id >> parent >> dev >> root >> point;
    if (point.starts_with(dir + "/")) points.push_back(point);
  }
  std::sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  for (const auto& p : points) ::umount2(p.c_str(), MNT_DETACH);
}

}  // namespace

Dockerd& Dockerd::Shared() {
  static std::unique_ptr<Dockerd> instance;
  static std::string failure;
  if (instance) return *instance;
  if (!failure.empty()) SkipUnless(false, failure);

  std::unique_ptr<Dockerd> d(new Dockerd());
  std::string dockerd = FindProgram("dockerd");
  if (::geteuid() != 0) {
    failure = "dockerd needs root to run here";
  } else if (dockerd.empty()) {
    failure = "dockerd not found (install the Debian package docker.io)";
  } else if (::access(kBusybox, X_OK) != 0 || !IsStaticElf(kBusybox)) {
    failure = "the test image needs a static /bin/busybox (install the Debian package busybox-static)";
  }
  if (failure.empty()) {
    char tmpl[] = "/tmp/hoist-dockerd-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    d->dir_ = tmpl;
    d->socket_ = d->dir_ + "/docker.sock";
    std::vector<std::string> args = {dockerd,
                                     "--host", "unix://" + d->socket_,
                                     "--data-root", d->dir_ + "/data",
                                     "--exec-root", d->dir_ + "/exec",
                                     "--pidfile", d->dir_ + "/docker.pid",
                                     // No docker0 bridge, no iptables/ip6tables rules: containers use
                                     // network "host" or "none"; nothing of the host network changes.
                                     "--bridge=none", "--iptables=false", "--ip6tables=false",
                                     "--ip-masq=false", "--shutdown-timeout=2", "--log-level=warn"};
    // e.g. HOIST_TEST_DOCKERD_ARGS="--storage-driver=vfs" where overlay2 cannot work.
    if (const char* extra = std::getenv("HOIST_TEST_DOCKERD_ARGS")) {
      std::stringstream ss(extra);
      for (std::string a; ss >> a;) args.push_back(a);
    }
    std::string log = d->dir_ + "/dockerd.log";
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a crashed test run does not leave dockerd behind
      int null_fd = ::open("/dev/null", O_RDONLY);
      int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(null_fd, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    d->pid_ = pid;
    auto until = std::chrono::steady_clock::now() + seconds(60);
    while (true) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        d->pid_ = -1;
        failure = "dockerd exited while starting:" + LogTail(log);
        break;
      }
      if (Ping(d->socket_)) break;
      if (std::chrono::steady_clock::now() > until) {
        failure = "dockerd did not answer /_ping within 60 s:" + LogTail(log);
        break;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
  }
  if (!failure.empty()) {
    d.reset();  // stops what was started, removes the temp dir
    SkipUnless(false, failure);
  }
  instance = std::move(d);
  return *instance;
}

Dockerd::Dockerd() = default;

Dockerd::~Dockerd() { Stop(); }

net::DockerClient Dockerd::Client() const { return net::DockerClient(socket_, net::Send); }

const std::string& Dockerd::BusyboxImage() {
  if (!image_.empty()) return image_;
  // No RUN step: building needs no container, so no network either.
  TempDir ctx("docker-ctx");
  WriteFile(ctx / "Dockerfile",
            "FROM scratch\n"
            "COPY rootfs/ /\n"
            "CMD [\"/bin/busybox\", \"sleep\", \"3600\"]\n");
  WriteFile(ctx / "rootfs/bin/busybox", sys::ReadFile(kBusybox));
  ::chmod((ctx / "rootfs/bin/busybox").c_str(), 0755);
  std::filesystem::create_directories(ctx / "rootfs/tmp");
  ::chmod((ctx / "rootfs/tmp").c_str(), 01777);
  net::DockerClient client = Client();
  net::BuildResult r = client.Build(net::TarDirectory(ctx.path), {.tag = kImage});
  REQUIRE_MESSAGE(r.id.starts_with("sha256:"), r.log);
  image_ = kImage;
  return image_;
}

void Dockerd::Stop() {
  if (pid_ > 0) {
    // Containers first: a container whose PID 1 ignores SIGTERM would hold
    // dockerd's shutdown, and its shim would outlive dockerd.
    try {
      net::DockerClient client = Client();
      for (const auto& c : client.ListContainers(true)) client.Remove(c.value("Id", ""), true, true);
    } catch (const std::exception&) {
    }
    ::kill(pid_, SIGTERM);
    auto until = std::chrono::steady_clock::now() + seconds(20);
    bool exited = false;
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    if (!exited) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
  if (!dir_.empty()) {
    UnmountUnder(dir_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
}

}  // namespace hoist::test

#include "net/ssh.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "core/secrets.h"

namespace hoist::net {
namespace {

bool Has(const std::string& text, const char* needle) { return text.find(needle) != std::string::npos; }

std::string ReadLog(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The last non-empty line: ssh's own reason, after any warnings.
std::string LastLine(const std::string& text) {
  std::string last, line;
  std::istringstream in(text);
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) last = line;
  }
  return last;
}

}  // namespace

std::string ShellQuote(const std::string& arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") ==
                          std::string::npos) {
    return arg;
  }
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

SshHost::SshHost(SshHostSpec spec, std::string control_dir) : spec_(std::move(spec)) {
  if (spec_.name.empty() || spec_.name.size() > 40 ||
      spec_.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
          std::string::npos) {
    throw Error("ssh", "invalid",
                fmt::format("host name \"{}\" must be 1 to 40 letters, digits, '_' or '-'", spec_.name));
  }
  if (spec_.target.empty()) {
    throw Error("ssh", "invalid", "a host needs a name and an ssh target (user@host or an ~/.ssh/config alias)");
  }
  if (spec_.target[0] == '-') {
    throw Error("ssh", "invalid", fmt::format("host {}: ssh target \"{}\" starts with '-'", spec_.name, spec_.target));
  }
  if (spec_.max_channels < 1) spec_.max_channels = 1;
  if (::mkdir(control_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw Error("ssh", "failed",
                fmt::format("cannot create the ssh control dir {}: {}", control_dir, std::strerror(errno)));
  }
  struct stat st {};
  if (::stat(control_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || (st.st_mode & 077) != 0 ||
      st.st_uid != ::geteuid()) {
    throw Error("ssh", "insecure",
                fmt::format("the ssh control dir {} must be a directory of this user with mode 0700 (others could "
                            "use its sockets to run commands as you)",
                            control_dir));
  }
  // Named after the host (not %C) so that Run can see when the master has
  // gone (ControlPersist expired) and reconnect, instead of ssh silently
  // making a full login per command.
  control_path_ = control_dir + "/" + spec_.name;
  if (control_path_.size() > 100) {
    throw Error("ssh", "invalid",
                fmt::format("the ssh control socket path {} is too long for a unix socket: use a shorter state dir",
                            control_path_));
  }
}

bool SshHost::MasterAlive() const {
  struct stat st {};
  return ::stat(control_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

SshHost::~SshHost() {
  try {
    Close();
  } catch (...) {
  }
}

std::vector<std::string> SshHost::BaseArgv() const {
  std::vector<std::string> a = {"ssh"};
  if (!spec_.config_file.empty()) a.insert(a.end(), {"-F", spec_.config_file});
  if (spec_.port > 0) a.insert(a.end(), {"-p", std::to_string(spec_.port)});
  a.insert(a.end(), {"-o", "BatchMode=yes",  // never a prompt: no password, no "accept this key?"
                     "-o", "StrictHostKeyChecking=yes", "-o",
                     "ConnectTimeout=" + std::to_string(spec_.connect_timeout.count()), "-o",
                     "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3", "-o", "ControlPath=" + control_path_});
  return a;
}

void SshHost::ThrowSshFailure(const std::string& doing, const sys::ProcessResult& r) const {
  const std::string& text = r.err;
  std::string who = fmt::format("host {} ({})", spec_.name, spec_.target);
  std::string reason = Mask(LastLine(text));
  if (r.timed_out) throw Error("ssh", "unreachable", fmt::format("{}: {} timed out", who, doing));
  if (Has(text, "REMOTE HOST IDENTIFICATION HAS CHANGED")) {
    throw Error("ssh", "host_key_changed",
                fmt::format("{}: its host key changed since it was recorded in known_hosts: either the host was "
                            "reinstalled or someone is in the middle. Check the new key's fingerprint with the host's "
                            "owner, then remove the old one (ssh-keygen -R HOST) and add the new one",
                            who));
  }
  if (Has(text, "Host key verification failed") || Has(text, "No ED25519 host key is known") ||
      Has(text, "host key is known for")) {
    throw Error("ssh", "unknown_host_key",
                fmt::format("{}: its host key is not in known_hosts and hoist never accepts one silently. Check its "
                            "fingerprint (ssh-keyscan HOST | ssh-keygen -lf -) with the host's owner and add it to "
                            "~/.ssh/known_hosts",
                            who));
  }
  if (Has(text, "Permission denied")) {
    throw Error("ssh", "auth_failed",
                fmt::format("{}: the login was refused ({}). hoist logs in with keys only (BatchMode): load the key "
                            "into ssh-agent or name it with IdentityFile in ~/.ssh/config",
                            who, reason));
  }
  if (Has(text, "Connection refused") || Has(text, "No route to host") || Has(text, "Connection timed out") ||
      Has(text, "Could not resolve hostname") || Has(text, "Network is unreachable") ||
      Has(text, "Connection closed by") || Has(text, "Connection reset")) {
    throw Error("ssh", "unreachable", fmt::format("{}: cannot reach it: {}", who, reason));
  }
  throw Error("ssh", "failed",
              fmt::format("{}: {} failed (ssh exit {}): {}", who, doing, r.exit_code, reason.empty() ? "no message" : reason));
}

void SshHost::Connect() {
  // One master per host: two threads finding it gone start one between them.
  std::lock_guard connecting(connect_mu_);
  if (MasterAlive()) {
    connected_ = true;
    return;
  }
  std::string log = control_path_ + ".log";
  ::unlink(log.c_str());
  std::vector<std::string> argv = BaseArgv();
  // -f: ssh returns once authenticated and leaves the master running for
  // ControlPersist; its messages go to the log, not a pipe it would hold.
  argv.insert(argv.end(), {"-o", "ControlMaster=yes", "-o", "ControlPersist=" + std::to_string(spec_.persist.count()),
                           "-E", log, "-N", "-f", "--", spec_.target});
  sys::ProcessSpec p;
  p.argv = argv;
  p.timeout = std::chrono::seconds(spec_.connect_timeout.count() + 5);
  sys::ProcessResult r = sys::RunProcess(p);
  if (r.exit_code != 0) {
    r.err += "\n" + ReadLog(log);
    ThrowSshFailure("connecting", r);
  }
  connected_ = true;
}

sys::ProcessResult SshHost::Run(const std::vector<std::string>& argv, const sys::ProcessSpec& io) {
  if (argv.empty()) throw Error("ssh", "invalid", fmt::format("host {}: an empty command", spec_.name));
  if (!connected_ || !MasterAlive()) Connect();
  ChannelSlot slot = TakeSlot();
  sys::ProcessSpec p = io;
  p.argv = ChannelArgv(argv);
  p.env.clear();
  p.cwd.clear();
  sys::ProcessResult r = sys::RunProcess(p);
  bool ssh_failed = r.exit_code == 255 &&
                    (Has(r.err, "ssh:") || Has(r.err, "Host key") || Has(r.err, "Permission denied") ||
                     Has(r.err, "Connection") || Has(r.err, "HOST IDENTIFICATION"));
  if (ssh_failed) connected_ = false;
  if (ssh_failed) ThrowSshFailure("running " + argv[0], r);
  return r;
}

ChannelSlot& ChannelSlot::operator=(ChannelSlot&& o) noexcept {
  if (this != &o) {
    Release();
    host_ = o.host_;
    o.host_ = nullptr;
  }
  return *this;
}

void ChannelSlot::Release() {
  if (!host_) return;
  std::lock_guard lock(host_->mu_);
  --host_->in_flight_;
  host_->slot_free_.notify_one();
  host_ = nullptr;
}

ChannelSlot SshHost::TakeSlot() {
  std::unique_lock lock(mu_);
  slot_free_.wait(lock, [&] { return in_flight_ < spec_.max_channels; });
  ++in_flight_;
  return ChannelSlot(this);
}

std::vector<std::string> SshHost::ChannelArgv(const std::vector<std::string>& argv) const {
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + ShellQuote(a);
  std::vector<std::string> out = BaseArgv();
  // ControlMaster=no: a channel of the master; never a second master.
  out.insert(out.end(), {"-o", "ControlMaster=no", "-T", "--", spec_.target, command});
  return out;
}

void SshHost::Close() {
  std::lock_guard connecting(connect_mu_);
  if (!connected_ && !MasterAlive()) return;
  connected_ = false;
  std::vector<std::string> argv = BaseArgv();
  argv.insert(argv.end(), {"-O", "exit", "--", spec_.target});
  sys::ProcessSpec p;
  p.argv = argv;
  p.timeout = std::chrono::seconds(5);
  sys::RunProcess(p);  // a master already gone is what we wanted
}

}  // namespace hoist::net

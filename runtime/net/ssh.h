// Reaching another host through the system's OpenSSH client: it honours
// ~/.ssh/config, known_hosts, agents and jump hosts, so hoist adds no SSH
// code of its own. One ControlMaster per host carries every command as a
// channel; host keys are never accepted silently (BatchMode,
// StrictHostKeyChecking=yes); channels in flight per host stay below
// sshd's MaxSessions, past which ssh would silently fall back to full
// logins.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sys/process.h"

namespace hoist::net {

struct SshHostSpec {
  std::string name;    ///< the host's name in hoist.lua ("web1"): in every message and the socket's name
  std::string target;  ///< what ssh connects to: "deploy@web1.internal", an ~/.ssh/config alias
  int port = 0;        ///< 0: ssh's own default (or the config's Port)
  /// An ssh_config file instead of ~/.ssh/config ("" = ssh's default).
  std::string config_file;
  /// Channels in flight at once (sshd's MaxSessions is 10 by default).
  int max_channels = 8;
  std::chrono::seconds connect_timeout{10};
  /// How long the master outlives its last use (ControlPersist).
  std::chrono::seconds persist{60};
};

class SshHost;

/// One of a host's channel slots, held for as long as this object lives
/// (movable). A long-lived channel (the agent's) holds one for its whole
/// life, so it counts against max_channels like any command.
class ChannelSlot {
 public:
  ChannelSlot() = default;
  explicit ChannelSlot(SshHost* host) : host_(host) {}
  ChannelSlot(ChannelSlot&& o) noexcept : host_(o.host_) { o.host_ = nullptr; }
  ChannelSlot& operator=(ChannelSlot&& o) noexcept;
  ChannelSlot(const ChannelSlot&) = delete;
  ChannelSlot& operator=(const ChannelSlot&) = delete;
  ~ChannelSlot() { Release(); }
  void Release();
  bool held() const { return host_ != nullptr; }

 private:
  SshHost* host_ = nullptr;
};

/// A host reached over one ControlMaster. Thread-safe: commands from
/// several threads share the master, at most max_channels at a time.
class SshHost {
 public:
  /// control_dir holds the control sockets: short (a unix socket path is
  /// limited to 107 bytes) and 0700, created if missing.
  SshHost(SshHostSpec spec, std::string control_dir);
  ~SshHost();  ///< stops the master (ssh -O exit)
  SshHost(const SshHost&) = delete;
  SshHost& operator=(const SshHost&) = delete;

  /// Opens the master connection. Throws Error{"ssh", code} naming the host
  /// and what to do: unknown_host_key, host_key_changed, auth_failed,
  /// unreachable, failed.
  void Connect();
  bool connected() const { return connected_; }

  /// Runs argv on the host through the master. Each argument is quoted for
  /// the remote shell (ssh sends one command line), so what the remote
  /// program receives is exactly argv. stdin, timeout and output limits as
  /// in sys::ProcessSpec (its argv, env and cwd are ignored). The remote
  /// program's non-zero exit is data; ssh's own failure (exit 255) throws
  /// as Connect does.
  sys::ProcessResult Run(const std::vector<std::string>& argv, const sys::ProcessSpec& io = {});

  /// Waits for a free channel slot and holds it (see ChannelSlot).
  ChannelSlot TakeSlot();
  /// The full ssh argv that runs argv on the host as one channel of the
  /// master (never a second master): BaseArgv, ControlMaster=no, -T, and
  /// argv quoted into the one remote command line (ShellQuote each). For a
  /// long-lived channel kept by the caller (sys::Coprocess); Connect first
  /// and hold a TakeSlot() for the channel's lifetime.
  std::vector<std::string> ChannelArgv(const std::vector<std::string>& argv) const;

  /// Stops the master; later commands reconnect.
  void Close();

  const SshHostSpec& spec() const { return spec_; }
  /// The ssh argv prefix every call uses (for diagnostics and tests).
  std::vector<std::string> BaseArgv() const;

 private:
  friend class ChannelSlot;
  bool MasterAlive() const;
  [[noreturn]] void ThrowSshFailure(const std::string& doing, const sys::ProcessResult& r) const;

  SshHostSpec spec_;
  std::string control_path_;
  std::atomic<bool> connected_ = false;
  std::mutex connect_mu_;  // Connect/Close
  std::mutex mu_;          // the channel slots
  std::condition_variable slot_free_;
  int in_flight_ = 0;
};

/// One argument quoted for a POSIX shell: 'it'\''s'.
std::string ShellQuote(const std::string& arg);

}  // namespace hoist::net

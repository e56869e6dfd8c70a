// A World that acts on another host: each call goes over an agent
// connection (net/agent_protocol.h) to `hoist agent --stdio` running there,
// started through the host's ssh ControlMaster (net/ssh.h) after
// net/agent_upload.h made sure the same hoist is there. The answers and
// errors are the agent's: an error keeps the area and code the call would
// have raised locally. Sleep waits here (only the waiting host sleeps).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/world.h"
#include "net/agent_protocol.h"
#include "net/agent_upload.h"
#include "net/ssh.h"
#include "sys/process.h"

namespace hoist::engine {

/// The client side of one agent conversation over two file descriptors
/// (which the caller keeps open). Calls are serialised: one in flight.
/// Each call carries the thread's step deadline (core/interrupt) and a
/// Ctrl-C while it waits sends the agent a cancel: the work there stops
/// as a local call would.
class AgentConnection {
 public:
  /// host names the other end in messages. diagnostics (optional) says why
  /// the other end went away (an ssh channel's stderr).
  AgentConnection(std::string host, int read_fd, int write_fd, std::function<std::string()> diagnostics = {},
                  std::string hoist_version = HOIST_VERSION);

  /// The hello exchange. Error{"agent","version_mismatch"} when the agent
  /// is another protocol or hoist version; "closed" when it ended first;
  /// "timeout" when it did not answer within timeout.
  void Hello(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  /// One call: its result's "ok" value (resp holds the answer's blobs).
  /// Throws the agent's error as a hoist::Error with its area and code,
  /// its message prefixed "host <name>: ";
  /// Error{"agent","closed"} (naming the host, with ssh's last words) when
  /// the agent went away.
  nlohmann::json Call(const std::string& method, nlohmann::json args, net::agent::Message& req,
                      net::agent::Message* resp);
  nlohmann::json Call(const std::string& method, nlohmann::json args);

  const std::string& host() const { return host_; }
  /// The agent's hello ({"host", "pid", "hoist", "protocol"}).
  const nlohmann::json& agent_hello() const { return agent_hello_; }

 private:
  [[noreturn]] void ThrowClosed(const std::string& doing);
  std::string host_;
  int write_fd_;
  int read_fd_;
  net::agent::FrameReader reader_;
  std::function<std::string()> diagnostics_;
  std::string hoist_version_;
  nlohmann::json agent_hello_;
  int64_t next_id_ = 1;
  std::mutex mu_;
};

class RemoteWorld : public World {
 public:
  /// A world over an established conversation (its hello done). owned is
  /// kept alive as long as this world (the ssh channel, its slot).
  RemoteWorld(std::unique_ptr<AgentConnection> conn, std::shared_ptr<void> owned = nullptr);
  ~RemoteWorld() override;

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
  const char* mode() const override { return "real"; }
  std::string host() const override { return conn_->host(); }

  // Where a SQLite file lives on that host (db/backup.h's functions, run
  // there). Paths are the host's, absolute. Each returns the JSON the
  // agent answered; errors keep db/backup's area and code.
  /// {path, manifest_path, sha256, size, seconds, manifest, pruned}.
  nlohmann::json BackupSqlite(const std::string& db_path, const std::string& dir, const nlohmann::json& options = {});
  /// VerifyResult::ToJson.
  nlohmann::json VerifyBackup(const std::string& file, bool deep = false);
  /// {ok, engine, method, checked, problems, notes, summary}.
  nlohmann::json IntegrityCheck(const std::string& db_path, bool quick = false);

  AgentConnection& connection() { return *conn_; }

 private:
  std::unique_ptr<AgentConnection> conn_;
  std::shared_ptr<void> owned_;
};

/// The RemoteWorld w is or wraps (through World::inner), nullptr when w
/// acts on this machine or is simulated or replayed.
RemoteWorld* AsRemote(World& w);

/// Reaches host's agent: Connect, EnsureAgent (upload when missing or
/// another version), then `<agent path> agent --stdio` as one long-lived
/// channel of the master holding one of the host's channel slots, and the
/// hello. install (optional) receives what EnsureAgent found and did.
/// Errors name the host: ssh's (net/ssh.h), the upload's
/// (net/agent_upload.h), version_mismatch, closed.
std::unique_ptr<RemoteWorld> ConnectRemoteWorld(net::SshHost& host, const net::AgentUploadOptions& upload = {},
                                                net::AgentInstall* install = nullptr);

}  // namespace hoist::engine

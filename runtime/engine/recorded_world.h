// Record and replay of the world seam. A real run wraps its world in a
// RecordingWorld, which journals every call with its response (or the
// error it raised); `hoist replay` wires a ReplayWorld that answers the
// same calls from that journal, in order, and stops at the first call that
// differs from the recording (the divergence). Time is part of it: the
// clock and sleeps are recorded too, so polling loops replay exactly.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/world.h"

namespace hoist::engine {

/// Receives (op, call, response) for each world call: response is
/// {"ok": <value>} or {"error": {area, code, message}}.
using CallSink = std::function<void(const std::string& op, const nlohmann::json& call, const nlohmann::json& response)>;

class RecordingWorld : public World {
 public:
  /// inner must outlive this world.
  RecordingWorld(World& inner, CallSink sink) : inner_(inner), sink_(std::move(sink)) {}

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
  const char* mode() const override { return inner_.mode(); }
  std::string host() const override { return inner_.host(); }
  bool parallel_calls() const override { return inner_.parallel_calls(); }
  World* inner() override { return &inner_; }

 private:
  /// Journals the call (with "host" when the inner world is not local).
  template <typename F>
  auto Call(const std::string& op, nlohmann::json call, F&& f);
  World& inner_;
  CallSink sink_;
};

/// One recorded call.
struct RecordedCall {
  std::string op;
  nlohmann::json call;
  nlohmann::json response;
  std::optional<int64_t> step;   ///< the step it was made in
  std::string step_name;
};

/// Where a replay left the recording.
struct Divergence {
  size_t index = 0;              ///< 0-based position in the recorded calls
  std::string expected;          ///< "ReadFile {"path":...}" or "(end of the recording)"
  std::string actual;            ///< likewise, or "(the replay made no more calls)"
  std::string step;              ///< the recorded call's step name ("" outside steps)
  std::string summary;           ///< when set, the whole text (an outcome that differs)
  std::string Text() const;
};

class ReplayWorld : public World {
 public:
  /// host: the host the replayed calls were made on; calls journaled
  /// without one (every call of an older journal) are "local".
  explicit ReplayWorld(std::vector<RecordedCall> calls, std::string host = "local")
      : calls_(std::move(calls)), host_(std::move(host)) {}

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
  const char* mode() const override { return "replay"; }
  std::string host() const override { return host_; }

  /// The first divergence: a call that differs, or calls left over at the end.
  std::optional<Divergence> Finish() const;
  size_t consumed() const { return next_; }
  size_t total() const { return calls_.size(); }

 private:
  /// The recorded response's "ok" value for this call; throws the recorded
  /// error, or Error{"replay","diverged"} when the call differs.
  nlohmann::json Next(const std::string& op, nlohmann::json call);
  std::vector<RecordedCall> calls_;
  std::string host_;
  size_t next_ = 0;
  std::optional<Divergence> divergence_;
};

/// The recorded calls of a journaled run (`hoist show --json` shape).
std::vector<RecordedCall> RecordedCalls(const nlohmann::json& run);

/// Databases are real in a replay (a copy), so their calls are not fed
/// back: this compares the outcome of each recorded db call (ok or failed,
/// and the error code) with the replay's, in order. Both are journaled runs
/// (`hoist show --json` shape); nullopt when every outcome is the same.
std::optional<Divergence> CompareDbOutcomes(const nlohmann::json& recorded, const nlohmann::json& replayed);

}  // namespace hoist::engine

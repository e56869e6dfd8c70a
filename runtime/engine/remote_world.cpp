#include "engine/remote_world.h"

#include <poll.h>

#include <cerrno>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "engine/world.h"

namespace hoist::engine {
namespace {

using json = nlohmann::json;
using net::agent::Message;
namespace agent = net::agent;

/// The last non-empty line (ssh's own reason, after any warnings).
std::string LastLine(const std::string& text) {
  std::string last, line;
  std::istringstream in(text);
  while (std::getline(in, line)) {
    line = Trim(line);
    if (!line.empty()) last = line;
  }
  return last;
}

/// What a RemoteWorld owns besides its conversation: the ssh channel
/// running the agent and the channel slot it holds.
struct Channel {
  net::ChannelSlot slot;
  std::unique_ptr<sys::Coprocess> agent;
  ~Channel() {
    // EOF on its stdin ends the agent; ssh then ends the channel.
    if (agent) agent->Wait(std::chrono::milliseconds(3000));
  }
};

}  // namespace

// ---- the conversation ------------------------------------------------------

AgentConnection::AgentConnection(std::string host, int read_fd, int write_fd, std::function<std::string()> diagnostics,
                                 std::string hoist_version)
    : host_(std::move(host)),
      write_fd_(write_fd),
      read_fd_(read_fd),
      reader_(read_fd, "the agent on host " + host_),
      diagnostics_(std::move(diagnostics)),
      hoist_version_(std::move(hoist_version)) {}

void AgentConnection::ThrowClosed(const std::string& doing) {
  std::string why = diagnostics_ ? LastLine(diagnostics_()) : "";
  throw Error("agent", "closed",
              fmt::format("host {}: the agent went away {}{}; check the host with hoist hosts, and its agent's "
                          "messages above",
                          host_, doing, why.empty() ? "" : " (" + Mask(why) + ")"));
}

void AgentConnection::Hello(std::chrono::milliseconds timeout) {
  std::lock_guard lock(mu_);
  try {
    agent::WriteFrame(write_fd_, agent::Hello(hoist_version_), "the agent on host " + host_);
  } catch (const Error& e) {
    if (e.code() == "closed") ThrowClosed("before the hello");
    throw;
  }
  // A host whose login hangs (a shell waiting for input, a stuck mount)
  // must not hang the run: the agent answers its hello at once.
  std::optional<Message> hello;
  try {
    hello = reader_.Read(timeout);
  } catch (const Error& e) {
    if (e.code() == "closed") ThrowClosed("before answering the hello");
    if (e.code() == "timeout") {
      throw Error("agent", "timeout",
                  fmt::format("host {}: the agent did not answer its hello within {} s; run the agent there by hand "
                              "(ssh HOST <agent path> agent --stdio < /dev/null) to see what it waits for",
                              host_, std::chrono::duration<double>(timeout).count()));
    }
    throw;
  }
  if (!hello) ThrowClosed("before answering the hello");
  agent::CheckHello(*hello, hoist_version_, host_, /*we_are_agent=*/false);
  agent_hello_ = hello->head;
}

json AgentConnection::Call(const std::string& method, json args, Message& req, Message* resp) {
  std::lock_guard lock(mu_);
  int64_t id = next_id_++;
  req.head = {{"type", "call"}, {"id", id}, {"method", method}, {"args", std::move(args)}};
  // The step's deadline travels with the call: the agent stops the work
  // there when it passes, as a local call would.
  if (Clock::time_point deadline = CurrentDeadline(); deadline != Clock::time_point::max()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    req.head["deadline_ms"] = std::max<int64_t>(1, left);
  }
  try {
    agent::WriteFrame(write_fd_, req, "the agent on host " + host_);
  } catch (const Error& e) {
    if (e.code() == "closed") ThrowClosed("before " + method);
    throw;
  }
  // Ctrl-C here reaches the call there: one cancel frame, then the agent's
  // answer (an interrupted process, an "interrupted" error) as usual.
  bool cancel_sent = false;
  for (;;) {
    pollfd p{read_fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, 50);
    if (ready > 0) break;
    if (ready < 0 && errno != EINTR) break;
    if (!cancel_sent && Interrupted()) {
      Message cancel;
      cancel.head = {{"type", "cancel"}, {"id", id}};
      try {
        agent::WriteFrame(write_fd_, cancel, "the agent on host " + host_);
      } catch (const Error&) {
        // Gone already: the read below says so.
      }
      cancel_sent = true;
    }
  }
  std::optional<Message> answer;
  try {
    answer = reader_.Read();
  } catch (const Error& e) {
    if (e.code() == "closed") ThrowClosed("while answering " + method);
    throw;
  }
  if (!answer) ThrowClosed("while answering " + method);
  if (answer->head.value("id", json()) != json(id)) {
    throw Error("agent", "protocol",
                fmt::format("host {}: the agent answered call {} where {} was expected: the conversation is out of "
                            "step (update hoist on both ends)",
                            host_, answer->head.value("id", json()).dump(), id));
  }
  if (answer->head.contains("error")) {
    // The area and code are the local call's; the message says where.
    Error e = agent::ErrorFrom(answer->head["error"]);
    std::string where = "host " + host_ + ": ";
    if (e.message().rfind(where, 0) == 0) throw e;
    throw Error(e.area(), e.code(), where + e.message());
  }
  json ok = answer->head.value("ok", json());
  if (resp) *resp = std::move(*answer);
  return ok;
}

json AgentConnection::Call(const std::string& method, json args) {
  Message req;
  return Call(method, std::move(args), req, nullptr);
}

// ---- the world -------------------------------------------------------------

RemoteWorld::RemoteWorld(std::unique_ptr<AgentConnection> conn, std::shared_ptr<void> owned)
    : conn_(std::move(conn)), owned_(std::move(owned)) {}

RemoteWorld::~RemoteWorld() {
  conn_.reset();
  owned_.reset();
}

sys::ProcessResult RemoteWorld::RunProcess(const sys::ProcessSpec& spec) {
  Message req, resp;
  json args = agent::ProcessSpecJson(spec, req);
  json ok = conn_->Call("RunProcess", std::move(args), req, &resp);
  return agent::ProcessResultFrom(ok, resp);
}

net::HttpResponse RemoteWorld::Http(const net::HttpRequest& request) {
  Message req, resp;
  json args = agent::HttpRequestJson(request, req);
  json ok = conn_->Call("Http", std::move(args), req, &resp);
  return agent::HttpResponseFrom(ok, resp);
}

std::string RemoteWorld::ReadFile(const std::string& path) {
  Message req, resp;
  json ok = conn_->Call("ReadFile", {{"path", path}}, req, &resp);
  return resp.BlobAt(ok.value("data", json()));
}

void RemoteWorld::WriteAtomic(const std::string& path, std::string_view data, mode_t mode) {
  Message req;
  json args = {{"path", path}, {"data", req.Blob(std::string(data))}, {"mode", mode}};
  conn_->Call("WriteAtomic", std::move(args), req, nullptr);
}

void RemoteWorld::WriteInPlace(const std::string& path, std::string_view data) {
  Message req;
  json args = {{"path", path}, {"data", req.Blob(std::string(data))}};
  conn_->Call("WriteInPlace", std::move(args), req, nullptr);
}

void RemoteWorld::MkdirP(const std::string& path, mode_t mode) { conn_->Call("MkdirP", {{"path", path}, {"mode", mode}}); }
bool RemoteWorld::Remove(const std::string& path, bool recursive) {
  return conn_->Call("Remove", {{"path", path}, {"recursive", recursive}}).get<bool>();
}
void RemoteWorld::Chmod(const std::string& path, mode_t mode) { conn_->Call("Chmod", {{"path", path}, {"mode", mode}}); }
sys::Stat RemoteWorld::StatPath(const std::string& path) {
  return agent::StatFrom(conn_->Call("StatPath", {{"path", path}}));
}
std::vector<std::string> RemoteWorld::ListDir(const std::string& path) {
  return conn_->Call("ListDir", {{"path", path}}).get<std::vector<std::string>>();
}
std::vector<std::string> RemoteWorld::Glob(const std::string& pattern) {
  return conn_->Call("Glob", {{"pattern", pattern}}).get<std::vector<std::string>>();
}
pid_t RemoteWorld::StartService(const sys::ServiceSpec& spec) {
  return conn_->Call("StartService", agent::ServiceSpecJson(spec)).get<pid_t>();
}
sys::StopResult RemoteWorld::StopService(const sys::ServiceSpec& spec, std::chrono::milliseconds grace) {
  json args = agent::ServiceSpecJson(spec);
  args["grace_ms"] = grace.count();
  return agent::StopResultFrom(conn_->Call("StopService", std::move(args)));
}
sys::ServiceStatus RemoteWorld::ServiceStatusOf(const sys::ServiceSpec& spec) {
  return agent::ServiceStatusFrom(conn_->Call("ServiceStatus", agent::ServiceSpecJson(spec)));
}
bool RemoteWorld::ProcessAlive(pid_t pid) { return conn_->Call("ProcessAlive", {{"pid", pid}}).get<bool>(); }
std::optional<pid_t> RemoteWorld::ReadPidFile(const std::string& path) {
  json j = conn_->Call("ReadPidFile", {{"path", path}});
  if (j.is_null()) return std::nullopt;
  return j.get<pid_t>();
}
std::vector<pid_t> RemoteWorld::ChildPids(pid_t pid) {
  return conn_->Call("ChildPids", {{"pid", pid}}).get<std::vector<pid_t>>();
}
std::string RemoteWorld::CmdLine(pid_t pid) { return conn_->Call("CmdLine", {{"pid", pid}}).get<std::string>(); }
void RemoteWorld::SendSignal(pid_t pid, int sig) { conn_->Call("SendSignal", {{"pid", pid}, {"signal", sig}}); }
sys::TcpResult RemoteWorld::TcpConnect(const std::string& host, int port, std::chrono::milliseconds timeout) {
  return agent::TcpResultFrom(
      conn_->Call("TcpConnect", {{"host", host}, {"port", port}, {"timeout_ms", timeout.count()}}));
}
double RemoteWorld::Monotonic() { return conn_->Call("Monotonic", json::object()).get<double>(); }
double RemoteWorld::Now() { return conn_->Call("Now", json::object()).get<double>(); }
void RemoteWorld::Sleep(double seconds, bool stoppable) {
  // Waiting needs no host: only this side waits.
  RealWorld().Sleep(seconds, stoppable);
}

json RemoteWorld::BackupSqlite(const std::string& db_path, const std::string& dir, const json& options) {
  json args = options.is_object() ? options : json::object();
  args["db"] = db_path;
  args["dir"] = dir;
  return conn_->Call("BackupSqlite", std::move(args));
}
json RemoteWorld::VerifyBackup(const std::string& file, bool deep) {
  return conn_->Call("BackupVerify", {{"file", file}, {"deep", deep}});
}
json RemoteWorld::IntegrityCheck(const std::string& db_path, bool quick) {
  return conn_->Call("IntegrityCheck", {{"db", db_path}, {"quick", quick}});
}

RemoteWorld* AsRemote(World& w) {
  for (World* at = &w; at; at = at->inner()) {
    if (auto* r = dynamic_cast<RemoteWorld*>(at)) return r;
  }
  return nullptr;
}

std::unique_ptr<RemoteWorld> ConnectRemoteWorld(net::SshHost& host, const net::AgentUploadOptions& upload,
                                                net::AgentInstall* install) {
  host.Connect();
  net::AgentInstall got = net::EnsureAgent(host, upload);
  if (install) *install = got;
  auto channel = std::make_shared<Channel>();
  channel->slot = host.TakeSlot();
  sys::CoprocessSpec spec;
  spec.argv = host.ChannelArgv({got.path, "agent", "--stdio"});
  channel->agent = std::make_unique<sys::Coprocess>(spec);
  sys::Coprocess* agent = channel->agent.get();
  auto conn = std::make_unique<AgentConnection>(
      host.spec().name, agent->stdout_fd(), agent->stdin_fd(), [agent] { return agent->StderrTail(); },
      upload.version);
  conn->Hello();
  return std::make_unique<RemoteWorld>(std::move(conn), std::move(channel));
}

}  // namespace hoist::engine

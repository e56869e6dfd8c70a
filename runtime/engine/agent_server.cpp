#include "engine/agent_server.h"

#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "db/backup.h"
#include "db/connection.h"
#include "engine/remote_db.h"
#include "net/agent_protocol.h"

namespace hoist::engine {
namespace {

using json = nlohmann::json;
using net::agent::Message;
namespace agent = net::agent;

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

using net::agent::Arg;

std::string Path(const json& a, const char* key, const std::string& method) {
  auto p = Arg<std::string>(a, key, method);
  if (p.empty() || p[0] != '/') {
    throw Error("agent", "invalid",
                fmt::format("{}: \"{}\" must be an absolute path on the host (the agent's working directory is "
                            "not the project's)",
                            method, p));
  }
  return p;
}

using Handler = std::function<json(const json& args, const Message& req, Message& resp)>;

std::map<std::string, Handler> Handlers(World& w) {
  std::map<std::string, Handler> h;
  h["RunProcess"] = [&w](const json& a, const Message& req, Message& resp) {
    return agent::ProcessResultJson(w.RunProcess(agent::ProcessSpecFrom(a, req)), resp);
  };
  h["Http"] = [&w](const json& a, const Message& req, Message& resp) {
    return agent::HttpResponseJson(w.Http(agent::HttpRequestFrom(a, req)), resp);
  };
  h["ReadFile"] = [&w](const json& a, const Message&, Message& resp) {
    return json{{"data", resp.Blob(w.ReadFile(Path(a, "path", "ReadFile")))}};
  };
  h["WriteAtomic"] = [&w](const json& a, const Message& req, Message&) {
    w.WriteAtomic(Path(a, "path", "WriteAtomic"), req.BlobAt(a.value("data", json())),
                  Arg<mode_t>(a, "mode", "WriteAtomic"));
    return json(true);
  };
  h["WriteInPlace"] = [&w](const json& a, const Message& req, Message&) {
    w.WriteInPlace(Path(a, "path", "WriteInPlace"), req.BlobAt(a.value("data", json())));
    return json(true);
  };
  h["MkdirP"] = [&w](const json& a, const Message&, Message&) {
    w.MkdirP(Path(a, "path", "MkdirP"), Arg<mode_t>(a, "mode", "MkdirP"));
    return json(true);
  };
  h["Remove"] = [&w](const json& a, const Message&, Message&) {
    return json(w.Remove(Path(a, "path", "Remove"), Arg<bool>(a, "recursive", "Remove")));
  };
  h["Chmod"] = [&w](const json& a, const Message&, Message&) {
    w.Chmod(Path(a, "path", "Chmod"), Arg<mode_t>(a, "mode", "Chmod"));
    return json(true);
  };
  h["StatPath"] = [&w](const json& a, const Message&, Message&) {
    return agent::StatJson(w.StatPath(Path(a, "path", "StatPath")));
  };
  h["ListDir"] = [&w](const json& a, const Message&, Message&) { return json(w.ListDir(Path(a, "path", "ListDir"))); };
  h["Glob"] = [&w](const json& a, const Message&, Message&) { return json(w.Glob(Path(a, "pattern", "Glob"))); };
  h["StartService"] = [&w](const json& a, const Message&, Message&) {
    return json(w.StartService(agent::ServiceSpecFrom(a)));
  };
  h["StopService"] = [&w](const json& a, const Message&, Message&) {
    return agent::StopResultJson(
        w.StopService(agent::ServiceSpecFrom(a), std::chrono::milliseconds(a.value("grace_ms", int64_t{10000}))));
  };
  h["ServiceStatus"] = [&w](const json& a, const Message&, Message&) {
    return agent::ServiceStatusJson(w.ServiceStatusOf(agent::ServiceSpecFrom(a)));
  };
  h["ProcessAlive"] = [&w](const json& a, const Message&, Message&) {
    return json(w.ProcessAlive(Arg<pid_t>(a, "pid", "ProcessAlive")));
  };
  h["ReadPidFile"] = [&w](const json& a, const Message&, Message&) {
    auto pid = w.ReadPidFile(Path(a, "path", "ReadPidFile"));
    return pid ? json(*pid) : json(nullptr);
  };
  h["ChildPids"] = [&w](const json& a, const Message&, Message&) {
    return json(w.ChildPids(Arg<pid_t>(a, "pid", "ChildPids")));
  };
  h["CmdLine"] = [&w](const json& a, const Message&, Message&) { return json(w.CmdLine(Arg<pid_t>(a, "pid", "CmdLine"))); };
  h["SendSignal"] = [&w](const json& a, const Message&, Message&) {
    w.SendSignal(Arg<pid_t>(a, "pid", "SendSignal"), Arg<int>(a, "signal", "SendSignal"));
    return json(true);
  };
  h["TcpConnect"] = [&w](const json& a, const Message&, Message&) {
    return agent::TcpResultJson(w.TcpConnect(Arg<std::string>(a, "host", "TcpConnect"), Arg<int>(a, "port", "TcpConnect"),
                                             std::chrono::milliseconds(a.value("timeout_ms", int64_t{1000}))));
  };
  h["Monotonic"] = [&w](const json&, const Message&, Message&) { return json(w.Monotonic()); };
  h["Now"] = [&w](const json&, const Message&, Message&) { return json(w.Now()); };

  // Where the SQLite file lives: the db/ functions themselves, not copies.
  h["BackupSqlite"] = [](const json& a, const Message&, Message&) {
    db::backup::CreateOptions o;
    o.dir = Path(a, "dir", "BackupSqlite");
    o.label = a.value("label", "backup");
    o.keep = a.value("keep", 0);
    o.compress = a.value("compress", 0);
    o.protect = a.value("protect", false);
    o.safety = a.value("safety", false);
    o.keep_safety = a.value("keep_safety", 0);
    o.reason = a.value("reason", "");
    if (a.contains("run_id") && a["run_id"].is_number_integer()) o.run_id = a["run_id"].get<int64_t>();
    auto r = db::backup::CreateSqlite(Path(a, "db", "BackupSqlite"), o);
    return json{{"path", r.path},     {"manifest_path", r.manifest_path}, {"sha256", r.sha256}, {"size", r.size},
                {"seconds", r.seconds}, {"manifest", r.manifest},           {"pruned", r.pruned}};
  };
  h["RestoreSqlite"] = [](const json& a, const Message&, Message&) {
    db::backup::RestoreOptions o;
    o.safety_backup = a.value("safety_backup", true);
    o.safety_dir = a.value("safety_dir", "");
    if (a.contains("run_id") && a["run_id"].is_number_integer()) o.run_id = a["run_id"].get<int64_t>();
    return db::backup::RestoreSqlite(Path(a, "file", "RestoreSqlite"), Path(a, "target", "RestoreSqlite"), o).ToJson();
  };
  h["BackupVerify"] = [](const json& a, const Message&, Message&) {
    db::backup::VerifyOptions o;
    o.deep = a.value("deep", false);
    return db::backup::Verify(Path(a, "file", "BackupVerify"), o).ToJson();
  };
  h["IntegrityCheck"] = [](const json& a, const Message&, Message&) {
    db::OpenOptions o;
    o.readonly = true;
    auto conn = db::Open("sqlite://" + Path(a, "db", "IntegrityCheck"), o);
    db::IntegrityReport r = conn->Integrity(a.value("quick", false));
    return json{{"ok", r.ok},           {"engine", r.engine},     {"method", r.method}, {"checked", r.checked},
                {"problems", r.problems}, {"notes", r.notes},       {"summary", r.Summary()}};
  };
  return h;
}

}  // namespace

int ServeAgent(int in_fd, int out_fd, World& world, const AgentServerOptions& options) {
  std::string host = options.host_name.empty() ? HostName() : options.host_name;
  std::string peer = "the hoist that started this agent";
  agent::FrameReader reader(in_fd, peer);
  auto handlers = Handlers(world);
  // The databases this conversation opened (db.open{host=}); reset when it
  // ends, which releases the leases still held and closes the files.
  std::optional<AgentDbHandles> dbs;
  dbs.emplace(host);
  for (const auto& m : AgentDbHandles::Methods()) {
    handlers[m] = [&dbs, m](const json& a, const Message& req, Message& resp) { return dbs->Call(m, a, req, resp); };
  }
  try {
    auto hello = reader.Read();
    if (!hello) return 0;
    Message answer = agent::Hello(options.hoist_version, {{"host", host}, {"pid", ::getpid()}});
    try {
      agent::CheckHello(*hello, options.hoist_version, host, /*we_are_agent=*/true);
    } catch (const Error& e) {
      answer.head["error"] = agent::ErrorJson(e);
      agent::WriteFrame(out_fd, answer, peer);
      log::Error(e.what());
      return 2;
    }
    agent::WriteFrame(out_fd, answer, peer);
  } catch (const Error& e) {
    log::Error(fmt::format("hoist agent on {}: {}", host, e.what()));
    return 2;
  }

  // Frames are read on a thread of their own, so a cancel (the other side's
  // Ctrl-C) or the other side going away reaches the call that is running:
  // it stops as on a local Ctrl-C (core/interrupt), its answer says so.
  std::mutex mu;
  std::condition_variable ready;
  std::deque<Message> inbox;
  bool ended = false;
  std::optional<Error> failure;
  json running;  // the id of the call in progress, null between calls
  bool cancelled = false;
  std::thread read_thread([&] {
    for (;;) {
      std::optional<Message> m;
      try {
        m = reader.Read();
      } catch (const Error& e) {
        std::lock_guard lock(mu);
        failure = e;
      }
      std::lock_guard lock(mu);
      if (!m) {
        ended = true;
        if (!running.is_null()) {
          cancelled = true;
          RequestInterrupt();  // nobody waits for the answer any more
        }
        ready.notify_all();
        return;
      }
      if (m->head.value("type", "") == "cancel") {
        if (!running.is_null() && m->head.value("id", json()) == running) {
          cancelled = true;
          RequestInterrupt();
        }
        continue;
      }
      inbox.push_back(std::move(*m));
      ready.notify_all();
    }
  });

  int code = 0;
  try {
    for (;;) {
      Message req;
      {
        std::unique_lock lock(mu);
        ready.wait(lock, [&] { return !inbox.empty() || ended; });
        if (inbox.empty()) break;
        req = std::move(inbox.front());
        inbox.pop_front();
        running = req.head.value("id", json());
        if (running.is_null()) running = 0;
      }
      Message resp;
      resp.head = {{"type", "result"}, {"id", req.head.value("id", json())}};
      std::string method = req.head.value("method", "");
      try {
        auto it = handlers.find(method);
        if (it == handlers.end()) {
          throw Error("agent", "unknown_method",
                      fmt::format("host {}: the agent (hoist {}) has no method \"{}\": the hoist that called it is "
                                  "another version",
                                  host, options.hoist_version, method));
        }
        // The caller's step deadline, so a timeout stops the work here too.
        std::optional<DeadlineScope> deadline;
        if (req.head.contains("deadline_ms") && req.head["deadline_ms"].is_number()) {
          deadline.emplace(std::chrono::milliseconds(std::max<int64_t>(1, req.head["deadline_ms"].get<int64_t>())));
        }
        resp.head["ok"] = it->second(req.head.value("args", json::object()), req, resp);
      } catch (const Error& e) {
        resp.blobs.clear();
        resp.head["error"] = agent::ErrorJson(e);
      } catch (const std::exception& e) {
        resp.blobs.clear();
        resp.head["error"] = {{"area", "agent"}, {"code", "failed"}, {"message", fmt::format("host {}: {}", host, e.what())}};
      }
      {
        std::lock_guard lock(mu);
        running = nullptr;
        if (cancelled) ClearInterrupt();  // stopped that call, not the agent
        cancelled = false;
        if (ended) break;  // nobody to answer
      }
      try {
        agent::WriteFrame(out_fd, resp, peer);
      } catch (const Error& e) {
        if (e.area() != "agent") throw;
        // An answer too large for one frame: say so instead of dropping it.
        Message err;
        err.head = {{"type", "result"}, {"id", resp.head["id"]}, {"error", agent::ErrorJson(e)}};
        agent::WriteFrame(out_fd, err, peer);
      }
    }
  } catch (const std::exception& e) {
    log::Error(fmt::format("hoist agent on {}: {}", host, e.what()));
    code = 2;
  }
  // The reader ends at EOF: the other side closes its end when it is done.
  read_thread.join();
  dbs.reset();  // before returning: a lease still held is released now
  std::lock_guard lock(mu);
  if (failure) {
    log::Error(fmt::format("hoist agent on {}: {}", host, failure->what()));
    return 2;
  }
  return code;
}

}  // namespace hoist::engine

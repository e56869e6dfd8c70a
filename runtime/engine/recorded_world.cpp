#include "engine/recorded_world.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/secrets.h"
#include "core/turn.h"
#include "sys/sha256.h"

namespace hoist::engine {
namespace {

using json = nlohmann::json;

// ---- the JSON forms of calls and responses, shared by record and replay ----

// Bytes beyond this are journaled by hash only (a `docker save` archive, a
// large file): the journal stays small, the call still compares exactly,
// and a replay that needs the bytes says so.
constexpr size_t kMaxRecorded = 1 << 20;

json Bytes(std::string_view data) {
  if (data.size() <= kMaxRecorded) return std::string(data);
  return {{"sha256", sys::Sha256Hex(data)}, {"bytes", data.size()}};
}

std::string BytesFrom(const json& j, const char* what) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "";
  throw Error("replay", "unrecorded",
              fmt::format("{} of {} bytes was journaled by hash only: this run cannot be replayed past it", what,
                          j.value("bytes", 0)));
}

json ProcCall(const sys::ProcessSpec& s) {
  json env = json::object();
  for (const auto& [k, v] : s.env) env[k] = v;
  return {{"argv", s.argv}, {"cwd", s.cwd}, {"env", env}, {"stdin", s.stdin_data ? Bytes(*s.stdin_data) : json(nullptr)}};
}
json ProcResp(const sys::ProcessResult& r) {
  return {{"exit_code", r.exit_code}, {"signal", r.signal}, {"timed_out", r.timed_out}, {"interrupted", r.interrupted},
          {"truncated", r.truncated}, {"out", Bytes(r.out)}, {"err", Bytes(r.err)}, {"seconds", r.seconds}};
}
sys::ProcessResult ProcFrom(const json& j) {
  sys::ProcessResult r;
  r.exit_code = j.value("exit_code", -1);
  r.signal = j.value("signal", 0);
  r.timed_out = j.value("timed_out", false);
  r.interrupted = j.value("interrupted", false);
  r.truncated = j.value("truncated", false);
  r.out = BytesFrom(j.value("out", json()), "a process's output");
  r.err = BytesFrom(j.value("err", json()), "a process's output");
  r.seconds = j.value("seconds", 0.0);
  return r;
}

json HttpCall(const net::HttpRequest& r) {
  json headers = json::array();
  for (const auto& [k, v] : r.headers) headers.push_back({k, v});
  return {{"method", r.method}, {"url", r.url}, {"headers", headers}, {"body", Bytes(r.body)}, {"unix_socket", r.unix_socket}};
}
json HttpResp(const net::HttpResponse& r) {
  json headers = json::array();
  for (const auto& [k, v] : r.headers) headers.push_back({k, v});
  return {{"status", r.status}, {"headers", headers},       {"body", Bytes(r.body)}, {"seconds", r.seconds},
          {"error", r.error},   {"error_code", r.error_code}, {"stopped", r.stopped}};
}
net::HttpResponse HttpFrom(const json& j) {
  net::HttpResponse r;
  r.status = j.value("status", 0);
  for (const auto& h : j.value("headers", json::array())) r.headers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
  r.body = BytesFrom(j.value("body", json()), "an HTTP body");
  r.seconds = j.value("seconds", 0.0);
  r.error = j.value("error", "");
  r.error_code = j.value("error_code", "");
  r.stopped = j.value("stopped", false);
  return r;
}

json StatResp(const sys::Stat& s) {
  return {{"exists", s.exists}, {"type", s.type}, {"size", s.size}, {"mode", s.mode}, {"mtime", s.mtime}, {"inode", s.inode}};
}
sys::Stat StatFrom(const json& j) {
  sys::Stat s;
  s.exists = j.value("exists", false);
  s.type = j.value("type", "");
  s.size = j.value("size", uint64_t{0});
  s.mode = j.value("mode", 0u);
  s.mtime = j.value("mtime", 0.0);
  s.inode = j.value("inode", uint64_t{0});
  return s;
}

json ServiceCall(const sys::ServiceSpec& s) {
  return {{"name", s.name}, {"argv", s.argv}, {"cwd", s.cwd}, {"pid_file", s.pid_file}, {"log_file", s.log_file},
          {"host", s.host}, {"port", s.port}};
}

std::string Describe(const std::string& op, const json& call) {
  return op + " " + Mask(call.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace

// ---- recording ----------------------------------------------------------

template <typename F>
auto RecordingWorld::Call(const std::string& op, json call, F&& f) {
  // A call on another host carries its name, so one journal holds every
  // host's calls; local calls stay as older journals have them.
  if (std::string h = inner_.host(); h != "local") call["host"] = h;
  try {
    // Other hosts' work runs while this one waits (run:each, core/turn.h);
    // the journal is written with the turn held again.
    auto result = [&] {
      std::optional<TurnGivenUp> waiting;
      if (inner_.parallel_calls()) waiting.emplace();
      return f();
    }();
    json ok;
    if constexpr (std::is_same_v<decltype(result), sys::ProcessResult>) {
      ok = ProcResp(result);
    } else if constexpr (std::is_same_v<decltype(result), net::HttpResponse>) {
      ok = HttpResp(result);
    } else if constexpr (std::is_same_v<decltype(result), sys::Stat>) {
      ok = StatResp(result);
    } else if constexpr (std::is_same_v<decltype(result), sys::StopResult>) {
      ok = {{"pid", result.pid}, {"how", result.how}, {"seconds", result.seconds}};
    } else if constexpr (std::is_same_v<decltype(result), sys::ServiceStatus>) {
      ok = {{"pid", result.pid}, {"alive", result.alive}, {"listening", result.listening}, {"state", result.state}};
    } else if constexpr (std::is_same_v<decltype(result), sys::TcpResult>) {
      ok = {{"ok", result.ok}, {"seconds", result.seconds}, {"code", result.code}, {"error", result.error}};
    } else if constexpr (std::is_same_v<decltype(result), std::optional<pid_t>>) {
      ok = result ? json(*result) : json(nullptr);
    } else {
      ok = result;
    }
    sink_(op, call, {{"ok", ok}});
    return result;
  } catch (const Error& e) {
    sink_(op, call, {{"error", {{"area", e.area()}, {"code", e.code()}, {"message", e.message()}}}});
    throw;
  }
}

// void calls record "ok": true.
#define HOIST_VOID(expr) \
  [&] {                  \
    expr;                \
    return true;         \
  }

sys::ProcessResult RecordingWorld::RunProcess(const sys::ProcessSpec& spec) {
  return Call("RunProcess", ProcCall(spec), [&] { return inner_.RunProcess(spec); });
}
net::HttpResponse RecordingWorld::Http(const net::HttpRequest& request) {
  return Call("Http", HttpCall(request), [&] { return inner_.Http(request); });
}
std::string RecordingWorld::ReadFile(const std::string& path) {
  std::string data;
  Call("ReadFile", {{"path", path}}, [&] {
    data = inner_.ReadFile(path);
    return Bytes(data);
  });
  return data;
}
void RecordingWorld::WriteAtomic(const std::string& path, std::string_view data, mode_t mode) {
  Call("WriteAtomic", {{"path", path}, {"data", Bytes(data)}, {"mode", mode}},
       HOIST_VOID(inner_.WriteAtomic(path, data, mode)));
}
void RecordingWorld::WriteInPlace(const std::string& path, std::string_view data) {
  Call("WriteInPlace", {{"path", path}, {"data", Bytes(data)}}, HOIST_VOID(inner_.WriteInPlace(path, data)));
}
void RecordingWorld::MkdirP(const std::string& path, mode_t mode) {
  Call("MkdirP", {{"path", path}, {"mode", mode}}, HOIST_VOID(inner_.MkdirP(path, mode)));
}
bool RecordingWorld::Remove(const std::string& path, bool recursive) {
  return Call("Remove", {{"path", path}, {"recursive", recursive}}, [&] { return inner_.Remove(path, recursive); });
}
void RecordingWorld::Chmod(const std::string& path, mode_t mode) {
  Call("Chmod", {{"path", path}, {"mode", mode}}, HOIST_VOID(inner_.Chmod(path, mode)));
}
sys::Stat RecordingWorld::StatPath(const std::string& path) {
  return Call("StatPath", {{"path", path}}, [&] { return inner_.StatPath(path); });
}
std::vector<std::string> RecordingWorld::ListDir(const std::string& path) {
  return Call("ListDir", {{"path", path}}, [&] { return inner_.ListDir(path); });
}
std::vector<std::string> RecordingWorld::Glob(const std::string& pattern) {
  return Call("Glob", {{"pattern", pattern}}, [&] { return inner_.Glob(pattern); });
}
pid_t RecordingWorld::StartService(const sys::ServiceSpec& spec) {
  return Call("StartService", ServiceCall(spec), [&] { return inner_.StartService(spec); });
}
sys::StopResult RecordingWorld::StopService(const sys::ServiceSpec& spec, std::chrono::milliseconds grace) {
  json c = ServiceCall(spec);
  c["grace_ms"] = grace.count();
  return Call("StopService", c, [&] { return inner_.StopService(spec, grace); });
}
sys::ServiceStatus RecordingWorld::ServiceStatusOf(const sys::ServiceSpec& spec) {
  return Call("ServiceStatus", ServiceCall(spec), [&] { return inner_.ServiceStatusOf(spec); });
}
bool RecordingWorld::ProcessAlive(pid_t pid) {
  return Call("ProcessAlive", {{"pid", pid}}, [&] { return inner_.ProcessAlive(pid); });
}
std::optional<pid_t> RecordingWorld::ReadPidFile(const std::string& path) {
  return Call("ReadPidFile", {{"path", path}}, [&] { return inner_.ReadPidFile(path); });
}
std::vector<pid_t> RecordingWorld::ChildPids(pid_t pid) {
  return Call("ChildPids", {{"pid", pid}}, [&] { return inner_.ChildPids(pid); });
}
std::string RecordingWorld::CmdLine(pid_t pid) {
  return Call("CmdLine", {{"pid", pid}}, [&] { return inner_.CmdLine(pid); });
}
void RecordingWorld::SendSignal(pid_t pid, int sig) {
  Call("SendSignal", {{"pid", pid}, {"signal", sig}}, HOIST_VOID(inner_.SendSignal(pid, sig)));
}
sys::TcpResult RecordingWorld::TcpConnect(const std::string& host, int port, std::chrono::milliseconds timeout) {
  return Call("TcpConnect", {{"host", host}, {"port", port}, {"timeout_ms", timeout.count()}},
              [&] { return inner_.TcpConnect(host, port, timeout); });
}
double RecordingWorld::Monotonic() {
  return Call("Monotonic", json::object(), [&] { return inner_.Monotonic(); });
}
double RecordingWorld::Now() {
  return Call("Now", json::object(), [&] { return inner_.Now(); });
}
void RecordingWorld::Sleep(double seconds, bool stoppable) {
  Call("Sleep", {{"seconds", seconds}}, HOIST_VOID(inner_.Sleep(seconds, stoppable)));
}

// ---- replay -------------------------------------------------------------

std::string Divergence::Text() const {
  if (!summary.empty()) return summary;
  return fmt::format("call {}{}:\n  expected: {}\n  actual:   {}", index + 1,
                     step.empty() ? "" : " (in step \"" + step + "\")", expected, actual);
}

json ReplayWorld::Next(const std::string& op, json call) {
  if (host_ != "local") call["host"] = host_;
  if (divergence_) throw Error("replay", "diverged", "the replay already diverged: " + divergence_->Text());
  std::string actual = Describe(op, call);
  if (next_ >= calls_.size()) {
    divergence_ = Divergence{next_, "(end of the recording)", actual, "", ""};
    throw Error("replay", "diverged", "the replay made a call the recording does not have: " + actual);
  }
  const RecordedCall& rec = calls_[next_];
  std::string expected = Describe(rec.op, rec.call);
  // The recording is masked; so is what we compare it with.
  if (rec.op != op || expected != actual) {
    divergence_ = Divergence{next_, expected, actual, rec.step_name, ""};
    throw Error("replay", "diverged", "the replay diverged from the recording at " + divergence_->Text());
  }
  ++next_;
  if (rec.response.contains("error")) {
    const json& e = rec.response["error"];
    throw Error(e.value("area", "replay"), e.value("code", "error"), e.value("message", ""));
  }
  return rec.response.value("ok", json());
}

std::optional<Divergence> ReplayWorld::Finish() const {
  if (divergence_) return divergence_;
  if (next_ < calls_.size()) {
    const RecordedCall& rec = calls_[next_];
    return Divergence{next_, Describe(rec.op, rec.call), "(the replay made no more calls)", rec.step_name, ""};
  }
  return std::nullopt;
}

sys::ProcessResult ReplayWorld::RunProcess(const sys::ProcessSpec& spec) { return ProcFrom(Next("RunProcess", ProcCall(spec))); }
net::HttpResponse ReplayWorld::Http(const net::HttpRequest& request) { return HttpFrom(Next("Http", HttpCall(request))); }
std::string ReplayWorld::ReadFile(const std::string& path) {
  return BytesFrom(Next("ReadFile", {{"path", path}}), "a file");
}
void ReplayWorld::WriteAtomic(const std::string& path, std::string_view data, mode_t mode) {
  Next("WriteAtomic", {{"path", path}, {"data", Bytes(data)}, {"mode", mode}});
}
void ReplayWorld::WriteInPlace(const std::string& path, std::string_view data) {
  Next("WriteInPlace", {{"path", path}, {"data", Bytes(data)}});
}
void ReplayWorld::MkdirP(const std::string& path, mode_t mode) { Next("MkdirP", {{"path", path}, {"mode", mode}}); }
bool ReplayWorld::Remove(const std::string& path, bool recursive) {
  return Next("Remove", {{"path", path}, {"recursive", recursive}}).get<bool>();
}
void ReplayWorld::Chmod(const std::string& path, mode_t mode) { Next("Chmod", {{"path", path}, {"mode", mode}}); }
sys::Stat ReplayWorld::StatPath(const std::string& path) { return StatFrom(Next("StatPath", {{"path", path}})); }
std::vector<std::string> ReplayWorld::ListDir(const std::string& path) {
  return Next("ListDir", {{"path", path}}).get<std::vector<std::string>>();
}
std::vector<std::string> ReplayWorld::Glob(const std::string& pattern) {
  return Next("Glob", {{"pattern", pattern}}).get<std::vector<std::string>>();
}
pid_t ReplayWorld::StartService(const sys::ServiceSpec& spec) { return Next("StartService", ServiceCall(spec)).get<pid_t>(); }
sys::StopResult ReplayWorld::StopService(const sys::ServiceSpec& spec, std::chrono::milliseconds grace) {
  json c = ServiceCall(spec);
  c["grace_ms"] = grace.count();
  json j = Next("StopService", c);
  sys::StopResult r;
  r.pid = j.value("pid", 0);
  r.how = j.value("how", "");
  r.seconds = j.value("seconds", 0.0);
  return r;
}
sys::ServiceStatus ReplayWorld::ServiceStatusOf(const sys::ServiceSpec& spec) {
  json j = Next("ServiceStatus", ServiceCall(spec));
  sys::ServiceStatus s;
  s.pid = j.value("pid", 0);
  s.alive = j.value("alive", false);
  s.listening = j.value("listening", false);
  s.state = j.value("state", "");
  return s;
}
bool ReplayWorld::ProcessAlive(pid_t pid) { return Next("ProcessAlive", {{"pid", pid}}).get<bool>(); }
std::optional<pid_t> ReplayWorld::ReadPidFile(const std::string& path) {
  json j = Next("ReadPidFile", {{"path", path}});
  if (j.is_null()) return std::nullopt;
  return j.get<pid_t>();
}
std::vector<pid_t> ReplayWorld::ChildPids(pid_t pid) { return Next("ChildPids", {{"pid", pid}}).get<std::vector<pid_t>>(); }
std::string ReplayWorld::CmdLine(pid_t pid) { return Next("CmdLine", {{"pid", pid}}).get<std::string>(); }
void ReplayWorld::SendSignal(pid_t pid, int sig) { Next("SendSignal", {{"pid", pid}, {"signal", sig}}); }
sys::TcpResult ReplayWorld::TcpConnect(const std::string& host, int port, std::chrono::milliseconds timeout) {
  json j = Next("TcpConnect", {{"host", host}, {"port", port}, {"timeout_ms", timeout.count()}});
  sys::TcpResult r;
  r.ok = j.value("ok", false);
  r.seconds = j.value("seconds", 0.0);
  r.code = j.value("code", "");
  r.error = j.value("error", "");
  return r;
}
double ReplayWorld::Monotonic() { return Next("Monotonic", json::object()).get<double>(); }
double ReplayWorld::Now() { return Next("Now", json::object()).get<double>(); }
void ReplayWorld::Sleep(double seconds, bool stoppable) {
  if (stoppable) ThrowIfStopped("time");
  Next("Sleep", {{"seconds", seconds}});
}

std::vector<RecordedCall> RecordedCalls(const json& run) {
  std::map<int64_t, std::string> step_names;
  for (const auto& s : run.value("steps", json::array())) step_names[s.value("seq", int64_t{0})] = s.value("name", "");
  std::vector<RecordedCall> out;
  for (const auto& e : run.value("events", json::array())) {
    if (e.value("kind", "") != "call") continue;
    RecordedCall c;
    c.op = e.value("name", "");
    c.call = e["data"].value("call", json::object());
    c.response = e["data"].value("response", json::object());
    if (e.contains("step") && e["step"].is_number()) {
      c.step = e["step"].get<int64_t>();
      c.step_name = step_names[*c.step];
    }
    out.push_back(std::move(c));
  }
  return out;
}

namespace {

struct DbOutcome {
  std::string op;     // "db.open", "db.query", ...
  bool ok = true;
  std::string code;   // "" on success, or when not journaled (older runs)
  std::string error;
  std::optional<int64_t> step;
};

std::vector<DbOutcome> DbOutcomes(const json& run) {
  std::vector<DbOutcome> out;
  for (const auto& e : run.value("events", json::array())) {
    if (e.value("kind", "") != "db") continue;
    DbOutcome o;
    std::string name = e.value("name", "");
    o.op = "db." + name.substr(0, name.find(' '));
    const json data = e.value("data", json::object());
    if (data.contains("error") && data["error"].is_string()) {
      o.ok = false;
      o.error = data["error"].get<std::string>();
      o.code = data.value("code", "");
    }
    if (e.contains("step") && e["step"].is_number()) o.step = e["step"].get<int64_t>();
    out.push_back(std::move(o));
  }
  return out;
}

std::string OutcomeText(const DbOutcome& o) {
  if (o.ok) return o.op + " succeeded";
  return o.op + " failed (" + (o.code.empty() ? "" : o.code + ": ") + o.error + ")";
}

}  // namespace

std::optional<Divergence> CompareDbOutcomes(const json& recorded, const json& replayed) {
  std::map<int64_t, std::string> step_names;
  for (const auto& s : recorded.value("steps", json::array())) step_names[s.value("seq", int64_t{0})] = s.value("name", "");
  auto was = DbOutcomes(recorded), now = DbOutcomes(replayed);
  auto at = [&](size_t i) {
    const DbOutcome* o = i < was.size() ? &was[i] : nullptr;
    if (o && o->step) return fmt::format("step {} (\"{}\")", *o->step, step_names[*o->step]);
    return fmt::format("db call {}{}", i + 1, o ? " (outside any step)" : "");
  };
  for (size_t i = 0; i < std::max(was.size(), now.size()); ++i) {
    if (i < was.size() && i < now.size()) {
      const DbOutcome &w = was[i], &n = now[i];
      bool same = w.op == n.op && w.ok == n.ok && (w.ok || w.code.empty() || n.code.empty() || w.code == n.code);
      if (same) continue;
      Divergence d;
      d.index = i;
      d.step = w.step ? step_names[*w.step] : "";
      d.expected = OutcomeText(w);
      d.actual = OutcomeText(n);
      std::string replay = n.ok ? "replay succeeded" : "replay failed (" + (n.code.empty() ? "" : n.code + ": ") + n.error + ")";
      if (w.op != n.op) replay = "replay made " + OutcomeText(n);
      d.summary = fmt::format("{}: recorded {}, {}", at(i), OutcomeText(w), replay);
      return d;
    }
    Divergence d;
    d.index = i;
    if (i < was.size()) {
      d.step = was[i].step ? step_names[*was[i].step] : "";
      d.expected = OutcomeText(was[i]);
      d.actual = "(the replay made no more db calls)";
      d.summary = fmt::format("{}: recorded {}, the replay made no more db calls", at(i), OutcomeText(was[i]));
    } else {
      d.expected = "(end of the recorded db calls)";
      d.actual = OutcomeText(now[i]);
      d.summary = fmt::format("db call {}: the recording has no more db calls, the replay made {}", i + 1,
                              OutcomeText(now[i]));
    }
    return d;
  }
  return std::nullopt;
}

}  // namespace hoist::engine

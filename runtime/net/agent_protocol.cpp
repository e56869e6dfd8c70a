#include "net/agent_protocol.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace hoist::net::agent {
namespace {

constexpr char kMagic[4] = {'h', 's', 't', '1'};

void PutU32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

uint32_t GetU32(const char* p) {
  auto b = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

/// What arrived instead of a frame, printable: a login banner, an error.
std::string Printable(std::string_view bytes) {
  std::string out;
  for (char c : bytes.substr(0, 60)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", u);
    }
  }
  return out;
}

std::string BlobOr(const json& j, const char* key, const Message& m) {
  if (!j.contains(key) || j[key].is_null()) return "";
  return m.BlobAt(j[key]);
}

}  // namespace

json Message::Blob(std::string data) {
  blobs.push_back(std::move(data));
  return {{"$blob", blobs.size() - 1}};
}

const std::string& Message::BlobAt(const json& ref) const {
  if (!ref.is_object() || !ref.contains("$blob") || !ref["$blob"].is_number_unsigned() ||
      ref["$blob"].get<size_t>() >= blobs.size()) {
    throw Error("agent", "protocol",
                fmt::format("a frame refers to blob {} but carries {} blob(s): the two ends of the agent protocol "
                            "disagree (update hoist on both)",
                            ref.dump(), blobs.size()));
  }
  return blobs[ref["$blob"].get<size_t>()];
}

std::string Encode(const Message& m, size_t max_frame) {
  json head = m.head;
  size_t blobs_len = 0;
  if (!m.blobs.empty()) {
    json sizes = json::array();
    for (const auto& b : m.blobs) {
      sizes.push_back(b.size());
      blobs_len += b.size();
    }
    head["blobs"] = sizes;
  }
  std::string body = head.dump(-1, ' ', false, json::error_handler_t::replace);
  size_t total = kHeaderSize + body.size() + blobs_len;
  if (total > max_frame || body.size() > UINT32_MAX || blobs_len > UINT32_MAX) {
    throw Error("agent", "frame_too_large",
                fmt::format("a frame of {} bytes is over the agent protocol's limit of {} bytes: move less data "
                            "per call (read or write the file in parts, or cap the process's output with max_output)",
                            total, max_frame));
  }
  std::string out;
  out.reserve(total);
  out.append(kMagic, 4);
  PutU32(out, static_cast<uint32_t>(body.size()));
  PutU32(out, static_cast<uint32_t>(blobs_len));
  out += body;
  for (const auto& b : m.blobs) out += b;
  return out;
}

std::optional<Message> Decoder::Next() {
  if (buf_.empty()) return std::nullopt;
  size_t have = std::min<size_t>(buf_.size(), 4);
  if (std::memcmp(buf_.data(), kMagic, have) != 0) {
    throw Error("agent", "protocol",
                fmt::format("{} sent bytes that are not an agent frame: \"{}\". Something on that host writes to "
                            "the agent's output (a login script printing to stdout?): make it quiet for "
                            "non-interactive shells",
                            peer_, Printable(buf_)));
  }
  if (buf_.size() < kHeaderSize) return std::nullopt;
  size_t json_len = GetU32(buf_.data() + 4), blobs_len = GetU32(buf_.data() + 8);
  size_t total = kHeaderSize + json_len + blobs_len;
  if (total > max_frame_) {
    throw Error("agent", "frame_too_large",
                fmt::format("{} sent a frame of {} bytes, over the limit of {} bytes: move less data per call",
                            peer_, total, max_frame_));
  }
  if (buf_.size() < total) return std::nullopt;
  Message m;
  try {
    m.head = json::parse(buf_.begin() + kHeaderSize, buf_.begin() + static_cast<long>(kHeaderSize + json_len));
  } catch (const json::exception& e) {
    throw Error("agent", "protocol", fmt::format("{} sent a frame whose JSON does not parse: {}", peer_, e.what()));
  }
  if (!m.head.is_object()) throw Error("agent", "protocol", fmt::format("{} sent a frame that is not a JSON object", peer_));
  size_t at = kHeaderSize + json_len, sum = 0;
  if (m.head.contains("blobs")) {
    const json& sizes = m.head["blobs"];
    if (!sizes.is_array()) throw Error("agent", "protocol", fmt::format("{} sent a frame with a bad blobs list", peer_));
    for (const auto& s : sizes) {
      if (!s.is_number_unsigned() || s.get<size_t>() > blobs_len - sum) {
        throw Error("agent", "protocol",
                    fmt::format("{} sent a frame whose blob sizes do not add up to its {} bytes", peer_, blobs_len));
      }
      m.blobs.emplace_back(buf_, at + sum, s.get<size_t>());
      sum += s.get<size_t>();
    }
    m.head.erase("blobs");
  }
  if (sum != blobs_len) {
    throw Error("agent", "protocol",
                fmt::format("{} sent a frame whose blob sizes do not add up to its {} bytes", peer_, blobs_len));
  }
  buf_.erase(0, total);
  return m;
}

std::optional<Message> FrameReader::Read(std::chrono::milliseconds timeout) {
  char buf[64 * 1024];
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto m = decoder_.Next()) return m;
    if (timeout.count() > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {
        throw Error("agent", "timeout",
                    fmt::format("{} did not answer within {} s", decoder_.peer(),
                                std::chrono::duration<double>(timeout).count()));
      }
    }
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw Error("agent", "failed", fmt::format("reading from {}: {}", decoder_.peer(), std::strerror(errno)));
    }
    if (n == 0) {
      if (decoder_.mid_frame()) {
        throw Error("agent", "closed", fmt::format("{} ended in the middle of a frame", decoder_.peer()));
      }
      return std::nullopt;
    }
    decoder_.Feed(std::string_view(buf, static_cast<size_t>(n)));
  }
}

void WriteFrame(int fd, const Message& m, const std::string& peer) {
  sys::WriteAllTo(fd, Encode(m), "writing to " + peer);
}

Message Hello(const std::string& hoist_version, json extra) {
  Message m;
  m.head = std::move(extra);
  m.head["type"] = "hello";
  m.head["protocol"] = kProtocolVersion;
  m.head["hoist"] = hoist_version;
  return m;
}

void CheckHello(const Message& hello, const std::string& hoist_version, const std::string& host, bool we_are_agent) {
  const json& h = hello.head;
  if (h.value("type", "") != "hello") {
    throw Error("agent", "protocol",
                fmt::format("host {}: the first frame was \"{}\", not hello: the two ends do not speak the same "
                            "agent protocol (update hoist on both)",
                            host, h.value("type", "")));
  }
  if (h.contains("error") && h["error"].is_object()) throw ErrorFrom(h["error"]);
  int protocol = h.value("protocol", 0);
  std::string theirs = h.value("hoist", "");
  if (protocol == kProtocolVersion && theirs == hoist_version) return;
  std::string them = we_are_agent ? "the hoist that started this agent" : "the agent";
  throw Error("agent", "version_mismatch",
              fmt::format("host {}: {} is hoist {} (protocol {}), this is hoist {} (protocol {}): both ends must be "
                          "the same version; let hoist upload its own binary to the host (remove the stale one "
                          "under the host's ~/.cache/hoist/) or install the same version there",
                          host, them, theirs.empty() ? "?" : theirs, protocol, hoist_version, kProtocolVersion));
}

json ErrorJson(const Error& e) { return {{"area", e.area()}, {"code", e.code()}, {"message", e.message()}}; }

Error ErrorFrom(const json& j) {
  return Error(j.value("area", "agent"), j.value("code", "failed"), j.value("message", "(no message)"));
}

// ---- World arguments and answers --------------------------------------------

json ProcessSpecJson(const sys::ProcessSpec& s, Message& m) {
  return {{"argv", s.argv},
          {"env", s.env},
          {"inherit_env", s.inherit_env},
          {"cwd", s.cwd},
          {"stdin", s.stdin_data ? m.Blob(*s.stdin_data) : json(nullptr)},
          {"timeout_ms", s.timeout.count()},
          {"kill_grace_ms", s.kill_grace.count()},
          {"max_output", s.max_output}};
}

sys::ProcessSpec ProcessSpecFrom(const json& j, const Message& m) {
  sys::ProcessSpec s;
  s.argv = j.value("argv", std::vector<std::string>{});
  s.env = j.value("env", std::map<std::string, std::string>{});
  s.inherit_env = j.value("inherit_env", true);
  s.cwd = j.value("cwd", "");
  if (j.contains("stdin") && !j["stdin"].is_null()) s.stdin_data = m.BlobAt(j["stdin"]);
  s.timeout = std::chrono::milliseconds(j.value("timeout_ms", int64_t{0}));
  s.kill_grace = std::chrono::milliseconds(j.value("kill_grace_ms", int64_t{2000}));
  s.max_output = j.value("max_output", size_t{64} << 20);
  // Output always comes back over the protocol: the agent's own stdout is
  // the frames' and must never be handed to a child.
  s.capture = true;
  return s;
}

json ProcessResultJson(const sys::ProcessResult& r, Message& m) {
  return {{"exit_code", r.exit_code}, {"signal", r.signal},        {"timed_out", r.timed_out},
          {"interrupted", r.interrupted}, {"truncated", r.truncated}, {"out", m.Blob(r.out)},
          {"err", m.Blob(r.err)},        {"seconds", r.seconds}};
}

sys::ProcessResult ProcessResultFrom(const json& j, const Message& m) {
  sys::ProcessResult r;
  r.exit_code = j.value("exit_code", -1);
  r.signal = j.value("signal", 0);
  r.timed_out = j.value("timed_out", false);
  r.interrupted = j.value("interrupted", false);
  r.truncated = j.value("truncated", false);
  r.out = BlobOr(j, "out", m);
  r.err = BlobOr(j, "err", m);
  r.seconds = j.value("seconds", 0.0);
  return r;
}

json HttpRequestJson(const HttpRequest& r, Message& m) {
  return {{"method", r.method},
          {"url", r.url},
          {"headers", r.headers},
          {"body", m.Blob(r.body)},
          {"timeout_ms", r.timeout.count()},
          {"unix_socket", r.unix_socket},
          {"follow_redirects", r.follow_redirects},
          {"verify_tls", r.verify_tls},
          {"max_body", r.max_body}};
}

HttpRequest HttpRequestFrom(const json& j, const Message& m) {
  HttpRequest r;
  r.method = j.value("method", "GET");
  r.url = j.value("url", "");
  r.headers = j.value("headers", Headers{});
  r.body = BlobOr(j, "body", m);
  r.timeout = std::chrono::milliseconds(j.value("timeout_ms", int64_t{30000}));
  r.unix_socket = j.value("unix_socket", "");
  r.follow_redirects = j.value("follow_redirects", false);
  r.verify_tls = j.value("verify_tls", true);
  r.max_body = j.value("max_body", size_t{256} << 20);
  return r;
}

json HttpResponseJson(const HttpResponse& r, Message& m) {
  return {{"status", r.status}, {"headers", r.headers},       {"body", m.Blob(r.body)}, {"seconds", r.seconds},
          {"error", r.error},   {"error_code", r.error_code}, {"stopped", r.stopped}};
}

HttpResponse HttpResponseFrom(const json& j, const Message& m) {
  HttpResponse r;
  r.status = j.value("status", 0);
  r.headers = j.value("headers", Headers{});
  r.body = BlobOr(j, "body", m);
  r.seconds = j.value("seconds", 0.0);
  r.error = j.value("error", "");
  r.error_code = j.value("error_code", "");
  r.stopped = j.value("stopped", false);
  return r;
}

json ServiceSpecJson(const sys::ServiceSpec& s) {
  return {{"name", s.name},         {"argv", s.argv},         {"env", s.env},   {"inherit_env", s.inherit_env},
          {"cwd", s.cwd},           {"pid_file", s.pid_file}, {"log_file", s.log_file},
          {"host", s.host},         {"port", s.port}};
}

sys::ServiceSpec ServiceSpecFrom(const json& j) {
  sys::ServiceSpec s;
  s.name = j.value("name", "");
  s.argv = j.value("argv", std::vector<std::string>{});
  s.env = j.value("env", std::map<std::string, std::string>{});
  s.inherit_env = j.value("inherit_env", true);
  s.cwd = j.value("cwd", "");
  s.pid_file = j.value("pid_file", "");
  s.log_file = j.value("log_file", "");
  s.host = j.value("host", "127.0.0.1");
  s.port = j.value("port", 0);
  return s;
}

json StopResultJson(const sys::StopResult& r) { return {{"pid", r.pid}, {"how", r.how}, {"seconds", r.seconds}}; }
sys::StopResult StopResultFrom(const json& j) {
  sys::StopResult r;
  r.pid = j.value("pid", 0);
  r.how = j.value("how", "");
  r.seconds = j.value("seconds", 0.0);
  return r;
}

json ServiceStatusJson(const sys::ServiceStatus& s) {
  return {{"pid", s.pid}, {"alive", s.alive}, {"listening", s.listening}, {"state", s.state}};
}
sys::ServiceStatus ServiceStatusFrom(const json& j) {
  sys::ServiceStatus s;
  s.pid = j.value("pid", 0);
  s.alive = j.value("alive", false);
  s.listening = j.value("listening", false);
  s.state = j.value("state", "");
  return s;
}

json StatJson(const sys::Stat& s) {
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

json TcpResultJson(const sys::TcpResult& r) {
  return {{"ok", r.ok}, {"seconds", r.seconds}, {"code", r.code}, {"error", r.error}};
}
sys::TcpResult TcpResultFrom(const json& j) {
  sys::TcpResult r;
  r.ok = j.value("ok", false);
  r.seconds = j.value("seconds", 0.0);
  r.code = j.value("code", "");
  r.error = j.value("error", "");
  return r;
}

}  // namespace hoist::net::agent

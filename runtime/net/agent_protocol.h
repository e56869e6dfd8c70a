// The agent protocol: how hoist talks to `hoist agent --stdio` on another
// host (docs/fleet.md, "The agent and its protocol"). A conversation is a
// sequence of frames; each frame is a JSON header plus raw binary blobs,
// so file contents and process output travel byte for byte, unencoded:
//
//   "hst1"  u32be json_len  u32be blobs_len  <json_len bytes of JSON>  <blobs_len bytes>
//
// The JSON object's "blobs" array holds each blob's size (their sum is
// blobs_len); a value {"$blob": i} anywhere in it stands for blob i. This
// file also holds the JSON forms of the World calls' arguments and answers
// that both ends share.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "net/http.h"
#include "sys/fs.h"
#include "sys/probe.h"
#include "sys/process.h"
#include "sys/service.h"

namespace hoist::net::agent {

using json = nlohmann::json;

/// Bumped when a frame or a method changes shape; both ends must agree.
constexpr int kProtocolVersion = 1;
/// Frames larger than this (header + JSON + blobs) are refused.
constexpr size_t kMaxFrame = size_t{512} << 20;
constexpr size_t kHeaderSize = 12;

/// One frame: its JSON object and its blobs.
struct Message {
  json head = json::object();
  std::vector<std::string> blobs;

  /// Appends data as a blob; returns the {"$blob": i} to put in head.
  json Blob(std::string data);
  /// The blob a {"$blob": i} value names. Error{"agent","protocol"} for
  /// anything else (or an index past the blobs).
  const std::string& BlobAt(const json& ref) const;
};

/// The bytes of one frame. Error{"agent","frame_too_large"} past max_frame.
std::string Encode(const Message& m, size_t max_frame = kMaxFrame);

/// Decodes frames from bytes that arrive in any pieces (partial reads).
/// peer names the other end in messages ("the agent on host web1").
class Decoder {
 public:
  explicit Decoder(std::string peer, size_t max_frame = kMaxFrame) : peer_(std::move(peer)), max_frame_(max_frame) {}
  void Feed(std::string_view bytes) { buf_.append(bytes); }
  /// The next complete frame, or nullopt until more bytes arrive. Throws
  /// Error{"agent", "protocol"} for bytes that are not a frame (with a
  /// printable prefix of them) or a malformed header or JSON, and
  /// Error{"agent","frame_too_large"} for a frame over max_frame (before
  /// its body is read).
  std::optional<Message> Next();
  /// True when bytes of an unfinished frame are buffered.
  bool mid_frame() const { return !buf_.empty(); }
  const std::string& peer() const { return peer_; }

 private:
  std::string peer_;
  size_t max_frame_;
  std::string buf_;
};

/// Reads frames from a file descriptor (a pipe), blocking.
class FrameReader {
 public:
  FrameReader(int fd, std::string peer, size_t max_frame = kMaxFrame) : fd_(fd), decoder_(std::move(peer), max_frame) {}
  /// The next frame; nullopt at EOF between frames. Error{"agent","closed"}
  /// at EOF in the middle of a frame; Decoder's errors. With a timeout
  /// (> 0): Error{"agent","timeout"} when no whole frame came within it.
  std::optional<Message> Read(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

 private:
  int fd_;
  Decoder decoder_;
};

/// Writes one frame to fd (EINTR and EPIPE safe: Error{"proc","closed"}
/// when the reader went away).
void WriteFrame(int fd, const Message& m, const std::string& peer);

// ---- hello, calls and errors -----------------------------------------------

/// {"type":"hello","protocol":1,"hoist":"0.1.0", ...extra}.
Message Hello(const std::string& hoist_version, json extra = json::object());
/// Error{"agent","version_mismatch"} naming host when the other end's
/// hello carries another protocol or hoist version, saying what to do.
void CheckHello(const Message& hello, const std::string& hoist_version, const std::string& host, bool we_are_agent);

/// A hoist::Error as {"area","code","message"} and back.
json ErrorJson(const Error& e);
Error ErrorFrom(const json& j);

// ---- the JSON forms of World arguments and answers ------------------------
// Binary fields (stdin, output, bodies, file data) go into m's blobs.

json ProcessSpecJson(const sys::ProcessSpec& s, Message& m);
sys::ProcessSpec ProcessSpecFrom(const json& j, const Message& m);
json ProcessResultJson(const sys::ProcessResult& r, Message& m);
sys::ProcessResult ProcessResultFrom(const json& j, const Message& m);
json HttpRequestJson(const HttpRequest& r, Message& m);
HttpRequest HttpRequestFrom(const json& j, const Message& m);
json HttpResponseJson(const HttpResponse& r, Message& m);
HttpResponse HttpResponseFrom(const json& j, const Message& m);
json ServiceSpecJson(const sys::ServiceSpec& s);
sys::ServiceSpec ServiceSpecFrom(const json& j);
json StopResultJson(const sys::StopResult& r);
sys::StopResult StopResultFrom(const json& j);
json ServiceStatusJson(const sys::ServiceStatus& s);
sys::ServiceStatus ServiceStatusFrom(const json& j);
json StatJson(const sys::Stat& s);
sys::Stat StatFrom(const json& j);
json TcpResultJson(const sys::TcpResult& r);
sys::TcpResult TcpResultFrom(const json& j);

/// An argument a call must carry: Error{"agent","invalid"} naming the
/// method and the argument when it is missing or of the wrong type.
template <typename T>
T Arg(const json& args, const char* key, const std::string& method) {
  if (!args.contains(key)) {
    throw Error("agent", "invalid", method + ": the call has no argument \"" + key + "\"");
  }
  try {
    return args[key].get<T>();
  } catch (const json::exception&) {
    throw Error("agent", "invalid", method + ": argument \"" + key + "\" has the wrong type");
  }
}

}  // namespace hoist::net::agent

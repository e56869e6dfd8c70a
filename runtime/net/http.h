// The HTTP transport: one request in, one response (or a transport error)
// out, over TCP or a unix socket. Built on libcurl, which is loaded on first
// use (sys/dynlib.h) so that a playbook that never speaks HTTP does not pay
// for loading it. Plain C++: hoist.http and the Docker client sit on top.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hoist::net {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  /// http:// or https:// (other schemes are refused). With unix_socket set,
  /// the host part only fills the Host header ("http://localhost/_ping").
  std::string url{};
  /// Sent in this order; a header with an empty value removes one that curl
  /// would add itself (e.g. {"Expect", ""}).
  Headers headers{};
  std::string body{};
  /// Whole request; 0 means none (the step deadline still applies).
  std::chrono::milliseconds timeout{30000};
  /// Speak HTTP over this unix socket instead of TCP ("" = TCP).
  std::string unix_socket{};
  bool follow_redirects = false;
  /// https: verify the server's certificate and host name.
  bool verify_tls = true;
  /// Larger bodies end the request with a transport error ("failed").
  size_t max_body = size_t{256} << 20;
};

struct HttpResponse {
  int status = 0;    ///< 0 when no response arrived (error is set)
  Headers headers{};  ///< as received, of the last response (after redirects)
  std::string body{};
  double seconds = 0;  ///< wall time of the whole request
  /// Transport error text, "" when a response arrived. It does not repeat
  /// the URL: "cannot connect: Connection refused", "timed out after 0.5 s".
  std::string error{};
  /// "" | "connect_failed" (refused, no such host or socket) | "timeout" |
  /// "interrupted" | "failed" (anything else: reset, empty reply, TLS, a body
  /// over max_body).
  std::string error_code{};
  /// Ctrl-C or the step deadline ended the request (error_code "interrupted"
  /// or "timeout"): callers must raise, never turn this into data.
  bool stopped = false;

  bool ok() const { return error.empty(); }
  /// The first header named `name` (case-insensitive), or nullopt.
  std::optional<std::string> Header(std::string_view name) const;
};

/// What sends a request: the real transport (Send) or a world's substitute.
using HttpSend = std::function<HttpResponse(const HttpRequest&)>;

/// Performs the request on this thread's reused connection pool. Transport
/// failures are data in the response (see HttpResponse::error); an HTTP 500
/// is an answer like any other. Ctrl-C and the step deadline
/// (core/interrupt.h) abort within ~50 ms. If they already happened nothing
/// is sent. Throws hoist::Error{"http","invalid",...} for a malformed
/// request (empty method, bad scheme) and {"http","unavailable",...} when
/// libcurl cannot be loaded.
HttpResponse Send(const HttpRequest& request);

/// "application/json; charset=utf-8" -> true.
bool IsJsonContentType(std::string_view content_type);

}  // namespace hoist::net

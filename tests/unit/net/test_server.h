// A tiny HTTP/1.1 server for transport tests: listens on 127.0.0.1:0 or a
// unix socket, one thread per connection, keep-alive, canned answers from
// a handler. Not a general server: requests need Content-Length bodies.
#pragma once

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hoist::test {

struct ServedRequest {
  std::string method, target;
  std::map<std::string, std::string> headers;  ///< lower-case names
  std::string body;
};

/// A full response: status line, Content-Length, extra header lines.
inline std::string HttpAnswer(int status, const std::string& body, const std::string& extra_headers = "",
                              const std::string& reason = "X") {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra_headers + "\r\n" + body;
}

class TestServer {
 public:
  /// handler returns the raw bytes to send back; "" means never answer
  /// (the connection stays open until the server stops).
  using Handler = std::function<std::string(const ServedRequest&)>;

  explicit TestServer(Handler handler, const std::string& unix_path = "") : handler_(std::move(handler)) {
    if (unix_path.empty()) {
      fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
      socklen_t len = sizeof a;
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
    } else {
      fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, unix_path.c_str(), sizeof a.sun_path - 1);
      ::unlink(unix_path.c_str());
      REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    }
    REQUIRE(::listen(fd_, 64) == 0);
    thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~TestServer() {
    stop_ = true;
    thread_.join();
    std::lock_guard lock(mu_);
    for (auto& t : workers_) t.join();
    ::close(fd_);
  }

  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  int port() const { return port_; }
  std::string Url(const std::string& path = "/") const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  ServedRequest last() {
    std::lock_guard lock(mu_);
    return last_;
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++connections_;
      std::lock_guard lock(mu_);
      workers_.emplace_back([this, c] { Serve(c); });
    }
  }

  /// Reads until `pred(buffer)` or the peer closes/the server stops.
  bool ReadMore(int c, std::string& buf) {
    while (!stop_) {
      pollfd p{c, POLLIN, 0};
      int n = ::poll(&p, 1, 20);
      if (n == 0) continue;
      if (n < 0) return false;
      char tmp[4096];
      ssize_t got = ::read(c, tmp, sizeof tmp);
      if (got <= 0) return false;
      buf.append(tmp, static_cast<size_t>(got));
      return true;
    }
    return false;
  }

  void Serve(int c) {
    std::string buf;
    while (!stop_) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!ReadMore(c, buf)) return Close(c);
      }
      ServedRequest r;
      std::string head = buf.substr(0, end);
      buf.erase(0, end + 4);
      size_t line_end = head.find("\r\n");
      std::string first = head.substr(0, line_end);
      size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
      r.method = first.substr(0, sp1);
      r.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        size_t e = head.find("\r\n", pos);
        if (e == std::string::npos) e = head.size();
        std::string line = head.substr(pos, e - pos);
        pos = e + 2;
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string k = line.substr(0, colon), v = line.substr(colon + 1);
        std::transform(k.begin(), k.end(), k.begin(), [](unsigned char ch) { return std::tolower(ch); });
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        r.headers[k] = v;
      }
      size_t want = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
      while (buf.size() < want) {
        if (!ReadMore(c, buf)) return Close(c);
      }
      r.body = buf.substr(0, want);
      buf.erase(0, want);
      ++requests_;
      {
        std::lock_guard lock(mu_);
        last_ = r;
      }
      std::string answer = handler_(r);
      if (answer.empty()) {  // never answer: hold the connection until stop
        while (ReadMore(c, buf)) {
        }
        return Close(c);
      }
      size_t sent = 0;
      while (sent < answer.size()) {
        ssize_t n = ::send(c, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return Close(c);
        sent += static_cast<size_t>(n);
      }
      if (answer.find("Connection: close") != std::string::npos) return Close(c);
    }
    Close(c);
  }

  void Close(int c) { ::close(c); }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0}, requests_{0};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  ServedRequest last_;
};

/// A port that accepts connections (the kernel completes the handshake)
/// but never answers: nothing ever calls accept().
struct SilentPort {
  int fd = -1;
  int port = 0;
  SilentPort() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    REQUIRE(::listen(fd, 16) == 0);
  }
  ~SilentPort() { ::close(fd); }
};

/// A loopback port nobody listens on (bound then closed): connection refused.
inline int RefusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace hoist::test

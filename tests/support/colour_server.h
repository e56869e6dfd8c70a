// A tiny HTTP/1.1 backend for traffic tests and the switch benchmark: it
// answers every request with its colour (body "blue\n", header X-Colour:
// blue), or with a configured route. One poll-loop thread, keep-alive,
// loopback unless given an address (a lab host's LAN address). Modes:
// answer 500s, never answer (accept and hang).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hoist::test {

/// A port that is free right now on 127.0.0.1 (bind :0, read, close) and
/// not handed out before in this process: the kernel readily returns a
/// just-closed port again, and a rig that picks its colours' ports before
/// starting its nginx once got nginx on green's port.
inline int FreePort() {
  static std::mutex mu;
  static std::set<int> given;
  std::lock_guard lock(mu);
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    ::close(fd);
    if (port && given.insert(port).second) return port;
  }
  return 0;
}

struct Answer {
  int status = 0;       ///< 0: no answer (see error)
  std::string colour;   ///< the X-Colour header
  std::string body;
  std::string error;
};

/// One GET over a new connection to address:port (HTTP/1.0-style close),
/// independent of hoist's own HTTP client: what traffic really sees.
inline Answer HttpGet(const std::string& address, int port, const std::string& path = "/", int timeout_ms = 2000) {
  Answer a;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    a.error = "connect";
    ::close(fd);
    return a;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + address + "\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    a.error = "write";
    ::close(fd);
    return a;
  }
  std::string resp;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      resp.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0) a.error = errno == EAGAIN ? "timeout" : "read";
    break;
  }
  ::close(fd);
  size_t end = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) {
    if (a.error.empty()) a.error = "read";
    return a;
  }
  a.error.clear();
  a.status = std::atoi(resp.c_str() + 9);
  std::string head = resp.substr(0, end);
  for (size_t p = head.find("\r\n"); p != std::string::npos; p = head.find("\r\n", p + 2)) {
    std::string line = head.substr(p + 2, head.find("\r\n", p + 2) - p - 2);
    if (line.size() > 9 && (line.compare(0, 9, "X-Colour:") == 0 || line.compare(0, 9, "x-colour:") == 0)) {
      a.colour = line.substr(9);
      while (!a.colour.empty() && a.colour.front() == ' ') a.colour.erase(0, 1);
    }
  }
  a.body = resp.substr(end + 4);
  return a;
}

inline Answer HttpGet(int port, const std::string& path = "/", int timeout_ms = 2000) {
  return HttpGet("127.0.0.1", port, path, timeout_ms);
}

class ColourServer {
 public:
  struct Route {
    int status = 200;
    std::string body;
    std::string content_type = "application/json";
  };

  /// Listens on address:port (0 = a free one) and serves until destroyed.
  explicit ColourServer(std::string colour, int port = 0, std::string address = "127.0.0.1")
      : colour_(std::move(colour)), address_(std::move(address)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, address_.c_str(), &a.sin_addr) != 1 ||
        ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 512) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("ColourServer: cannot listen on " + address_ + ":" + std::to_string(port));
    }
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe");
    wake_r_ = p[0];
    wake_w_ = p[1];
    thread_ = std::thread([this] { Loop(); });
  }
  ~ColourServer() { Stop(); }
  ColourServer(const ColourServer&) = delete;
  ColourServer& operator=(const ColourServer&) = delete;

  int port() const { return port_; }
  std::string address() const { return address_ + ":" + std::to_string(port_); }
  const std::string& colour() const { return colour_; }
  /// Status for the default route (the colour answer): 200, or 500 to fail.
  void SetStatus(int status) { status_ = status; }
  /// true: accept connections and never answer.
  void SetHang(bool hang) { hang_ = hang; }
  void SetRoute(const std::string& path, Route r) {
    std::lock_guard<std::mutex> lock(mu_);
    routes_[path] = std::move(r);
  }
  long requests() const { return requests_; }
  /// Requests that asked for the connection to close after the answer.
  long closing_requests() const { return closing_requests_; }

  /// Closes the listener and every connection.
  void Stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    char c = 1;
    (void)!::write(wake_w_, &c, 1);
    thread_.join();
    ::close(listen_fd_);
    ::close(wake_r_);
    ::close(wake_w_);
  }

 private:
  struct Conn {
    int fd;
    std::string in, out;
  };

  static const char* Reason(int status) {
    switch (status) {
      case 200: return "OK";
      case 404: return "Not Found";
      case 500: return "Internal Server Error";
      case 503: return "Service Unavailable";
      default: return "Status";
    }
  }

  std::string Respond(const std::string& path, bool close) {
    Route r;
    bool found = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = routes_.find(path);
      if (it != routes_.end()) {
        r = it->second;
        found = true;
      }
    }
    if (!found) {
      r.status = status_;
      r.body = colour_ + "\n";
      r.content_type = "text/plain";
    }
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + Reason(r.status) + "\r\n";
    head += "Content-Type: " + r.content_type + "\r\n";
    head += "X-Colour: " + colour_ + "\r\n";
    head += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    head += close ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n";
    return head + r.body;
  }

  /// Consumes complete requests from c.in; returns false to close after writing.
  bool Handle(Conn& c) {
    for (;;) {
      size_t end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) return true;
      std::string head = c.in.substr(0, end);
      size_t body_len = 0;
      std::string lower = head;
      for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (auto p = lower.find("content-length:"); p != std::string::npos) body_len = std::stoul(lower.substr(p + 15));
      if (c.in.size() < end + 4 + body_len) return true;
      c.in.erase(0, end + 4 + body_len);
      bool http10 = head.find("HTTP/1.0") != std::string::npos;
      bool close = lower.find("connection: close") != std::string::npos ||
                   (http10 && lower.find("connection: keep-alive") == std::string::npos);
      size_t sp1 = head.find(' ');
      size_t sp2 = head.find(' ', sp1 + 1);
      std::string path = sp1 == std::string::npos ? "/" : head.substr(sp1 + 1, sp2 - sp1 - 1);
      if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
      ++requests_;
      if (lower.find("connection: close") != std::string::npos) ++closing_requests_;
      c.out += Respond(path, close);
      if (close) return false;
    }
  }

  void Loop() {
    std::vector<Conn> conns;
    std::vector<int> hung;
    while (!stop_) {
      std::vector<pollfd> fds;
      fds.push_back({wake_r_, POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      for (auto& c : conns) fds.push_back({c.fd, static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
      if (::poll(fds.data(), fds.size(), 200) < 0) continue;
      if (fds[1].revents & POLLIN) {
        for (;;) {
          int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (fd < 0) break;
          if (hang_) {
            hung.push_back(fd);
          } else {
            conns.push_back({fd, {}, {}});
          }
        }
      }
      std::vector<Conn> keep;
      for (size_t i = 0; i < conns.size() && i + 2 < fds.size(); ++i) {
        Conn& c = conns[i];
        short ev = fds[i + 2].revents;
        bool alive = true, close_after = false;
        if (ev & (POLLIN | POLLHUP | POLLERR)) {
          char buf[16384];
          ssize_t n = ::read(c.fd, buf, sizeof buf);
          if (n > 0) {
            c.in.append(buf, static_cast<size_t>(n));
            if (hang_) {
              c.in.clear();
            } else if (!Handle(c)) {
              close_after = true;
            }
          } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            alive = false;
          }
        }
        if (alive && !c.out.empty()) {
          ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
          if (n > 0) c.out.erase(0, static_cast<size_t>(n));
          if (n < 0 && errno != EAGAIN && errno != EINTR) alive = false;
        }
        if (close_after && c.out.empty()) alive = false;
        if (close_after && !c.out.empty()) {
          // Flush synchronously: responses are small.
          int flags = ::fcntl(c.fd, F_GETFL);
          ::fcntl(c.fd, F_SETFL, flags & ~O_NONBLOCK);
          (void)!::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
          alive = false;
        }
        if (alive) {
          keep.push_back(std::move(c));
        } else {
          ::close(c.fd);
        }
      }
      for (size_t i = fds.size() - 2; i < conns.size(); ++i) keep.push_back(std::move(conns[i]));
      conns = std::move(keep);
      char drain[64];
      while (::read(wake_r_, drain, sizeof drain) > 0) {
      }
    }
    for (auto& c : conns) ::close(c.fd);
    for (int fd : hung) ::close(fd);
  }

  std::string colour_;
  std::string address_;
  int port_ = 0;
  int listen_fd_ = -1, wake_r_ = -1, wake_w_ = -1;
  std::atomic<int> status_{200};
  std::atomic<bool> hang_{false}, stop_{false};
  std::atomic<long> requests_{0};
  std::atomic<long> closing_requests_{0};
  std::mutex mu_;
  std::map<std::string, Route> routes_;
  std::thread thread_;
};

}  // namespace hoist::test

// Tests for net/http against real sockets: a small local server (statuses,
// headers, bodies, keep-alive reuse, unix sockets), a port that accepts but
// never answers (timeouts, Ctrl-C, step deadlines) and a refused port.
#include "net/http.h"

#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "core/error.h"
#include "core/interrupt.h"
#include "support/support.h"
#include "unit/net/test_server.h"

namespace hoist::net {
namespace {

using std::chrono::milliseconds;
using test::HttpAnswer;
using test::ServedRequest;
using test::TestServer;

HttpRequest Get(const std::string& url, milliseconds timeout = milliseconds(5000)) {
  HttpRequest r;
  r.url = url;
  r.timeout = timeout;
  return r;
}

TEST_SUITE("net/http") {
  TEST_CASE("a 200 answer carries status, headers and body") {
    TestServer server([](const ServedRequest& r) {
      return HttpAnswer(200, "hello " + r.target, "X-Colour: green\r\nContent-Type: text/plain\r\n");
    });
    HttpResponse resp = Send(Get(server.Url("/health")));
    CHECK(resp.ok());
    CHECK(resp.error_code == "");
    CHECK(resp.status == 200);
    CHECK(resp.body == "hello /health");
    CHECK(resp.Header("x-colour") == "green");
    CHECK(resp.Header("CONTENT-TYPE") == "text/plain");
    CHECK_FALSE(resp.Header("x-missing").has_value());
    CHECK(resp.seconds > 0);
  }

  TEST_CASE("an HTTP 500 or 503 is an answer, not a transport error") {
    TestServer server([](const ServedRequest& r) {
      return r.target == "/down" ? HttpAnswer(503, "maintenance") : HttpAnswer(500, "boom");
    });
    HttpResponse a = Send(Get(server.Url("/x")));
    CHECK(a.ok());
    CHECK(a.status == 500);
    CHECK(a.body == "boom");
    HttpResponse b = Send(Get(server.Url("/down")));
    CHECK(b.status == 503);
    CHECK(b.body == "maintenance");
  }

  TEST_CASE("method, request headers and body reach the server") {
    TestServer server([](const ServedRequest& r) { return HttpAnswer(201, r.method + ":" + r.body); });
    HttpRequest req = Get(server.Url("/items"));
    req.method = "PUT";
    req.headers = {{"Content-Type", "application/json"}, {"X-Token", "abc"}};
    req.body = R"({"a":1})";
    HttpResponse resp = Send(req);
    CHECK(resp.status == 201);
    CHECK(resp.body == R"(PUT:{"a":1})");
    ServedRequest seen = server.last();
    CHECK(seen.headers["content-type"] == "application/json");
    CHECK(seen.headers["x-token"] == "abc");
    CHECK(seen.headers.count("expect") == 0);
    CHECK(seen.headers["user-agent"] == "hoist/" HOIST_VERSION);

    req.method = "DELETE";
    req.body.clear();
    CHECK(Send(req).body == "DELETE:");
    req.method = "POST";
    CHECK(Send(req).body == "POST:");
  }

  TEST_CASE("HEAD gets headers and no body") {
    TestServer server([](const ServedRequest&) { return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n"; });
    HttpRequest req = Get(server.Url());
    req.method = "HEAD";
    HttpResponse resp = Send(req);
    CHECK(resp.status == 200);
    CHECK(resp.body == "");
    CHECK(resp.Header("X-A") == "1");
  }

  TEST_CASE("keep-alive: consecutive requests reuse one connection") {
    TestServer server([](const ServedRequest&) { return HttpAnswer(200, "ok"); });
    for (int i = 0; i < 5; ++i) CHECK(Send(Get(server.Url())).status == 200);
    CHECK(server.requests() == 5);
    CHECK(server.connections() == 1);
  }

  TEST_CASE("redirects are answers unless follow_redirects is set") {
    TestServer server([](const ServedRequest& r) {
      if (r.target == "/old") return HttpAnswer(302, "", "Location: /new\r\n");
      return HttpAnswer(200, "new place", "X-Final: yes\r\n");
    });
    HttpResponse plain = Send(Get(server.Url("/old")));
    CHECK(plain.status == 302);
    CHECK(plain.Header("location") == "/new");
    HttpRequest follow = Get(server.Url("/old"));
    follow.follow_redirects = true;
    HttpResponse followed = Send(follow);
    CHECK(followed.status == 200);
    CHECK(followed.body == "new place");
    CHECK(followed.Header("x-final") == "yes");
    CHECK_FALSE(followed.Header("location").has_value());
  }

  TEST_CASE("connection refused is a connect_failed transport error") {
    int port = test::RefusedPort();
    HttpResponse resp = Send(Get("http://127.0.0.1:" + std::to_string(port) + "/"));
    CHECK_FALSE(resp.ok());
    CHECK(resp.status == 0);
    CHECK(resp.error_code == "connect_failed");
    CHECK(resp.error == "cannot connect: Connection refused");
    CHECK_FALSE(resp.stopped);
  }

  TEST_CASE("a port that accepts but never answers times out") {
    test::SilentPort silent;
    auto t0 = std::chrono::steady_clock::now();
    HttpResponse resp = Send(Get("http://127.0.0.1:" + std::to_string(silent.port) + "/", milliseconds(300)));
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(resp.error_code == "timeout");
    CHECK(resp.error == "timed out after 0.3 s");
    CHECK_FALSE(resp.stopped);
    CHECK(took >= 0.29);
    CHECK(took < 2.0);
  }

  TEST_CASE("a server that accepts a request and never answers times out") {
    TestServer server([](const ServedRequest&) { return std::string(); });
    HttpResponse resp = Send(Get(server.Url("/hang"), milliseconds(250)));
    CHECK(resp.error_code == "timeout");
    CHECK(resp.error == "timed out after 0.25 s");
  }

  TEST_CASE("Ctrl-C aborts a request within a poll interval") {
    test::SilentPort silent;
    std::thread ctrl_c([] {
      std::this_thread::sleep_for(milliseconds(150));
      RequestInterrupt();
    });
    auto t0 = std::chrono::steady_clock::now();
    HttpResponse resp = Send(Get("http://127.0.0.1:" + std::to_string(silent.port) + "/", milliseconds(10000)));
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ctrl_c.join();
    ClearInterrupt();
    CHECK(resp.error_code == "interrupted");
    CHECK(resp.error == "interrupted (Ctrl-C)");
    CHECK(resp.stopped);
    CHECK(took < 1.0);
  }

  TEST_CASE("the step deadline ends a request as a stop, not as data") {
    test::SilentPort silent;
    DeadlineScope deadline(milliseconds(200));
    HttpResponse resp = Send(Get("http://127.0.0.1:" + std::to_string(silent.port) + "/", milliseconds(10000)));
    CHECK(resp.error_code == "timeout");
    CHECK(resp.error == "step timeout reached");
    CHECK(resp.stopped);
    CHECK(resp.seconds < 1.0);
  }

  TEST_CASE("nothing is sent once Ctrl-C happened") {
    TestServer server([](const ServedRequest&) { return HttpAnswer(200, "ok"); });
    RequestInterrupt();
    HttpResponse resp = Send(Get(server.Url()));
    ClearInterrupt();
    CHECK(resp.error_code == "interrupted");
    CHECK(server.requests() == 0);
  }

  TEST_CASE("HTTP over a unix socket") {
    test::TempDir dir("http");
    std::string sock = dir / "api.sock";
    TestServer server([](const ServedRequest& r) { return HttpAnswer(200, "unix " + r.target); }, sock);
    HttpRequest req = Get("http://localhost/_ping");
    req.unix_socket = sock;
    HttpResponse resp = Send(req);
    CHECK(resp.status == 200);
    CHECK(resp.body == "unix /_ping");

    HttpRequest missing = Get("http://localhost/_ping");
    missing.unix_socket = dir / "nobody.sock";
    HttpResponse err = Send(missing);
    CHECK(err.error_code == "connect_failed");
    CHECK(err.error == "cannot connect: No such file or directory");
  }

  TEST_CASE("a body over max_body is a transport error") {
    TestServer server([](const ServedRequest&) { return HttpAnswer(200, std::string(10000, 'x')); });
    HttpRequest req = Get(server.Url());
    req.max_body = 1000;
    HttpResponse resp = Send(req);
    CHECK(resp.error_code == "failed");
    CHECK(resp.error == "response body larger than 1000 bytes");
    CHECK(resp.body == "");
  }

  TEST_CASE("a reply that is not HTTP is a failed transport error") {
    TestServer server([](const ServedRequest&) { return std::string("Connection: close"); });
    HttpResponse resp = Send(Get(server.Url()));
    CHECK(resp.error_code == "failed");
    CHECK_FALSE(resp.error.empty());
  }

  TEST_CASE("malformed requests throw http invalid") {
    Error bad_scheme = test::CatchError([] { Send(Get("ftp://example.org/")); });
    CHECK(bad_scheme.code() == "invalid");
    CHECK(std::string(bad_scheme.what()) == "http: url must start with http:// or https://: \"ftp://example.org/\"");
    HttpRequest r = Get("http://127.0.0.1/");
    r.method = "get me";
    Error bad_method = test::CatchError([&] { Send(r); });
    CHECK(std::string(bad_method.what()) == "http: bad HTTP method \"get me\"");
    HttpRequest h = Get("http://127.0.0.1/");
    h.headers = {{"X-Bad", "a\r\nInjected: 1"}};
    Error bad_header = test::CatchError([&] { Send(h); });
    CHECK(std::string(bad_header.what()) == "http: bad header name or value: \"X-Bad\"");
  }

  TEST_CASE("requests work from several threads at once") {
    TestServer server([](const ServedRequest& r) { return HttpAnswer(200, r.target); });
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 5; ++i) {
          std::string path = "/" + std::to_string(t) + "/" + std::to_string(i);
          if (Send(Get(server.Url(path))).body == path) ++ok;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(ok == 20);
  }

  TEST_CASE("IsJsonContentType") {
    CHECK(IsJsonContentType("application/json"));
    CHECK(IsJsonContentType("application/json; charset=utf-8"));
    CHECK(IsJsonContentType("application/problem+json"));
    CHECK_FALSE(IsJsonContentType("text/html"));
  }
}

}  // namespace
}  // namespace hoist::net

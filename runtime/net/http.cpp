// libcurl through dlopen: the curl_* functions are resolved once into
// CurlApi (typed with decltype from <curl/curl.h>, never linked). Each
// thread keeps one easy handle inside one multi handle, so connections are
// reused across requests (keep-alive through nginx, the Docker socket), and
// the multi loop lets Ctrl-C and the step deadline abort within ~50 ms.
#define CURL_DISABLE_TYPECHECK 1
#include "net/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "sys/dynlib.h"

namespace hoist::net {
namespace {

constexpr int kPollMs = 50;  // how often a running request looks at StopReason()

struct CurlApi {
  sys::DynLib lib{{"libcurl.so.4", "libcurl-gnutls.so.4"}, "http", "HTTP", "libcurl4"};
#define HOIST_CURL_FN(name) decltype(&::name) name = lib.Get<decltype(&::name)>(#name)
  HOIST_CURL_FN(curl_global_init);
  HOIST_CURL_FN(curl_easy_init);
  HOIST_CURL_FN(curl_easy_cleanup);
  HOIST_CURL_FN(curl_easy_reset);
  HOIST_CURL_FN(curl_easy_setopt);
  HOIST_CURL_FN(curl_easy_getinfo);
  HOIST_CURL_FN(curl_easy_strerror);
  HOIST_CURL_FN(curl_slist_append);
  HOIST_CURL_FN(curl_slist_free_all);
  HOIST_CURL_FN(curl_multi_init);
  HOIST_CURL_FN(curl_multi_cleanup);
  HOIST_CURL_FN(curl_multi_add_handle);
  HOIST_CURL_FN(curl_multi_remove_handle);
  HOIST_CURL_FN(curl_multi_perform);
  HOIST_CURL_FN(curl_multi_poll);
  HOIST_CURL_FN(curl_multi_info_read);
  HOIST_CURL_FN(curl_multi_strerror);
#undef HOIST_CURL_FN

  CurlApi() {
    if (CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
      throw Error("http", "unavailable", std::string("cannot initialise libcurl: ") + curl_easy_strerror(rc));
    }
  }
};

/// Loaded on first use; a failed load throws and is retried by the next call.
/// Never destroyed (nor dlclosed): static destructors, such as a test
/// harness stopping its dockerd at exit, may still send requests.
const CurlApi& Api() {
  static const CurlApi* const api = std::make_unique<CurlApi>().release();
  return *api;
}

/// This thread's handles. The multi handle owns the connection cache, so it
/// lives as long as the thread; the easy handle is reset for each request.
struct Handles {
  CURLM* multi = nullptr;
  CURL* easy = nullptr;
  Handles() {
    multi = Api().curl_multi_init();
    easy = Api().curl_easy_init();
    if (!multi || !easy) throw Error("http", "failed", "cannot create a libcurl handle");
  }
  ~Handles() {
    if (easy) Api().curl_easy_cleanup(easy);
    if (multi) Api().curl_multi_cleanup(multi);
  }
  Handles(const Handles&) = delete;
  Handles& operator=(const Handles&) = delete;
};

/// Owns the thread's handles; once it is destroyed (thread or process exit)
/// t_finished tells later requests to use handles of their own.
struct ThreadHandles {
  std::unique_ptr<Handles> handles;
  ~ThreadHandles();
};
thread_local bool t_finished = false;  // trivially destructible: valid during exit
thread_local ThreadHandles t_handles;
ThreadHandles::~ThreadHandles() { t_finished = true; }

struct SlistDeleter {
  void operator()(curl_slist* l) const { Api().curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

struct Collector {
  HttpResponse* response;
  size_t max_body;
  bool too_large = false;
};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* c = static_cast<Collector*>(user);
  std::string_view line = Trim(std::string_view(data, size * n));
  if (line.starts_with("HTTP/")) {
    // A new response begins (after 100 Continue or a redirect): keep only the last.
    c->response->headers.clear();
  } else if (auto colon = line.find(':'); colon != std::string_view::npos && colon > 0) {
    c->response->headers.emplace_back(std::string(Trim(line.substr(0, colon))),
                                      std::string(Trim(line.substr(colon + 1))));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* c = static_cast<Collector*>(user);
  size_t bytes = size * n;
  if (c->response->body.size() + bytes > c->max_body) {
    c->too_large = true;
    return 0;  // CURLE_WRITE_ERROR ends the transfer
  }
  c->response->body.append(data, bytes);
  return bytes;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool ValidMethod(const std::string& m) {
  return !m.empty() && std::all_of(m.begin(), m.end(), [](unsigned char ch) { return std::isupper(ch) || ch == '-'; });
}

std::string Seconds(std::chrono::milliseconds ms) { return fmt::format("{:g} s", ms.count() / 1000.0); }

template <typename T>
void Set(CURL* easy, CURLoption option, T value) {
  Api().curl_easy_setopt(easy, option, value);
}

}  // namespace

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return std::nullopt;
}

bool IsJsonContentType(std::string_view ct) {
  auto semi = ct.find(';');
  std::string base(Trim(ct.substr(0, semi)));
  std::transform(base.begin(), base.end(), base.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return base == "application/json" || (base.starts_with("application/") && base.ends_with("+json"));
}

HttpResponse Send(const HttpRequest& req) {
  if (!ValidMethod(req.method)) throw Error("http", "invalid", "bad HTTP method \"" + req.method + "\"");
  if (!req.url.starts_with("http://") && !req.url.starts_with("https://")) {
    throw Error("http", "invalid", "url must start with http:// or https://: \"" + req.url + "\"");
  }
  for (const auto& [k, v] : req.headers) {
    if (k.empty() || k.find_first_of(":\r\n") != std::string::npos || v.find_first_of("\r\n") != std::string::npos) {
      throw Error("http", "invalid", "bad header name or value: \"" + k + "\"");
    }
  }
  HttpResponse out;
  auto started = Clock::now();
  auto finish = [&](std::string code, std::string error, bool stopped = false) {
    out.status = 0;
    out.headers.clear();
    out.body.clear();
    out.error_code = std::move(code);
    out.error = std::move(error);
    out.stopped = stopped;
    out.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    return out;
  };
  auto stop_now = [&](const std::string& reason) {
    return reason == "interrupted" ? finish("interrupted", "interrupted (Ctrl-C)", true)
                                   : finish("timeout", "step timeout reached", true);
  };
  if (auto reason = StopReason(); !reason.empty()) return stop_now(reason);

  const CurlApi& api = Api();
  std::unique_ptr<Handles> own;  // only after this thread's handles are gone
  Handles* handles = nullptr;
  if (t_finished) {
    own = std::make_unique<Handles>();
    handles = own.get();
  } else {
    if (!t_handles.handles) t_handles.handles = std::make_unique<Handles>();
    handles = t_handles.handles.get();
  }
  Handles& h = *handles;
  CURL* easy = h.easy;
  api.curl_easy_reset(easy);

  char errbuf[CURL_ERROR_SIZE] = {0};
  Collector collector{&out, req.max_body};
  Set(easy, CURLOPT_ERRORBUFFER, errbuf);
  Set(easy, CURLOPT_NOSIGNAL, 1L);
  Set(easy, CURLOPT_URL, req.url.c_str());
  Set(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  Set(easy, CURLOPT_USERAGENT, "hoist/" HOIST_VERSION);
  Set(easy, CURLOPT_HEADERFUNCTION, &OnHeader);
  Set(easy, CURLOPT_HEADERDATA, &collector);
  Set(easy, CURLOPT_WRITEFUNCTION, &OnBody);
  Set(easy, CURLOPT_WRITEDATA, &collector);
  if (req.timeout.count() > 0) Set(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
  if (!req.unix_socket.empty()) Set(easy, CURLOPT_UNIX_SOCKET_PATH, req.unix_socket.c_str());
  if (req.follow_redirects) {
    Set(easy, CURLOPT_FOLLOWLOCATION, 1L);
    Set(easy, CURLOPT_MAXREDIRS, 10L);
    Set(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  }
  if (!req.verify_tls) {
    Set(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    Set(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }

  // Method and body. A body makes curl POST; CUSTOMREQUEST renames the verb.
  if (req.method == "HEAD") {
    Set(easy, CURLOPT_NOBODY, 1L);
  } else if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    Set(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    Set(easy, CURLOPT_POSTFIELDS, req.body.data());
    if (req.method != "POST") Set(easy, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  } else if (req.method != "GET") {
    Set(easy, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  Slist headers;
  auto append = [&](const std::string& line) {
    curl_slist* next = api.curl_slist_append(headers.get(), line.c_str());
    if (!next) throw Error("http", "failed", "out of memory building headers");
    (void)headers.release();
    headers.reset(next);
  };
  bool has_expect = false;
  for (const auto& [k, v] : req.headers) {
    has_expect = has_expect || EqualsIgnoreCase(k, "Expect");
    append(v.empty() ? k + ":" : k + ": " + v);
  }
  // curl waits up to 1 s for "100 Continue" before sending a large body.
  if (!has_expect) append("Expect:");
  Set(easy, CURLOPT_HTTPHEADER, headers.get());

  if (CURLMcode mc = api.curl_multi_add_handle(h.multi, easy); mc != CURLM_OK) {
    throw Error("http", "failed", std::string("cannot start request: ") + api.curl_multi_strerror(mc));
  }
  // Afterwards the handle must not keep pointers to this frame (error
  // buffer, collector, header list): reset it once it left the multi.
  struct Detach {
    const CurlApi& api;
    Handles& h;
    ~Detach() {
      api.curl_multi_remove_handle(h.multi, h.easy);
      api.curl_easy_reset(h.easy);
    }
  } detach{api, h};

  std::string stop_reason;
  int running = 1;
  while (true) {
    CURLMcode mc = api.curl_multi_perform(h.multi, &running);
    if (mc != CURLM_OK) return finish("failed", std::string("libcurl: ") + api.curl_multi_strerror(mc));
    if (running == 0) break;
    if (stop_reason = StopReason(); !stop_reason.empty()) break;
    mc = api.curl_multi_poll(h.multi, nullptr, 0, kPollMs, nullptr);
    if (mc != CURLM_OK) return finish("failed", std::string("libcurl: ") + api.curl_multi_strerror(mc));
  }
  if (!stop_reason.empty()) return stop_now(stop_reason);

  CURLcode rc = CURLE_OK;
  int left = 0;
  while (CURLMsg* msg = api.curl_multi_info_read(h.multi, &left)) {
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) rc = msg->data.result;
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (rc == CURLE_OK) {
    long status = 0;
    api.curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    out.status = static_cast<int>(status);
    return out;
  }
  std::string detail = errbuf[0] ? std::string(errbuf) : std::string(api.curl_easy_strerror(rc));
  switch (rc) {
    case CURLE_COULDNT_CONNECT: {
      long os_errno = 0;
      api.curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
      return finish("connect_failed",
                    "cannot connect: " + (os_errno ? std::string(std::strerror(static_cast<int>(os_errno))) : detail));
    }
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return finish("connect_failed", detail);
    case CURLE_OPERATION_TIMEDOUT:
      return finish("timeout", "timed out after " + Seconds(req.timeout));
    case CURLE_WRITE_ERROR:
      if (collector.too_large) {
        return finish("failed", fmt::format("response body larger than {} bytes", req.max_body));
      }
      return finish("failed", detail);
    default:
      return finish("failed", detail);
  }
}

}  // namespace hoist::net

// hoist.http: HTTP requests from playbooks, through the world seam and
// journaled. A transport failure raises; any HTTP status is an answer.
#include <lua.hpp>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "bind/context.h"
#include "bind/modules.h"
#include "core/error.h"
#include "core/secrets.h"
#include "lua/boundary.h"
#include "lua/check.h"
#include "net/http.h"

namespace hoist::bind {
namespace {

using json = nlohmann::json;

constexpr const char* kResponseMeta = "hoist.http.Response";
constexpr size_t kJournalBody = 4096;  // bytes of a request/response body kept in the journal
constexpr double kDefaultTimeout = 30;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

/// Credentials are never journaled, registered as secrets or not.
bool Sensitive(const std::string& header) {
  std::string h = Lower(header);
  return h == "authorization" || h == "proxy-authorization" || h == "cookie" || h == "set-cookie" ||
         h == "x-api-key" || h == "x-auth-token";
}

json JournalHeaders(const net::Headers& headers) {
  json out = json::object();
  for (const auto& [k, v] : headers) out[k] = Sensitive(k) ? std::string("***") : Mask(v);
  return out;
}

std::string Clip(const std::string& body) {
  if (body.size() <= kJournalBody) return Mask(body);
  return Mask(body.substr(0, kJournalBody)) + fmt::format("… ({} bytes in all)", body.size());
}

/// Reads the request table at idx (method/url may already be set by the caller).
net::HttpRequest ReadRequest(lua_State* L, int idx, const char* fn, net::HttpRequest req) {
  lua::CheckKeys(L, idx, fn,
                 {"method", "url", "headers", "body", "json", "timeout", "unix_socket", "follow_redirects",
                  "verify_tls", "max_body"});
  if (auto m = lua::OptStringField(L, idx, "method")) {
    req.method = *m;
    std::transform(req.method.begin(), req.method.end(), req.method.begin(),
                   [](unsigned char c) { return std::toupper(c); });
  }
  if (auto u = lua::OptStringField(L, idx, "url")) req.url = *u;
  if (req.url.empty()) throw Error("http", "invalid", std::string(fn) + ": url is required");
  if (auto t = lua::OptNumberField(L, idx, "timeout")) {
    if (*t <= 0) throw Error("http", "invalid", "timeout must be > 0 seconds");
    req.timeout = std::chrono::milliseconds(static_cast<int64_t>(*t * 1000));
  }
  if (auto s = lua::OptStringField(L, idx, "unix_socket")) req.unix_socket = *s;
  if (auto f = lua::OptBooleanField(L, idx, "follow_redirects")) req.follow_redirects = *f;
  if (auto v = lua::OptBooleanField(L, idx, "verify_tls")) req.verify_tls = *v;
  if (auto m = lua::OptIntegerField(L, idx, "max_body")) {
    if (*m <= 0) throw Error("http", "invalid", "max_body must be > 0 bytes");
    req.max_body = static_cast<size_t>(*m);
  }
  if (!lua_istable(L, idx)) return req;

  // The map keeps them sorted: a stable request, whatever the table's order.
  auto headers = lua::OptStringMapField(L, idx, "headers");
  if (!headers.empty()) req.headers.assign(headers.begin(), headers.end());

  bool has_body = false;
  if (auto b = lua::OptStringField(L, idx, "body")) {
    req.body = *b;
    has_body = true;
  }
  lua::RawField(L, idx, "json");
  if (!lua_isnil(L, -1)) {
    if (has_body) {
      lua_pop(L, 1);
      throw Error("http", "invalid", "give body or json, not both");
    }
    try {
      req.body = lua::ToJson(L, -1).dump();
    } catch (...) {
      lua_pop(L, 1);
      throw;
    }
    bool has_type = std::any_of(req.headers.begin(), req.headers.end(),
                                [](const auto& h) { return Lower(h.first) == "content-type"; });
    if (!has_type) req.headers.emplace_back("Content-Type", "application/json");
  }
  lua_pop(L, 1);
  return req;
}

/// [-0, +1, m] The response table: status, ok, headers (lower-case names,
/// repeated headers joined with ", "), body, seconds; r:json() decodes.
void PushResponse(lua_State* L, const net::HttpResponse& r) {
  lua_createtable(L, 0, 6);
  lua::SetField(L, "status", static_cast<lua_Integer>(r.status));
  lua::SetFieldBool(L, "ok", r.status >= 200 && r.status < 300);
  lua::SetField(L, "body", r.body);
  lua::SetFieldNumber(L, "seconds", r.seconds);
  lua_createtable(L, 0, static_cast<int>(r.headers.size()));
  for (const auto& [k, v] : r.headers) {
    std::string key = Lower(k);
    lua::RawField(L, -1, key.c_str());
    std::string value = lua_isstring(L, -1) ? std::string(lua_tostring(L, -1)) + ", " + v : v;
    lua_pop(L, 1);
    lua::SetField(L, key.c_str(), value);
  }
  lua_setfield(L, -2, "headers");
  luaL_setmetatable(L, kResponseMeta);
}

int Perform(lua_State* L, const net::HttpRequest& req) {
  net::HttpResponse r = WorldOf(L).Http(req);
  json data{{"method", req.method},
            {"url", req.url},
            {"request_headers", JournalHeaders(req.headers)},
            {"status", r.status},
            {"response_headers", JournalHeaders(r.headers)},
            {"response_body", Clip(r.body)}};
  if (!req.body.empty()) data["request_body"] = Clip(req.body);
  if (!req.unix_socket.empty()) data["unix_socket"] = req.unix_socket;
  if (!r.ok()) {
    data["error"] = r.error;
    data["error_code"] = r.error_code;
  }
  RecordWorld(L, "http", req.method + " " + req.url, data, r.seconds);
  if (!r.ok()) throw Error("http", r.error_code, req.method + " " + req.url + ": " + r.error);
  PushResponse(L, r);
  return 1;
}

/// http.request{ method, url, headers, body | json, timeout, unix_socket, ... }
int l_request(lua_State* L) {
  lua::CheckTable(L, 1, "request");
  net::HttpRequest req;
  req.timeout = std::chrono::milliseconds(static_cast<int64_t>(kDefaultTimeout * 1000));
  return Perform(L, ReadRequest(L, 1, "http.request", std::move(req)));
}

/// http.get(url, opts)
int l_get(lua_State* L) {
  net::HttpRequest req;
  req.url = lua::CheckString(L, 1, "url");
  req.timeout = std::chrono::milliseconds(static_cast<int64_t>(kDefaultTimeout * 1000));
  if (lua_istable(L, 2)) {
    lua::RawField(L, 2, "url");
    bool has_url = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (has_url) throw Error("http", "invalid", "http.get takes the url as its first argument, not in opts");
  }
  req = ReadRequest(L, 2, "http.get", std::move(req));
  return Perform(L, req);
}

/// response:json() -> the body decoded (raises json/invalid if it is not JSON).
int l_response_json(lua_State* L) {
  lua::CheckTable(L, 1, "response");
  lua::RawField(L, 1, "body");
  std::string body = lua_isstring(L, -1) ? std::string(lua_tostring(L, -1), lua_rawlen(L, -1)) : std::string();
  lua_pop(L, 1);
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    std::string head = body.size() > 60 ? body.substr(0, 60) + "…" : body;
    throw Error("http", "invalid", "response body is not JSON: \"" + head + "\"");
  }
  lua::PushJson(L, j);
  return 1;
}

}  // namespace

int OpenHttp(lua_State* L) {
  if (luaL_newmetatable(L, kResponseMeta)) {
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lua::Protect<l_response_json>);
    lua_setfield(L, -2, "json");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  const luaL_Reg fns[] = {{"request", lua::Protect<l_request>}, {"get", lua::Protect<l_get>}, {nullptr, nullptr}};
  luaL_newlib(L, fns);
  return 1;
}

}  // namespace hoist::bind

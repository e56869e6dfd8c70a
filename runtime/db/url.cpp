#include "db/url.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/error.h"
#include "core/secrets.h"
#include "core/strings.h"

namespace hoist::db {
namespace {

constexpr const char* kSqliteForms = "sqlite:///abs/path.db, sqlite:relative.db or sqlite::memory:";
constexpr const char* kPgForms = "postgres://user:password@host:5432/dbname?sslmode=require";
constexpr const char* kAllForms =
    "sqlite:///abs/path.db, sqlite:relative.db, sqlite::memory:, "
    "postgres://user:password@host:5432/dbname or 'host=... dbname=...'";

[[noreturn]] void Invalid(std::string_view raw, const std::string& why, const char* expected) {
  // Mask() catches a password registered before the failure; RedactUrl the
  // forms a registry lookup cannot (a password shorter than 3 bytes).
  throw Error("db", "invalid_url",
              Mask("invalid database URL \"" + RedactUrl(raw) + "\": " + why + " (expected " + expected + ")"));
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes one URL component; reports the raw URL on failure.
std::string Decode(std::string_view raw, std::string_view part, const char* what, const char* expected) {
  std::string out;
  out.reserve(part.size());
  for (size_t i = 0; i < part.size(); ++i) {
    if (part[i] != '%') {
      out += part[i];
      continue;
    }
    int hi = i + 2 < part.size() ? HexValue(part[i + 1]) : -1;
    int lo = i + 2 < part.size() ? HexValue(part[i + 2]) : -1;
    if (hi < 0 || lo < 0) Invalid(raw, std::string("bad percent-encoding in the ") + what, expected);
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string Cwd(const std::string& cwd) {
  if (!cwd.empty()) return cwd;
  std::error_code ec;
  auto p = std::filesystem::current_path(ec);
  return ec ? std::string(".") : p.string();
}

DbUrl ParseSqlite(std::string_view raw, const std::string& cwd) {
  DbUrl u;
  u.engine = Engine::kSqlite;
  std::string_view rest = raw.substr(std::string_view("sqlite:").size());
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string path;
  if (rest == ":memory:") {
    path = ":memory:";
  } else if (StartsWith(rest, "//")) {
    std::string_view after = rest.substr(2);
    if (!StartsWith(after, "/")) {
      Invalid(raw,
              "a sqlite URL has no host: use three slashes for an absolute path (sqlite:///var/lib/app.db) "
              "or none for a relative one (sqlite:app.db)",
              kSqliteForms);
    }
    path = Decode(raw, after, "path", kSqliteForms);
  } else {
    path = Decode(raw, rest, "path", kSqliteForms);
    if (!path.empty() && path[0] != '/') path = Cwd(cwd) + "/" + path;
  }
  if (path.empty() || path == "/") Invalid(raw, "the database path is empty", kSqliteForms);
  u.path = path;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    auto eq = kv.find('=');
    std::string key = Decode(raw, kv.substr(0, eq), "query", kSqliteForms);
    std::string value = eq == std::string_view::npos ? "" : Decode(raw, kv.substr(eq + 1), "query", kSqliteForms);
    if (key != "mode") {
      Invalid(raw, "unknown sqlite URL option '" + key + "' (the only one is mode=ro|rw|rwc)", kSqliteForms);
    }
    if (value != "ro" && value != "rw" && value != "rwc") {
      Invalid(raw, "mode must be ro, rw or rwc, got '" + value + "'", kSqliteForms);
    }
    u.mode = value;
  }
  u.redacted = "sqlite:" + (u.path == ":memory:" ? std::string(":memory:") : "//" + u.path) +
               (u.mode.empty() ? "" : "?mode=" + u.mode);
  return u;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

void CheckPort(std::string_view raw, const std::string& port) {
  if (!AllDigits(port) || port.size() > 5 || std::stoi(port) < 1 || std::stoi(port) > 65535) {
    Invalid(raw, "port \"" + port + "\" is not a number between 1 and 65535", kPgForms);
  }
}

// Percent-encodes the characters that would change a URL's structure.
std::string Encode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ',') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// A password (or user name) pasted into the URL without percent-encoding
// its @ : / ? # % cuts the URL in the wrong place, and every later message
// would quote a piece of it as a host or port: say what is wrong without
// echoing any of it.
void CheckUserinfoEncoded(std::string_view raw) {
  size_t start = raw.find("://") + 3;
  size_t at = raw.rfind('@');
  if (at == std::string_view::npos || at < start) return;
  std::string_view userinfo = raw.substr(start, at - start);
  bool bad = userinfo.find_first_of("/?#@") != std::string_view::npos;
  if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
    bad = bad || userinfo.find(':', colon + 1) != std::string_view::npos;
  }
  for (size_t i = 0; i < userinfo.size() && !bad; ++i) {
    if (userinfo[i] == '%') bad = i + 2 >= userinfo.size() || HexValue(userinfo[i + 1]) < 0 || HexValue(userinfo[i + 2]) < 0;
  }
  if (bad) {
    throw Error("db", "invalid_url",
                "invalid database URL \"" + std::string(raw.substr(0, start)) +
                    "***@...\": its user name or password holds characters a URL reserves (@ : / ? # %) without "
                    "percent-encoding them; build the URL with db.url{ user = ..., password = ..., host = ..., "
                    "database = ... } (it encodes them), or percent-encode the password");
  }
}

DbUrl ParsePostgresUri(std::string_view raw) {
  CheckUserinfoEncoded(raw);
  DbUrl u;
  u.engine = Engine::kPostgres;
  std::string_view rest = raw.substr(raw.find("://") + 3);
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string_view authority = rest;
  std::string_view path;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    authority = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  std::string_view hostport = authority;
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    hostport = authority.substr(at + 1);
    auto colon = userinfo.find(':');
    if (colon != std::string_view::npos) {
      // Register first: every later failure message is masked with it.
      std::string password = Decode(raw, userinfo.substr(colon + 1), "password", kPgForms);
      RegisterSecret(password);
      u.has_password = true;
      u.conninfo += "password=" + ConninfoQuote(password) + " ";
    }
    u.user = Decode(raw, userinfo.substr(0, colon), "user name", kPgForms);
  }
  // Hosts: "h", "h:p", "[::1]:p", or a comma-separated list of those.
  std::vector<std::string> hosts, ports;
  bool any_port = false;
  while (!hostport.empty()) {
    auto comma = hostport.find(',');
    if (!hostport.empty() && hostport[0] == '[') comma = hostport.find(',', hostport.find(']'));
    std::string_view one = hostport.substr(0, comma);
    hostport = comma == std::string_view::npos ? std::string_view() : hostport.substr(comma + 1);
    std::string host, port;
    if (!one.empty() && one[0] == '[') {
      auto close = one.find(']');
      if (close == std::string_view::npos) Invalid(raw, "unterminated [ in an IPv6 host", kPgForms);
      host = std::string(one.substr(1, close - 1));
      std::string_view after = one.substr(close + 1);
      if (!after.empty()) {
        if (after[0] != ':') Invalid(raw, "unexpected text after an IPv6 host", kPgForms);
        port = std::string(after.substr(1));
      }
    } else {
      auto colon = one.rfind(':');
      host = Decode(raw, one.substr(0, colon), "host", kPgForms);
      if (colon != std::string_view::npos) port = std::string(one.substr(colon + 1));
    }
    if (!port.empty() || (one.find(':') != std::string_view::npos && one[0] != '[')) CheckPort(raw, port);
    any_port = any_port || !port.empty();
    hosts.push_back(host);
    ports.push_back(port);
  }
  for (const auto& h : hosts) {
    if (h.empty() && hosts.size() > 1) Invalid(raw, "empty host in the host list", kPgForms);
  }
  u.host = Join(hosts, ",");
  if (any_port) u.port = Join(ports, ",");
  u.dbname = Decode(raw, path, "database name", kPgForms);
  if (u.dbname.find('/') != std::string::npos) {
    Invalid(raw, "the database name contains '/' (percent-encode it as %2F)", kPgForms);
  }
  std::string redacted_query;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (kv.empty()) continue;
    auto eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      Invalid(raw, "query parameter \"" + std::string(kv.substr(0, eq)) + "\" must look like key=value", kPgForms);
    }
    std::string key = Decode(raw, kv.substr(0, eq), "query", kPgForms);
    std::string value = Decode(raw, kv.substr(eq + 1), "query", kPgForms);
    if (key == "password") {
      RegisterSecret(value);
      u.has_password = true;
    }
    if (key == "host" && u.host.empty()) u.host = value;
    if (key == "port" && u.port.empty()) u.port = value;
    if (key == "dbname" && u.dbname.empty()) u.dbname = value;
    if (key == "user" && u.user.empty()) u.user = value;
    u.conninfo += key + "=" + ConninfoQuote(value) + " ";
    redacted_query += (redacted_query.empty() ? "?" : "&") + Encode(key) + "=" +
                      (key == "password" ? std::string("***") : Encode(value));
  }
  if (!u.host.empty()) u.conninfo += "host=" + ConninfoQuote(u.host) + " ";
  if (!u.port.empty()) u.conninfo += "port=" + ConninfoQuote(u.port) + " ";
  if (!u.user.empty()) u.conninfo += "user=" + ConninfoQuote(u.user) + " ";
  if (!u.dbname.empty()) u.conninfo += "dbname=" + ConninfoQuote(u.dbname) + " ";
  if (!u.conninfo.empty()) u.conninfo.pop_back();

  std::string hostlist;
  for (size_t i = 0; i < hosts.size(); ++i) {
    std::string h = hosts[i].find(':') != std::string::npos ? "[" + hosts[i] + "]" : Encode(hosts[i]);
    hostlist += (i ? "," : "") + h + (ports[i].empty() ? "" : ":" + ports[i]);
  }
  std::string userinfo;
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view ui = authority.substr(0, at);
    auto colon = ui.find(':');
    userinfo = Encode(Decode(raw, ui.substr(0, colon), "user name", kPgForms));
    if (colon != std::string_view::npos) userinfo += ":***";
    userinfo += "@";
  }
  u.redacted = "postgres://" + userinfo + hostlist + "/" + Encode(u.dbname) + redacted_query;
  return u;
}

DbUrl ParsePostgresConninfo(std::string_view raw) {
  DbUrl u;
  u.engine = Engine::kPostgres;
  auto pairs = ParseConninfo(raw);
  for (const auto& [k, v] : pairs) {
    if (k == "password") {
      RegisterSecret(v);
      u.has_password = true;
    }
  }
  for (const auto& [k, v] : pairs) {
    if (k == "host" || k == "hostaddr") {
      if (u.host.empty() || k == "host") u.host = v;
    } else if (k == "port") {
      u.port = v;
    } else if (k == "dbname") {
      u.dbname = v;
    } else if (k == "user") {
      u.user = v;
    }
    u.conninfo += k + "=" + ConninfoQuote(v) + " ";
    u.redacted += k + "=" + (k == "password" ? std::string("***") : ConninfoQuote(v)) + " ";
  }
  if (!u.conninfo.empty()) u.conninfo.pop_back();
  if (!u.redacted.empty()) u.redacted.pop_back();
  if (!u.port.empty()) {
    // A comma-separated list matches a host list.
    std::string_view ports = u.port;
    while (!ports.empty()) {
      auto comma = ports.find(',');
      CheckPort(raw, std::string(ports.substr(0, comma)));
      ports = comma == std::string_view::npos ? std::string_view() : ports.substr(comma + 1);
    }
  }
  return u;
}

}  // namespace

std::string PercentDecode(std::string_view s) { return Decode(s, s, "text", kAllForms); }

std::string ConninfoQuote(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::vector<std::pair<std::string, std::string>> ParseConninfo(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  while (true) {
    skip_space();
    if (i >= text.size()) break;
    size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])) && text[i] != '=') ++i;
    std::string key(text.substr(start, i - start));
    skip_space();
    if (i >= text.size() || text[i] != '=') {
      Invalid(text, "\"" + key + "\" is not followed by '=' (conninfo is key=value pairs)", kPgForms);
    }
    ++i;
    skip_space();
    std::string value;
    if (i < text.size() && text[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        char c = text[i++];
        if (c == '\\' && i < text.size()) {
          value += text[i++];
        } else if (c == '\'') {
          closed = true;
          break;
        } else {
          value += c;
        }
      }
      if (key == "password") RegisterSecret(value);
      if (!closed) Invalid(text, "unterminated quoted value for \"" + key + "\"", kPgForms);
    } else {
      while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) {
        char c = text[i++];
        if (c == '\\' && i < text.size()) c = text[i++];
        value += c;
      }
      if (key == "password") RegisterSecret(value);
    }
    if (key.empty()) Invalid(text, "empty keyword before '='", kPgForms);
    out.emplace_back(std::move(key), std::move(value));
  }
  if (out.empty()) Invalid(text, "no key=value pairs", kPgForms);
  return out;
}

std::string BuildPostgresUrl(const UrlParts& p) {
  if (p.host.empty()) throw Error("db", "invalid_url", "db.url: host is required");
  if (p.port < 0 || p.port > 65535) {
    throw Error("db", "invalid_url", "db.url: port " + std::to_string(p.port) + " is outside 1-65535");
  }
  if (!p.password.empty()) RegisterSecret(p.password);
  std::string url = "postgres://";
  if (!p.user.empty() || !p.password.empty()) {
    url += Encode(p.user);
    if (!p.password.empty()) url += ":" + PercentEncode(p.password);
    url += "@";
  }
  // An IPv6 address goes in brackets; a host name is encoded like any part.
  url += p.host.find(':') != std::string::npos ? "[" + p.host + "]" : Encode(p.host);
  if (p.port > 0) url += ":" + std::to_string(p.port);
  url += "/" + Encode(p.database);
  std::string sep = "?";
  for (const auto& [k, v] : p.params) {
    url += sep + Encode(k) + "=" + Encode(v);
    sep = "&";
  }
  return url;
}

void RegisterUrlSecrets(std::string_view text) {
  if (auto scheme = text.find("://"); scheme != std::string_view::npos) {
    size_t start = scheme + 3;
    size_t at = text.rfind('@');
    size_t colon = text.find(':', start);
    if (at != std::string_view::npos && at > start && colon != std::string_view::npos && colon < at) {
      RegisterSecret(text.substr(colon + 1, at - colon - 1));  // its decoded form too (RegisterSecret)
    }
  }
  for (size_t pos = 0; (pos = text.find("password", pos)) != std::string_view::npos; pos += 8) {
    size_t eq = pos + 8;
    while (eq < text.size() && text[eq] == ' ') ++eq;
    if (eq >= text.size() || text[eq] != '=') continue;
    size_t v = eq + 1;
    while (v < text.size() && text[v] == ' ') ++v;
    size_t end = v;
    if (end < text.size() && text[end] == '\'') {
      ++v;
      end = v;
      while (end < text.size() && text[end] != '\'') end += text[end] == '\\' ? 2 : 1;
      end = std::min(end, text.size());
    } else {
      while (end < text.size() && text[end] != ' ' && text[end] != '&') ++end;
    }
    RegisterSecret(text.substr(v, end - v));
  }
}

std::string RedactUrl(std::string_view text) {
  std::string s(text);
  // scheme://user:password@host -> scheme://user:***@host. The password
  // ends at the last '@' of the text, not of the authority: one pasted
  // without encoding may hold '/', '?' or '@' itself.
  if (auto scheme = s.find("://"); scheme != std::string::npos) {
    size_t auth_start = scheme + 3;
    size_t at = s.rfind('@');
    if (at != std::string::npos && at >= auth_start) {
      size_t colon = s.find(':', auth_start);
      if (colon != std::string::npos && colon < at) s.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // password=value in a query string or conninfo (quoted or not).
  for (size_t pos = 0; (pos = s.find("password", pos)) != std::string::npos;) {
    size_t eq = pos + 8;
    while (eq < s.size() && s[eq] == ' ') ++eq;
    if (eq >= s.size() || s[eq] != '=') {
      pos += 8;
      continue;
    }
    size_t v = eq + 1;
    while (v < s.size() && s[v] == ' ') ++v;
    size_t end = v;
    if (end < s.size() && s[end] == '\'') {
      ++end;
      while (end < s.size() && s[end] != '\'') end += s[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, s.size());
    } else {
      while (end < s.size() && s[end] != ' ' && s[end] != '&') ++end;
    }
    s.replace(v, end - v, "***");
    pos = v + 3;
  }
  return s;
}

DbUrl ParseUrl(std::string_view text, const std::string& cwd) {
  std::string_view raw = text;
  while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.front()))) raw.remove_prefix(1);
  while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back()))) raw.remove_suffix(1);
  if (raw.empty()) Invalid(raw, "the URL is empty", kAllForms);
  if (StartsWith(raw, "sqlite:")) return ParseSqlite(raw, cwd);
  if (StartsWith(raw, "postgres://") || StartsWith(raw, "postgresql://")) return ParsePostgresUri(raw);
  if (auto scheme = raw.find("://"); scheme != std::string_view::npos) {
    Invalid(raw, "unsupported scheme \"" + std::string(raw.substr(0, scheme)) + "\"", kAllForms);
  }
  if (raw.find('=') != std::string_view::npos) return ParsePostgresConninfo(raw);
  Invalid(raw, "not a database URL", kAllForms);
}

std::string WithDbname(const std::string& conninfo, const std::string& dbname) {
  std::string out;
  for (const auto& [k, v] : ParseConninfo(conninfo)) {
    if (k == "dbname") continue;
    out += k + "=" + ConninfoQuote(v) + " ";
  }
  return out + "dbname=" + ConninfoQuote(dbname);
}

}  // namespace hoist::db

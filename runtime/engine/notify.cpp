#include "engine/notify.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <optional>
#include <regex>

#include <fmt/format.h>

#include "core/error.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "sys/sha256.h"

namespace hoist::engine {
namespace {

using json = nlohmann::json;

// scheme, userinfo, host[:port], path+query+fragment.
struct UrlParts {
  std::string scheme, userinfo, authority, rest;
};

std::optional<UrlParts> SplitUrl(const std::string& url) {
  static const std::regex re(R"(^(https?)://(([^@/?#]*)@)?([^@/?#]+)([/?#].*)?$)", std::regex::icase);
  std::smatch m;
  if (!std::regex_match(url, m, re)) return std::nullopt;
  UrlParts p{m[1].str(), m[3].str(), m[4].str(), m[5].str()};
  std::transform(p.scheme.begin(), p.scheme.end(), p.scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  return p;
}

std::string Text(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// "(run 42, release 1.4.2)"
std::string RunRef(const json& run) {
  std::string release = Text(run, "release");
  return fmt::format("(run {}{})", Text(run, "id"), release.empty() ? "" : ", release " + release);
}

std::string Seconds(const json& run) {
  double s = run.value("seconds", 0.0);
  return s < 60 ? fmt::format("{:.1f} s", s) : fmt::format("{}m{:02}s", static_cast<int>(s / 60), static_cast<int>(s) % 60);
}

// One line saying what happened: the Slack text, the Sentry message and
// the Grafana annotation's text (after "hoist: ").
std::string Headline(const json& ev) {
  const std::string name = Text(ev, "event");
  const json& run = ev["run"];
  const json& data = ev.contains("data") ? ev["data"] : json::object();
  const std::string what = Text(run, "playbook") + " " + Text(run, "version");
  const std::string env = Text(run, "env");
  if (name == "run.started") {
    return fmt::format("{} started on {} by {} {}", what, env, Text(run, "operator"), RunRef(run));
  }
  if (name == "run.succeeded") return fmt::format("{} succeeded on {} in {} {}", what, env, Seconds(run), RunRef(run));
  if (name == "run.failed") {
    std::string status = Text(run, "status");
    std::string how = status == "interrupted" ? "was interrupted" : status == "lease_held" ? "could not start" : "failed";
    return fmt::format("{} {} on {} {}: {}", what, how, env, RunRef(run), Text(run, "error"));
  }
  if (name == "run.undone") {
    std::vector<std::string> undone;
    for (const auto& s : ev["steps"].value("undone", json::array())) undone.push_back(s.get<std::string>());
    return fmt::format("{} on {} {}: its completed steps were undone ({})", what, env, RunRef(run), Join(undone, ", "));
  }
  if (name == "run.undo_failed") {
    return fmt::format("{} on {} {}: the undo of '{}' FAILED, operator action needed: {}", what, env, RunRef(run),
                       Text(ev["steps"], "undo_failed_step"), Text(ev["steps"], "undo_error"));
  }
  std::string by = fmt::format("({} run {})", Text(run, "playbook"), Text(run, "id"));
  if (name == "switch.done") {
    return fmt::format("traffic on {} switched {} -> {} {}", env, Text(data, "from"), Text(data, "to"), by);
  }
  if (name == "rollback.done") {
    return fmt::format("{} rolled back to {} (release {}) {}", env, Text(data, "to"), Text(data, "release"), by);
  }
  if (name == "backup.failed") return fmt::format("a backup on {} failed {}: {}", env, by, Text(data, "error"));
  return fmt::format("{} on {} {}", name, env, by);
}

// "2026-12-03T16:41:07.123Z" -> epoch milliseconds.
int64_t EpochMs(const std::string& iso) {
  struct tm tm {};
  int ms = 0;
  if (std::sscanf(iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &ms) < 6) {
    return 0;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

const char* SentryLevel(const std::string& event) {
  if (event == "run.failed" || event == "run.undo_failed" || event == "backup.failed") return "error";
  if (event == "run.undone") return "warning";
  return "info";
}

std::string Body(const json& j) { return Mask(j.dump(-1, ' ', false, json::error_handler_t::replace)); }

}  // namespace

const std::vector<std::string>& NotifyEventNames() {
  static const std::vector<std::string> names = {"run.started",  "run.succeeded", "run.failed",
                                                 "run.undone",   "run.undo_failed", "switch.done",
                                                 "rollback.done", "backup.failed"};
  return names;
}

const std::vector<std::string>& NotifyFormats() {
  static const std::vector<std::string> formats = {"json", "slack", "sentry", "grafana"};
  return formats;
}

std::vector<NotifyTarget> NotifyTargets(const json& notify) {
  std::vector<NotifyTarget> out;
  if (!notify.is_array()) return out;
  auto strings = [](const json& t, const char* key) {
    std::vector<std::string> v;
    if (t.contains(key) && t[key].is_array()) {
      for (const auto& s : t[key]) v.push_back(s.get<std::string>());
    }
    return v;
  };
  for (const auto& t : notify) {
    NotifyTarget n;
    n.url = t.value("url", "");
    n.format = t.value("format", "json");
    n.on = strings(t, "on");
    n.envs = strings(t, "envs");
    n.playbooks = strings(t, "playbooks");
    n.timeout = t.value("timeout", n.timeout);
    n.retries = t.value("retries", n.retries);
    n.retry_delay = t.value("retry_delay", n.retry_delay);
    if (t.contains("headers") && t["headers"].is_object()) {
      for (const auto& [k, v] : t["headers"].items()) n.headers.emplace_back(k, v.get<std::string>());
    }
    out.push_back(std::move(n));
  }
  return out;
}

void CheckNotify(const json& notify) {
  if (!notify.is_array()) return;  // null, or {} (an empty list)
  const auto& events = NotifyEventNames();
  std::vector<std::string> groups;
  for (const auto& e : events) {
    std::string g = e.substr(0, e.find('.')) + ".*";
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
  }
  for (size_t i = 0; i < notify.size(); ++i) {
    const json& t = notify[i];
    const std::string at = fmt::format("hoist.lua: notify[{}]", i + 1);
    if (!t.is_object()) continue;  // CheckConfig named it
    if (!t.contains("url")) {
      throw Error("config", "invalid",
                  fmt::format("{}: needs url (where to POST, e.g. url = hoist.secret(\"SLACK_WEBHOOK_URL\"))", at));
    }
    const std::string url = t["url"].get<std::string>();
    auto parts = SplitUrl(url);
    const std::string format = t.value("format", "json");
    // The URL is a secret (a Slack webhook's path is its credential): only its shape is described.
    if (!parts) {
      throw Error("config", "invalid",
                  fmt::format("{}.url must be an http:// or https:// URL with a host (the value is not shown: "
                              "it is treated as a secret)",
                              at));
    }
    if (format == "sentry" && (parts->userinfo.empty() || parts->rest.size() < 2 || parts->rest.back() == '/')) {
      throw Error("config", "invalid",
                  fmt::format("{}.url must be a Sentry DSN (https://KEY@HOST/PROJECT_ID) with format = \"sentry\" "
                              "(the value is not shown: it is treated as a secret)",
                              at));
    }
    if (!t.contains("on") || !t["on"].is_array() || t["on"].empty()) {
      throw Error("config", "invalid",
                  fmt::format("{}: needs on, the events to send, e.g. on = {{ \"run.failed\", \"run.undo_failed\" }} "
                              "(events: {}; or \"*\", \"run.*\")",
                              at, Join(events, ", ")));
    }
    for (size_t j = 0; j < t["on"].size(); ++j) {
      const std::string e = t["on"][j].get<std::string>();
      if (e == "*" || std::find(events.begin(), events.end(), e) != events.end() ||
          std::find(groups.begin(), groups.end(), e) != groups.end()) {
        continue;
      }
      std::vector<std::string> all = events;
      all.insert(all.end(), groups.begin(), groups.end());
      std::string hint = Suggest(e, all);
      throw Error("config", "invalid",
                  fmt::format("{}.on[{}]: unknown event \"{}\"{}; events are: {} (or \"*\", or a group such as \"run.*\")",
                              at, j + 1, e, hint.empty() ? "" : " (did you mean \"" + hint + "\"?)",
                              Join(events, ", ")));
    }
    if (t.contains("timeout") && (t["timeout"].get<double>() <= 0 || t["timeout"].get<double>() > 300)) {
      throw Error("config", "invalid", fmt::format("{}.timeout must be more than 0 and at most 300 seconds", at));
    }
  }
}

// The shortest path part of a notify URL masked on its own.
constexpr size_t kMinUrlToken = 16;

void RegisterNotifySecrets(const NotifyTarget& target) {
  RegisterSecret(target.url);
  if (auto p = SplitUrl(target.url)) {
    if (!p->userinfo.empty()) {
      RegisterSecret(p->userinfo);
      if (auto c = p->userinfo.find(':'); c != std::string::npos) RegisterSecret(p->userinfo.substr(c + 1));
    }
    // A webhook's credential is a long token in its path or query
    // (Slack, Discord, ...). Only such parts are masked on their own: a
    // short path like "/health" or "/api/events" is ordinary text in
    // every other log line.
    if (p->rest.size() >= kMinUrlToken) RegisterSecret(p->rest);
    std::string token;
    for (char c : p->rest + "/") {
      if (c == '/' || c == '?' || c == '&' || c == '=' || c == '#') {
        if (token.size() >= kMinUrlToken) RegisterSecret(token);
        token.clear();
      } else {
        token += c;
      }
    }
  }
  for (const auto& [name, value] : target.headers) RegisterSecret(value);
}

std::string RedactNotifyUrl(const std::string& url) {
  auto p = SplitUrl(url);
  if (!p) return "(a notify url)";
  return p->scheme + "://" + p->authority + (p->rest.empty() ? "" : "/***");
}

bool Wants(const NotifyTarget& target, const std::string& event, const std::string& playbook, const std::string& env) {
  auto listed = [](const std::vector<std::string>& v, const std::string& s) {
    return v.empty() || std::find(v.begin(), v.end(), s) != v.end();
  };
  if (!listed(target.envs, env) || !listed(target.playbooks, playbook)) return false;
  const std::string group = event.substr(0, event.find('.')) + ".*";
  return std::any_of(target.on.begin(), target.on.end(),
                     [&](const std::string& p) { return p == "*" || p == event || p == group; });
}

net::HttpRequest NotifyRequest(const NotifyTarget& target, const json& ev) {
  net::HttpRequest req;
  req.method = "POST";
  req.url = target.url;
  req.timeout = std::chrono::milliseconds(static_cast<int64_t>(std::lround(target.timeout * 1000)));
  req.headers = {{"Content-Type", "application/json"}, {"User-Agent", std::string("hoist/") + HOIST_VERSION},
                 {"Expect", ""}};
  const std::string headline = "hoist: " + Headline(ev);
  const std::string event = Text(ev, "event");
  const json& run = ev["run"];
  if (target.format == "slack") {
    req.body = Body({{"text", headline}});
  } else if (target.format == "grafana") {
    json tags = json::array({"hoist", "event:" + event, "env:" + Text(run, "env"), "playbook:" + Text(run, "playbook"),
                             "status:" + Text(run, "status")});
    req.body = Body({{"time", EpochMs(Text(ev, "at"))}, {"tags", tags}, {"text", headline}});
  } else if (target.format == "sentry") {
    auto p = SplitUrl(target.url);
    // DSN https://KEY@HOST/[PATH/]PROJECT -> https://HOST/[PATH/]api/PROJECT/store/
    std::string path = p->rest.substr(0, p->rest.find_first_of("?#"));
    size_t slash = path.rfind('/');
    std::string project = path.substr(slash + 1);
    req.url = p->scheme + "://" + p->authority + path.substr(0, slash) + "/api/" + project + "/store/";
    std::string key = p->userinfo.substr(0, p->userinfo.find(':'));
    req.headers.emplace_back("X-Sentry-Auth", fmt::format("Sentry sentry_version=7, sentry_client=hoist/{}, sentry_key={}",
                                                          HOIST_VERSION, key));
    json tags = {{"event", event},
                 {"playbook", Text(run, "playbook")},
                 {"playbook_version", Text(run, "version")},
                 {"status", Text(run, "status")},
                 {"run_id", Text(run, "id")}};
    // Derived from the event, so a retried delivery is the same Sentry event.
    std::string id = sys::Sha256Hex(ev.dump() + "|" + target.url).substr(0, 32);
    json s = {{"event_id", id},
              {"timestamp", Text(ev, "at")},
              {"platform", "other"},
              {"logger", "hoist"},
              {"level", SentryLevel(event)},
              {"message", {{"formatted", headline}}},
              {"environment", Text(run, "env")},
              {"server_name", Text(run, "host")},
              {"tags", tags},
              {"extra", ev}};
    if (!Text(run, "release").empty()) s["release"] = Text(run, "release");
    req.body = Body(s);
  } else {
    req.body = Body(ev);
  }
  for (const auto& h : target.headers) req.headers.push_back(h);
  return req;
}

Delivery Deliver(const NotifyTarget& target, const net::HttpRequest& request, const std::function<void(double)>& sleep,
                 const net::HttpSend& send) {
  Delivery d;
  double delay = target.retry_delay;
  for (int attempt = 1; attempt <= target.retries + 1; ++attempt) {
    if (attempt > 1) {
      sleep(delay);
      delay *= 2;
    }
    net::HttpResponse r;
    try {
      r = send(request);
    } catch (const std::exception& e) {
      r.error = Mask(e.what());
      r.error_code = "failed";
    }
    d.seconds += r.seconds;
    json a = {{"attempt", attempt}, {"status", r.status}, {"seconds", r.seconds}};
    if (!r.ok()) {
      a["error"] = Mask(r.error);
      d.error = Mask(r.error);
    } else {
      d.error = r.status >= 200 && r.status < 300 ? "" : fmt::format("HTTP {}", r.status);
    }
    d.attempts.push_back(a);
    if (r.ok() && r.status >= 200 && r.status < 300) {
      d.delivered = true;
      return d;
    }
    // Ctrl-C stops retrying; a 4xx other than 429 would only be refused again.
    if (r.stopped && r.error_code == "interrupted") break;
    if (r.ok() && r.status < 500 && r.status != 429) break;
  }
  return d;
}

}  // namespace hoist::engine

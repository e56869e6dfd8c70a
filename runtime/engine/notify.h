// Notifications: hoist.lua's `notify` targets, which events each one wants,
// the payload of each format (json, slack, sentry, grafana) and delivery
// with a timeout and bounded retries. Plain C++: app/run raises the events
// and journals what Deliver reports; nothing here can change a run.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/http.h"

namespace hoist::engine {

/// Every event a target may name in `on` (besides "*" and "run.*"-style
/// groups), in the order docs/notifications.md lists them.
const std::vector<std::string>& NotifyEventNames();

/// The formats a target may name: "json" (the default), "slack", "sentry",
/// "grafana".
const std::vector<std::string>& NotifyFormats();

struct NotifyTarget {
  std::string url;                      ///< a secret: never shown (RedactUrl below)
  std::string format = "json";
  std::vector<std::string> on;          ///< event names, "*" or "GROUP.*"
  std::vector<std::string> envs;        ///< empty = every environment
  std::vector<std::string> playbooks;   ///< empty = every playbook
  double timeout = 5;                   ///< seconds per attempt
  int retries = 2;                      ///< extra attempts after a failed one
  double retry_delay = 1;               ///< seconds before the first retry, doubled after each
  net::Headers headers;                 ///< sent as given (values are secrets)
};

/// The checked `notify` list of hoist.lua (CheckConfig ran) as targets.
/// null or an empty table gives none.
std::vector<NotifyTarget> NotifyTargets(const nlohmann::json& notify);

/// The problems CheckConfig cannot see from types alone: a missing `url`
/// or `on`, an event name that does not exist (with a did-you-mean), a URL
/// that is not http(s)://host/..., a sentry URL that is not a DSN, a
/// timeout out of range. Throws Error{"config","invalid"} naming the key
/// path ("hoist.lua: notify[1].on[2]: unknown event ..."); never echoes a
/// URL or header value.
void CheckNotify(const nlohmann::json& notify);

/// Registers what in a target is secret: the whole URL, its userinfo and
/// its path and query, and every header value.
void RegisterNotifySecrets(const NotifyTarget& target);

/// "https://hooks.slack.com/***": scheme, host and port only, what logs,
/// the journal and errors show of a target.
std::string RedactNotifyUrl(const std::string& url);

/// True when `target` wants `event` of a run of `playbook` on `env`.
bool Wants(const NotifyTarget& target, const std::string& event, const std::string& playbook, const std::string& env);

/// The HTTP request for one event in the target's format. `event` is the
/// common payload (docs/notifications.md); the body is masked for secrets.
net::HttpRequest NotifyRequest(const NotifyTarget& target, const nlohmann::json& event);

struct Delivery {
  bool delivered = false;
  /// One entry per attempt: {attempt, status (0: no answer), error?, seconds}.
  nlohmann::json attempts = nlohmann::json::array();
  double seconds = 0;
  /// "" when delivered, else the last attempt's problem: "HTTP 500",
  /// "timed out after 0.5 s", "cannot connect: Connection refused".
  std::string error;
};

/// Sends the request, retrying a transport error, an HTTP 5xx or 429 up to
/// target.retries times with doubling delays; any other answer ends it (a
/// 2xx delivers). Never throws: a malformed request is a failed delivery.
/// `sleep` waits between attempts (tests pass a recording one).
Delivery Deliver(const NotifyTarget& target, const net::HttpRequest& request,
                 const std::function<void(double)>& sleep, const net::HttpSend& send = net::Send);

}  // namespace hoist::engine

// Notifications in C++: the payload of each format, exactly as
// docs/notifications.md shows them, delivery with retries and timeouts
// against a real loopback HTTP server, matching, and the config checks.
#include "engine/notify.h"

#include <doctest/doctest.h>

#include <mutex>
#include <vector>

#include "core/secrets.h"
#include "engine/config_check.h"
#include "support/support.h"
#include "sys/clock.h"
#include "unit/net/test_server.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;
using engine::NotifyTarget;

// The run.failed event of docs/notifications.md.
json FailedEvent() {
  return json::parse(R"({
    "event": "run.failed", "at": "2026-12-03T16:41:07.250Z", "hoist": "0.1.0",
    "run": { "id": 42, "env": "prod", "playbook": "deploy", "version": "1.2.0", "release": "1.4.2",
             "operator": "alice", "host": "ci-1", "status": "failed", "exit_code": 1,
             "error": "playbooks/deploy.lua:31: health: green never answered", "seconds": 12.5,
             "sandbox": false },
    "steps": { "total": 3, "ok": 2, "failed": 1, "failed_step": "health gate green",
               "undone": ["start green", "backup"], "undo_failed_step": null, "undo_error": null,
               "list": [ { "name": "backup", "status": "ok", "seconds": 0.25 },
                         { "name": "start green", "status": "ok", "seconds": 1.5 },
                         { "name": "health gate green", "status": "failed", "seconds": 10.0 } ] },
    "data": {}
  })");
}

NotifyTarget Target(const std::string& url, const std::string& format = "json") {
  NotifyTarget t;
  t.url = url;
  t.format = format;
  t.on = {"*"};
  return t;
}

// A receiver that answers with `statuses` in turn (the last one repeats)
// and keeps every request.
struct Receiver {
  std::mutex mu;
  std::vector<ServedRequest> got;
  std::vector<int> statuses;
  TestServer server;
  explicit Receiver(std::vector<int> s)
      : statuses(std::move(s)), server([this](const ServedRequest& r) {
          std::lock_guard lock(mu);
          got.push_back(r);
          int status = statuses[std::min(got.size(), statuses.size()) - 1];
          return HttpAnswer(status, "ok");
        }) {}
  size_t count() {
    std::lock_guard lock(mu);
    return got.size();
  }
};

std::string CheckFails(const json& config) {
  try {
    engine::CheckConfig(config);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("engine/notify") {

TEST_CASE("the json format posts the common payload as it is") {
  auto req = engine::NotifyRequest(Target("https://hooks.example.com/hoist"), FailedEvent());
  CHECK(req.method == "POST");
  CHECK(req.url == "https://hooks.example.com/hoist");
  CHECK(json::parse(req.body) == FailedEvent());
  CHECK(req.headers[0] == std::pair<std::string, std::string>{"Content-Type", "application/json"});
}

TEST_CASE("the slack format posts one text line") {
  auto req = engine::NotifyRequest(Target("https://hooks.slack.com/services/T0/B0/XXXX", "slack"), FailedEvent());
  CHECK(req.body ==
        R"({"text":"hoist: deploy 1.2.0 failed on prod (run 42, release 1.4.2): playbooks/deploy.lua:31: health: green never answered"})");
  json undone = FailedEvent();
  undone["event"] = "run.undone";
  CHECK(json::parse(engine::NotifyRequest(Target("https://x.example/h", "slack"), undone).body)["text"] ==
        "hoist: deploy 1.2.0 on prod (run 42, release 1.4.2): its completed steps were undone (start green, backup)");
  json sw = FailedEvent();
  sw["event"] = "switch.done";
  sw["data"] = {{"upstream", "api"}, {"from", "blue"}, {"to", "green"}};
  CHECK(json::parse(engine::NotifyRequest(Target("https://x.example/h", "slack"), sw).body)["text"] ==
        "hoist: traffic on prod switched blue -> green (deploy run 42)");
}

TEST_CASE("the grafana format posts an annotation at the event's time") {
  auto req = engine::NotifyRequest(Target("https://grafana.example/api/annotations", "grafana"), FailedEvent());
  CHECK(json::parse(req.body) == json::parse(R"({
    "time": 1796316067250,
    "tags": ["hoist", "event:run.failed", "env:prod", "playbook:deploy", "status:failed"],
    "text": "hoist: deploy 1.2.0 failed on prod (run 42, release 1.4.2): playbooks/deploy.lua:31: health: green never answered"
  })"));
}

TEST_CASE("the sentry format posts a store event to the DSN's project with its key") {
  auto req = engine::NotifyRequest(Target("https://abc123key@o9.ingest.example.io/4507", "sentry"), FailedEvent());
  CHECK(req.url == "https://o9.ingest.example.io/api/4507/store/");
  bool auth = false;
  for (const auto& [k, v] : req.headers) {
    if (k == "X-Sentry-Auth") {
      auth = true;
      CHECK(v == std::string("Sentry sentry_version=7, sentry_client=hoist/") + HOIST_VERSION + ", sentry_key=abc123key");
    }
  }
  CHECK(auth);
  json body = json::parse(req.body);
  CHECK(body["event_id"].get<std::string>().size() == 32);
  body.erase("event_id");
  CHECK(body == json{{"timestamp", "2026-12-03T16:41:07.250Z"},
                     {"platform", "other"},
                     {"logger", "hoist"},
                     {"level", "error"},
                     {"message", {{"formatted", "hoist: deploy 1.2.0 failed on prod (run 42, release 1.4.2): "
                                                "playbooks/deploy.lua:31: health: green never answered"}}},
                     {"environment", "prod"},
                     {"server_name", "ci-1"},
                     {"release", "1.4.2"},
                     {"tags", {{"event", "run.failed"}, {"playbook", "deploy"}, {"playbook_version", "1.2.0"},
                               {"status", "failed"}, {"run_id", "42"}}},
                     {"extra", FailedEvent()}});
  // A retried delivery is the same Sentry event.
  CHECK(json::parse(engine::NotifyRequest(Target("https://abc123key@o9.ingest.example.io/4507", "sentry"),
                                          FailedEvent()).body)["event_id"] == json::parse(req.body)["event_id"]);
}

TEST_CASE("a registered secret is masked in every format's body") {
  ClearSecrets();
  RegisterSecret("s3cr3t-token");
  json ev = FailedEvent();
  ev["run"]["error"] = "db: password s3cr3t-token refused";
  for (const char* f : {"json", "slack", "grafana", "sentry"}) {
    auto req = engine::NotifyRequest(Target("https://k3y0@h.example/1", f), ev);
    CHECK(req.body.find("s3cr3t-token") == std::string::npos);
    CHECK(req.body.find("password *** refused") != std::string::npos);
  }
  ClearSecrets();
}

// The failed-run event to rx's /hook with `retries` retries 10 ms apart
// (doubling); the delays slept are appended to sleeps.
engine::Delivery DeliverRetrying(Receiver& rx, int retries, std::vector<double>& sleeps) {
  auto t = Target(rx.server.Url("/hook"));
  t.retries = retries;
  t.retry_delay = 0.01;
  return engine::Deliver(t, engine::NotifyRequest(t, FailedEvent()), [&](double s) { sleeps.push_back(s); });
}

TEST_CASE("a receiver that answers 500 then 200 gets the event on the second attempt") {
  Receiver rx({500, 200});
  std::vector<double> sleeps;
  auto d = DeliverRetrying(rx, 3, sleeps);
  CHECK(d.delivered);
  CHECK(d.error.empty());
  REQUIRE(d.attempts.size() == 2);
  CHECK(d.attempts[0]["status"] == 500);
  CHECK(d.attempts[1]["status"] == 200);
  CHECK(sleeps == std::vector<double>{0.01});
  REQUIRE(rx.count() == 2);
  CHECK(rx.got[1].method == "POST");
  CHECK(rx.got[1].target == "/hook");
  CHECK(json::parse(rx.got[1].body) == FailedEvent());
}

TEST_CASE("a receiver that always answers 500 gets retries plus one attempts, delays doubling") {
  Receiver rx({500});
  std::vector<double> sleeps;
  auto d = DeliverRetrying(rx, 2, sleeps);
  CHECK_FALSE(d.delivered);
  CHECK(d.error == "HTTP 500");
  CHECK(d.attempts.size() == 3);
  CHECK(rx.count() == 3);
  CHECK(sleeps == std::vector<double>{0.01, 0.02});
}

TEST_CASE("a 404 is not retried: it would be refused again") {
  Receiver rx({404});
  auto t = Target(rx.server.Url("/nope"));
  auto d = engine::Deliver(t, engine::NotifyRequest(t, FailedEvent()), [](double) {});
  CHECK_FALSE(d.delivered);
  CHECK(d.error == "HTTP 404");
  CHECK(rx.count() == 1);
}

TEST_CASE("a refused connection is retried, then reported") {
  auto t = Target("http://127.0.0.1:" + std::to_string(RefusedPort()) + "/hook");
  t.retries = 1;
  int slept = 0;
  auto d = engine::Deliver(t, engine::NotifyRequest(t, FailedEvent()), [&](double) { ++slept; });
  CHECK_FALSE(d.delivered);
  CHECK(d.attempts.size() == 2);
  CHECK(slept == 1);
  CHECK(d.error.find("Connection refused") != std::string::npos);
  CHECK(d.attempts[0]["status"] == 0);
}

TEST_CASE("a receiver that never answers is given up on after the timeout") {
  TestServer hang([](const ServedRequest&) { return std::string(); });
  auto t = Target(hang.Url("/hook"));
  t.timeout = 0.3;
  t.retries = 1;
  double start = sys::Monotonic();
  auto d = engine::Deliver(t, engine::NotifyRequest(t, FailedEvent()), [](double) {});
  double took = sys::Monotonic() - start;
  CHECK_FALSE(d.delivered);
  CHECK(d.attempts.size() == 2);
  CHECK(d.error.find("timed out") != std::string::npos);
  // Both attempts waited out their 0.3 s (libcurl's timer may end a
  // millisecond early, so not exactly 0.6); one attempt alone would be 0.3.
  CHECK(took >= 0.55);
  CHECK(took < 3.0);
}

TEST_CASE("a target wants the events it names, by group or all, for its envs and playbooks") {
  NotifyTarget t = Target("https://x.example/h");
  t.on = {"run.failed", "switch.*"};
  CHECK(engine::Wants(t, "run.failed", "deploy", "prod"));
  CHECK(engine::Wants(t, "switch.done", "deploy", "prod"));
  CHECK_FALSE(engine::Wants(t, "run.succeeded", "deploy", "prod"));
  t.envs = {"prod"};
  t.playbooks = {"deploy", "rollback"};
  CHECK_FALSE(engine::Wants(t, "run.failed", "deploy", "staging"));
  CHECK_FALSE(engine::Wants(t, "run.failed", "backup", "prod"));
  CHECK(engine::Wants(t, "run.failed", "rollback", "prod"));
  t.on = {"*"};
  CHECK(engine::Wants(t, "backup.failed", "deploy", "prod"));
}

TEST_CASE("a notify URL is shown as its scheme and host only") {
  CHECK(engine::RedactNotifyUrl("https://hooks.slack.com/services/T0/B0/XXXX") == "https://hooks.slack.com/***");
  CHECK(engine::RedactNotifyUrl("http://127.0.0.1:9000") == "http://127.0.0.1:9000");
  CHECK(engine::RedactNotifyUrl("https://key@o1.ingest.sentry.io/42") == "https://o1.ingest.sentry.io/***");
  ClearSecrets();
  auto targets = engine::NotifyTargets(json::parse(
      R"([{"url": "https://key9@hooks.example.com/services/T0/B0/XXXX", "on": ["*"], "headers": {"Authorization": "Bearer tok-123"}}])"));
  REQUIRE(targets.size() == 1);
  engine::RegisterNotifySecrets(targets[0]);
  CHECK(Mask("posting to https://key9@hooks.example.com/services/T0/B0/XXXX") == "posting to ***");
  CHECK(Mask("GET /services/T0/B0/XXXX") == "GET ***");
  CHECK(Mask("auth Bearer tok-123") == "auth ***");
  ClearSecrets();
}

TEST_CASE("a notify URL's long tokens are masked on their own, its short paths stay readable elsewhere") {
  ClearSecrets();
  auto targets = engine::NotifyTargets(json::parse(
      R"([{"url": "http://127.0.0.1:9000/health", "on": ["*"]},
          {"url": "https://discord.com/api/webhooks/123/Zq8xK2mW9vLr4TbN7cYs", "on": ["*"]},
          {"url": "https://hooks.example.com/in?token=Ab12Cd34Ef56Gh78", "on": ["*"]}])"));
  REQUIRE(targets.size() == 3);
  for (const auto& t : targets) engine::RegisterNotifySecrets(t);
  // The URL itself is masked, but not every health check that uses /health.
  CHECK(Mask("notify http://127.0.0.1:9000/health") == "notify ***");
  CHECK(Mask("health check GET http://127.0.0.1:5001/health ok") == "health check GET http://127.0.0.1:5001/health ok");
  CHECK(Mask("GET /api/webhooks/123 then") == "GET /api/webhooks/123 then");
  CHECK(Mask("token Zq8xK2mW9vLr4TbN7cYs leaked") == "token *** leaked");
  CHECK(Mask("query Ab12Cd34Ef56Gh78 leaked") == "query *** leaked");
  ClearSecrets();
}

TEST_CASE("hoist.lua's notify is checked before anything runs, one precise message each") {
  auto cfg = [](const std::string& notify) { return json::parse(R"({"notify": )" + notify + "}"); };
  CHECK(CheckFails(cfg(R"([{"url": "https://h.example/x", "on": ["run.failed"], "format": "slack"}])")) == "");
  CHECK(CheckFails(cfg(R"([{"url": "https://h.example/x", "on": ["run.fialed"]}])")) ==
        "config: hoist.lua: notify[1].on[1]: unknown event \"run.fialed\" (did you mean \"run.failed\"?); events "
        "are: run.started, run.succeeded, run.failed, run.undone, run.undo_failed, switch.done, rollback.done, "
        "backup.failed (or \"*\", or a group such as \"run.*\")");
  CHECK(CheckFails(cfg(R"([{"url": "https://h.example/x", "on": ["*"], "format": "teams"}])")) ==
        "config: hoist.lua: notify[1].format must be one of \"json\", \"slack\", \"sentry\", \"grafana\"");
  CHECK(CheckFails(cfg(R"([{"url": "ftp://h.example/secret-path", "on": ["*"]}])")) ==
        "config: hoist.lua: notify[1].url must be an http:// or https:// URL with a host (the value is not shown: "
        "it is treated as a secret)");
  CHECK(CheckFails(cfg(R"([{"url": "https://h.example/1", "on": ["*"], "format": "sentry"}])")) ==
        "config: hoist.lua: notify[1].url must be a Sentry DSN (https://KEY@HOST/PROJECT_ID) with format = "
        "\"sentry\" (the value is not shown: it is treated as a secret)");
  CHECK(CheckFails(cfg(R"([{"url": "https://h.example/x"}])")).starts_with(
      "config: hoist.lua: notify[1]: needs on, the events to send"));
  CHECK(CheckFails(cfg(R"([{"on": ["*"]}])")).starts_with("config: hoist.lua: notify[1]: needs url"));
  CHECK(CheckFails(cfg(R"([{"url": "https://h.example/x", "on": ["*"], "timeot": 3}])")) ==
        "config: hoist.lua: notify[1].timeot: unknown key (did you mean 'timeout'?); notify[1] takes: url, format, "
        "on, envs, playbooks, timeout, retries, retry_delay, headers");
  CHECK(CheckFails(cfg(R"([{"url": "https://h.example/x", "on": ["*"], "timeout": 900}])")) ==
        "config: hoist.lua: notify[1].timeout must be more than 0 and at most 300 seconds");
  CHECK(CheckFails(cfg(R"({"url": "https://h.example/x", "on": ["*"]})")).starts_with(
      "config: hoist.lua: notify must be a list of targets, e.g. notify = { {"));
  // The URL never appears in a message.
  CHECK(CheckFails(cfg(R"([{"url": "ftp://h.example/secret-path", "on": ["*"]}])")).find("secret-path") ==
        std::string::npos);
}

}  // TEST_SUITE

}  // namespace hoist::test

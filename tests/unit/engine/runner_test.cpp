// The step runner: journaling, retries, timeouts and the undo stack, with
// plain C++ step bodies.
#include "engine/runner.h"

#include <thread>

#include "core/interrupt.h"
#include "support/support.h"

namespace hoist::engine {
namespace {

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<StateStore> store = OpenStateStore(dir / "state.db");
  std::unique_ptr<Reporter> reporter = MakeNullReporter();
  int64_t run = store->BeginRun(RunMeta{"t", "1.0.0", "", "", "", json::object(), "op", "h", "e", "0.1.0", false});
  Runner runner{*store, *reporter, run};

  std::vector<std::string> Steps() {
    std::vector<std::string> out;
    json r = *store->GetRun(run);
    for (const auto& s : r["steps"]) {
      out.push_back(s["name"].get<std::string>() + ":" + s["status"].get<std::string>());
    }
    return out;
  }
};

TEST_SUITE("engine/runner") {

TEST_CASE("undos run in reverse order of completion with the step result") {
  Fixture f;
  std::vector<std::string> undone;
  f.runner.Step("a", [] { return json("ra"); }, {.undo = [&](const json& r) { undone.push_back("a:" + r.get<std::string>()); }});
  f.runner.Step("outer", [&] {
    f.runner.Step("inner", [] { return json(1); }, {.undo = [&](const json&) { undone.push_back("inner"); }});
    return json();
  }, {.undo = [&](const json&) { undone.push_back("outer"); }});
  f.runner.Step("no undo", [] { return json(); }, {});
  CHECK_THROWS(f.runner.Step("fails", []() -> json { throw Error("x", "boom", "broke"); }, {}));
  UnwindResult u = f.runner.Unwind();
  CHECK(u.ok());
  CHECK(undone == std::vector<std::string>{"outer", "inner", "a:ra"});
  CHECK(u.undone == std::vector<std::string>{"outer", "inner", "a"});
  auto steps = f.Steps();
  CHECK(steps == std::vector<std::string>{"a:ok", "outer:ok", "inner:ok", "no undo:ok", "fails:failed",
                                          "undo outer:ok", "undo inner:ok", "undo a:ok"});
}

TEST_CASE("a failing undo stops the unwinding and lists what is left") {
  Fixture f;
  bool first_undone = false;
  f.runner.Step("first", [] { return json(); }, {.undo = [&](const json&) { first_undone = true; }});
  f.runner.Step("second", [] { return json(); }, {.undo = [](const json&) { throw Error("nginx", "failed", "reload failed"); }});
  f.runner.Step("third", [] { return json(); }, {.undo = [](const json&) {}});
  UnwindResult u = f.runner.Unwind();
  CHECK_FALSE(u.ok());
  CHECK(u.undone == std::vector<std::string>{"third"});
  CHECK(u.failed_step == "second");
  CHECK(u.failed_error == "nginx: reload failed");
  CHECK(u.not_undone == std::vector<std::string>{"second", "first"});
  CHECK_FALSE(first_undone);
}

TEST_CASE("retries back off and record each attempt") {
  Fixture f;
  int calls = 0;
  json r = f.runner.Step("flaky", [&]() -> json {
    if (++calls < 3) throw Error("http", "connect_failed", "refused");
    return json(calls);
  }, {.retries = 5, .retry_delay = 0.001});
  CHECK(r == 3);
  auto run = *f.store->GetRun(f.run);
  CHECK(run["steps"][0]["attempts"] == 3);
  int retry_events = 0;
  for (const auto& e : run["events"]) retry_events += e["kind"] == "retry";
  CHECK(retry_events == 2);
}

TEST_CASE("exhausted retries rethrow the last error") {
  Fixture f;
  int calls = 0;
  auto e = test::CatchError([&] {
    f.runner.Step("always", [&]() -> json { throw Error("x", "bad", "attempt " + std::to_string(++calls)); },
                  {.retries = 2, .retry_delay = 0.001});
  });
  CHECK(calls == 3);
  CHECK(e.message() == "attempt 3");
}

TEST_CASE("a step timeout sets the deadline primitives see") {
  Fixture f;
  auto start = Clock::now();
  auto e = test::CatchError([&] {
    f.runner.Step("slow", []() -> json {
      while (StopReason().empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ThrowIfStopped("test");
      return json();
    }, {.timeout = 0.05});
  });
  CHECK(e.code() == "timeout");
  CHECK(Clock::now() - start < std::chrono::seconds(2));
  CHECK(StopReason().empty());  // the deadline ends with the step
}

TEST_CASE("world calls are journaled in the current step") {
  Fixture f;
  f.runner.Step("s", [&] {
    f.runner.World("proc", "true", {{"exit_code", 0}}, 0.001);
    return json();
  }, {});
  auto run = *f.store->GetRun(f.run);
  REQUIRE(run["events"].size() == 1);
  CHECK(run["events"][0]["kind"] == "proc");
  CHECK(run["events"][0]["step"] == 1);
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::engine

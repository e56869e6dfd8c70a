// The state store in PostgreSQL (state = "postgresql://..." in hoist.lua)
// against a private cluster (tests/support/pg_cluster): whole runs of the
// real binary journaling there, two operators racing for one lease,
// fencing of a run that lost its lease, expiry on the database's clock,
// `hoist state migrate`, and what a bad state URL says.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/state_store.h"
#include "support/colour_server.h"
#include "support/pg_cluster.h"
#include "support/support.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const char* kConfig = R"lua(return {
  state = os.getenv("HOIST_STATE"),
  environments = { prod = {} },
  lease = { ttl = 30 },
}
)lua";

const char* kHello = R"lua(local hoist = require "hoist"
return hoist.playbook {
  name = "hello", version = "1.0.0", summary = "two steps and a fact",
  run = function(run, p)
    run:step("first", function() return { n = 1 } end)
    run:step("second", function() run:remember("greeting", { text = "hi" }) end)
  end,
}
)lua";

// Holds the lease until the file `go` exists, then writes two more records.
const char* kWait = R"lua(local hoist = require "hoist"
local fs = require "hoist.fs"
local time = require "hoist.time"
return hoist.playbook {
  name = "wait", version = "1.0.0", summary = "holds the lease until go exists",
  params = { go = { type = "string", required = true } },
  run = function(run, p)
    run:step("before", function() return true end)
    run:step("wait", function()
      local deadline = time.monotonic() + 45
      while not fs.exists(p.go) do
        if time.monotonic() > deadline then error("go never came") end
        time.sleep(0.05)
      end
    end)
    run:step("after", function() run:remember("after", true) end)
  end,
}
)lua";

// One operator's project: its own directory, the shared state URL.
struct Operator {
  TempDir dir{"pgstate"};
  std::string state;
  std::string name;
  Operator(std::string state_url, std::string who) : state(std::move(state_url)), name(std::move(who)) {
    WriteFile(dir / "hoist.lua", kConfig);
    WriteFile(dir / "playbooks/hello.lua", kHello);
    WriteFile(dir / "playbooks/wait.lua", kWait);
  }
  sys::ProcessResult Run(std::vector<std::string> args) const {
    std::map<std::string, std::string> env = {{"HOIST_OPERATOR", name}};
    if (!state.empty()) env["HOIST_STATE"] = state;
    return RunHoist(dir.path, std::move(args), env);
  }
};

struct PgState {
  PgCluster& pg = PgCluster::Get();
  std::string db = pg.CreateDatabase("state");
  std::string url = "postgresql" + pg.Url(db).substr(std::string("postgres").size());
  std::string Sql(const std::string& sql) const { return pg.Psql(sql, db); }
  // Waits (30 s at most) until sql answers `want`.
  void WaitFor(const std::string& sql, const std::string& want) const {
    auto deadline = Clock::now() + std::chrono::seconds(30);
    std::string got;
    while (Clock::now() < deadline) {
      // An error (the schema not made yet) is "not yet", like another answer.
      got = pg.TryPsql(sql, db).value_or("(error)");
      if (got == want) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL("waited 30 s for [" << sql << "] to give [" << want << "], last: [" << got << "]");
  }
};

json Finished(const sys::ProcessResult& r) {
  json last;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    json ev = json::parse(line, nullptr, false);
    if (!ev.is_discarded() && ev.value("event", "") == "run_finished") last = ev;
  }
  return last;
}

// A hoist run in a thread of its own.
struct Background {
  sys::ProcessResult result;
  std::atomic<bool> done{false};
  std::thread thread;
  Background(const Operator& op, std::vector<std::string> args)
      : thread([this, &op, args] {
          result = op.Run(args);
          done = true;
        }) {}
  ~Background() {
    if (thread.joinable()) thread.join();
  }
  const sys::ProcessResult& Wait() {
    thread.join();
    return result;
  }
};

TEST_SUITE("state/postgres") {

TEST_CASE("a whole run journals into PostgreSQL and history and show read it back") {
  PgState s;
  Operator op(s.url, "alice");
  auto r = op.Run({"--json", "run", "hello"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(s.Sql("SELECT version FROM hoist.schema_version") == "1");
  CHECK(s.Sql("SELECT id, playbook, status, operator FROM hoist.runs") == "1|hello|ok|alice");
  CHECK(s.Sql("SELECT string_agg(name || ':' || status, ',' ORDER BY seq) FROM hoist.steps WHERE run_id = 1") ==
        "first:ok,second:ok");
  CHECK(s.Sql("SELECT value, run_id FROM hoist.facts WHERE env = 'prod' AND key = 'greeting'") ==
        "{\"text\":\"hi\"}|1");
  CHECK(s.Sql("SELECT count(*) FROM hoist.lease") == "0");  // released at the end
  CHECK(r.out.find(PgCluster::kPassword) == std::string::npos);

  auto h = op.Run({"history"});
  INFO(h.out << h.err);
  REQUIRE(h.exit_code == 0);
  CHECK(h.out.find("hello 1.0.0") != std::string::npos);
  CHECK(h.out.find("alice@") != std::string::npos);
  auto shown = op.Run({"--json", "show", "1"});
  REQUIRE(shown.exit_code == 0);
  json run = json::parse(shown.out);
  CHECK(run["status"] == "ok");
  REQUIRE(run["steps"].size() == 2);
  CHECK(run["steps"][0]["name"] == "first");
  CHECK(run["steps"][0]["result"] == json{{"n", 1}});
  CHECK(run["source"].get<std::string>().find("two steps and a fact") != std::string::npos);

  // Another operator's project, elsewhere, sees the same history.
  Operator other(s.url, "bob");
  auto theirs = other.Run({"history"});
  CHECK(theirs.out.find("alice@") != std::string::npos);
}

TEST_CASE("two operators deploying at once: exactly one gets the lease, the other is told who holds it") {
  PgState s;
  Operator alice(s.url, "alice"), bob(s.url, "bob");
  TempDir go{"pgstate-go"};
  std::string go_file = go / "go";
  Background a(alice, {"--json", "run", "wait", "-e", "go=" + go_file});
  Background b(bob, {"--json", "run", "wait", "-e", "go=" + go_file});
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!a.done && !b.done && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE((a.done || b.done));
  WriteFile(go_file, "go");
  const auto& ra = a.Wait();
  const auto& rb = b.Wait();
  INFO(ra.out << ra.err << rb.out << rb.err);
  bool alice_won = ra.exit_code == 0;
  const auto& loser = alice_won ? rb : ra;
  CHECK((alice_won ? rb.exit_code : ra.exit_code) == 4);
  CHECK((alice_won ? ra.exit_code : rb.exit_code) == 0);
  json fin = Finished(loser);
  CHECK(fin["status"] == "lease_held");
  std::string winner = alice_won ? "alice" : "bob";
  CHECK(fin["error"].get<std::string>().find("environment 'prod' is locked by " + winner + "@") != std::string::npos);
  CHECK(fin["holder"]["owner"] == winner);
  CHECK(s.Sql("SELECT count(*) FROM hoist.runs WHERE status = 'ok'") == "1");
  CHECK(s.Sql("SELECT count(*) FROM hoist.runs WHERE status = 'lease_held'") == "1");
}

TEST_CASE("a run whose lease was force-released and taken by another cannot write any more") {
  PgState s;
  Operator alice(s.url, "alice"), bob(s.url, "bob");
  TempDir go{"pgstate-go"};
  Background a(alice, {"--json", "run", "wait", "-e", "go=" + (go / "go-a")});
  s.WaitFor("SELECT count(*) FROM hoist.steps WHERE run_id = 1 AND name = 'wait'", "1");
  CHECK(s.Sql("SELECT run_id, owner FROM hoist.lease") == "1|alice");
  std::string fence_a = s.Sql("SELECT fence FROM hoist.lease");

  auto rel = bob.Run({"lock", "release", "--env", "prod", "--force", "--reason", "alice's laptop went to sleep"});
  INFO(rel.out << rel.err);
  REQUIRE(rel.exit_code == 0);
  Background b(bob, {"--json", "run", "wait", "-e", "go=" + (go / "go-b")});
  s.WaitFor("SELECT owner FROM hoist.lease", "bob");
  CHECK(std::stoll(s.Sql("SELECT fence FROM hoist.lease")) > std::stoll(fence_a));

  WriteFile(go / "go-a", "go");  // alice's run goes on: its next write is refused
  const auto& ra = a.Wait();
  INFO(ra.out << ra.err);
  CHECK(ra.exit_code == 3);
  json fin = Finished(ra);
  CHECK(fin["status"] == "lease_lost");
  CHECK(fin["code"] == "lease_lost");
  std::string err = fin["error"].get<std::string>();
  CHECK(err.find("the lease on environment 'prod' is no longer run 1's") != std::string::npos);
  CHECK(err.find("held by bob@") != std::string::npos);
  CHECK(err.find("hoist lock status") != std::string::npos);
  // Its end cannot be written (fenced): the log says what the history shows instead.
  const std::string said = ra.out + ra.err;
  CHECK(said.find("run 1 lost its lease, so its end is not recorded: ") != std::string::npos);
  CHECK(said.find(" shows it as abandoned (hoist show 1 says by whom)") != std::string::npos);
  CHECK(said.find("shows it as running") == std::string::npos);
  // Nothing of run 1 landed after the release: its "wait" step is as it
  // was, no "after" step or fact, and the force-release's verdict stands.
  CHECK(s.Sql("SELECT status FROM hoist.steps WHERE run_id = 1 AND name = 'wait'") == "running");
  CHECK(s.Sql("SELECT count(*) FROM hoist.steps WHERE run_id = 1 AND name = 'after'") == "0");
  CHECK(s.Sql("SELECT count(*) FROM hoist.facts WHERE key = 'after'") == "0");
  CHECK(s.Sql("SELECT status FROM hoist.runs WHERE id = 1") == "abandoned");
  CHECK(s.Sql("SELECT error FROM hoist.runs WHERE id = 1").find("released with --force by bob@") != std::string::npos);

  WriteFile(go / "go-b", "go");
  const auto& rb = b.Wait();
  INFO(rb.out << rb.err);
  CHECK(rb.exit_code == 0);
  CHECK(s.Sql("SELECT run_id FROM hoist.facts WHERE key = 'after'") == "3");  // 2 is the release's own record
}

TEST_CASE("lease expiry is decided by the database's clock") {
  PgState s;
  auto store = engine::OpenStateStore(s.url);
  engine::RunMeta meta;
  meta.playbook = "p";
  meta.version = "1.0.0";
  meta.source_sha256 = "x";
  meta.env = "prod";
  meta.host = "elsewhere";  // not this host: only expiry frees its lease
  int64_t run = store->BeginRun(meta);
  engine::Lease lease;
  lease.env = "prod";
  lease.owner = "alice";
  lease.host = "elsewhere";
  lease.pid = 1;
  lease.run_id = run;
  lease.token = "t-alice";
  store->AcquireLease(lease, 30);
  // Stamped by the server: started now by its clock, expiring ttl later.
  CHECK(s.Sql("SELECT extract(epoch FROM expires_at - started_at)::int FROM hoist.lease") == "30");
  CHECK(s.Sql("SELECT abs(extract(epoch FROM now() - started_at)) < 5 FROM hoist.lease") == "t");
  store->StepStarted(run, std::nullopt, "one", "step");

  engine::Lease other = lease;
  other.owner = "bob";
  other.token = "t-bob";
  other.run_id = 0;
  auto second = engine::OpenStateStore(s.url);
  auto held = CatchError([&] { second->AcquireLease(other, 30); });
  CHECK(held.code() == "lease_held");

  // Expired by the database's clock (nothing on this machine changed).
  s.Sql("UPDATE hoist.lease SET expires_at = now() - interval '1 second'");
  auto lost = CatchError([&] { store->StepStarted(run, std::nullopt, "two", "step"); });
  CHECK(lost.code() == "lease_lost");
  CHECK(lost.message().find("it expired at") != std::string::npos);
  CHECK_FALSE(store->Heartbeat("prod", "t-alice", 30));  // an expired lease is not revived
  CHECK(s.Sql("SELECT count(*) FROM hoist.steps") == "1");

  second->AcquireLease(other, 30);  // expired: taken over
  CHECK(s.Sql("SELECT owner FROM hoist.lease") == "bob");
  CHECK(s.Sql("SELECT status FROM hoist.runs WHERE id = 1") == "abandoned");
  auto finish = CatchError([&] { store->FinishRun(run, "ok", 0, ""); });
  CHECK(finish.code() == "lease_lost");
  CHECK(finish.message().find("held by bob@elsewhere") != std::string::npos);
  CHECK(s.Sql("SELECT status FROM hoist.runs WHERE id = 1") == "abandoned");
}

TEST_CASE("hoists creating the schema at once all succeed and make it once") {
  PgState s;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      try {
        engine::OpenStateStore(s.url);
        ++ok;
      } catch (const std::exception& e) {
        MESSAGE(e.what());
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 4);
  CHECK(s.Sql("SELECT count(*), max(version) FROM hoist.schema_version") == "1|1");
}

TEST_CASE("hoist state migrate copies a SQLite history once and refuses to mix ids") {
  PgState s;
  Operator local("", "alice");  // state: the project's .hoist/state.db
  REQUIRE(local.Run({"run", "hello"}).exit_code == 0);
  REQUIRE(local.Run({"run", "hello"}).exit_code == 0);

  auto m = local.Run({"state", "migrate", "--to", s.url});
  INFO(m.out << m.err);
  REQUIRE(m.exit_code == 0);
  CHECK(m.out.find("copied 2 run(s) (4 steps,") != std::string::npos);
  CHECK(m.out.find("and 1 fact(s)") != std::string::npos);
  CHECK(m.out.find(PgCluster::kPassword) == std::string::npos);
  CHECK(s.Sql("SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM hoist.runs") == "1:ok,2:ok");
  CHECK(s.Sql("SELECT count(*) FROM hoist.steps") == "4");
  CHECK(s.Sql("SELECT run_id FROM hoist.facts WHERE key = 'greeting'") == "2");

  auto again = local.Run({"--json", "state", "migrate", "--to", s.url});
  REQUIRE(again.exit_code == 0);
  json j = json::parse(again.out);
  CHECK(j["runs_copied"] == 0);
  CHECK(j["runs_present"] == 2);
  CHECK(j["facts_kept"] == 1);
  CHECK(s.Sql("SELECT count(*) FROM hoist.runs") == "2");

  // The project moves to PostgreSQL: the copied history is there, and new
  // runs follow its ids.
  Operator moved(s.url, "alice");
  auto show = moved.Run({"--json", "show", "2"});
  REQUIRE(show.exit_code == 0);
  CHECK(json::parse(show.out)["steps"].size() == 2);
  REQUIRE(moved.Run({"run", "hello"}).exit_code == 0);
  CHECK(s.Sql("SELECT max(id) FROM hoist.runs") == "3");

  // Another project's history has a run 1 of its own.
  Operator elsewhere("", "carol");
  REQUIRE(elsewhere.Run({"run", "hello"}).exit_code == 0);
  auto refused = elsewhere.Run({"state", "migrate", "--to", s.url});
  INFO(refused.out << refused.err);
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("already has other runs with the ids of 1 run(s)") != std::string::npos);
  CHECK(refused.err.find("--renumber") != std::string::npos);
  CHECK(s.Sql("SELECT count(*) FROM hoist.runs") == "3");
  auto renumbered = elsewhere.Run({"state", "migrate", "--to", s.url, "--renumber"});
  INFO(renumbered.out << renumbered.err);
  REQUIRE(renumbered.exit_code == 0);
  CHECK(renumbered.out.find("run 1 is now run 4") != std::string::npos);
  CHECK(s.Sql("SELECT operator FROM hoist.runs WHERE id = 4") == "carol");
  auto once = elsewhere.Run({"--json", "state", "migrate", "--to", s.url, "--renumber"});
  CHECK(json::parse(once.out)["runs_copied"] == 0);
}

TEST_CASE("a bad or unreachable state URL is one clear error with its password masked") {
  PgState s;
  // Nothing listens on the port of a cluster that is not there.
  std::string refused = "postgresql://ops:Unreach-pw-77@127.0.0.1:" + std::to_string(FreePort()) + "/hoist";
  Operator down(refused, "alice");
  auto r = down.Run({"run", "hello"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("cannot open the state store postgres://ops:***@127.0.0.1:") != std::string::npos);
  CHECK(r.err.find("Unreach-pw-77") == std::string::npos);
  CHECK(r.out.find("Unreach-pw-77") == std::string::npos);
  auto h = down.Run({"history"});
  CHECK(h.exit_code == 2);
  CHECK(h.err.find("cannot open the state store postgres://ops:***@") != std::string::npos);

  Operator wrong(s.pg.UrlWithPassword(s.db, "Wrong-pw-3141"), "alice");
  auto w = wrong.Run({"run", "hello"});
  INFO(w.out << w.err);
  CHECK(w.exit_code == 2);
  CHECK(w.err.find("password authentication failed") != std::string::npos);
  CHECK(w.err.find("Wrong-pw-3141") == std::string::npos);

  Operator malformed("postgresql://ops:Bad-pw-2718@db1:99999/hoist", "alice");
  auto b = malformed.Run({"run", "hello"});
  INFO(b.out << b.err);
  CHECK(b.exit_code == 2);
  CHECK(b.err.find("hoist.lua: state: invalid database URL \"postgresql://ops:***@db1:99999/hoist\"") !=
        std::string::npos);
  CHECK(b.err.find("Bad-pw-2718") == std::string::npos);
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::test

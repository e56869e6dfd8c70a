// The journal and the lease against a real SQLite state file.
#include "engine/state_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <thread>

#include "core/secrets.h"
#include "support/support.h"
#include "sys/clock.h"

namespace hoist::engine {
namespace {

RunMeta Meta(const std::string& env = "prod") {
  RunMeta m;
  m.playbook = "deploy";
  m.version = "1.0.0";
  m.source = "return 1";
  m.source_sha256 = "abc";
  m.origin = "project:playbooks/deploy.lua";
  m.params = {{"version", "1.2.0"}};
  m.operator_name = "alice";
  m.host = "web1";
  m.env = env;
  m.hoist_version = "0.1.0";
  return m;
}

Lease L(const std::string& token, const std::string& owner = "alice") {
  Lease l;
  l.env = "prod";
  l.owner = owner;
  l.host = "web1";
  l.pid = 42;
  l.run_id = 7;
  l.reason = "deploy 1.2.0";
  l.token = token;
  return l;
}

TEST_SUITE("engine/state_store") {

TEST_CASE("a run with nested steps and events round-trips") {
  test::TempDir dir;
  auto store = OpenStateStore(dir / ".hoist/state.db");
  int64_t run = store->BeginRun(Meta());
  int64_t outer = store->StepStarted(run, std::nullopt, "outer", "step");
  int64_t inner = store->StepStarted(run, outer, "inner", "step");
  store->Event(run, inner, "proc", "echo hi", {{"exit_code", 0}}, 0.01);
  store->StepFinished(run, inner, "ok", 1, {{"n", 1}}, "", 0.02);
  store->StepFinished(run, outer, "failed", 2, nullptr, "boom", 0.03);
  store->FinishRun(run, "failed", 1, "boom");

  auto r = store->GetRun(run);
  REQUIRE(r);
  CHECK((*r)["status"] == "failed");
  CHECK((*r)["exit_code"] == 1);
  CHECK((*r)["source"] == "return 1");
  CHECK((*r)["params"] == json({{"version", "1.2.0"}}));
  REQUIRE((*r)["steps"].size() == 2);
  CHECK((*r)["steps"][1]["parent"] == outer);
  CHECK((*r)["steps"][1]["result"] == json({{"n", 1}}));
  CHECK((*r)["steps"][0]["error"] == "boom");
  CHECK((*r)["steps"][0]["attempts"] == 2);
  REQUIRE((*r)["events"].size() == 1);
  CHECK((*r)["events"][0]["step"] == inner);
  CHECK((*r)["events"][0]["name"] == "echo hi");
  CHECK(!store->GetRun(run + 1));
}

TEST_CASE("history is newest first and filters by environment") {
  test::TempDir dir;
  auto store = OpenStateStore(dir / "state.db");
  store->BeginRun(Meta("prod"));
  store->BeginRun(Meta("staging"));
  store->BeginRun(Meta("prod"));
  auto all = store->History(std::nullopt, 10);
  REQUIRE(all.size() == 3);
  CHECK(all[0]["id"] == 3);
  auto prod = store->History(std::string("prod"), 10);
  CHECK(prod.size() == 2);
  CHECK(store->History(std::nullopt, 1).size() == 1);
}

TEST_CASE("stored text is masked for secrets") {
  ClearSecrets();
  RegisterSecret("hunter2-secret");
  test::TempDir dir;
  auto store = OpenStateStore(dir / "state.db");
  RunMeta m = Meta();
  m.params = {{"pw", "hunter2-secret"}};
  int64_t run = store->BeginRun(m);
  store->FinishRun(run, "failed", 1, "bad password hunter2-secret");
  auto r = store->GetRun(run);
  CHECK((*r)["params"]["pw"] == "***");
  CHECK((*r)["error"] == "bad password ***");
  ClearSecrets();
}

TEST_CASE("the store is created 0600 in a 0700 directory") {
  test::TempDir dir;
  OpenStateStore(dir / "deep/state/state.db");
  struct stat st {};
  REQUIRE(::stat((dir / "deep/state").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat((dir / "deep/state/state.db").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("a live lease refuses a second holder and names the first") {
  test::TempDir dir;
  auto a = OpenStateStore(dir / "state.db");
  auto b = OpenStateStore(dir / "state.db");
  a->AcquireLease(L("t1"), 60);
  try {
    b->AcquireLease(L("t2", "bob"), 60);
    FAIL("second lease was granted");
  } catch (const LeaseHeldError& e) {
    CHECK(e.code() == "lease_held");
    CHECK(e.holder().owner == "alice");
    CHECK(e.holder().run_id == 7);
    CHECK(std::string(e.what()).find("environment 'prod' is locked by alice@web1 (pid 42, run 7, reason: deploy 1.2.0)") !=
          std::string::npos);
  }
  a->ReleaseLease("prod", "t1");
  CHECK_NOTHROW(b->AcquireLease(L("t2", "bob"), 60));
  CHECK(b->Leases().at(0).owner == "bob");
}

TEST_CASE("an expired lease is taken over and heartbeats extend a live one") {
  test::TempDir dir;
  auto a = OpenStateStore(dir / "state.db");
  auto b = OpenStateStore(dir / "state.db");
  a->AcquireLease(L("t1"), 0.2);
  CHECK(a->Heartbeat("prod", "t1", 0.2));
  CHECK_THROWS_AS(b->AcquireLease(L("t2", "bob"), 60), LeaseHeldError);
  double expires = a->Leases().at(0).expires_at;
  while (sys::NowEpoch() <= expires) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_NOTHROW(b->AcquireLease(L("t2", "bob"), 60));
  // The old holder's heartbeat now finds the lease gone.
  CHECK_FALSE(a->Heartbeat("prod", "t1", 60));
}

TEST_CASE("force release returns what it removed") {
  test::TempDir dir;
  auto s = OpenStateStore(dir / "state.db");
  CHECK(!s->ForceRelease("prod"));
  s->AcquireLease(L("t1"), 60);
  auto removed = s->ForceRelease("prod");
  REQUIRE(removed);
  CHECK(removed->token == "t1");
  CHECK(s->Leases().empty());
}

TEST_CASE("remembered facts are per environment, replaced, stored exactly and survive reopening") {
  test::TempDir dir;
  {
    auto s = OpenStateStore(dir / "state.db");
    CHECK_FALSE(s->Recall("prod", "colours"));
    s->Remember("prod", "colours", {{"blue", {{"release", "1"}}}}, 7);
    s->Remember("staging", "colours", {{"green", {{"release", "9"}}}}, 8);
    s->Remember("prod", "colours", {{"blue", {{"release", "2"}}}}, 9);
    // Stored exactly: a masked copy would be recalled corrupted (run:remember
    // refuses values holding a secret before they reach the store).
    RegisterSecret("release");
    s->Remember("prod", "note", "release-7", 0);
  }
  auto s = OpenStateStore(dir / "state.db");
  auto row = s->Recall("prod", "colours");
  REQUIRE(row);
  CHECK((*row)["value"]["blue"]["release"] == "2");
  CHECK((*row)["run_id"] == 9);
  CHECK((*row)["updated_at"].get<std::string>().size() >= 20);
  CHECK((*s->Recall("staging", "colours"))["value"]["green"]["release"] == "9");
  CHECK((*s->Recall("prod", "note"))["value"] == "release-7");
  CHECK((*s->Recall("prod", "note"))["run_id"].is_null());
  json all = s->RecallAll("prod");
  CHECK(all.size() == 2);
  CHECK(all.contains("colours"));
  struct stat st {};
  REQUIRE(::stat((dir / "state.db").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("a version 1 store gains the facts table when opened") {
  test::TempDir dir;
  OpenStateStore(dir / "state.db");
  {
    // What hoist 0.1.0 left behind: the same tables without kv.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open((dir / "state.db").c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "DROP TABLE kv; PRAGMA user_version=1;", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = OpenStateStore(dir / "state.db");
  s->Remember("prod", "k", 1, 0);
  CHECK((*s->Recall("prod", "k"))["value"] == 1);
}

TEST_CASE("a sandbox's store starts from the real one's facts, read without creating or writing anything") {
  test::TempDir dir;
  CHECK(ReadFacts(dir / "none/state.db", "prod") == json::object());
  CHECK_FALSE(std::filesystem::exists(dir / "none"));
  {
    auto real = OpenStateStore(dir / "state.db");
    real->Remember("prod", "last_deploy", {{"release", "3"}, {"baked", true}}, 12);
    real->Remember("staging", "last_deploy", {{"release", "4"}}, 13);
  }
  auto bytes = [&] { return test::ReadAll(dir / "state.db") + test::ReadAll(dir / "state.db-wal"); };
  std::string before = bytes();
  json facts = ReadFacts(dir / "state.db", "prod");
  CHECK(bytes() == before);
  REQUIRE(facts.size() == 1);
  CHECK(facts["last_deploy"]["value"]["release"] == "3");

  auto sandbox = OpenStateStore(dir / "sandbox.db");
  sandbox->SeedFacts("prod", facts);
  CHECK(sandbox->RecallAll("prod") == facts);   // run_id and updated_at too
  CHECK_FALSE(sandbox->Recall("staging", "last_deploy"));
}

TEST_CASE("a malformed postgres state URL is one state error with its password masked") {
  auto e = test::CatchError([] { OpenStateStore("postgresql://ops:Sekr3t-pw-91@db1:99999/hoist"); });
  CHECK(e.area() == "state");
  CHECK(e.code() == "invalid");
  CHECK(e.message().find("Sekr3t-pw-91") == std::string::npos);
  CHECK(e.message().find("invalid database URL \"postgresql://ops:***@db1:99999/hoist\"") != std::string::npos);
}

}  // TEST_SUITE

}  // namespace
}  // namespace hoist::engine

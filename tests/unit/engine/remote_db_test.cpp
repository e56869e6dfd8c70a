// engine/remote_db over a socketpair: the agent (engine/agent_server) serves
// a real SQLite file in a temp dir on one thread, a RemoteDbConnection
// calls it from the test. Values of every type come back exactly, errors
// keep the db's area and code with the host in the message, transactions
// and leases live on the agent's one connection per handle, and what the
// agent sees of the file equals what a local connection sees.
#include "engine/remote_db.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <thread>

#include "core/error.h"
#include "db/connection.h"
#include "engine/agent_server.h"
#include "support/support.h"
#include "sys/fs.h"

namespace hoist::test {
namespace {

using json = nlohmann::json;

/// An agent serving one end of a socketpair on a thread; conn talks to it.
struct SocketAgent {
  int fds[2] = {-1, -1};
  engine::RealWorld real;
  std::thread server;
  std::unique_ptr<engine::AgentConnection> conn;

  SocketAgent() {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    server = std::thread([this] { engine::ServeAgent(fds[1], fds[1], real, {HOIST_VERSION, "web1"}); });
    conn = std::make_unique<engine::AgentConnection>("web1", fds[0], fds[0]);
    conn->Hello();
  }
  /// Ends the conversation as ssh going away would: EOF on the agent's side.
  void Hangup() {
    ::shutdown(fds[0], SHUT_WR);
    if (server.joinable()) server.join();
  }
  ~SocketAgent() {
    Hangup();
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

db::LockOptions Lease(double timeout, double ttl = 30) {
  db::LockOptions o;
  o.timeout = timeout;
  o.ttl = ttl;
  return o;
}

std::unique_ptr<engine::RemoteDbConnection> OpenRemote(SocketAgent& a, const std::string& path, bool create = true) {
  db::OpenOptions o;
  o.create = create;
  return engine::RemoteDbConnection::Open(*a.conn, "sqlite://" + path, o);
}

TEST_SUITE("engine/remote db") {
  TEST_CASE("values of every type round-trip exactly through the agent: blobs with NUL bytes, invalid UTF-8, NULL, inf") {
    TempDir dir("remotedb");
    SocketAgent a;
    auto c = OpenRemote(a, dir / "app.db");
    CHECK(c->kind() == "sqlite");
    CHECK(c->url().path == dir / "app.db");
    CHECK(c->host() == "web1");
    c->Exec("CREATE TABLE v (id INTEGER PRIMARY KEY, x)");
    const std::string nul_blob("a\0b\xff\x00z", 6);
    const std::string bad_utf8("caf\xe9 \xc3", 6);
    std::vector<db::Value> values = {db::Null{},
                                     int64_t{0},
                                     std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::max(),
                                     0.1,
                                     1.0 / 3,
                                     5e-324,
                                     1e300,
                                     std::numeric_limits<double>::infinity(),
                                     -std::numeric_limits<double>::infinity(),
                                     std::string(""),
                                     std::string("héllo \"quoted\"\n"),
                                     bad_utf8,
                                     std::string("x\0y", 3),
                                     db::Blob{nul_blob},
                                     db::Blob{""}};
    for (size_t i = 0; i < values.size(); ++i) {
      CHECK(c->Exec("INSERT INTO v (id, x) VALUES (?1, ?2)", {static_cast<int64_t>(i), values[i]}) == 1);
    }
    auto r = c->Query("SELECT id, x, typeof(x) FROM v ORDER BY id");
    REQUIRE(r.rows.size() == values.size());
    CHECK(r.columns == std::vector<std::string>{"id", "x", "typeof(x)"});
    for (size_t i = 0; i < values.size(); ++i) {
      INFO("value " << i);
      CHECK(r.rows[i][1] == values[i]);
    }
    CHECK(r.rows[14][2] == db::Value(std::string("blob")));
    CHECK(r.rows[0][2] == db::Value(std::string("null")));
    // A bool binds as 0/1, as locally.
    CHECK(c->Query("SELECT ?1, ?2", {true, false}).rows[0] == std::vector<db::Value>{int64_t{1}, int64_t{0}});
    // The file is the agent's: a local connection reads the same rows.
    auto local = db::Open("sqlite://" + dir / "app.db");
    CHECK(local->Query("SELECT id, x, typeof(x) FROM v ORDER BY id").rows == r.rows);
    // A script (no parameters) runs all its statements there.
    CHECK(c->Exec("UPDATE v SET x = 1 WHERE id = 1; UPDATE v SET x = 2 WHERE id = 2") == 2);
    CHECK(local->Query("SELECT x FROM v WHERE id = 2").rows[0][0] == db::Value(int64_t{2}));
  }

  TEST_CASE("the value codec keeps what SQLite cannot store too: -0.0 and nan, and refuses an unknown form") {
    net::agent::Message m;
    json neg = engine::DbValueJson(-0.0, m), nan = engine::DbValueJson(std::nan(""), m);
    CHECK(std::signbit(std::get<double>(engine::DbValueFrom(neg, m))));
    CHECK(std::isnan(std::get<double>(engine::DbValueFrom(nan, m))));
    json text = engine::DbValueJson(std::string("a\0b", 3), m);
    CHECK(text == json{{"t", {{"$blob", 0}}}});
    CHECK(engine::DbValueFrom(text, m) == db::Value(std::string("a\0b", 3)));
    CHECK(engine::DbValueFrom(engine::DbValueJson(db::Blob{"\xff"}, m), m) == db::Value(db::Blob{"\xff"}));
    CHECK(CatchError([&] { engine::DbValueFrom(json{{"x", 1}}, m); }).code() == "protocol");
  }

  TEST_CASE("a constraint error keeps area db and code constraint, its message names the host") {
    TempDir dir("remotedb");
    SocketAgent a;
    auto c = OpenRemote(a, dir / "app.db");
    c->Exec("CREATE TABLE u (email TEXT UNIQUE NOT NULL)");
    c->Exec("INSERT INTO u VALUES ('a@x')");
    auto local = db::Open("sqlite://" + dir / "app.db");
    Error want = CatchError([&] { local->Exec("INSERT INTO u VALUES ('a@x')"); });
    Error e = CatchError([&] { c->Exec("INSERT INTO u VALUES ('a@x')"); });
    CHECK(e.area() == "db");
    CHECK(e.code() == "constraint");
    CHECK(e.message() == "host web1: " + want.message());
    Error syntax = CatchError([&] { c->Query("SELEC 1"); });
    CHECK(syntax.code() == "syntax");
    CHECK(syntax.message().rfind("host web1: ", 0) == 0);
  }

  TEST_CASE("Tx commits, rolls back and nests savepoints on the agent's one connection for the handle") {
    TempDir dir("remotedb");
    SocketAgent a;
    auto c = OpenRemote(a, dir / "app.db");
    auto local = db::Open("sqlite://" + dir / "app.db");
    c->Exec("CREATE TABLE t (x INTEGER)");
    c->Tx([&] {
      c->Exec("INSERT INTO t VALUES (1)");
      // BEGIN IMMEDIATE went to the same connection: a writer elsewhere waits.
      local->SetTimeouts({.lock_timeout = 0.05, .statement_timeout = 0});
      CHECK(CatchError([&] { local->Exec("INSERT INTO t VALUES (99)"); }).code() == "busy");
      CHECK(c->tx_depth() == 1);
      c->Tx([&] { c->Exec("INSERT INTO t VALUES (2)"); });
      CHECK_THROWS_AS(c->Tx([&] {
        c->Exec("INSERT INTO t VALUES (3)");
        throw Error("test", "boom", "inner fails");
      }),
                      Error);
      CHECK(c->tx_depth() == 1);
    });
    CHECK(c->tx_depth() == 0);
    CHECK(local->Query("SELECT x FROM t ORDER BY x").rows ==
          std::vector<std::vector<db::Value>>{{int64_t{1}}, {int64_t{2}}});
    Error e = CatchError([&] {
      c->Tx([&] {
        c->Exec("INSERT INTO t VALUES (4)");
        c->Exec("INSERT INTO no_such_table VALUES (5)");
      });
    });
    CHECK(e.code() == "sql_error");
    CHECK(local->Query("SELECT count(*) FROM t").rows[0][0] == db::Value(int64_t{2}));
  }

  TEST_CASE("tables, columns, schema and integrity equal a local connection's on the same file") {
    TempDir dir("remotedb");
    SocketAgent a;
    auto c = OpenRemote(a, dir / "app.db");
    c->Exec(R"sql(
      CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT DEFAULT 'x');
      CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE, body BLOB);
      CREATE INDEX posts_user ON posts (user_id) WHERE user_id IS NOT NULL;
      CREATE VIEW names AS SELECT name FROM users;
      CREATE TRIGGER t AFTER INSERT ON users BEGIN SELECT 1; END;
    )sql");
    auto local = db::Open("sqlite://" + dir / "app.db");
    CHECK(c->Tables() == local->Tables());
    CHECK(c->Tables() == std::vector<std::string>{"posts", "users"});
    CHECK(c->Columns("users") == local->Columns("users"));
    CHECK(c->Columns("users").size() == 3);
    CHECK(c->ReadSchema() == local->ReadSchema());
    CHECK(c->Fingerprint() == local->Fingerprint());
    Error missing = CatchError([&] { c->Columns("nope"); });
    CHECK(missing.code() == "not_found");
    CHECK(missing.message() == "host web1: " + CatchError([&] { local->Columns("nope"); }).message());
    auto ri = c->Integrity(false), li = local->Integrity(false);
    CHECK(ri.ok);
    CHECK(ri.Summary() == li.Summary());
    CHECK(ri.method == li.method);
    CHECK(ri.notes == li.notes);
    CHECK(c->Integrity(true).method == "quick_check");
    CHECK(c->JournalMode() == "delete");
  }

  TEST_CASE("a lock is held on the agent while fn runs here, lock_held for a second holder, released however fn ends") {
    TempDir dir("remotedb");
    SocketAgent a;
    auto c = OpenRemote(a, dir / "app.db");
    auto local = db::Open("sqlite://" + dir / "app.db");
    bool ran = false;
    c->Lock("deploy", Lease(0, 30), [&] {
      ran = true;
      // Held there, as a row of the lease table; this connection works meanwhile.
      auto row = local->Query("SELECT owner FROM hoist_locks WHERE name = 'deploy'");
      REQUIRE(row.rows.size() == 1);
      CHECK(std::get<std::string>(row.rows[0][0]) == db::DefaultLockOwner());  // the agent, this process here
      c->Exec("CREATE TABLE inside (x)");
      Error held = CatchError([&] { local->Lock("deploy", Lease(0, 30), [] {}); });
      CHECK(held.code() == "lock_held");
      Error twice = CatchError([&] { c->Lock("deploy", Lease(0), [] {}); });
      CHECK(twice.code() == "invalid");
      CHECK(twice.message().rfind("host web1: lock \"deploy\" is already held by this connection", 0) == 0);
    });
    CHECK(ran);
    CHECK(local->Query("SELECT count(*) FROM hoist_locks").rows[0][0] == db::Value(int64_t{0}));
    // Released when fn throws too, and fn's error is the one reported.
    Error e = CatchError([&] { c->Lock("deploy", Lease(0), [] { throw Error("test", "boom", "fn failed"); }); });
    CHECK(e.code() == "boom");
    CHECK(local->Query("SELECT count(*) FROM hoist_locks").rows[0][0] == db::Value(int64_t{0}));
    // The other way round: a local holder makes the agent's try lock_held.
    local->Lock("deploy", Lease(0, 30), [&] {
      Error held = CatchError([&] { c->Lock("deploy", Lease(0.1), [] { FAIL("fn ran without the lock"); }); });
      CHECK(held.code() == "lock_held");
      CHECK(held.message().rfind("host web1: lock \"deploy\" is held by " + db::DefaultLockOwner(), 0) == 0);
    });
  }

  TEST_CASE("a lock whose lease was taken over meanwhile is lock_lost when fn returns") {
    TempDir dir("remotedb");
    SocketAgent a;
    auto c = OpenRemote(a, dir / "app.db");
    auto local = db::Open("sqlite://" + dir / "app.db");
    Error e = CatchError([&] {
      c->Lock("deploy", Lease(0, 0.3), [&] {
        local->Exec("UPDATE hoist_locks SET owner = 'thief:1', token = 'other' WHERE name = 'deploy'");
        // The heartbeat (every ttl/3) finds the row taken (as the local test of lock_lost waits).
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
      });
    });
    CHECK(e.code() == "lock_lost");
    CHECK(e.message().find("host web1: lock \"deploy\" was taken over by thief:1") == 0);
  }

  TEST_CASE("a lock still held when the conversation ends is released by the agent") {
    TempDir dir("remotedb");
    SocketAgent a;
    auto c = OpenRemote(a, dir / "app.db");
    auto local = db::Open("sqlite://" + dir / "app.db");
    Error e = CatchError([&] {
      c->Lock("deploy", Lease(0, 30), [&] {
        CHECK(local->Query("SELECT count(*) FROM hoist_locks").rows[0][0] == db::Value(int64_t{1}));
        a.Hangup();  // the controlling hoist went away mid-fn: the agent has ended
        CHECK(local->Query("SELECT count(*) FROM hoist_locks").rows[0][0] == db::Value(int64_t{0}));
      });
    });
    CHECK(e.area() == "agent");
    CHECK(e.code() == "closed");
  }

  TEST_CASE("after Close a call is db closed naming the host, and the handle is gone on the agent") {
    TempDir dir("remotedb");
    SocketAgent a;
    auto c = OpenRemote(a, dir / "app.db");
    CHECK_FALSE(c->closed());
    c->Close();
    c->Close();  // idempotent
    CHECK(c->closed());
    Error e = CatchError([&] { c->Query("SELECT 1"); });
    CHECK(e.area() == "db");
    CHECK(e.code() == "closed");
    CHECK(e.message() == "host web1: the connection to sqlite://" + dir / "app.db" + " is closed");
    CHECK(CatchError([&] { c->Tx([] {}); }).code() == "closed");
    Error gone = CatchError([&] { a.conn->Call("db.query", {{"handle", 1}, {"sql", "x"}}); });
    CHECK(gone.code() == "closed");
  }

  TEST_CASE("open options travel: no file without create is not_found naming host and path, nothing created, readonly refuses writes") {
    TempDir dir("remotedb");
    SocketAgent a;
    Error e = CatchError([&] { OpenRemote(a, dir / "missing.db", /*create=*/false); });
    CHECK(e.area() == "db");
    CHECK(e.code() == "not_found");
    CHECK(e.message() == "host web1: no database file at " + dir / "missing.db" +
                             " (check the path, or open it with {create = true} to create a new database)");
    CHECK_FALSE(sys::StatPath(dir / "missing.db").exists);
    OpenRemote(a, dir / "app.db")->Exec("CREATE TABLE t (x)");
    db::OpenOptions o;
    o.readonly = true;
    o.busy_timeout = 1.5;
    auto ro = engine::RemoteDbConnection::Open(*a.conn, "sqlite://" + dir / "app.db", o);
    CHECK(ro->timeouts().lock_timeout == 1.5);
    CHECK(CatchError([&] { ro->Exec("INSERT INTO t VALUES (1)"); }).code() == "readonly");
    ro->SetTimeouts({.lock_timeout = 2, .statement_timeout = 3});
    CHECK(ro->timeouts().statement_timeout == 3);
    o = {};
    o.create = true;
    o.journal_mode = "wal";
    auto w = engine::RemoteDbConnection::Open(*a.conn, "sqlite://" + dir / "wal.db", o);
    CHECK(w->JournalMode() == "wal");
  }

  TEST_CASE("a PostgreSQL URL, a relative path and :memory: are refused for host=, saying what to write") {
    SocketAgent a;
    Error pg = CatchError([&] { engine::RemoteDbConnection::Open(*a.conn, "postgres://app:s3cret@db1/app"); });
    CHECK(pg.area() == "db");
    CHECK(pg.code() == "unsupported");
    CHECK(pg.message() ==
          "db.open(postgres://app:***@db1/app, {host = \"web1\"}): host= names where a SQLite file is; a PostgreSQL "
          "database is reached over the network from where hoist runs: drop host=");
    Error rel = CatchError([&] { engine::RemoteDbConnection::Open(*a.conn, "sqlite:data/app.db"); });
    CHECK(rel.code() == "invalid");
    CHECK(rel.message() ==
          "db.open(sqlite:data/app.db, {host = \"web1\"}): a relative path means nothing on another host (the project "
          "is not there): write the absolute path of the file on web1 (sqlite:///srv/app/data/app.db)");
    CHECK(CatchError([&] { engine::RemoteDbConnection::Open(*a.conn, "sqlite::memory:"); }).code() == "invalid");
    // The agent itself refuses anything but a SQLite file too.
    Error agent = CatchError([&] { a.conn->Call("db.open", {{"url", "sqlite::memory:"}}); });
    CHECK(agent.code() == "unsupported");
  }
}

}  // namespace
}  // namespace hoist::test

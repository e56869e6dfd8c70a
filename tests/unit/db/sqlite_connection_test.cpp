// Tests for the SQLite Connection on real files: open options, typed round
// trips, transactions and savepoints, error messages with positions,
// timeouts, integrity on a corrupted file, and lease locks between two
// connections.
#include "db/sqlite_connection.h"

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "core/interrupt.h"
#include "support/support.h"
#include "sys/clock.h"

namespace hoist::db {
namespace {

using test::CatchError;
using test::TempDir;

std::unique_ptr<Connection> Create(const std::string& path) {
  OpenOptions o;
  o.create = true;
  return Open("sqlite://" + path, o);
}

TEST_SUITE("db/sqlite") {
  TEST_CASE("open refuses a missing file unless create") {
    TempDir dir("db");
    auto e = CatchError([&] { Open("sqlite://" + dir / "missing.db"); });
    CHECK(e.code() == "not_found");
    CHECK(e.message() == "no database file at " + dir / "missing.db" +
                             " (check the path, or open it with {create = true} to create a new database)");
    auto c = Create(dir / "new.db");
    CHECK(c->kind() == "sqlite");
    CHECK(std::filesystem::exists(dir / "new.db"));
    auto nodir = CatchError([&] { Create(dir / "no/such/dir.db"); });
    CHECK(nodir.message() == "cannot create " + dir / "no/such/dir.db" + ": directory " + dir / "no/such" +
                                 " does not exist");
  }

  TEST_CASE("open refuses a file that is not a database") {
    TempDir dir("db");
    test::WriteFile(dir / "notes.txt", std::string(4096, 'x'));
    auto e = CatchError([&] { Open("sqlite://" + dir / "notes.txt"); });
    CHECK(e.code() == "not_a_database");
    CHECK(e.message() == "cannot open " + dir / "notes.txt" +
                             ": file is not a database (is this the right path? a compressed or encrypted backup "
                             "must be restored first)");
    auto d = CatchError([&] { Open("sqlite://" + dir.path); });
    CHECK(d.message() == "cannot open " + dir.path + ": it is a directory, not a database file");
  }

  TEST_CASE("foreign keys are on and journal mode is reported and set") {
    TempDir dir("db");
    auto c = Create(dir / "app.db");
    auto* s = dynamic_cast<SqliteConnection*>(c.get());
    REQUIRE(s);
    CHECK(s->JournalMode() == "delete");
    CHECK(s->SetJournalMode("WAL") == "wal");
    CHECK(s->JournalMode() == "wal");
    CHECK(c->Query("PRAGMA foreign_keys").rows[0][0] == Value(int64_t{1}));
    c->Exec("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE k (p INTEGER REFERENCES p(id))");
    auto e = CatchError([&] { c->Exec("INSERT INTO k VALUES (42)"); });
    CHECK(e.code() == "constraint");
    CHECK(e.message() == "FOREIGN KEY constraint failed");

    OpenOptions wal;
    wal.journal_mode = "wal";
    auto mem = CatchError([&] { Open("sqlite::memory:", wal); });
    CHECK(mem.message() ==
          "cannot set journal_mode=wal on sqlite::memory:: SQLite kept journal_mode=memory (an in-memory database "
          "keeps journal_mode=memory)");
    CHECK(CatchError([&] { s->SetJournalMode("fast"); }).message() ==
          "unknown journal_mode 'fast' (expected one of: delete, truncate, persist, memory, wal, off)");
  }

  TEST_CASE("values round trip with their types") {
    auto c = Open("sqlite::memory:");
    c->Exec("CREATE TABLE v (n, i INTEGER, f REAL, t TEXT, b BLOB)");
    const std::string bytes("\x00\x01\xff zero", 8);
    const int64_t big = std::numeric_limits<int64_t>::max();
    CHECK(c->Exec("INSERT INTO v VALUES (?, ?, ?, ?, ?)",
                  {Null{}, big, 0.1, std::string("h\xc3\xa9llo"), Blob{bytes}}) == 1);
    c->Exec("INSERT INTO v VALUES (?, ?, ?, ?, ?)", {true, int64_t{-1}, -2.5e300, std::string(), Blob{}});
    Result r = c->Query("SELECT n, i, f, t, b FROM v ORDER BY rowid");
    CHECK(r.columns == std::vector<std::string>{"n", "i", "f", "t", "b"});
    REQUIRE(r.rows.size() == 2);
    CHECK(r.rows[0][0] == Value(Null{}));
    CHECK(r.rows[0][1] == Value(big));
    CHECK(r.rows[0][2] == Value(0.1));
    CHECK(r.rows[0][3] == Value(std::string("h\xc3\xa9llo")));
    CHECK(r.rows[0][4] == Value(Blob{bytes}));
    CHECK(r.rows[1][0] == Value(int64_t{1}));  // a bool binds as 1
    CHECK(r.rows[1][2] == Value(-2.5e300));
    CHECK(r.rows[1][3] == Value(std::string()));
    CHECK(r.rows[1][4] == Value(Blob{}));  // an empty blob, not NULL
    CHECK(std::string(TypeName(r.rows[1][4])) == "blob");
    CHECK(c->Query("SELECT typeof(b) FROM v WHERE rowid = 2").rows[0][0] == Value(std::string("blob")));
    CHECK(c->Query("SELECT 1 WHERE 0").rows.empty());
    CHECK(c->Query("SELECT 1 AS one WHERE 0").columns == std::vector<std::string>{"one"});
  }

  TEST_CASE("exec returns changed rows and runs scripts") {
    auto c = Open("sqlite::memory:");
    CHECK(c->Exec("CREATE TABLE t (x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2), (3);") == 3);
    CHECK(c->Exec("UPDATE t SET x = x + 1 WHERE x > ?", {int64_t{1}}) == 2);
    CHECK(c->Exec("CREATE TABLE u (y)") == 0);
    CHECK(c->Exec("DELETE FROM t") == 3);
    auto e = CatchError([&] { c->Exec("INSERT INTO t VALUES (?); INSERT INTO t VALUES (2)", {int64_t{1}}); });
    CHECK(e.code() == "invalid");
    CHECK(e.message() ==
          "exec with parameters runs one statement, but the SQL holds more (at line 1, column 27: INSERT INTO "
          "t VALUES (?); INSERT INTO t VALUES (2)): run each statement with its own exec");
    CHECK(c->Query("SELECT count(*) FROM t").rows[0][0] == Value(int64_t{0}));
    auto q = CatchError([&] { c->Query("SELECT 1; SELECT 2"); });
    CHECK(q.message() == "query runs one statement, but the SQL holds more (at line 1, column 11: SELECT 1; "
                         "SELECT 2): use exec for a script");
    auto n = CatchError([&] { c->Query("SELECT ?, ?", {int64_t{1}}); });
    CHECK(n.message() == "the statement takes 2 parameter(s) but 1 value(s) were given: SELECT ?, ?");
  }

  TEST_CASE("SQL errors carry the statement position") {
    auto c = Open("sqlite::memory:");
    c->Exec("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE)");
    auto syntax = CatchError([&] { c->Query("SELECT id,\n       FROM users"); });
    CHECK(syntax.area() == "db");
    CHECK(syntax.code() == "syntax");
    CHECK(syntax.message() == "near \"FROM\": syntax error (at line 2, column 8:        FROM users)");
    auto column = CatchError([&] { c->Query("SELECT nope FROM users"); });
    CHECK(column.code() == "sql_error");
    CHECK(column.message() == "no such column: nope (at line 1, column 8: SELECT nope FROM users)");
    auto table = CatchError([&] { c->Exec("CREATE TABLE a (x);\nINSERT INTO missing VALUES (1)"); });
    CHECK(table.message() == "no such table: missing");  // SQLite 3.40 gives no offset for this one
    auto second = CatchError([&] { c->Exec("CREATE TABLE b (x);\nINSERT INTO b VALUES (1,,2)"); });
    CHECK(second.code() == "syntax");
    CHECK(second.message() == "near \",\": syntax error (at line 2, column 25: INSERT INTO b VALUES (1,,2))");
    c->Exec("INSERT INTO users (email) VALUES ('a@x')");
    auto unique = CatchError([&] { c->Exec("INSERT INTO users (email) VALUES ('a@x')"); });
    CHECK(unique.code() == "constraint");
    CHECK(unique.message() == "UNIQUE constraint failed: users.email");
  }

  TEST_CASE("transactions commit roll back and nest as savepoints") {
    TempDir dir("db");
    auto c = Create(dir / "tx.db");
    c->Exec("CREATE TABLE t (x INTEGER)");
    c->Tx([&] { c->Exec("INSERT INTO t VALUES (1)"); });
    auto e = CatchError([&] {
      c->Tx([&] {
        c->Exec("INSERT INTO t VALUES (2)");
        throw Error("test", "boom", "step failed");
      });
    });
    CHECK(e.message() == "step failed");
    CHECK(c->tx_depth() == 0);
    CHECK(c->Query("SELECT group_concat(x) FROM t").rows[0][0] == Value(std::string("1")));

    c->Tx([&] {
      c->Exec("INSERT INTO t VALUES (3)");
      CHECK(c->tx_depth() == 1);
      CatchError([&] {
        c->Tx([&] {
          CHECK(c->tx_depth() == 2);
          c->Exec("INSERT INTO t VALUES (4)");
          throw Error("test", "inner", "inner failed");
        });
      });
      c->Tx([&] { c->Exec("INSERT INTO t VALUES (5)"); });
    });
    CHECK(c->Query("SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY x)").rows[0][0] ==
          Value(std::string("1,3,5")));

    // Another connection sees only committed data.
    auto other = Open("sqlite://" + dir / "tx.db");
    c->Tx([&] {
      c->Exec("INSERT INTO t VALUES (6)");
      CHECK(other->Query("SELECT count(*) FROM t").rows[0][0] == Value(int64_t{3}));
    });
    CHECK(other->Query("SELECT count(*) FROM t").rows[0][0] == Value(int64_t{4}));
  }

  TEST_CASE("busy timeout names the wait") {
    TempDir dir("db");
    auto a = Create(dir / "busy.db");
    a->Exec("CREATE TABLE t (x)");
    OpenOptions quick;
    quick.busy_timeout = 0.2;
    auto b = Open("sqlite://" + dir / "busy.db", quick);
    a->Tx([&] {
      a->Exec("INSERT INTO t VALUES (1)");
      auto start = std::chrono::steady_clock::now();
      auto e = CatchError([&] { b->Exec("INSERT INTO t VALUES (2)"); });
      double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      CHECK(waited >= 0.19);
      CHECK(waited < 2);
      CHECK(e.code() == "busy");
      CHECK(e.message() == dir / "busy.db" +
                               ": database is locked (waited 0.2 s for another connection's write lock, the busy "
                               "timeout; find the long write transaction, or raise busy_timeout)");
    });
  }

  TEST_CASE("statement timeout and step deadline stop a long query") {
    auto c = Open("sqlite::memory:");
    c->SetTimeouts({5, 0.1});
    const char* slow =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
    auto e = CatchError([&] { c->Query(slow); });
    CHECK(e.code() == "timeout");
    CHECK(e.message() == "statement timeout (0.1 s) reached: WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
                         "i + 1 FROM n) SELECT count(*) …");
    c->SetTimeouts({5, 0});
    DeadlineScope deadline(std::chrono::milliseconds(100));
    auto s = CatchError([&] { c->Query(slow); });
    CHECK(s.code() == "timeout");
    CHECK(s.message() == "step timeout reached during: WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                         "FROM n) SELECT count(*) …");
  }

  TEST_CASE("closed connections refuse calls") {
    auto c = Open("sqlite::memory:");
    c->Close();
    c->Close();
    CHECK(c->closed());
    auto e = CatchError([&] { c->Query("SELECT 1"); });
    CHECK(e.code() == "closed");
    CHECK(e.message() == "the connection to sqlite::memory: is closed");
  }

  TEST_CASE("tables and columns") {
    auto c = Open("sqlite::memory:");
    c->Exec("CREATE TABLE b (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'x'); CREATE TABLE a (v)");
    CHECK(c->Tables() == std::vector<std::string>{"a", "b"});
    auto cols = c->Columns("b");
    REQUIRE(cols.size() == 2);
    CHECK(cols[0].name == "id");
    CHECK(cols[0].pk == 1);
    CHECK(cols[1].not_null);
    CHECK(cols[1].default_value == std::optional<std::string>("'x'"));
    auto e = CatchError([&] { c->Columns("c"); });
    CHECK(e.code() == "not_found");
    CHECK(e.message() == "no table \"c\" in sqlite::memory: (tables: a, b)");
  }

  TEST_CASE("integrity of a healthy database") {
    TempDir dir("db");
    auto c = Create(dir / "ok.db");
    c->Exec("CREATE TABLE t (x)");
    for (bool quick : {true, false}) {
      IntegrityReport r = c->Integrity(quick);
      CHECK(r.ok);
      CHECK(r.engine == "sqlite");
      CHECK(r.method == (quick ? "quick_check" : "integrity_check"));
      CHECK(r.problems.empty());
      CHECK(r.checked.size() == 2);
      CHECK(r.notes == std::vector<std::string>{"journal_mode=delete"});
    }
  }

  TEST_CASE("integrity finds foreign key violations") {
    auto c = Open("sqlite::memory:");
    c->Exec("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE k (p INTEGER REFERENCES p(id));"
            "PRAGMA foreign_keys = OFF; INSERT INTO k VALUES (7); PRAGMA foreign_keys = ON;");
    IntegrityReport r = c->Integrity(true);
    CHECK_FALSE(r.ok);
    CHECK(r.problems == std::vector<std::string>{"table k rowid 1: no parent row in p (foreign key #0)"});
    CHECK(r.Summary() == "FAILED: table k rowid 1: no parent row in p (foreign key #0)");
  }

  TEST_CASE("integrity on a corrupted file") {
    TempDir dir("db");
    {
      auto c = Create(dir / "bad.db");
      c->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v);");
      c->Tx([&] {
        for (int i = 0; i < 2000; ++i) c->Exec("INSERT INTO t (v) VALUES (?)", {std::string(100, 'a' + i % 26)});
      });
    }
    // Overwrite pages in the middle of the file (the header stays intact).
    std::string data = test::ReadAll(dir / "bad.db");
    REQUIRE(data.size() > 40 * 4096);
    for (size_t i = 20 * 4096; i < 24 * 4096; ++i) data[i] = static_cast<char>(i * 7);
    {
      std::ofstream out(dir / "bad.db", std::ios::binary | std::ios::trunc);
      out << data;
    }
    auto c = Open("sqlite://" + dir / "bad.db");
    IntegrityReport r = c->Integrity(false);
    CHECK_FALSE(r.ok);
    REQUIRE_FALSE(r.problems.empty());
    CHECK(r.Summary().rfind("FAILED: ", 0) == 0);
    IntegrityReport q = c->Integrity(true);
    CHECK_FALSE(q.ok);
  }

  TEST_CASE("lock contention between two connections") {
    TempDir dir("db");
    auto a = Create(dir / "lock.db");
    auto b = Open("sqlite://" + dir / "lock.db");
    bool ran = false;
    a->Lock("migrate", {1, 60, "web-1:100"}, [&] {
      auto start = std::chrono::steady_clock::now();
      auto e = CatchError([&] { b->Lock("migrate", {0.2, 60, "web-2:200"}, [] { FAIL("must not run"); }); });
      double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      CHECK(waited >= 0.19);
      CHECK(e.code() == "lock_held");
      CHECK(e.message().rfind("lock \"migrate\" is held by web-1:100 until ", 0) == 0);
      CHECK(e.message().find("a crashed holder's lease expires by itself) (waited 0.2 s on " + dir / "lock.db" +
                             ")") != std::string::npos);
      // Another name is free, and this connection's transaction is untouched by the lease.
      b->Lock("backup", {0, 60, ""}, [&] { ran = true; });
      auto again = CatchError([&] { a->Lock("migrate", {}, [] {}); });
      CHECK(again.code() == "invalid");
      CHECK(again.message() ==
            "lock \"migrate\" is already held by this connection (locks are not re-entrant: take it once around the "
            "whole procedure)");
    });
    CHECK(ran);
    // Released: b gets it at once.
    b->Lock("migrate", {0, 60, ""}, [&] { CHECK(b->Query("SELECT count(*) FROM hoist_locks").rows[0][0] == Value(int64_t{1})); });
    CHECK(a->Query("SELECT count(*) FROM hoist_locks").rows[0][0] == Value(int64_t{0}));
  }

  TEST_CASE("a lock whose holder's pid is gone on this host is taken over at once, not after its lease") {
    TempDir dir("db");
    auto a = Create(dir / "lock.db");
    pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    REQUIRE(child > 0);
    int status = 0;
    ::waitpid(child, &status, 0);  // its pid is gone now
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    const std::string dead = std::string(host) + ":" + std::to_string(child);
    // What a migrator SIGKILLed inside its lock leaves: a lease 10 minutes long.
    a->Exec("CREATE TABLE hoist_locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, token TEXT NOT NULL, "
            "acquired_at REAL NOT NULL, expires_at REAL NOT NULL)");
    a->Exec("INSERT INTO hoist_locks VALUES ('migrate', '" + dead + "', 't', 0, strftime('%s','now') + 600)");
    bool ran = false;
    auto start = std::chrono::steady_clock::now();
    a->Lock("migrate", {5, 60, ""}, [&] { ran = true; });
    CHECK(ran);
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 2);
    // A live holder, or one on another host, still waits (here: times out).
    a->Exec("INSERT INTO hoist_locks VALUES ('migrate', 'elsewhere:" + std::to_string(child) +
            "', 't', 0, strftime('%s','now') + 600)");
    auto e = CatchError([&] { a->Lock("migrate", {0.1, 60, ""}, [] { FAIL("must not run"); }); });
    CHECK(e.code() == "lock_held");
  }

  TEST_CASE("lock inside a transaction is refused with a way out") {
    TempDir dir("db");
    auto a = Create(dir / "lock.db");
    auto e = CatchError([&] { a->Tx([&] { a->Lock("m", {0, 60, ""}, [] {}); }); });
    CHECK(e.code() == "invalid");
    CHECK(e.message() ==
          "cannot take lock \"m\" inside a transaction on this SQLite connection (the transaction holds the write "
          "lock the lease needs): take the lock first, then start the transaction inside it");
    a->Lock("m", {0, 60, ""}, [&] { a->Tx([&] { a->Exec("CREATE TABLE t (x)"); }); });
  }

  TEST_CASE("lock released when the function throws") {
    TempDir dir("db");
    auto a = Create(dir / "lock.db");
    auto e = CatchError([&] { a->Lock("x", {}, [] { throw Error("test", "boom", "failed inside"); }); });
    CHECK(e.message() == "failed inside");
    CHECK(a->Query("SELECT count(*) FROM hoist_locks").rows[0][0] == Value(int64_t{0}));
  }

  TEST_CASE("an expired lease is taken over and a live one is renewed") {
    TempDir dir("db");
    auto a = Create(dir / "lock.db");
    auto b = Open("sqlite://" + dir / "lock.db");
    // A holder that crashed: its lease expired a second ago.
    a->Lock("warmup", {}, [] {});
    a->Exec("INSERT INTO hoist_locks VALUES ('migrate', 'dead-host:1', 'tok', ?1, ?2)",
            {sys::NowEpoch() - 100, sys::NowEpoch() - 1});
    bool ran = false;
    b->Lock("migrate", {0, 60, "web-2:2"}, [&] {
      ran = true;
      CHECK(a->Query("SELECT owner FROM hoist_locks WHERE name = 'migrate'").rows[0][0] ==
            Value(std::string("web-2:2")));
    });
    CHECK(ran);
    // A live holder whose work outlasts the ttl keeps the lease (heartbeat).
    a->Lock("long", {0, 0.3, "web-1:1"}, [&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(700));
      auto e = CatchError([&] { b->Lock("long", {0, 0.3, ""}, [] {}); });
      CHECK(e.code() == "lock_held");
    });
  }

  TEST_CASE("a lease taken over while held is reported as lost") {
    TempDir dir("db");
    auto a = Create(dir / "lock.db");
    auto e = CatchError([&] {
      a->Lock("m", {0, 0.3, "web-1:1"}, [&] {
        // Someone deletes the lease row and takes it (as if the ttl had passed).
        auto other = Open("sqlite://" + dir / "lock.db");
        other->Exec("UPDATE hoist_locks SET owner = 'web-9:9', token = 'other' WHERE name = 'm'");
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
      });
    });
    CHECK(e.code() == "lock_lost");
    CHECK(e.message() ==
          "lock \"m\" was taken over by web-9:9 while held (its lease of 0.3 s could not be renewed): the protected "
          "work may have overlapped with another run");
  }
}

}  // namespace
}  // namespace hoist::db

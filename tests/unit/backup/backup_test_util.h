// Helpers for the backup tests: small SQLite databases, child processes
// forked to write or read concurrently, file bytes and modes.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "support/support.h"

namespace hoist::test::backup {

inline void Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  REQUIRE_MESSAGE(rc == SQLITE_OK, sql << ": " << msg);
}

inline std::string Scalar(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  std::string out;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  return out;
}

/// An open connection, closed at scope exit.
struct Conn {
  sqlite3* db = nullptr;
  explicit Conn(const std::string& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, flags, nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
  }
  ~Conn() { sqlite3_close_v2(db); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  void Exec(const std::string& sql) { backup::Exec(db, sql); }
  std::string Scalar(const std::string& sql) { return backup::Scalar(db, sql); }
};

/// A WAL (or rollback-journal) database with `rows` rows of ~1 KB in t and
/// the invariant tables acct/log used by the concurrency tests.
inline void MakeDb(const std::string& path, int rows, bool wal = true) {
  Conn c(path);
  c.Exec(wal ? "PRAGMA journal_mode=WAL" : "PRAGMA journal_mode=DELETE");
  c.Exec(
      "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);"
      "CREATE INDEX t_a ON t(a);"
      "CREATE TABLE acct(id INTEGER PRIMARY KEY, a INTEGER, b INTEGER, v INTEGER);"
      "INSERT INTO acct VALUES (1, 1000000, 0, 0);"
      "CREATE TABLE log(id INTEGER PRIMARY KEY, n INTEGER);"
      "CREATE TABLE marker(v TEXT); INSERT INTO marker VALUES ('original');");
  c.Exec(
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < " + std::to_string(rows) +
      ") INSERT INTO t SELECT x, 'row ' || x || ' ' || hex(randomblob(20)), randomblob(900) FROM c");
}

/// fork(): the child runs fn and _exits with its return value.
inline pid_t Fork(const std::function<int()>& fn) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 99;
    try {
      code = fn();
    } catch (...) {
      code = 98;
    }
    ::_exit(code);
  }
  return pid;
}

/// Waits for pid; the exit code, or 128+signal.
inline int Wait(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

inline unsigned Mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

inline std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// Overwrites one byte of the file at off with its bitwise complement's low bit flipped.
inline void FlipBit(const std::string& path, uint64_t off) {
  int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  unsigned char c = 0;
  REQUIRE(::pread(fd, &c, 1, static_cast<off_t>(off)) == 1);
  c ^= 0x10;
  REQUIRE(::pwrite(fd, &c, 1, static_cast<off_t>(off)) == 1);
  ::close(fd);
}

}  // namespace hoist::test::backup

// Thin RAII over the SQLite C API: a handle, prepared statements with bound
// parameters, and transactions. Used by the state store and the db module.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hoist::db {

/// A prepared statement. Bind indexes are 1-based, column indexes 0-based.
class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql);
  ~Stmt();
  Stmt(Stmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int i, std::string_view v);
  Stmt& Bind(int i, int64_t v);
  Stmt& Bind(int i, double v);
  Stmt& BindNull(int i);
  Stmt& Bind(int i, const std::optional<int64_t>& v) { return v ? Bind(i, *v) : BindNull(i); }

  /// Steps once: true while a row is available; throws Error{"db",...} on failure.
  bool Step();
  /// Runs to completion (for statements without rows), then resets.
  void Run();
  void Reset();

  bool IsNull(int col) const;
  int64_t Int(int col) const;
  double Double(int col) const;
  std::string Text(int col) const;

  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class Sqlite {
 public:
  /// Opens (creating when flags allow) a database file. busy_timeout in ms.
  /// Throws Error{"db","open_failed","cannot open <path>: <sqlite message>"}.
  explicit Sqlite(const std::string& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                  int busy_timeout_ms = 5000);
  ~Sqlite();
  Sqlite(const Sqlite&) = delete;
  Sqlite& operator=(const Sqlite&) = delete;

  /// Executes one or more statements without parameters.
  void Exec(std::string_view sql);
  Stmt Prepare(std::string_view sql) { return Stmt(db_, sql); }
  int64_t LastInsertId() const { return sqlite3_last_insert_rowid(db_); }
  int Changes() const { return sqlite3_changes(db_); }
  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

/// BEGIN (or BEGIN IMMEDIATE) on construction; ROLLBACK on destruction
/// unless Commit() was called.
class Transaction {
 public:
  explicit Transaction(Sqlite& db, bool immediate = false);
  ~Transaction();
  void Commit();

 private:
  Sqlite& db_;
  bool done_ = false;
};

}  // namespace hoist::db

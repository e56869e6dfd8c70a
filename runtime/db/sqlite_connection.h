// The SQLite Connection: one sqlite3 handle with foreign_keys=ON, a busy
// handler that honours busy_timeout and Ctrl-C, a progress handler for
// statement_timeout, and lease-row locks in hoist_locks.
#pragma once

#include <sqlite3.h>

#include <set>
#include <string>

#include "db/connection.h"

namespace hoist::db {

class SqliteConnection : public Connection {
 public:
  /// See Open(). Throws Error{"db","not_found"|"open_failed"|"not_a_database",...}.
  SqliteConnection(DbUrl url, const OpenOptions& options);
  ~SqliteConnection() override;

  int64_t Exec(std::string_view sql, const std::vector<Value>& params = {}) override;
  Result Query(std::string_view sql, const std::vector<Value>& params = {}) override;
  std::vector<std::string> Tables() override;
  std::vector<ColumnInfo> Columns(const std::string& table) override;
  Schema ReadSchema() override;
  IntegrityReport Integrity(bool quick) override;
  void Lock(const std::string& name, const LockOptions& options, const std::function<void()>& fn) override;
  Timeouts timeouts() const override { return timeouts_; }
  void SetTimeouts(const Timeouts& t) override;
  void Close() override;
  bool closed() const override { return db_ == nullptr; }

  /// The current journal mode ("wal", "delete", "memory", ...).
  std::string JournalMode();
  /// Sets the journal mode; returns the mode now in force. Throws
  /// Error{"db","failed"} when SQLite kept another mode (e.g. WAL asked
  /// on :memory:, or while other connections have the file open).
  std::string SetJournalMode(const std::string& mode);

  /// For hoist.backup: the database file (":memory:" for memory) and the
  /// raw handle, owned by this connection (valid until Close()).
  const std::string& path() const { return url_.path; }
  sqlite3* handle() const;
  bool readonly() const { return readonly_; }

 protected:
  void ExecControl(const std::string& sql) override;
  std::string BeginSql() const override { return "BEGIN IMMEDIATE"; }

 private:
  friend int SqliteProgress(void* self);
  friend int SqliteBusy(void* self, int count);

  // One statement: prepare, bind, step. Collects rows when out is set.
  // sql is the whole text; the statement starts at byte base of it.
  void RunStatement(sqlite3_stmt* stmt, std::string_view sql, int base, const std::vector<Value>* params,
                    Result* out);
  [[noreturn]] void Fail(std::string_view sql, int offset_base);

  sqlite3* db_ = nullptr;
  bool readonly_ = false;
  Timeouts timeouts_;
  // Statement deadline for statement_timeout (steady clock, ns; 0 = none).
  int64_t statement_deadline_ns_ = 0;
  bool statement_timed_out_ = false;
  int64_t busy_started_ns_ = 0;
  std::set<std::string> held_locks_;
};

}  // namespace hoist::db

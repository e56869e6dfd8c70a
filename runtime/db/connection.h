// A database connection, SQLite or PostgreSQL, behind one interface: bound
// parameters, typed values, transactions with nested savepoints, schema
// introspection and fingerprint, integrity checks and named locks. Plain
// C++ (bind/db.cpp adapts it to Lua); every failure is a hoist::Error with
// area "db" and a message that never contains a password.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "db/schema.h"
#include "db/url.h"

namespace hoist::db {

struct Null {
  bool operator==(const Null&) const = default;
};
struct Blob {
  std::string bytes;
  bool operator==(const Blob&) const = default;
};

/// A column value or a bound parameter. PostgreSQL results are converted by
/// type: int2/int4/int8/oid -> int64_t, float4/float8 -> double, bool ->
/// bool, bytea -> Blob, numeric and everything else -> text (std::string,
/// so numeric keeps its precision). SQLite: by storage class; a bool
/// parameter binds as 0/1.
using Value = std::variant<Null, bool, int64_t, double, std::string, Blob>;

/// "null", "boolean", "integer", "float", "text" or "blob".
const char* TypeName(const Value& v);
/// For journals and messages: blobs as "<blob N bytes>".
json ValueToJson(const Value& v);

struct Result {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
  int64_t changes = 0;  // rows affected (Exec), 0 for queries
};

/// Options of Open(). Durations are seconds; 0 = off where noted.
struct OpenOptions {
  /// SQLite: how long a statement waits for another connection's write lock.
  double busy_timeout = 5;
  /// PostgreSQL: SET lock_timeout. Short by default: a DDL statement queued
  /// behind a long transaction blocks every later query on that table.
  double lock_timeout = 5;
  /// Both: abort a statement running longer than this (0 = off). Off by
  /// default: backfills legitimately run long; the step timeout bounds them.
  double statement_timeout = 0;
  /// PostgreSQL: connect_timeout, unless the URL sets it.
  double connect_timeout = 10;
  /// SQLite: "" leaves the journal mode alone; "wal", "delete", ... set it.
  std::string journal_mode;
  /// SQLite: open read-only. PostgreSQL: default_transaction_read_only.
  bool readonly = false;
  /// SQLite: create the file when it does not exist (a typo in a path must
  /// not silently create an empty database, so this is off by default).
  bool create = false;
  /// PostgreSQL: application_name, unless the URL sets it.
  std::string application_name = "hoist";
  /// Base for a relative sqlite: path ("" = the process's cwd).
  std::string cwd;
};

/// Session timeouts in seconds (0 = off). SQLite: lock_timeout is its
/// busy timeout.
struct Timeouts {
  double lock_timeout = 5;
  double statement_timeout = 0;
};

struct IntegrityReport {
  bool ok = true;
  std::string engine;
  /// "integrity_check", "quick_check", "amcheck" or "catalog".
  std::string method;
  std::vector<std::string> checked;   // what was checked, one sentence each
  std::vector<std::string> problems;  // empty when ok
  std::vector<std::string> notes;     // worth knowing, not a failure
  /// "ok: <checked...>" or "FAILED: <problems...>", for logs and messages.
  std::string Summary() const;
};

struct LockOptions {
  /// Seconds to keep trying before Error{"db","lock_held"} (0 = try once).
  double timeout = 30;
  /// SQLite: lease length; renewed every ttl/3 while held, so it only
  /// expires when the holder died. PostgreSQL: unused (the server drops an
  /// advisory lock when its session ends).
  double ttl = 60;
  /// Shown to whoever waits: default "<hostname>:<pid>".
  std::string owner;
};

class Connection {
 public:
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// "sqlite" or "postgres".
  std::string kind() const { return url_.kind(); }
  const DbUrl& url() const { return url_; }
  /// The URL with its password replaced by "***".
  const std::string& redacted() const { return url_.redacted; }

  /// Runs sql with parameters bound to ?/?NNN (SQLite) or $1..$n
  /// (PostgreSQL); returns the number of rows changed. Without parameters
  /// sql may hold several statements (a script). Throws Error{"db", code,
  /// message} with code syntax|constraint|busy|timeout|conflict|corrupt|
  /// interrupted|closed|connection|sql_error; the message carries the
  /// statement position when the engine reports one.
  virtual int64_t Exec(std::string_view sql, const std::vector<Value>& params = {}) = 0;
  /// Runs one statement and returns its rows.
  virtual Result Query(std::string_view sql, const std::vector<Value>& params = {}) = 0;

  /// Runs fn in a transaction: BEGIN (SQLite: BEGIN IMMEDIATE, so a writer
  /// never fails to upgrade its lock mid-transaction) ... COMMIT when fn
  /// returns, ROLLBACK when it throws (the exception is rethrown). Nested
  /// calls use SAVEPOINTs, so an inner failure undoes only the inner part.
  void Tx(const std::function<void()>& fn);
  int tx_depth() const { return tx_depth_; }

  /// User tables, sorted (hoist's own tables included).
  virtual std::vector<std::string> Tables() = 0;
  /// Columns of a table; Error{"db","not_found"} when there is no such table.
  virtual std::vector<ColumnInfo> Columns(const std::string& table) = 0;
  /// The normalized schema (hoist's internal tables left out).
  virtual Schema ReadSchema() = 0;
  /// sha256 of ReadSchema()'s canonical form.
  std::string Fingerprint() { return db::Fingerprint(ReadSchema()); }
  /// Checks the database. A damaged database is an answer (ok = false), not
  /// an exception; throws only when the check itself cannot run.
  virtual IntegrityReport Integrity(bool quick) = 0;
  /// Runs fn while holding the named lock (see LockOptions); the lock is
  /// released however fn ends. Throws Error{"db","lock_held"} naming the
  /// holder when the timeout passes, Error{"db","invalid"} when this
  /// connection already holds that lock, Error{"db","lock_lost"} when fn
  /// returned but the lock had been lost meanwhile.
  virtual void Lock(const std::string& name, const LockOptions& options, const std::function<void()>& fn) = 0;

  virtual Timeouts timeouts() const = 0;
  virtual void SetTimeouts(const Timeouts& t) = 0;

  /// Closes the connection (idempotent). Later calls throw Error{"db","closed"}.
  virtual void Close() = 0;
  virtual bool closed() const = 0;

 protected:
  explicit Connection(DbUrl url) : url_(std::move(url)) {}
  /// Runs transaction-control SQL (BEGIN, SAVEPOINT ...).
  virtual void ExecControl(const std::string& sql) = 0;
  virtual std::string BeginSql() const { return "BEGIN"; }
  /// Throws Error{"db","closed"} after Close().
  void CheckOpen() const;

  DbUrl url_;
  int tx_depth_ = 0;
};

/// Opens a connection for a URL (see ParseUrl). SQLite: the file must exist
/// unless options.create; foreign_keys=ON; busy timeout; "file is not a
/// database" is Error{"db","not_a_database"}. PostgreSQL: loads libpq on
/// first use; a failed connection is Error{"db","auth_failed"|"connect_failed",
/// "cannot connect to database \"app\" on db1:5432 as user \"u\": ..."}.
std::unique_ptr<Connection> Open(const std::string& url, const OpenOptions& options = {});

/// name as an SQL identifier: in double quotes, each '"' doubled (the same
/// in SQLite and PostgreSQL).
std::string QuoteIdent(std::string_view name);

/// "<hostname>:<pid>", the default lock owner.
std::string DefaultLockOwner();
/// True when owner is DefaultLockOwner()'s "host:pid" of this host and that
/// pid is gone: the holder is provably dead.
bool OwnerGoneHere(const std::string& owner);

}  // namespace hoist::db

// The PostgreSQL Connection over libpq (loaded lazily, see db/libpq.h):
// bound parameters with PQsendQueryParams (never interpolated), queries
// that Ctrl-C and step timeouts can cancel, session lock_timeout and
// statement_timeout, schema from the catalogs, amcheck-based integrity and
// advisory locks polled on a dedicated session.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "db/connection.h"

namespace hoist::db {

class PgSession;

class PgConnection : public Connection {
 public:
  /// See Open(). Throws Error{"db","auth_failed"|"connect_failed"|"unavailable",...}.
  PgConnection(DbUrl url, const OpenOptions& options);
  ~PgConnection() override;

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
  bool closed() const override;

  /// For hoist.backup: the full libpq conninfo, password included. Never
  /// log it; pass it to client tools through ClientEnv() instead of argv.
  const std::string& conninfo() const { return url_.conninfo; }
  /// PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, ... for
  /// pg_dump/pg_restore/psql (argv is visible to every user in ps).
  std::map<std::string, std::string> ClientEnv() const;
  /// The server's version number, e.g. 150004 for 15.4.
  int server_version() const;
  /// "database \"app\" on db1:5432" for messages.
  std::string Describe() const;

 protected:
  void ExecControl(const std::string& sql) override;

 private:
  std::unique_ptr<PgSession> session_;
  OpenOptions options_;
  Timeouts timeouts_;
  std::set<std::string> held_locks_;
};

}  // namespace hoist::db

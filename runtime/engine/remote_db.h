// A SQLite database file on another host: db::Connection whose every call
// runs in that host's agent (engine/agent_server), on one sqlite connection
// the agent keeps per handle, so a transaction's BEGIN ... COMMIT and a
// lock's lease live where the file is. Both sides of the "db.*" agent
// methods are here: RemoteDbConnection (the caller) and AgentDbHandles
// (the agent's table of open handles).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/connection.h"
#include "engine/remote_world.h"
#include "net/agent_protocol.h"

namespace hoist::engine {

/// A db::Value as JSON, exactly: null, true/false, an integer as a JSON
/// integer, a float as {"f": x} ({"f": "inf" | "-inf" | "nan"} when not
/// finite), text as {"t": blob} and a blob as {"b": blob}, their bytes in
/// m's blobs (so any byte, NUL or invalid UTF-8, travels as it is).
nlohmann::json DbValueJson(const db::Value& v, net::agent::Message& m);
/// The inverse; Error{"agent","protocol"} for anything else.
db::Value DbValueFrom(const nlohmann::json& j, const net::agent::Message& m);

/// The URL of db.open{host = host}: a SQLite file at an absolute path on
/// that host. Throws Error{"db","unsupported"} for a PostgreSQL URL (it is
/// reached over the network from where hoist runs) and Error{"db","invalid"}
/// for a relative path or :memory:, each naming the host; ParseUrl's errors.
db::DbUrl HostDbUrl(const std::string& url, const std::string& host);

class RemoteDbConnection : public db::Connection {
 public:
  /// Opens url (see HostDbUrl) on agent's host with options (create,
  /// readonly, busy_timeout, statement_timeout, journal_mode; cwd unused).
  /// agent must outlive the connection. Throws the agent's db errors
  /// ("db: host web1: no database file at ..."), HostDbUrl's.
  static std::unique_ptr<RemoteDbConnection> Open(AgentConnection& agent, const std::string& url,
                                                  const db::OpenOptions& options = {});
  /// Closes the handle on the agent (errors ignored: the agent may be gone).
  ~RemoteDbConnection() override;

  int64_t Exec(std::string_view sql, const std::vector<db::Value>& params = {}) override;
  db::Result Query(std::string_view sql, const std::vector<db::Value>& params = {}) override;
  std::vector<std::string> Tables() override;
  std::vector<db::ColumnInfo> Columns(const std::string& table) override;
  db::Schema ReadSchema() override;
  db::IntegrityReport Integrity(bool quick) override;
  /// The lease is taken and renewed by the agent ("db.lock" returns once it
  /// holds it); fn runs here; "db.unlock" releases it however fn ends and
  /// reports lock_lost. Errors as SqliteConnection::Lock's, with the host.
  void Lock(const std::string& name, const db::LockOptions& options, const std::function<void()>& fn) override;
  db::Timeouts timeouts() const override;
  void SetTimeouts(const db::Timeouts& t) override;
  void Close() override;
  bool closed() const override;

  /// SqliteConnection::JournalMode / SetJournalMode, run on the host.
  std::string JournalMode();
  std::string SetJournalMode(const std::string& mode);
  /// A backup of the file into dir on the host (the agent's "BackupSqlite";
  /// options as RemoteWorld::BackupSqlite's).
  nlohmann::json Backup(const std::string& dir, const nlohmann::json& options = {});
  /// Restores the backup file (on the host) into the file there (the agent's
  /// "RestoreSqlite": db::backup::RestoreSqlite, verify and safety backup
  /// first). options: safety_backup, safety_dir, run_id. RestoreResult's JSON.
  nlohmann::json Restore(const std::string& file, const nlohmann::json& options = {});

  /// The host the file is on (hoist.lua's name).
  const std::string& host() const { return agent_.host(); }

 protected:
  void ExecControl(const std::string& sql) override;
  std::string BeginSql() const override { return "BEGIN IMMEDIATE"; }

 private:
  RemoteDbConnection(AgentConnection& agent, db::DbUrl url, int64_t handle, db::Timeouts t);
  /// One call on this handle; gives run:each's turn up while it waits.
  nlohmann::json Call(const std::string& method, nlohmann::json args, net::agent::Message& req,
                      net::agent::Message* resp);
  nlohmann::json Call(const std::string& method, nlohmann::json args);
  void CheckOpenHere() const;

  AgentConnection& agent_;
  int64_t handle_;
  mutable std::mutex mu_;  // closed_ and timeouts_ (run:each threads may share a connection)
  bool closed_ = false;
  db::Timeouts timeouts_;
};

/// The agent's side: the connections one conversation opened ("db.open"
/// answers a handle, later calls name it). Destroying the table (the
/// conversation ended) releases every lock still held and closes every
/// connection.
class AgentDbHandles {
 public:
  explicit AgentDbHandles(std::string host);
  ~AgentDbHandles();
  AgentDbHandles(const AgentDbHandles&) = delete;
  AgentDbHandles& operator=(const AgentDbHandles&) = delete;

  /// The methods Call serves: db.open, db.exec, db.query, db.control,
  /// db.tables, db.columns, db.schema, db.integrity, db.timeouts,
  /// db.journal_mode, db.lock, db.unlock, db.close.
  static const std::vector<std::string>& Methods();
  /// Serves one call. Errors are the db's (area and code kept);
  /// Error{"db","closed"} for a handle that is not open.
  nlohmann::json Call(const std::string& method, const nlohmann::json& args, const net::agent::Message& req,
                      net::agent::Message& resp);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hoist::engine

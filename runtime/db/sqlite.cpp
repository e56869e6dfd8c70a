#include "db/sqlite.h"

#include "core/error.h"
#include "sys/fs.h"

namespace hoist::db {
namespace {

[[noreturn]] void Fail(sqlite3* db, const std::string& what) {
  int code = sqlite3_errcode(db);
  std::string c = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? "busy"
                  : (code == SQLITE_CONSTRAINT)                   ? "constraint"
                  : (code == SQLITE_NOTADB)                       ? "not_a_database"
                                                                  : "sql_error";
  throw Error("db", c, what + sqlite3_errmsg(db));
}

}  // namespace

Stmt::Stmt(sqlite3* db, std::string_view sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) != SQLITE_OK) {
    Fail(db, "");
  }
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Stmt& Stmt::Bind(int i, std::string_view v) {
  if (sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) != SQLITE_OK) Fail(db_, "");
  return *this;
}

Stmt& Stmt::Bind(int i, int64_t v) {
  if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) Fail(db_, "");
  return *this;
}

Stmt& Stmt::Bind(int i, double v) {
  if (sqlite3_bind_double(stmt_, i, v) != SQLITE_OK) Fail(db_, "");
  return *this;
}

Stmt& Stmt::BindNull(int i) {
  if (sqlite3_bind_null(stmt_, i) != SQLITE_OK) Fail(db_, "");
  return *this;
}

bool Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3_reset(stmt_);
  Fail(db_, "");
}

void Stmt::Run() {
  while (Step()) {
  }
  Reset();
}

void Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Stmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
double Stmt::Double(int col) const { return sqlite3_column_double(stmt_, col); }
std::string Stmt::Text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
}

Sqlite::Sqlite(const std::string& path, int flags, int busy_timeout_ms) : path_(path) {
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error("db", "open_failed", "cannot open " + path + ": " + msg);
  }
  // hoist's own reads of this file (a backup, fs.read) go through one kept
  // descriptor: closing any other would drop this connection's locks.
  if (const char* file = sqlite3_db_filename(db_, "main"); file && *file) sys::KeptFd::Open(file);
  sqlite3_busy_timeout(db_, busy_timeout_ms);
  sqlite3_extended_result_codes(db_, 0);
}

Sqlite::~Sqlite() { sqlite3_close_v2(db_); }

void Sqlite::Exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    int code = sqlite3_errcode(db_);
    throw Error("db", (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? "busy"
                      : code == SQLITE_NOTADB                        ? "not_a_database"
                                                                     : "sql_error",
                msg);
  }
}

Transaction::Transaction(Sqlite& db, bool immediate) : db_(db) {
  db_.Exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN");
}

Transaction::~Transaction() {
  if (!done_) sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::Commit() {
  db_.Exec("COMMIT");
  done_ = true;
}

}  // namespace hoist::db

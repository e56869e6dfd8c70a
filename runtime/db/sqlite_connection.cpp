#include "db/sqlite_connection.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "db/detail.h"
#include "db/sqlite.h"
#include "sys/clock.h"
#include "sys/fs.h"

namespace hoist::db {

namespace {

using detail::FirstLine;
using detail::PositionSuffix;
using detail::Seconds;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

struct StmtFree {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFree>;

// Arms statement_timeout for one call.
class StatementClock {
 public:
  StatementClock(int64_t& deadline, bool& timed_out, double timeout) : deadline_(deadline) {
    timed_out = false;
    deadline_ = timeout > 0 ? NowNs() + static_cast<int64_t>(timeout * 1e9) : 0;
  }
  ~StatementClock() { deadline_ = 0; }
  StatementClock(const StatementClock&) = delete;
  StatementClock& operator=(const StatementClock&) = delete;

 private:
  int64_t& deadline_;
};

Value ColumnValue(sqlite3_stmt* stmt, int col) {
  switch (sqlite3_column_type(stmt, col)) {
    case SQLITE_INTEGER:
      return static_cast<int64_t>(sqlite3_column_int64(stmt, col));
    case SQLITE_FLOAT:
      return sqlite3_column_double(stmt, col);
    case SQLITE_TEXT: {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
      return std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(stmt, col)));
    }
    case SQLITE_BLOB: {
      const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, col));
      return Blob{std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(stmt, col)))};
    }
    default:
      return Null{};
  }
}

std::string Text(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  return "";
}

int64_t Int(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  return 0;
}

std::string JoinNames(const std::vector<std::string>& v, size_t max) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < max; ++i) out += (i ? ", " : "") + v[i];
  if (v.size() > max) out += fmt::format(", … ({} more)", v.size() - max);
  return out.empty() ? "none" : out;
}

// Splits the top-level column list of a normalized CREATE INDEX statement:
// "create index i on t(lower(a),b desc)where x>0" -> {"lower(a)", "b desc"}, "x>0".
void ParseIndexSql(const std::string& sql, std::vector<std::string>* terms, std::string* where) {
  size_t on = sql.find(" on ");
  if (on == std::string::npos) return;
  size_t i = on + 4;
  char quote = 0;
  for (; i < sql.size(); ++i) {
    char c = sql[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'' || c == '`') {
      quote = c;
    } else if (c == '[') {
      quote = ']';
    } else if (c == '(') {
      break;
    }
  }
  int depth = 0;
  std::string cur;
  quote = 0;
  for (; i < sql.size(); ++i) {
    char c = sql[i];
    if (quote) {
      if (c == quote) quote = 0;
      cur += c;
      continue;
    }
    if (c == '"' || c == '\'' || c == '`') quote = c;
    if (c == '[') quote = ']';
    if (c == '(') {
      if (depth++ == 0) continue;
    } else if (c == ')') {
      if (--depth == 0) {
        terms->push_back(cur);
        ++i;
        break;
      }
    } else if (c == ',' && depth == 1) {
      terms->push_back(cur);
      cur.clear();
      continue;
    }
    cur += c;
  }
  std::string rest = i < sql.size() ? sql.substr(i) : "";
  while (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
  if (rest.rfind("where", 0) == 0) {
    rest.erase(0, 5);
    while (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
    *where = rest;
  }
}

// The first non-blank byte at or after pos (where a next statement starts).
size_t NextToken(std::string_view sql, size_t pos) {
  while (pos < sql.size() && std::isspace(static_cast<unsigned char>(sql[pos]))) ++pos;
  return pos;
}

std::string RandomToken() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}{:08x}", rd(), rd(), rd());
}

// Renews a lease every ttl/3 on the lock's own handle until stopped.
class Heartbeat {
 public:
  Heartbeat(Sqlite& db, std::string name, std::string token, double ttl)
      : db_(db), name_(std::move(name)), token_(std::move(token)), ttl_(ttl) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Heartbeat() { Stop(); }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool lost() const { return lost_; }
  const std::string& taken_by() const { return taken_by_; }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    auto period = std::chrono::duration<double>(ttl_ / 3);
    while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
      try {
        auto st = db_.Prepare("UPDATE hoist_locks SET expires_at = ?1 WHERE name = ?2 AND token = ?3");
        st.Bind(1, sys::NowEpoch() + ttl_).Bind(2, name_).Bind(3, token_).Run();
        if (db_.Changes() == 0) {
          auto q = db_.Prepare("SELECT owner FROM hoist_locks WHERE name = ?1");
          q.Bind(1, name_);
          if (q.Step()) taken_by_ = q.Text(0);
          lost_ = true;
          return;
        }
      } catch (const std::exception&) {
        // Busy for a moment: the lease has ttl*2/3 left, the next tick retries.
      }
    }
  }

  Sqlite& db_;
  std::string name_, token_;
  double ttl_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> lost_{false};
  std::string taken_by_;
  std::thread thread_;
};

constexpr const char* kLockTable =
    "CREATE TABLE IF NOT EXISTS hoist_locks ("
    "name TEXT PRIMARY KEY, owner TEXT NOT NULL, token TEXT NOT NULL, "
    "acquired_at REAL NOT NULL, expires_at REAL NOT NULL)";

}  // namespace

int SqliteProgress(void* p) {
  auto* self = static_cast<SqliteConnection*>(p);
  if (self->statement_deadline_ns_ != 0 && NowNs() >= self->statement_deadline_ns_) {
    self->statement_timed_out_ = true;
    return 1;
  }
  return StopReason().empty() ? 0 : 1;
}

int SqliteBusy(void* p, int count) {
  static const int kDelaysMs[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100};
  auto* self = static_cast<SqliteConnection*>(p);
  if (count == 0) self->busy_started_ns_ = NowNs();
  if (!StopReason().empty()) return 0;
  double elapsed = static_cast<double>(NowNs() - self->busy_started_ns_) / 1e9;
  double remaining = self->timeouts_.lock_timeout - elapsed;
  if (remaining <= 0) return 0;
  int delay = kDelaysMs[std::min<size_t>(static_cast<size_t>(count), std::size(kDelaysMs) - 1)];
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(std::min<double>(delay, remaining * 1000)));
  return 1;
}

SqliteConnection::SqliteConnection(DbUrl url, const OpenOptions& options) : Connection(std::move(url)) {
  readonly_ = options.readonly || url_.mode == "ro";
  const bool create = !readonly_ && (options.create || url_.mode == "rwc");
  const std::string& path = url_.path;
  if (!url_.memory()) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      int err = errno;
      if (err != ENOENT) throw Error("db", "open_failed", "cannot open " + path + ": " + std::strerror(err));
      if (!create) {
        throw Error("db", "not_found",
                    "no database file at " + path +
                        " (check the path, or open it with {create = true} to create a new database)");
      }
      std::string dir = std::filesystem::path(path).parent_path().string();
      if (!dir.empty() && ::stat(dir.c_str(), &st) != 0) {
        throw Error("db", "not_found", "cannot create " + path + ": directory " + dir + " does not exist");
      }
    } else if (S_ISDIR(st.st_mode)) {
      throw Error("db", "open_failed", "cannot open " + path + ": it is a directory, not a database file");
    }
  }
  int flags = (readonly_ ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0)) |
              SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw Error("db", "open_failed", "cannot open " + path + ": " + msg);
  }
  // hoist's own reads of this file (a backup, fs.read) go through one kept
  // descriptor: closing any other would drop this connection's locks.
  if (const char* file = sqlite3_db_filename(db_, "main"); file && *file) sys::KeptFd::Open(file);
  timeouts_.lock_timeout = options.busy_timeout;
  timeouts_.statement_timeout = options.statement_timeout;
  sqlite3_busy_handler(db_, SqliteBusy, this);
  sqlite3_progress_handler(db_, 1000, SqliteProgress, this);
  try {
    ExecControl("PRAGMA foreign_keys = ON");
    // Reads the header: a file that is not a database fails here, not later.
    Query("SELECT count(*) FROM sqlite_master");
    if (!options.journal_mode.empty()) SetJournalMode(options.journal_mode);
  } catch (const Error& e) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    if (e.code() == "not_a_database" || e.code() == "corrupt") {
      throw Error("db", e.code(),
                  "cannot open " + path + ": " + e.message() +
                      " (is this the right path? a compressed or encrypted backup must be restored first)");
    }
    throw;
  }
}

SqliteConnection::~SqliteConnection() { Close(); }

void SqliteConnection::Close() {
  if (db_) sqlite3_close_v2(db_);
  db_ = nullptr;
}

sqlite3* SqliteConnection::handle() const {
  CheckOpen();
  return db_;
}

void SqliteConnection::SetTimeouts(const Timeouts& t) {
  if (t.lock_timeout < 0 || t.statement_timeout < 0) throw Error("db", "invalid", "timeouts must be >= 0 seconds");
  timeouts_ = t;
}

void SqliteConnection::Fail(std::string_view sql, int offset_base) {
  const int rc = sqlite3_errcode(db_) & 0xff;
  std::string msg = sqlite3_errmsg(db_);
  const int offset = sqlite3_error_offset(db_);
  std::string where = offset >= 0 ? PositionSuffix(sql, static_cast<size_t>(offset_base + offset)) : "";
  switch (rc) {
    case SQLITE_INTERRUPT: {
      if (statement_timed_out_) {
        throw Error("db", "timeout",
                    fmt::format("statement timeout ({}) reached: {}", Seconds(timeouts_.statement_timeout),
                                FirstLine(sql)));
      }
      std::string reason = StopReason();
      if (reason == "timeout") throw Error("db", "timeout", "step timeout reached during: " + FirstLine(sql));
      throw Error("db", "interrupted", "interrupted (Ctrl-C) during: " + FirstLine(sql));
    }
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      if (StopReason() == "interrupted") throw Error("db", "interrupted", "interrupted (Ctrl-C) while waiting for a lock");
      throw Error("db", "busy",
                  fmt::format("{}: {} (waited {} for another connection's write lock, the busy timeout; "
                              "find the long write transaction, or raise busy_timeout)",
                              url_.path, msg, Seconds(timeouts_.lock_timeout)));
    case SQLITE_CONSTRAINT:
      throw Error("db", "constraint", msg + where);
    case SQLITE_CORRUPT:
      throw Error("db", "corrupt", url_.path + ": " + msg);
    case SQLITE_NOTADB:
      throw Error("db", "not_a_database", msg);
    case SQLITE_READONLY:
      throw Error("db", "readonly", url_.path + ": " + msg + (readonly_ ? " (the connection was opened read-only)" : ""));
    default:
      break;
  }
  bool syntax = msg.find("syntax error") != std::string::npos || msg.find("incomplete input") != std::string::npos;
  throw Error("db", syntax ? "syntax" : "sql_error", msg + where);
}

void SqliteConnection::RunStatement(sqlite3_stmt* stmt, std::string_view sql, int base,
                                    const std::vector<Value>* params, Result* out) {
  const int wanted = sqlite3_bind_parameter_count(stmt);
  const size_t given = params ? params->size() : 0;
  if (static_cast<size_t>(wanted) != given) {
    throw Error("db", "invalid",
                fmt::format("the statement takes {} parameter(s) but {} value(s) were given: {}", wanted, given,
                            FirstLine(sql.substr(static_cast<size_t>(base)))));
  }
  for (size_t i = 0; i < given; ++i) {
    const Value& v = (*params)[i];
    int idx = static_cast<int>(i + 1);
    int rc = SQLITE_OK;
    if (std::holds_alternative<Null>(v)) {
      rc = sqlite3_bind_null(stmt, idx);
    } else if (const auto* b = std::get_if<bool>(&v)) {
      rc = sqlite3_bind_int64(stmt, idx, *b ? 1 : 0);
    } else if (const auto* n = std::get_if<int64_t>(&v)) {
      rc = sqlite3_bind_int64(stmt, idx, *n);
    } else if (const auto* d = std::get_if<double>(&v)) {
      rc = sqlite3_bind_double(stmt, idx, *d);
    } else if (const auto* s = std::get_if<std::string>(&v)) {
      rc = sqlite3_bind_text64(stmt, idx, s->data(), s->size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    } else {
      const auto& bytes = std::get<Blob>(v).bytes;
      // A zero-length blob bound from a pointer would read as NULL.
      rc = bytes.empty() ? sqlite3_bind_zeroblob(stmt, idx, 0)
                         : sqlite3_bind_blob64(stmt, idx, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
    }
    if (rc != SQLITE_OK) Fail(sql, base);
  }
  const int ncol = sqlite3_column_count(stmt);
  if (out) {
    out->columns.clear();
    for (int c = 0; c < ncol; ++c) out->columns.emplace_back(sqlite3_column_name(stmt, c));
  }
  while (true) {
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) Fail(sql, base);
    if (!out) continue;
    std::vector<Value> row;
    row.reserve(static_cast<size_t>(ncol));
    for (int c = 0; c < ncol; ++c) row.push_back(ColumnValue(stmt, c));
    out->rows.push_back(std::move(row));
  }
}

int64_t SqliteConnection::Exec(std::string_view sql, const std::vector<Value>& params) {
  CheckOpen();
  StatementClock clock(statement_deadline_ns_, statement_timed_out_, timeouts_.statement_timeout);
  const char* start = sql.data();
  const char* end = start + sql.size();
  const char* tail = start;
  int64_t changes = 0;
  int count = 0;
  while (tail < end) {
    sqlite3_stmt* raw = nullptr;
    const char* next = nullptr;
    int rc = sqlite3_prepare_v2(db_, tail, static_cast<int>(end - tail), &raw, &next);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) Fail(sql, static_cast<int>(tail - start));
    if (!stmt) break;  // only whitespace or comments left
    if (count == 0 && !params.empty()) {
      // Parameters bind to one statement; refuse a script before running any of it.
      sqlite3_stmt* more = nullptr;
      const char* rest = nullptr;
      int rc2 = sqlite3_prepare_v2(db_, next, static_cast<int>(end - next), &more, &rest);
      StmtPtr more_ptr(more);
      if (rc2 != SQLITE_OK || more) {
        throw Error("db", "invalid",
                    "exec with parameters runs one statement, but the SQL holds more" +
                        PositionSuffix(sql, NextToken(sql, static_cast<size_t>(next - start))) +
                        ": run each statement with its own exec");
      }
    }
    ++count;
    int64_t before = sqlite3_total_changes64(db_);
    RunStatement(stmt.get(), sql, static_cast<int>(tail - start), count == 1 ? &params : nullptr, nullptr);
    if (sqlite3_total_changes64(db_) != before) changes += sqlite3_changes64(db_);
    tail = next;
  }
  return changes;
}

Result SqliteConnection::Query(std::string_view sql, const std::vector<Value>& params) {
  CheckOpen();
  StatementClock clock(statement_deadline_ns_, statement_timed_out_, timeouts_.statement_timeout);
  sqlite3_stmt* raw = nullptr;
  const char* next = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, &next);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) Fail(sql, 0);
  if (!stmt) throw Error("db", "invalid", "query: the SQL holds no statement");
  const char* end = sql.data() + sql.size();
  sqlite3_stmt* more = nullptr;
  int rc2 = sqlite3_prepare_v2(db_, next, static_cast<int>(end - next), &more, nullptr);
  StmtPtr more_ptr(more);
  if (rc2 != SQLITE_OK || more) {
    throw Error("db", "invalid",
                "query runs one statement, but the SQL holds more" +
                    PositionSuffix(sql, NextToken(sql, static_cast<size_t>(next - sql.data()))) +
                    ": use exec for a script");
  }
  Result r;
  RunStatement(stmt.get(), sql, 0, &params, &r);
  return r;
}

void SqliteConnection::ExecControl(const std::string& sql) { Exec(sql); }

std::string SqliteConnection::JournalMode() {
  auto r = Query("PRAGMA journal_mode");
  return r.rows.empty() ? "" : Text(r.rows[0][0]);
}

std::string SqliteConnection::SetJournalMode(const std::string& mode) {
  std::string m;
  for (char c : mode) m += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* kModes[] = {"delete", "truncate", "persist", "memory", "wal", "off"};
  if (std::find(std::begin(kModes), std::end(kModes), m) == std::end(kModes)) {
    throw Error("db", "invalid",
                "unknown journal_mode '" + mode + "' (expected one of: delete, truncate, persist, memory, wal, off)");
  }
  auto r = Query("PRAGMA journal_mode = " + m);
  std::string now = r.rows.empty() ? "" : Text(r.rows[0][0]);
  if (now != m) {
    std::string why = url_.memory() ? "an in-memory database keeps journal_mode=memory"
                                    : "another connection may hold the database open, or a transaction is active";
    throw Error("db", "failed",
                fmt::format("cannot set journal_mode={} on {}: SQLite kept journal_mode={} ({})", m, url_.redacted,
                            now, why));
  }
  return now;
}

std::vector<std::string> SqliteConnection::Tables() {
  auto r = Query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                 "ORDER BY name");
  std::vector<std::string> out;
  for (const auto& row : r.rows) out.push_back(Text(row[0]));
  return out;
}

std::vector<ColumnInfo> SqliteConnection::Columns(const std::string& table) {
  // hidden: 0 normal, 1 hidden column of a virtual table, 2/3 generated.
  auto r = Query("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo(?1) WHERE hidden != 1",
                 {table});
  if (r.rows.empty()) {
    throw Error("db", "not_found",
                fmt::format("no table \"{}\" in {} (tables: {})", table, url_.redacted, JoinNames(Tables(), 10)));
  }
  std::vector<ColumnInfo> out;
  for (const auto& row : r.rows) {
    ColumnInfo c;
    c.name = Text(row[0]);
    c.type = NormalizeSql(Text(row[1]));
    c.not_null = Int(row[2]) != 0;
    if (!std::holds_alternative<Null>(row[3])) c.default_value = NormalizeSql(Text(row[3]));
    c.pk = static_cast<int>(Int(row[4]));
    out.push_back(std::move(c));
  }
  return out;
}

Schema SqliteConnection::ReadSchema() {
  CheckOpen();
  Schema s;
  s.engine = "sqlite";
  auto objects = Query(
      "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name");
  std::map<std::string, std::string> index_sql;
  for (const auto& row : objects.rows) {
    std::string type = Text(row[0]), name = Text(row[1]), table = Text(row[2]), sql = Text(row[3]);
    if (IsInternalTable(table)) continue;
    if (type == "view") s.views.push_back({name, NormalizeSql(sql)});
    if (type == "trigger") s.triggers.push_back({name, table, NormalizeSql(sql)});
    if (type == "index" && !sql.empty()) index_sql[name] = NormalizeSql(sql);
  }
  for (const auto& row : objects.rows) {
    if (Text(row[0]) != "table" || IsInternalTable(Text(row[1]))) continue;
    TableInfo t;
    t.name = Text(row[1]);
    t.columns = Columns(t.name);
    auto indexes = Query("SELECT name, \"unique\", origin FROM pragma_index_list(?1)", {t.name});
    for (const auto& ir : indexes.rows) {
      std::string iname = Text(ir[0]), origin = Text(ir[2]);
      if (origin == "pk") continue;
      auto cols = Query("SELECT name, cid, \"desc\", coll FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno",
                        {iname});
      std::vector<std::string> terms;
      std::string where;
      if (auto it = index_sql.find(iname); it != index_sql.end()) ParseIndexSql(it->second, &terms, &where);
      std::vector<std::string> columns;
      for (size_t k = 0; k < cols.rows.size(); ++k) {
        const auto& cr = cols.rows[k];
        if (Int(cr[1]) < 0) {  // an expression
          columns.push_back(k < terms.size() ? terms[k] : "<expression>");
          continue;
        }
        std::string term = Text(cr[0]);
        if (std::string coll = Text(cr[3]); !coll.empty() && coll != "BINARY") term += " COLLATE " + coll;
        if (Int(cr[2]) != 0) term += " DESC";
        columns.push_back(term);
      }
      if (origin == "u") {
        t.uniques.push_back({"", columns});
      } else {
        IndexInfo idx;
        idx.name = iname;
        idx.columns = std::move(columns);
        idx.unique = Int(ir[1]) != 0;
        idx.where = where;
        t.indexes.push_back(std::move(idx));
      }
    }
    auto fks = Query(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        {t.name});
    std::map<int64_t, ForeignKeyInfo> by_id;
    for (const auto& fr : fks.rows) {
      ForeignKeyInfo& f = by_id[Int(fr[0])];
      f.ref_table = Text(fr[1]);
      f.columns.push_back(Text(fr[2]));
      f.ref_columns.push_back(Text(fr[3]));  // "" = the parent's primary key
      f.on_update = Text(fr[4]);
      f.on_delete = Text(fr[5]);
    }
    for (auto& [id, f] : by_id) {
      (void)id;
      bool implicit = false;
      for (const auto& c : f.ref_columns) implicit = implicit || c.empty();
      if (implicit) {
        // REFERENCES parent without columns means the parent's primary key.
        auto pk = Query("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk", {f.ref_table});
        f.ref_columns.clear();
        for (const auto& pr : pk.rows) f.ref_columns.push_back(Text(pr[0]));
      }
      t.foreign_keys.push_back(std::move(f));
    }
    s.tables.push_back(std::move(t));
  }
  Canonicalize(s);
  return s;
}

IntegrityReport SqliteConnection::Integrity(bool quick) {
  CheckOpen();
  IntegrityReport r;
  r.engine = "sqlite";
  r.method = quick ? "quick_check" : "integrity_check";
  try {
    auto rows = Query(quick ? "PRAGMA quick_check" : "PRAGMA integrity_check");
    r.checked.push_back(quick ? "the b-tree structure and record format of every table and index (PRAGMA quick_check)"
                              : "the b-tree structure, record format and index content of every table and index, "
                                "and NOT NULL/CHECK constraints (PRAGMA integrity_check)");
    for (const auto& row : rows.rows) {
      std::string line = Text(row[0]);
      if (line != "ok") r.problems.push_back(line);
    }
    auto fks = Query("PRAGMA foreign_key_check");
    r.checked.push_back("every foreign key has its parent row (PRAGMA foreign_key_check)");
    for (const auto& row : fks.rows) {
      r.problems.push_back(fmt::format("table {} rowid {}: no parent row in {} (foreign key #{})", Text(row[0]),
                                       std::holds_alternative<Null>(row[1]) ? "?" : Text(row[1]), Text(row[2]),
                                       Int(row[3])));
    }
    r.notes.push_back("journal_mode=" + JournalMode());
  } catch (const Error& e) {
    if (e.code() != "corrupt" && e.code() != "not_a_database") throw;
    r.problems.push_back(e.message());
  }
  r.ok = r.problems.empty();
  return r;
}

void SqliteConnection::Lock(const std::string& name, const LockOptions& options, const std::function<void()>& fn) {
  CheckOpen();
  if (name.empty()) throw Error("db", "invalid", "lock name must not be empty");
  if (options.timeout < 0) throw Error("db", "invalid", "lock timeout must be >= 0 seconds");
  if (options.ttl <= 0) throw Error("db", "invalid", "lock ttl must be > 0 seconds");
  if (held_locks_.count(name)) {
    throw Error("db", "invalid",
                "lock \"" + name +
                    "\" is already held by this connection (locks are not re-entrant: take it once around the "
                    "whole procedure)");
  }
  if (readonly_) throw Error("db", "readonly", "cannot take lock \"" + name + "\": the connection is read-only");
  if (!url_.memory() && (tx_depth_ > 0 || !sqlite3_get_autocommit(db_))) {
    // Our transactions hold SQLite's write lock, which taking the lease needs.
    throw Error("db", "invalid",
                "cannot take lock \"" + name +
                    "\" inside a transaction on this SQLite connection (the transaction holds the write lock the "
                    "lease needs): take the lock first, then start the transaction inside it");
  }
  struct Held {
    std::set<std::string>& set;
    std::string name;
    ~Held() { set.erase(name); }
  };
  if (url_.memory()) {
    // No other connection can see an in-memory database: nothing to contend with.
    held_locks_.insert(name);
    Held held{held_locks_, name};
    fn();
    return;
  }
  const std::string owner = options.owner.empty() ? DefaultLockOwner() : options.owner;
  const std::string token = RandomToken();
  // A dedicated handle: taking the lease must not disturb this connection's
  // transaction, and the heartbeat renews it from another thread.
  Sqlite lockdb(url_.path, SQLITE_OPEN_READWRITE, 250);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(options.timeout));
  double poll = 0.02;
  std::string holder;
  double holder_expires = 0;
  while (true) {
    ThrowIfStopped("db");
    try {
      Transaction tx(lockdb, /*immediate=*/true);
      lockdb.Exec(kLockTable);
      auto q = lockdb.Prepare("SELECT owner, expires_at FROM hoist_locks WHERE name = ?1");
      q.Bind(1, name);
      const double now = sys::NowEpoch();
      bool free = true;
      if (q.Step()) {
        holder = q.Text(0);
        holder_expires = q.Double(1);
        free = holder_expires < now;  // an expired lease: its holder died
        if (!free && OwnerGoneHere(holder)) {
          // Provably dead (its pid is gone on this host): no need to wait out its lease.
          log::Warn(fmt::format("lock \"{}\" on {}: its holder {} is gone (killed?); taking it over", name,
                                url_.path, holder));
          free = true;
        }
      }
      if (free) {
        lockdb.Prepare("INSERT OR REPLACE INTO hoist_locks (name, owner, token, acquired_at, expires_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)")
            .Bind(1, name)
            .Bind(2, owner)
            .Bind(3, token)
            .Bind(4, now)
            .Bind(5, now + options.ttl)
            .Run();
        tx.Commit();
        break;
      }
    } catch (const Error& e) {
      if (e.code() != "busy") throw;
      holder = "a connection holding a long write transaction";
      holder_expires = 0;
    }
    if (Clock::now() >= deadline) {
      std::string until = holder_expires > 0
                              ? fmt::format(" until {} (expires in {:.0f} s; a crashed holder's lease expires by itself)",
                                            sys::IsoUtc(holder_expires), holder_expires - sys::NowEpoch())
                              : "";
      throw Error("db", "lock_held",
                  fmt::format("lock \"{}\" is held by {}{} (waited {} on {})", name, holder, until,
                              Seconds(options.timeout), url_.path));
    }
    auto left = std::chrono::duration<double>(deadline - Clock::now()).count();
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(poll, std::max(left, 0.0))));
    poll = std::min(poll * 2, 0.5);
  }

  held_locks_.insert(name);
  Held held{held_locks_, name};
  Heartbeat heartbeat(lockdb, name, token, options.ttl);
  std::exception_ptr failure;
  try {
    fn();
  } catch (...) {
    failure = std::current_exception();
  }
  heartbeat.Stop();
  try {
    lockdb.Prepare("DELETE FROM hoist_locks WHERE name = ?1 AND token = ?2").Bind(1, name).Bind(2, token).Run();
  } catch (const Error&) {
    // Could not delete the row (busy): the lease then simply expires.
    if (!failure) {
      failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  if (heartbeat.lost()) {
    throw Error("db", "lock_lost",
                fmt::format("lock \"{}\" was taken over by {} while held (its lease of {} could not be renewed): "
                            "the protected work may have overlapped with another run",
                            name, heartbeat.taken_by().empty() ? "another owner" : heartbeat.taken_by(),
                            Seconds(options.ttl)));
  }
}

}  // namespace hoist::db

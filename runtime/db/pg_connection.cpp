#include "db/pg_connection.h"

#include <poll.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "db/detail.h"
#include "db/libpq.h"

namespace hoist::db {

namespace {

using detail::FirstLine;
using detail::PositionSuffix;
using detail::Seconds;

// Type OIDs (pg_type.h is a server header).
constexpr Oid kBool = 16, kBytea = 17, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kFloat4 = 700,
              kFloat8 = 701;

struct ResultFree {
  void operator()(PGresult* r) const { Pq().PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultFree>;

void IgnoreNotice(void*, const char*) {}

bool IsCreateDatabase(std::string_view sql) {
  std::string head = Trim(std::string(sql.substr(0, 64)));
  for (auto& c : head) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return head.rfind("CREATE DATABASE", 0) == 0;
}

// libpq's connection errors: one line per host tried, each prefixed with
// 'connection to server at "h", port p failed: ' and a "FATAL:  " tag.
std::string CleanConnectError(const std::string& raw) {
  std::string out;
  size_t start = 0;
  while (start < raw.size()) {
    size_t end = raw.find('\n', start);
    std::string line = Trim(raw.substr(start, end == std::string::npos ? std::string::npos : end - start));
    start = end == std::string::npos ? raw.size() : end + 1;
    if (line.empty()) continue;
    if (line.rfind("connection to server", 0) == 0) {
      if (auto f = line.find("failed: "); f != std::string::npos) line = line.substr(f + 8);
    }
    for (const char* tag : {"FATAL:  ", "ERROR:  "}) {
      if (line.rfind(tag, 0) == 0) line = line.substr(std::strlen(tag));
    }
    if (!out.empty() && out.find(line) != std::string::npos) continue;
    out += (out.empty() ? "" : "; ") + line;
  }
  return out.empty() ? "unknown error" : out;
}

std::string OrDefault(const std::string& v, const char* env, const std::string& fallback) {
  if (!v.empty()) return v;
  if (const char* e = std::getenv(env); e && *e) return e;
  return fallback;
}

std::string DescribeUrl(const DbUrl& u) {
  std::string user = OrDefault(u.user, "PGUSER", "");
  std::string db = OrDefault(u.dbname, "PGDATABASE", user.empty() ? "(default)" : user);
  std::string host = OrDefault(u.host, "PGHOST", "the local socket");
  std::string port = OrDefault(u.port, "PGPORT", "5432");
  return fmt::format("database \"{}\" on {}:{}", db, host, port);
}

// PostgreSQL reports positions in characters, 1-based.
size_t CharToByte(std::string_view sql, long chars) {
  size_t i = 0;
  long seen = 0;
  while (i < sql.size()) {
    if ((static_cast<unsigned char>(sql[i]) & 0xC0) != 0x80) {
      if (seen == chars) return i;
      ++seen;
    }
    ++i;
  }
  return sql.size();
}

int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 0;
}

Value ParseValue(Oid type, const char* text, int len) {
  std::string_view s(text, static_cast<size_t>(len));
  switch (type) {
    case kBool:
      return s == "t";
    case kInt2:
    case kInt4:
    case kInt8:
    case kOid:
      return static_cast<int64_t>(std::strtoll(text, nullptr, 10));
    case kFloat4:
    case kFloat8:
      return std::strtod(text, nullptr);  // also "NaN", "Infinity", "-Infinity"
    case kBytea: {
      Blob b;
      if (s.substr(0, 2) == "\\x") {
        b.bytes.reserve((s.size() - 2) / 2);
        for (size_t i = 2; i + 1 < s.size(); i += 2) {
          b.bytes += static_cast<char>(HexNibble(s[i]) * 16 + HexNibble(s[i + 1]));
        }
      } else {
        b.bytes.assign(s);
      }
      return b;
    }
    default:
      return std::string(s);
  }
}

std::string FormatDouble(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return fmt::format("{:.17g}", d);
}

std::string Text(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return "";
}

std::vector<std::string> SplitUnit(const std::string& s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t sep = s.find('\x1f', start);
    out.push_back(s.substr(start, sep == std::string::npos ? std::string::npos : sep - start));
    if (sep == std::string::npos) break;
    start = sep + 1;
  }
  return out;
}

std::string FkAction(const std::string& c) {
  if (c == "r") return "RESTRICT";
  if (c == "c") return "CASCADE";
  if (c == "n") return "SET NULL";
  if (c == "d") return "SET DEFAULT";
  return "NO ACTION";
}

std::string MsText(double seconds) { return std::to_string(static_cast<int64_t>(std::llround(seconds * 1000))); }

// User tables: not in the system schemas, not owned by an extension.
constexpr const char* kTabs = R"sql(
WITH tabs AS (
  SELECT c.oid,
         CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                    AND d.objid = c.oid AND d.deptype = 'e'))
)sql";

constexpr const char* kColumnsSql = R"sql(
SELECT t.name, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       COALESCE((SELECT array_position(con.conkey, a.attnum) FROM pg_constraint con
                 WHERE con.conrelid = a.attrelid AND con.contype = 'p'), 0)
FROM tabs t JOIN pg_attribute a ON a.attrelid = t.oid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
)sql";

}  // namespace

// One libpq session: connect, run with cancellation, translate errors.
class PgSession {
 public:
  PgSession(const DbUrl& url, const std::string& conninfo) : url_(url) {
    const LibPq& pq = Pq();
    conn_ = pq.PQconnectdb(conninfo.c_str());
    if (!conn_) throw Error("db", "connect_failed", "cannot connect to " + DescribeUrl(url) + ": out of memory");
    if (pq.PQstatus(conn_) != CONNECTION_OK) {
      std::string why = CleanConnectError(pq.PQerrorMessage(conn_));
      pq.PQfinish(conn_);
      conn_ = nullptr;
      std::string code = "connect_failed";
      std::string hint;
      if (why.find("password authentication failed") != std::string::npos ||
          why.find("no password supplied") != std::string::npos ||
          why.find("SASL authentication failed") != std::string::npos) {
        code = "auth_failed";
        hint = " (check the password in the database URL or its secret)";
      } else if (why.find("Connection refused") != std::string::npos ||
                 why.find("No such file or directory") != std::string::npos) {
        hint = " (is PostgreSQL running and listening there?)";
      } else if (why.find("timeout expired") != std::string::npos) {
        code = "timeout";
        hint = " (raise connect_timeout if the server is just slow to answer)";
      }
      std::string user = OrDefault(url.user, "PGUSER", "");
      throw Error("db", code,
                  Mask("cannot connect to " + DescribeUrl(url) + (user.empty() ? "" : " as user \"" + user + "\"") +
                       ": " + why + hint));
    }
    pq.PQsetNoticeProcessor(conn_, IgnoreNotice, nullptr);
  }
  ~PgSession() { Close(); }
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;

  void Close() {
    if (conn_) Pq().PQfinish(conn_);
    conn_ = nullptr;
  }
  bool open() const { return conn_ != nullptr; }
  bool healthy() const { return conn_ && Pq().PQstatus(conn_) == CONNECTION_OK; }
  PGconn* get() const { return conn_; }

  /// Runs sql; script allows several statements (simple protocol, no
  /// parameters). Returns every result; throws on the first error.
  std::vector<ResultPtr> Run(std::string_view sql, const std::vector<Value>& params, bool script,
                             const Timeouts& timeouts) {
    const LibPq& pq = Pq();
    std::string text(sql);
    int sent = 0;
    if (script && params.empty()) {
      sent = pq.PQsendQuery(conn_, text.c_str());
    } else {
      const size_t n = params.size();
      std::vector<Oid> types(n, 0);
      std::vector<std::string> storage(n);
      std::vector<const char*> values(n, nullptr);
      std::vector<int> lengths(n, 0), formats(n, 0);
      for (size_t i = 0; i < n; ++i) {
        const Value& v = params[i];
        if (std::holds_alternative<Null>(v)) continue;
        if (const auto* b = std::get_if<bool>(&v)) {
          types[i] = kBool;
          storage[i] = *b ? "t" : "f";
        } else if (const auto* x = std::get_if<int64_t>(&v)) {
          types[i] = kInt8;
          storage[i] = std::to_string(*x);
        } else if (const auto* d = std::get_if<double>(&v)) {
          types[i] = kFloat8;
          storage[i] = FormatDouble(*d);
        } else if (const auto* s = std::get_if<std::string>(&v)) {
          storage[i] = *s;  // type left to the server: text goes into any column
        } else {
          types[i] = kBytea;
          storage[i] = std::get<Blob>(v).bytes;
          formats[i] = 1;
        }
        values[i] = storage[i].data();
        lengths[i] = static_cast<int>(storage[i].size());
      }
      sent = pq.PQsendQueryParams(conn_, text.c_str(), static_cast<int>(n), types.data(), values.data(),
                                  lengths.data(), formats.data(), 0);
    }
    if (!sent) ThrowConnectionError();
    std::string stop = Wait();
    std::vector<ResultPtr> results;
    while (PGresult* r = pq.PQgetResult(conn_)) results.emplace_back(r);
    for (const auto& r : results) {
      auto st = pq.PQresultStatus(r.get());
      if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
        ThrowResultError(r.get(), sql, stop, timeouts, script);
      }
    }
    if (results.empty() && !healthy()) ThrowConnectionError();
    return results;
  }

 private:
  // Waits for the answer, cancelling the query on Ctrl-C or a step timeout.
  // Returns the reason it cancelled ("" when it did not).
  std::string Wait() {
    const LibPq& pq = Pq();
    std::string cancelled;
    while (true) {
      if (!pq.PQconsumeInput(conn_)) ThrowConnectionError();
      if (!pq.PQisBusy(conn_)) return cancelled;
      pollfd pfd{pq.PQsocket(conn_), POLLIN, 0};
      ::poll(&pfd, 1, 100);
      if (cancelled.empty()) {
        std::string reason = StopReason();
        if (!reason.empty()) {
          if (PGcancel* c = pq.PQgetCancel(conn_)) {
            char err[256];
            pq.PQcancel(c, err, sizeof err);
            pq.PQfreeCancel(c);
          }
          cancelled = reason;
        }
      }
    }
  }

  [[noreturn]] void ThrowConnectionError() {
    std::string why = conn_ ? CleanConnectError(Pq().PQerrorMessage(conn_)) : "the connection is closed";
    throw Error("db", "connection", Mask("lost the connection to " + DescribeUrl(url_) + ": " + why));
  }

  [[noreturn]] void ThrowResultError(const PGresult* r, std::string_view sql, const std::string& stop,
                                     const Timeouts& timeouts, bool script) {
    const LibPq& pq = Pq();
    auto field = [&](int code) {
      const char* v = pq.PQresultErrorField(r, code);
      return std::string(v ? v : "");
    };
    std::string primary = field(PG_DIAG_MESSAGE_PRIMARY);
    if (primary.empty()) primary = Trim(pq.PQresultErrorMessage(r));
    const std::string state = field(PG_DIAG_SQLSTATE);
    const std::string detail = field(PG_DIAG_MESSAGE_DETAIL);
    const std::string hint = field(PG_DIAG_MESSAGE_HINT);
    const std::string position = field(PG_DIAG_STATEMENT_POSITION);
    if (state == "57014" && !stop.empty()) {
      if (stop == "interrupted") throw Error("db", "interrupted", "interrupted (Ctrl-C) during: " + FirstLine(sql));
      throw Error("db", "timeout", "step timeout reached during: " + FirstLine(sql));
    }
    if (state == "42601" && primary.find("cannot insert multiple commands") != std::string::npos) {
      throw Error("db", "invalid",
                  script ? "exec with parameters runs one statement, but the SQL holds more: run each statement "
                           "with its own exec"
                         : "query runs one statement, but the SQL holds more: use exec for a script");
    }
    std::string code = "sql_error";
    std::string extra;
    if (state.rfind("23", 0) == 0) {
      code = "constraint";
    } else if (state == "42601") {
      code = "syntax";
    } else if (state == "55P03") {
      code = "busy";
      extra = fmt::format(" (another session holds a conflicting lock; lock_timeout is {}: find the holder in "
                          "pg_stat_activity, or raise lock_timeout with conn:timeouts{{...}})",
                          Seconds(timeouts.lock_timeout));
    } else if (state == "57014") {
      code = "timeout";
      if (primary.find("statement timeout") != std::string::npos) {
        extra = fmt::format(" (statement_timeout is {})", Seconds(timeouts.statement_timeout));
      }
    } else if (state == "40001" || state == "40P01") {
      code = "conflict";
    } else if (state.rfind("08", 0) == 0 || state == "57P01") {
      code = "connection";
    } else if (state == "XX001" || state == "XX002") {
      code = "corrupt";
    } else if (state == "25006") {
      code = "readonly";
    } else if (state == "42501" && IsCreateDatabase(sql)) {
      // A least-privilege app role meets this first in a deploy's lint rehearsal.
      const char* role = pq.PQuser(conn_);
      extra = fmt::format(" (role {0} lacks CREATEDB, which hoist needs for the scratch databases it rehearses "
                          "migrations in before applying them, as every deploy does, and for sandbox copies and "
                          "restore drills; as a superuser: ALTER ROLE {0} CREATEDB)",
                          role && *role ? role : "?");
    }
    std::string where;
    if (!position.empty()) where = PositionSuffix(sql, CharToByte(sql, std::atol(position.c_str()) - 1));
    std::string msg = primary + where + extra;
    if (!state.empty()) msg += " [SQLSTATE " + state + "]";
    if (!detail.empty()) msg += ". DETAIL: " + detail;
    if (!hint.empty()) msg += ". HINT: " + hint;
    throw Error("db", code, Mask(msg));
  }

  const DbUrl& url_;
  PGconn* conn_ = nullptr;
};

namespace {

Result ToResult(const PGresult* r) {
  const LibPq& pq = Pq();
  Result out;
  const int nf = pq.PQnfields(r);
  const int nt = pq.PQntuples(r);
  std::vector<Oid> types(static_cast<size_t>(nf));
  for (int c = 0; c < nf; ++c) {
    out.columns.emplace_back(pq.PQfname(r, c));
    types[static_cast<size_t>(c)] = pq.PQftype(r, c);
  }
  out.rows.reserve(static_cast<size_t>(nt));
  for (int i = 0; i < nt; ++i) {
    std::vector<Value> row;
    row.reserve(static_cast<size_t>(nf));
    for (int c = 0; c < nf; ++c) {
      if (pq.PQgetisnull(r, i, c)) {
        row.emplace_back(Null{});
      } else {
        row.push_back(ParseValue(types[static_cast<size_t>(c)], pq.PQgetvalue(r, i, c), pq.PQgetlength(r, i, c)));
      }
    }
    out.rows.push_back(std::move(row));
  }
  return out;
}

bool HasKey(const std::string& conninfo, const std::string& key) {
  for (const auto& [k, v] : ParseConninfo(conninfo)) {
    if (k == key) return true;
  }
  return false;
}

}  // namespace

PgConnection::PgConnection(DbUrl url, const OpenOptions& options) : Connection(std::move(url)), options_(options) {
  if (options.lock_timeout < 0 || options.statement_timeout < 0) {
    throw Error("db", "invalid", "timeouts must be >= 0 seconds");
  }
  std::string conninfo = url_.conninfo;
  if (!url_.conninfo.empty() && !HasKey(url_.conninfo, "application_name")) {
    conninfo += " application_name=" + ConninfoQuote(options.application_name);
  } else if (url_.conninfo.empty()) {
    conninfo = "application_name=" + ConninfoQuote(options.application_name);
  }
  if (!HasKey(conninfo, "connect_timeout") && options.connect_timeout > 0) {
    conninfo += " connect_timeout=" + ConninfoQuote(std::to_string(std::max<long>(2, std::lround(options.connect_timeout))));
  }
  conninfo += " client_encoding='UTF8'";
  url_.conninfo = conninfo;
  session_ = std::make_unique<PgSession>(url_, url_.conninfo);
  timeouts_.lock_timeout = options.lock_timeout;
  timeouts_.statement_timeout = options.statement_timeout;
  std::string setup =
      "SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false), "
      "set_config('bytea_output', 'hex', false)";
  if (options.readonly) setup += ", set_config('default_transaction_read_only', 'on', false)";
  session_->Run(setup, {MsText(timeouts_.lock_timeout), MsText(timeouts_.statement_timeout)}, false, timeouts_);
}

PgConnection::~PgConnection() = default;

void PgConnection::Close() {
  if (session_) session_->Close();
}

bool PgConnection::closed() const { return !session_ || !session_->open(); }

int PgConnection::server_version() const {
  CheckOpen();
  return Pq().PQserverVersion(session_->get());
}

std::string PgConnection::Describe() const { return DescribeUrl(url_); }

std::map<std::string, std::string> PgConnection::ClientEnv() const {
  static const std::map<std::string, std::string> kEnv = {
      {"host", "PGHOST"},
      {"hostaddr", "PGHOSTADDR"},
      {"port", "PGPORT"},
      {"user", "PGUSER"},
      {"password", "PGPASSWORD"},
      {"passfile", "PGPASSFILE"},
      {"dbname", "PGDATABASE"},
      {"sslmode", "PGSSLMODE"},
      {"sslcert", "PGSSLCERT"},
      {"sslkey", "PGSSLKEY"},
      {"sslrootcert", "PGSSLROOTCERT"},
      {"sslcrl", "PGSSLCRL"},
      {"connect_timeout", "PGCONNECT_TIMEOUT"},
      {"application_name", "PGAPPNAME"},
      {"options", "PGOPTIONS"},
      {"service", "PGSERVICE"},
      {"target_session_attrs", "PGTARGETSESSIONATTRS"},
      {"gssencmode", "PGGSSENCMODE"},
      {"channel_binding", "PGCHANNELBINDING"},
      {"client_encoding", "PGCLIENTENCODING"},
  };
  std::map<std::string, std::string> env;
  for (const auto& [k, v] : ParseConninfo(url_.conninfo)) {
    if (auto it = kEnv.find(k); it != kEnv.end()) env[it->second] = v;
  }
  return env;
}

void PgConnection::SetTimeouts(const Timeouts& t) {
  CheckOpen();
  if (t.lock_timeout < 0 || t.statement_timeout < 0) throw Error("db", "invalid", "timeouts must be >= 0 seconds");
  session_->Run("SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)",
                {MsText(t.lock_timeout), MsText(t.statement_timeout)}, false, timeouts_);
  timeouts_ = t;
}

int64_t PgConnection::Exec(std::string_view sql, const std::vector<Value>& params) {
  CheckOpen();
  auto results = session_->Run(sql, params, true, timeouts_);
  int64_t changes = 0;
  for (const auto& r : results) {
    const char* n = Pq().PQcmdTuples(r.get());
    if (n && *n) changes += std::atoll(n);
  }
  return changes;
}

Result PgConnection::Query(std::string_view sql, const std::vector<Value>& params) {
  CheckOpen();
  auto results = session_->Run(sql, params, false, timeouts_);
  if (results.empty()) return {};
  return ToResult(results.back().get());
}

void PgConnection::ExecControl(const std::string& sql) {
  CheckOpen();
  session_->Run(sql, {}, false, timeouts_);
}

std::vector<std::string> PgConnection::Tables() {
  auto r = Query(std::string(kTabs) + "SELECT name FROM tabs ORDER BY name");
  std::vector<std::string> out;
  for (const auto& row : r.rows) out.push_back(Text(row[0]));
  return out;
}

namespace {

ColumnInfo ColumnFromRow(const std::vector<Value>& row) {
  ColumnInfo c;
  c.name = Text(row[1]);
  c.type = NormalizeSql(Text(row[2]));
  c.not_null = std::get_if<bool>(&row[3]) && std::get<bool>(row[3]);
  std::string identity = Text(row[5]), generated = Text(row[6]);
  if (!std::holds_alternative<Null>(row[4])) {
    std::string expr = NormalizeSql(Text(row[4]));
    c.default_value = generated == "s" ? "generated always as (" + expr + ") stored" : expr;
  }
  if (identity == "a") c.default_value = "generated always as identity";
  if (identity == "d") c.default_value = "generated by default as identity";
  c.pk = static_cast<int>(std::get_if<int64_t>(&row[7]) ? std::get<int64_t>(row[7]) : 0);
  return c;
}

}  // namespace

std::vector<ColumnInfo> PgConnection::Columns(const std::string& table) {
  auto r = Query(std::string(kTabs) + kColumnsSql + " AND t.name = $1 ORDER BY a.attnum", {table});
  if (r.rows.empty()) {
    auto tables = Tables();
    std::string list;
    for (size_t i = 0; i < tables.size() && i < 10; ++i) list += (i ? ", " : "") + tables[i];
    if (tables.size() > 10) list += fmt::format(", … ({} more)", tables.size() - 10);
    throw Error("db", "not_found",
                fmt::format("no table \"{}\" in {} (tables: {})", table, Describe(), list.empty() ? "none" : list));
  }
  std::vector<ColumnInfo> out;
  for (const auto& row : r.rows) out.push_back(ColumnFromRow(row));
  return out;
}

Schema PgConnection::ReadSchema() {
  CheckOpen();
  Schema s;
  s.engine = "postgres";
  std::map<std::string, TableInfo> tables;
  for (const auto& name : Tables()) tables[name].name = name;

  auto cols = Query(std::string(kTabs) + kColumnsSql + " ORDER BY t.name, a.attnum");
  for (const auto& row : cols.rows) {
    std::string t = Text(row[0]);
    if (!IsInternalTable(t)) tables[t].columns.push_back(ColumnFromRow(row));
  }

  auto cons = Query(std::string(kTabs) + R"sql(
SELECT t.name, con.conname, con.contype,
       (SELECT string_agg(a.attname, E'\x1f' ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n),
       CASE WHEN rn.nspname = 'public' THEN rc.relname ELSE rn.nspname || '.' || rc.relname END,
       (SELECT string_agg(a.attname, E'\x1f' ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n),
       con.confupdtype::text, con.confdeltype::text
FROM tabs t JOIN pg_constraint con ON con.conrelid = t.oid
LEFT JOIN pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype IN ('u', 'f')
)sql");
  for (const auto& row : cons.rows) {
    auto it = tables.find(Text(row[0]));
    if (it == tables.end()) continue;
    if (Text(row[2]) == "u") {
      it->second.uniques.push_back({Text(row[1]), SplitUnit(Text(row[3]))});
    } else {
      ForeignKeyInfo f;
      f.name = Text(row[1]);
      f.columns = SplitUnit(Text(row[3]));
      f.ref_table = Text(row[4]);
      f.ref_columns = SplitUnit(Text(row[5]));
      f.on_update = FkAction(Text(row[6]));
      f.on_delete = FkAction(Text(row[7]));
      it->second.foreign_keys.push_back(std::move(f));
    }
  }

  auto idx = Query(std::string(kTabs) + R"sql(
SELECT t.name, ic.relname, i.indisunique, am.amname,
       COALESCE(pg_get_expr(i.indpred, i.indrelid, true), ''),
       (SELECT string_agg(pg_get_indexdef(i.indexrelid, k, true), E'\x1f' ORDER BY k)
          FROM generate_series(1, i.indnkeyatts) k)
FROM tabs t JOIN pg_index i ON i.indrelid = t.oid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))
)sql");
  for (const auto& row : idx.rows) {
    auto it = tables.find(Text(row[0]));
    if (it == tables.end()) continue;
    IndexInfo i;
    i.name = Text(row[1]);
    i.unique = std::get_if<bool>(&row[2]) && std::get<bool>(row[2]);
    i.method = Text(row[3]);
    i.where = NormalizeSql(Text(row[4]));
    for (const auto& col : SplitUnit(Text(row[5]))) i.columns.push_back(col);
    it->second.indexes.push_back(std::move(i));
  }

  for (auto& [name, t] : tables) {
    if (!IsInternalTable(name)) s.tables.push_back(std::move(t));
  }

  auto views = Query(R"sql(
SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END,
       pg_get_viewdef(c.oid, true), c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
)sql");
  for (const auto& row : views.rows) {
    std::string sql = NormalizeSql(Text(row[1]));
    if (Text(row[2]) == "m") sql = "materialized: " + sql;
    s.views.push_back({Text(row[0]), sql});
  }

  auto triggers = Query(std::string(kTabs) + R"sql(
SELECT tg.tgname, t.name, pg_get_triggerdef(tg.oid, true)
FROM tabs t JOIN pg_trigger tg ON tg.tgrelid = t.oid
WHERE NOT tg.tgisinternal
)sql");
  for (const auto& row : triggers.rows) {
    if (IsInternalTable(Text(row[1]))) continue;
    s.triggers.push_back({Text(row[0]), Text(row[1]), NormalizeSql(Text(row[2]))});
  }
  Canonicalize(s);
  return s;
}

IntegrityReport PgConnection::Integrity(bool quick) {
  CheckOpen();
  IntegrityReport r;
  r.engine = "postgres";
  r.method = "catalog";

  // Always: indexes a failed CREATE INDEX CONCURRENTLY left behind.
  auto invalid = Query(R"sql(
SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text, i.indisready
FROM pg_index i WHERE NOT i.indisvalid ORDER BY 1
)sql");
  r.checked.push_back("no index is left invalid (pg_index.indisvalid)");
  for (const auto& row : invalid.rows) {
    r.problems.push_back(fmt::format(
        "index {} on {} is invalid (left by a failed CREATE INDEX CONCURRENTLY or REINDEX?): "
        "DROP INDEX CONCURRENTLY {} and create it again",
        Text(row[0]), Text(row[1]), Text(row[0])));
  }
  auto unvalidated = Query(R"sql(
SELECT con.conname, con.conrelid::regclass::text FROM pg_constraint con
WHERE NOT con.convalidated AND con.contype IN ('c', 'f') ORDER BY 2, 1
)sql");
  for (const auto& row : unvalidated.rows) {
    r.notes.push_back(fmt::format("constraint {} on {} is NOT VALID (existing rows were never checked: "
                                  "ALTER TABLE {} VALIDATE CONSTRAINT {})",
                                  Text(row[0]), Text(row[1]), Text(row[1]), Text(row[0])));
  }
  auto checksums = Query("SELECT current_setting('data_checksums')");
  if (!checksums.rows.empty()) r.notes.push_back("data_checksums=" + Text(checksums.rows[0][0]));

  // amcheck: verifies the B-tree structure of every index (and, unless
  // quick, that every heap tuple is in its indexes).
  auto ext = Query(R"sql(
SELECT (SELECT extversion FROM pg_extension WHERE extname = 'amcheck'),
       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck')
)sql");
  const bool installed = !ext.rows.empty() && !std::holds_alternative<Null>(ext.rows[0][0]);
  const bool available = !ext.rows.empty() && std::get_if<bool>(&ext.rows[0][1]) && std::get<bool>(ext.rows[0][1]);
  bool amcheck_ran = false;
  if (installed) {
    auto indexes = Query(R"sql(
SELECT c.oid::bigint, c.oid::regclass::text FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't'
ORDER BY 2
)sql");
    size_t checked = 0;
    bool denied = false;
    for (const auto& row : indexes.rows) {
      try {
        Query(quick ? "SELECT bt_index_check($1::oid)" : "SELECT bt_index_check($1::oid, true)", {row[0]});
        ++checked;
      } catch (const Error& e) {
        if (e.message().find("permission denied") != std::string::npos) {
          denied = true;
          break;
        }
        if (e.code() == "closed" || e.code() == "connection") throw;
        r.problems.push_back("index " + Text(row[1]) + ": " + e.message());
        ++checked;
      }
    }
    if (denied) {
      r.notes.push_back("amcheck is installed but this user may not run bt_index_check (GRANT EXECUTE ON FUNCTION "
                        "bt_index_check(regclass, boolean) TO ... or run as a superuser): index structure not checked");
    } else {
      amcheck_ran = true;
      r.method = "amcheck";
      r.checked.push_back(fmt::format(
          "the B-tree structure of {} indexes{} (amcheck bt_index_check)", checked,
          quick ? "" : " and that every table row is present in them (heapallindexed)"));
    }
  } else if (available) {
    r.notes.push_back("amcheck is available but not created in this database: run CREATE EXTENSION amcheck "
                      "(as a superuser) so integrity() also verifies every B-tree index");
  } else {
    r.notes.push_back("the amcheck extension is not available on this server (PostgreSQL contrib): "
                      "index structure not checked");
  }
  if (!quick) {
    // Reading every heap page finds damaged page headers and, with data
    // checksums on, checksum failures.
    auto tables = Query(std::string(kTabs) + "SELECT t.oid::regclass::text FROM tabs t ORDER BY 1");
    for (const auto& row : tables.rows) {
      try {
        Query("SELECT count(*) FROM ONLY " + Text(row[0]));
      } catch (const Error& e) {
        if (e.code() == "closed" || e.code() == "connection") throw;
        r.problems.push_back("table " + Text(row[0]) + ": " + e.message());
      }
    }
    r.checked.push_back(fmt::format("every page of {} tables is readable (full scan)", tables.rows.size()));
  }
  if (!amcheck_ran) {
    r.checked.push_back("index structure was NOT verified (amcheck unavailable)");
  }
  r.ok = r.problems.empty();
  return r;
}

void PgConnection::Lock(const std::string& name, const LockOptions& options, const std::function<void()>& fn) {
  CheckOpen();
  if (name.empty()) throw Error("db", "invalid", "lock name must not be empty");
  if (options.timeout < 0) throw Error("db", "invalid", "lock timeout must be >= 0 seconds");
  if (held_locks_.count(name)) {
    throw Error("db", "invalid",
                "lock \"" + name +
                    "\" is already held by this connection (locks are not re-entrant: take it once around the "
                    "whole procedure)");
  }
  const std::string owner = options.owner.empty() ? DefaultLockOwner() : options.owner;
  // A dedicated session: the lock must not depend on this connection's
  // transactions, and pg_try_advisory_lock is polled, never a blocking
  // pg_advisory_lock (which can deadlock behind CREATE INDEX CONCURRENTLY).
  std::string app = ("hoist lock " + name + " by " + owner).substr(0, 63);
  std::string conninfo = url_.conninfo + " application_name=" + ConninfoQuote(app);
  PgSession session(url_, conninfo);
  const Timeouts no_timeouts{0, 0};
  const std::string key = "hashtextextended($1, 0)";
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.timeout));
  double poll = 0.02;
  while (true) {
    ThrowIfStopped("db");
    auto res = session.Run("SELECT pg_try_advisory_lock(" + key + ")", {name}, false, no_timeouts);
    Result got = ToResult(res.back().get());
    if (!got.rows.empty() && std::get_if<bool>(&got.rows[0][0]) && std::get<bool>(got.rows[0][0])) break;
    if (Clock::now() >= deadline) {
      auto who = ToResult(session.Run(R"sql(
SELECT a.pid, COALESCE(a.application_name, ''), COALESCE(a.usename::text, ''),
       COALESCE(host(a.client_addr), 'local socket'),
       COALESCE(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), '')
FROM (SELECT hashtextextended($1, 0) AS k) h
JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid = ((h.k >> 32) & 4294967295)::oid AND l.objid = (h.k & 4294967295)::oid
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
JOIN pg_stat_activity a ON a.pid = l.pid
)sql",
                                      {name}, false, no_timeouts)
                                      .back()
                                      .get());
      std::string holder = "another session";
      if (!who.rows.empty()) {
        const auto& w = who.rows[0];
        holder = fmt::format("PostgreSQL session pid {} (application \"{}\", user {}, from {}, connected since {})",
                             Text(w[0]), Text(w[1]), Text(w[2]), Text(w[3]), Text(w[4]));
      }
      throw Error("db", "lock_held",
                  fmt::format("lock \"{}\" is held by {} (waited {} on {}; the server releases it when that "
                              "session ends)",
                              name, holder, Seconds(options.timeout), Describe()));
    }
    auto left = std::chrono::duration<double>(deadline - Clock::now()).count();
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(poll, std::max(left, 0.0))));
    poll = std::min(poll * 2, 0.5);
  }
  held_locks_.insert(name);
  struct Held {
    std::set<std::string>& set;
    std::string name;
    ~Held() { set.erase(name); }
  } held{held_locks_, name};
  std::exception_ptr failure;
  try {
    fn();
  } catch (...) {
    failure = std::current_exception();
  }
  bool released = false;
  try {
    auto res = session.Run("SELECT pg_advisory_unlock(" + key + ")", {name}, false, no_timeouts);
    Result got = ToResult(res.back().get());
    released = !got.rows.empty() && std::get_if<bool>(&got.rows[0][0]) && std::get<bool>(got.rows[0][0]);
  } catch (const Error&) {
    released = false;
  }
  if (failure) std::rethrow_exception(failure);
  if (!released) {
    throw Error("db", "lock_lost",
                fmt::format("lock \"{}\" was lost while held: its session on {} ended (server restart, "
                            "idle_session_timeout or a terminated backend); the protected work may have overlapped "
                            "with another run",
                            name, Describe()));
  }
}

}  // namespace hoist::db

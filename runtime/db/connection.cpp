#include "db/connection.h"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>

#include <fmt/format.h>

#include "core/error.h"
#include "db/detail.h"
#include "db/pg_connection.h"
#include "db/sqlite_connection.h"

namespace hoist::db {

namespace detail {

std::string PositionSuffix(std::string_view sql, size_t byte_offset) {
  if (byte_offset > sql.size()) return "";
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < byte_offset; ++i) {
    if (sql[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  size_t column = 1;
  for (size_t i = line_start; i < byte_offset; ++i) {
    if ((static_cast<unsigned char>(sql[i]) & 0xC0) != 0x80) ++column;  // count code points
  }
  size_t line_end = sql.find('\n', line_start);
  std::string text(sql.substr(line_start, line_end == std::string_view::npos ? std::string_view::npos
                                                                             : line_end - line_start));
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ' || text.back() == '\t')) text.pop_back();
  if (text.size() > 80) {
    // Keep the part around the error.
    size_t at = byte_offset - line_start;
    size_t from = at > 40 ? at - 40 : 0;
    while (from > 0 && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) --from;
    std::string cut = text.substr(from, 80);
    while (!cut.empty() && (static_cast<unsigned char>(cut.back()) & 0xC0) == 0x80) cut.pop_back();
    text = (from > 0 ? "…" : "") + cut + "…";
  }
  return fmt::format(" (at line {}, column {}: {})", line, column, text);
}

std::string FirstLine(std::string_view sql) {
  size_t start = 0;
  while (start < sql.size() && std::isspace(static_cast<unsigned char>(sql[start]))) ++start;
  size_t end = sql.find('\n', start);
  std::string line(sql.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  if (line.size() > 80) {
    line.resize(80);
    while (!line.empty() && (static_cast<unsigned char>(line.back()) & 0xC0) == 0x80) line.pop_back();
    line += "…";
  } else if (end != std::string_view::npos && sql.find_first_not_of(" \t\r\n", end) != std::string_view::npos) {
    line += " …";
  }
  return line;
}

std::string Seconds(double s) { return fmt::format("{:g} s", s); }

}  // namespace detail

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

const char* TypeName(const Value& v) {
  static const char* kNames[] = {"null", "boolean", "integer", "float", "text", "blob"};
  return kNames[v.index()];
}

json ValueToJson(const Value& v) {
  switch (v.index()) {
    case 0:
      return nullptr;
    case 1:
      return std::get<bool>(v);
    case 2:
      return std::get<int64_t>(v);
    case 3:
      return std::get<double>(v);
    case 4:
      return std::get<std::string>(v);
    default:
      return fmt::format("<blob {} bytes>", std::get<Blob>(v).bytes.size());
  }
}

std::string IntegrityReport::Summary() const {
  std::string out = ok ? "ok: " : "FAILED: ";
  const auto& items = ok ? checked : problems;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "; " : "") + items[i];
  return out;
}

void Connection::CheckOpen() const {
  if (closed()) throw Error("db", "closed", "the connection to " + url_.redacted + " is closed");
}

void Connection::Tx(const std::function<void()>& fn) {
  CheckOpen();
  const int depth = tx_depth_;
  const std::string savepoint = "hoist_tx_" + std::to_string(depth);
  ExecControl(depth == 0 ? BeginSql() : "SAVEPOINT " + savepoint);
  ++tx_depth_;
  try {
    fn();
  } catch (...) {
    tx_depth_ = depth;
    // The original failure matters; a failing rollback (connection gone)
    // must not replace it.
    try {
      if (!closed()) {
        if (depth == 0) {
          ExecControl("ROLLBACK");
        } else {
          ExecControl("ROLLBACK TO SAVEPOINT " + savepoint);
          ExecControl("RELEASE SAVEPOINT " + savepoint);
        }
      }
    } catch (...) {
    }
    throw;
  }
  tx_depth_ = depth;
  if (depth > 0) {
    ExecControl("RELEASE SAVEPOINT " + savepoint);
    return;
  }
  try {
    ExecControl("COMMIT");
  } catch (...) {
    // SQLite keeps the transaction open after a failed COMMIT (e.g. busy).
    try {
      if (!closed()) ExecControl("ROLLBACK");
    } catch (...) {
    }
    throw;
  }
}

std::unique_ptr<Connection> Open(const std::string& url, const OpenOptions& options) {
  DbUrl u = ParseUrl(url, options.cwd);
  if (u.engine == Engine::kSqlite) return std::make_unique<SqliteConnection>(std::move(u), options);
  return std::make_unique<PgConnection>(std::move(u), options);
}

bool OwnerGoneHere(const std::string& owner) {
  size_t colon = owner.rfind(':');
  if (colon == std::string::npos || colon + 1 >= owner.size()) return false;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || owner.compare(0, colon, host) != 0) return false;
  long pid = 0;
  for (size_t i = colon + 1; i < owner.size(); ++i) {
    if (owner[i] < '0' || owner[i] > '9' || pid > 4194304) return false;
    pid = pid * 10 + (owner[i] - '0');
  }
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

std::string DefaultLockOwner() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown-host");
  return std::string(host) + ":" + std::to_string(getpid());
}

}  // namespace hoist::db

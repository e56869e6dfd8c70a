// Database URLs: sqlite:///abs.db, sqlite:rel.db, sqlite::memory:,
// postgres://user:pass@host:port/db?k=v and libpq "key=value" conninfo.
// Parsing registers the password as a secret and yields a redacted form,
// the only form that may ever be printed.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hoist::db {

enum class Engine { kSqlite, kPostgres };

struct DbUrl {
  Engine engine = Engine::kSqlite;
  /// Printable form: the password replaced by "***". Safe for logs/errors.
  std::string redacted;

  // SQLite
  /// Absolute file path, or ":memory:".
  std::string path;
  /// "?mode=": "" (read-write), "ro", "rw" or "rwc".
  std::string mode;

  // PostgreSQL
  /// libpq keyword/value conninfo, password included: NEVER log it.
  std::string conninfo;
  /// The parts named in messages ("" = libpq's default applies).
  std::string host, port, dbname, user;
  bool has_password = false;

  bool memory() const { return engine == Engine::kSqlite && path == ":memory:"; }
  /// "sqlite" or "postgres".
  std::string kind() const { return engine == Engine::kSqlite ? "sqlite" : "postgres"; }
};

/// Parses a database URL. A relative SQLite path is resolved against cwd
/// (the process's working directory when empty). The password, when there
/// is one, is registered with RegisterSecret before anything can fail.
/// Throws Error{"db","invalid_url","invalid database URL <redacted>: <why>
/// (expected ...)"}; the message never contains the password.
DbUrl ParseUrl(std::string_view text, const std::string& cwd = {});

/// The parts of a PostgreSQL URL, each taken as it is (nothing encoded yet).
struct UrlParts {
  std::string user, password, host, database;
  int port = 0;  ///< 0 = libpq's default
  std::vector<std::pair<std::string, std::string>> params;  ///< ?key=value, in order
};

/// postgres://user:password@host:port/database?k=v with every part
/// percent-encoded (a password holding @ : / % stays one password). The
/// password is registered as a secret. Throws Error{"db","invalid_url",...}
/// without a host, or with a port outside 1-65535 (the password never in it).
std::string BuildPostgresUrl(const UrlParts& parts);

/// Registers as secrets the passwords in text that looks like a URL or
/// conninfo ("scheme://user:pw@...", "password=pw"), well-formed or not:
/// a param or config value is masked from the moment it is read.
void RegisterUrlSecrets(std::string_view text);

/// Best-effort redaction of arbitrary (possibly malformed) URL text: the
/// userinfo password of "scheme://user:pw@" and every password=value.
std::string RedactUrl(std::string_view text);

/// Decodes %XX escapes; throws Error{"db","invalid_url",...} on a bad one.
std::string PercentDecode(std::string_view s);

/// Quotes a conninfo value for libpq: 'it\'s' (always quoted).
std::string ConninfoQuote(std::string_view value);

/// Parses libpq keyword/value text into ordered pairs. Throws
/// Error{"db","invalid_url",...} on a syntax error (values not echoed).
std::vector<std::pair<std::string, std::string>> ParseConninfo(std::string_view text);
/// The same conninfo with dbname replaced (a scratch or admin database).
std::string WithDbname(const std::string& conninfo, const std::string& dbname);

}  // namespace hoist::db

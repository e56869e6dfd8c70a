// Splits a SQL script into statements the way the database would read it:
// not on a ';' inside a string, identifier, comment, PostgreSQL dollar quote,
// or a trigger / BEGIN ATOMIC body.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hoist::db {

enum class Dialect { kSqlite, kPostgres };

struct Statement {
  std::string sql;  // trimmed, without the terminating ';'
  int line = 1;     // 1-based line of its first character in the script
};

/// Statements of `script` in order; empty statements (";;", comments only)
/// are dropped. Throws Error{"migrate","invalid",...} for an unterminated
/// string, quoted identifier, block comment or dollar quote, naming the line.
std::vector<Statement> SplitSql(std::string_view script, Dialect dialect);

}  // namespace hoist::db

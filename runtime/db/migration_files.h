// A migrations directory: NNNN_name.sql files with -- hoist:up / -- hoist:down
// sections and -- hoist:phase / -- hoist:no-transaction annotations, and
// NNNN_name.lua data migrations. Parsing and checksums only; applying them
// is the migrator's job.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hoist::db {

struct MigrationFile {
  int64_t version = 0;       // the numeric prefix (any width, gaps allowed)
  std::string name;          // "add_users_email"
  std::string file;          // "0003_add_users_email.sql"
  std::string path;          // full path
  std::string kind;          // "sql" or "lua"
  std::string source;        // the whole file
  std::string up;            // SQL of the up section ("" for lua)
  std::string down;          // SQL of the down section ("" when none)
  bool has_down = false;
  int up_line = 1;           // first line of the up section in the file
  int down_line = 0;         // first line of the down section (0: none)
  std::string phase;         // "expand", "contract" or "" (undeclared)
  bool no_transaction = false;
  std::string checksum;      // sha256 of the normalised source
};

/// sha256 of text with CRLF/CR turned into LF, trailing whitespace removed
/// from every line and trailing blank lines dropped, so re-saving a file in
/// another editor does not change it.
std::string NormalizedChecksum(std::string_view text);

/// Parses one SQL migration. Throws Error{"migrate","invalid",
/// "<file>:<line>: ..."} for a misplaced or unknown hoist: annotation.
MigrationFile ParseSqlMigration(const std::string& path, std::string source);

/// Every migration in dir, ordered by version. Files that are not .sql/.lua
/// are ignored; a .sql/.lua whose name is not NNNN_name, or two files with
/// the same version, are errors naming the files.
std::vector<MigrationFile> LoadMigrationDir(const std::string& dir);

}  // namespace hoist::db

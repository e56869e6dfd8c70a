// Lint by rehearsal: the pending migrations are applied to a sandbox copy
// of the real database (SQLite: an online backup-API copy in a temp file;
// PostgreSQL: a scratch database filled by pg_dump | pg_restore), the schema
// is compared before and after each one, and each is classified additive /
// incompatible / destructive / fails-on-data (see migrate_classify.h). The
// real database is only read.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/connection.h"
#include "db/migrate_classify.h"
#include "db/migrator.h"

namespace hoist::db {

struct LintOptions {
  /// PostgreSQL: copy the data too (false: schema only, faster, but
  /// fails-on-data cannot be seen). SQLite always copies everything.
  bool data = true;
  /// Directory of pg_dump / pg_restore ("" = PATH).
  std::string pg_bin;
  /// SQLite: where the copy goes ("" = $TMPDIR or /tmp).
  std::string scratch_dir;
};

struct LintedMigration {
  int64_t version = 0;
  std::string file;
  std::string phase;            ///< declared ("" = undeclared)
  bool no_transaction = false;
  bool rehearsed = false;       ///< false after an earlier one failed
  MigrationClass cls = MigrationClass::kAdditive;
  Classification classification;
  /// fails-on-data: the statement (1-based, 0 = Lua), its line and the error.
  int statement = 0;
  int line = 0;
  std::string sql;
  std::string error;
  std::vector<std::string> problems;  ///< each a sentence naming the file
  std::vector<std::string> warnings;
  nlohmann::json ToJson() const;
};

struct LintReport {
  std::string sandbox;  ///< what was rehearsed on, for the record
  std::vector<LintedMigration> migrations;  ///< the pending ones, in order
  std::vector<std::string> problems;  ///< history problems, then every migration's
  std::vector<std::string> warnings;
  bool ok() const { return problems.empty(); }
  nlohmann::json ToJson() const;
  /// One line per migration ("0005_drop_email.sql  destructive  drop column
  /// users.email"), then the problems.
  std::string Text() const;
};

/// Rehearses the pending migrations of dir on a sandbox copy of conn's
/// database and classifies each. Problems: a migration that fails on the
/// data, a declared phase that disagrees with the measured class (declared
/// expand but destructive/incompatible, or undeclared and refused by policy
/// expand), history problems (changed/missing/out-of-order). Warnings: a
/// declared contract that measures additive. Throws only when the sandbox
/// cannot be made (Error{"migrate","unavailable"|"failed",...}).
LintReport Lint(Connection& conn, const std::string& dir, const LintOptions& options = {},
                const MigrateEnv& env = {});

}  // namespace hoist::db

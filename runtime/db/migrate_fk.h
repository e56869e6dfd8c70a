// Foreign keys during migrations, as SQLite's ALTER TABLE page prescribes:
// off for the migration's transaction (a table rebuild's DROP TABLE would
// otherwise fire ON DELETE CASCADE and empty the child tables), then
// PRAGMA foreign_key_check before COMMIT. The applier and the lint
// rehearsal both use these, so a rehearsal behaves as the real run.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "db/connection.h"
#include "db/sql_split.h"

namespace hoist::db {

/// Turns an SQLite connection's foreign keys off for its lifetime (outside
/// any transaction: PRAGMA foreign_keys is a no-op inside one) and back on
/// after, if they were on. Nothing for PostgreSQL.
///
/// legacy_rename: also PRAGMA legacy_alter_table = ON for the lifetime, so
/// ALTER TABLE x RENAME TO old_x leaves other tables' REFERENCES x alone
/// (SQLite 3.26+ repoints them even with foreign keys off, and dropping
/// old_x would leave them dangling): the rename-aside rebuild older
/// histories use (RenameAsideRebuild).
class ForeignKeysOff {
 public:
  explicit ForeignKeysOff(Connection& c, bool legacy_rename = false);
  ~ForeignKeysOff();
  ForeignKeysOff(const ForeignKeysOff&) = delete;
  ForeignKeysOff& operator=(const ForeignKeysOff&) = delete;

 private:
  Connection& c_;
  bool was_on_ = false;
  bool legacy_ = false;
};

/// True when the statements rename a table aside and drop it later
/// (ALTER TABLE t RENAME TO old_t; CREATE TABLE t ...; INSERT ...; DROP
/// TABLE old_t): the rebuild that needs legacy_alter_table on SQLite.
bool RenameAsideRebuild(const std::vector<Statement>& statements);

/// SQLite: what PRAGMA foreign_key_check finds, as one sentence naming the
/// first violating rows ("" when none). "" for PostgreSQL, which checks its
/// constraints itself.
std::string ForeignKeyViolations(Connection& c);

/// Row counts of those tables that exist (others absent): what a migration
/// that drops them is measured against (CheckRowsSurvived).
std::map<std::string, int64_t> CountRows(Connection& c, const std::vector<std::pair<std::string, int>>& tables);

/// PostgreSQL: the OID of every table in the current schema, by name (empty
/// for SQLite). A table whose OID changed across a migration was dropped and
/// recreated, whether or not its text says DROP TABLE (a DO block, a
/// function, a Lua migration).
std::map<std::string, int64_t> TableOids(Connection& c);

/// Called after statement i (0-based) of a migration's body.
using StatementHook = std::function<void(int)>;

/// Runs a migration's body (inside the caller's open transaction) so that
/// the tables it drops and recreates are measured even when its text does
/// not name them. SQLite: runs body(nullptr). PostgreSQL: runs it in a
/// savepoint; when tables outside `dropped` come back with another OID,
/// rolls back to the savepoint, counts their rows into rows_before, runs the
/// body again with a hook that finds the statement after which each one
/// changed, and adds them to `dropped` (sorted by statement; -1 = unknown,
/// a Lua migration). Exceptions from the body propagate.
void RunMeasuringDrops(Connection& c, std::vector<std::pair<std::string, int>>& dropped,
                       std::map<std::string, int64_t>& rows_before,
                       const std::function<void(const StatementHook&)>& body);

/// Names of the tables in both maps whose OID differs, leaving out `known`.
std::vector<std::string> RecreatedTables(const std::map<std::string, int64_t>& before,
                                         const std::map<std::string, int64_t>& after,
                                         const std::vector<std::pair<std::string, int>>& known);

}  // namespace hoist::db

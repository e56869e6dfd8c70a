// The lint classes of a migration, measured from the schema before and after
// it: additive (the previous app version keeps working, no data lost),
// incompatible (the previous version's queries may trip), destructive (data
// is dropped), fails-on-data (the rehearsal failed). The expand policy and
// lint share these rules; docs/migrations.md lists them with examples.
#pragma once

#include <optional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/schema.h"
#include "db/sql_split.h"

namespace hoist::db {

/// Ordered from harmless to harmful (kFailsOnData only comes from a rehearsal).
enum class MigrationClass { kAdditive = 0, kIncompatible = 1, kDestructive = 2, kFailsOnData = 3 };

/// "additive", "incompatible", "destructive", "fails-on-data".
const char* ClassName(MigrationClass c);

struct ClassifiedChange {
  MigrationClass cls = MigrationClass::kAdditive;
  std::string what;  // "drop column users.email"
  std::string why;   // "its data is deleted, and the previous version still reads it"
  /// The schema change behind it ("" for a statement-text finding).
  std::string kind, action, table, name;
  nlohmann::json ToJson() const;
};

struct Classification {
  MigrationClass cls = MigrationClass::kAdditive;  // the worst of changes
  std::vector<ClassifiedChange> changes;           // worst first, then in diff order
  /// The first change of the worst class, e.g. "destructive (drop column
  /// users.email: its data is deleted ...)"; "additive (no schema change)".
  std::string Summary() const;
  nlohmann::json ToJson() const;
};

/// Classifies the changes that turn `before` into `after`. `statements`
/// (a SQL migration's; empty for Lua) help to recognise renames ("ALTER
/// TABLE a RENAME [COLUMN] x TO y") and statements that destroy data without
/// changing the schema (TRUNCATE, DELETE without WHERE). A dropped and an
/// added table (or column of one table) with identical definitions are a
/// rename too.
Classification Classify(const Schema& before, const Schema& after, const SchemaDiff& diff,
                        const std::vector<Statement>& statements);

/// What the text of one statement alone says, for statements that cannot be
/// measured before they run (no-transaction migrations): DROP TABLE/COLUMN
/// destructive; RENAME, ALTER COLUMN ... TYPE / SET NOT NULL, DROP VIEW /
/// TRIGGER, ADD UNIQUE / FOREIGN KEY incompatible; TRUNCATE, DELETE without
/// WHERE destructive. nullopt when the text shows nothing harmful.
std::optional<ClassifiedChange> ClassifyStatementText(std::string_view sql);

/// The tables a migration's statements drop (DROP TABLE), with the index of
/// the dropping statement, in order.
std::vector<std::pair<std::string, int>> DroppedTables(const std::vector<Statement>& statements);

/// A table the migration dropped that exists again afterwards with fewer
/// rows (dropped and recreated without its rows being copied: the schema
/// diff alone calls that "additive") makes the migration destructive: adds
/// the change to cls. before/after: row counts of those tables (absent =
/// no such table then). Returns the index of the dropping statement of the
/// first such table, or -1.
int CheckRowsSurvived(Classification& cls, const std::vector<std::pair<std::string, int>>& dropped,
                      const std::map<std::string, int64_t>& before, const std::map<std::string, int64_t>& after);

/// Whether policy "expand" refuses a migration of class c declared with
/// phase ("expand", "contract" or ""): destructive and incompatible ones
/// unless declared contract and allow_contract.
bool RefusedByExpand(MigrationClass c, const std::string& phase, bool allow_contract);

/// The first line of a statement without its leading comments, shortened
/// to 100 characters, for messages.
std::string StatementHead(std::string_view sql);

}  // namespace hoist::db

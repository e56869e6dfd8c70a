// The normalized description of a database schema shared by both engines,
// its canonical JSON and fingerprint, and the structured diff of two
// schemas (used by hoist.db.diff and by migrations).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace hoist::db {

using json = nlohmann::json;

struct ColumnInfo {
  std::string name;
  std::string type;                    // as declared, normalized ("VARCHAR(20)", "integer")
  bool not_null = false;
  std::optional<std::string> default_value;  // SQL expression text, normalized
  int pk = 0;                          // 1-based position in the primary key, 0 = not part of it
  bool operator==(const ColumnInfo&) const = default;
};

struct IndexInfo {
  std::string name;
  std::vector<std::string> columns;    // column names or normalized expressions
  bool unique = false;
  std::string where;                   // partial-index predicate ("" = none)
  std::string method;                  // "btree", ... ("" for SQLite)
  bool operator==(const IndexInfo&) const = default;
};

struct UniqueInfo {
  std::string name;                    // "" when the engine does not name it (SQLite)
  std::vector<std::string> columns;
  bool operator==(const UniqueInfo&) const = default;
};

struct ForeignKeyInfo {
  std::string name;                    // "" when unnamed (SQLite)
  std::vector<std::string> columns;
  std::string ref_table;
  std::vector<std::string> ref_columns;
  std::string on_update = "NO ACTION";
  std::string on_delete = "NO ACTION";
  bool operator==(const ForeignKeyInfo&) const = default;
};

struct TableInfo {
  std::string name;                    // PostgreSQL: "schema.name" outside "public"
  std::vector<ColumnInfo> columns;     // in column order (it is part of the schema)
  std::vector<IndexInfo> indexes;      // sorted by name; constraint-backing ones excluded
  std::vector<UniqueInfo> uniques;     // sorted by columns
  std::vector<ForeignKeyInfo> foreign_keys;  // sorted by (columns, ref_table)
  bool operator==(const TableInfo&) const = default;
};

struct ViewInfo {
  std::string name;
  std::string sql;                     // normalized definition
  bool operator==(const ViewInfo&) const = default;
};

struct TriggerInfo {
  std::string name;
  std::string table;
  std::string sql;                     // normalized definition
  bool operator==(const TriggerInfo&) const = default;
};

struct Schema {
  std::string engine;                  // "sqlite" | "postgres"
  std::vector<TableInfo> tables;       // sorted by name
  std::vector<ViewInfo> views;
  std::vector<TriggerInfo> triggers;
  bool operator==(const Schema&) const = default;
};

/// Tables hoist itself keeps in an application database; they are left out
/// of Schema() and so of fingerprints and diffs.
bool IsInternalTable(std::string_view name);

/// Canonical SQL text for comparison: comments dropped, keywords and
/// unquoted identifiers lowercased, whitespace collapsed to a single space
/// and removed next to punctuation; quoted literals and identifiers kept.
std::string NormalizeSql(std::string_view sql);

/// Sorts every list whose order is not meaningful (all but columns).
void Canonicalize(Schema& s);

/// Schema -> JSON (the shape hoist.db's schema() returns) and back.
/// FromJson throws Error{"db","invalid","schema: <path>: <why>"}.
json SchemaToJson(const Schema& s);
Schema SchemaFromJson(const json& j);

/// sha256 (hex) of the compact JSON of the canonicalized schema.
std::string Fingerprint(Schema s);

struct SchemaChange {
  std::string kind;    // "table" "column" "index" "unique" "foreign_key" "view" "trigger"
  std::string action;  // "added" "dropped" "changed"
  std::string table;   // owning table for column/index/unique/foreign_key ("" otherwise)
  std::string name;    // object name (for unnamed constraints: "(a, b)" or "(a) -> t(b)")
  json before;         // the object as in a (null when added)
  json after;          // the object as in b (null when dropped)
  std::string detail;  // for "changed": what differs, e.g. "type TEXT -> INTEGER"
};

struct SchemaDiff {
  std::vector<SchemaChange> changes;   // tables first, then views, then triggers
  bool empty() const { return changes.empty(); }
  /// Readable rendering, one line per change ("+ table users", "~ column
  /// users.name: type TEXT -> VARCHAR(50)"); "no differences" when empty.
  std::string Text() const;
  /// {equal, changes = [...], added/dropped/changed = {tables, columns, ...}, text}
  json ToJson() const;
};

/// What changes turn a into b.
SchemaDiff Diff(const Schema& a, const Schema& b);

}  // namespace hoist::db

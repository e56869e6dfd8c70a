// Cheap schema captures taken inside a migration's transaction, and the
// diff of two captures. SQLite: the schema cookie plus sqlite_master's rows
// (one query); only the tables a migration touched are rebuilt in memory and
// described, so checking 1,000 migrations does not read the whole schema
// 2,000 times. PostgreSQL: the full schema from the catalogs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "db/connection.h"
#include "db/schema.h"

namespace hoist::db {

/// hoist's own bookkeeping tables (hoist_schema_migrations, hoist_locks):
/// never part of a migration's measured changes.
bool IsHoistTable(std::string_view name);

struct SchemaSnapshot {
  std::string engine;  // "sqlite" | "postgres"
  /// SQLite: PRAGMA schema_version when taken (-1 = unknown).
  int64_t cookie = -1;
  struct Object {
    std::string tbl_name, sql;
    bool operator==(const Object&) const = default;
  };
  /// SQLite: sqlite_master rows keyed by (type, name), hoist's and SQLite's
  /// internal objects left out.
  std::map<std::pair<std::string, std::string>, Object> objects;
  /// PostgreSQL: the whole schema, hoist's tables left out.
  Schema schema;
};

/// The changes between two snapshots and the (possibly reduced) schemas
/// they were computed from: for SQLite only the touched tables, their
/// foreign-key parents and the changed views and triggers.
struct SchemaComparison {
  Schema before, after;
  SchemaDiff diff;
};

/// Takes snapshots of one connection; keeps prepared state between calls,
/// so it must not outlive the connection.
class SchemaProbe {
 public:
  explicit SchemaProbe(Connection& conn);
  ~SchemaProbe();
  SchemaProbe(const SchemaProbe&) = delete;
  SchemaProbe& operator=(const SchemaProbe&) = delete;

  /// A snapshot of the current schema (inside the caller's transaction, if
  /// any). Throws the connection's Error on failure.
  SchemaSnapshot Take();
  /// SQLite: the schema cookie only (cheap); -1 for PostgreSQL.
  int64_t Cookie();
  /// What turned a into b.
  SchemaComparison Compare(const SchemaSnapshot& a, const SchemaSnapshot& b);

 private:
  struct Impl;
  Connection& conn_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hoist::db

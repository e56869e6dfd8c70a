// Cheap schema captures taken inside a migration's transaction, and the
// diff of two captures. SQLite: the schema cookie plus sqlite_master's rows
// (one query; rows unchanged since the previous capture are shared, not
// copied); only the tables a migration touched are described — rebuilt in
// a private in-memory database and read with the connection's own schema
// reader, each distinct definition once — so checking 1,000 migrations does
// not read the whole schema 2,000 times. PostgreSQL: the full schema from
// the catalogs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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
  /// SQLite: a sqlite_master row (hoist's and SQLite's own objects left out).
  struct Row {
    int64_t rowid = 0;
    std::string type, name, tbl_name, sql;
  };
  /// SQLite: the rows in rowid order.
  std::vector<std::shared_ptr<const Row>> rows;
  /// PostgreSQL: the whole schema, hoist's tables left out.
  Schema schema;
};

/// The changes between two snapshots and the (possibly reduced) schemas
/// they were computed from: for SQLite only the touched tables and the
/// changed views and triggers.
struct SchemaComparison {
  Schema before, after;
  SchemaDiff diff;
};

/// Takes snapshots of one connection; keeps prepared statements and caches
/// between calls, so it must not outlive the connection.
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

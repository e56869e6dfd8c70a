#include "db/migrate_schema.h"

#include <set>

#include "core/error.h"
#include "db/sqlite.h"
#include "db/sqlite_connection.h"

namespace hoist::db {

bool IsHoistTable(std::string_view name) {
  if (auto dot = name.rfind('.'); dot != std::string_view::npos) name = name.substr(dot + 1);
  return name == "hoist_schema_migrations" || name == "hoist_locks" || IsInternalTable(name);
}

struct SchemaProbe::Impl {
  SqliteConnection* sqlite = nullptr;
  std::optional<Stmt> master;
  std::optional<Stmt> cookie;
};

namespace {

bool SqliteInternal(const std::string& name) { return name.rfind("sqlite_", 0) == 0; }

// Rebuilds the named objects of a snapshot in a private in-memory database
// and describes it with the connection's own schema reader, so the reduced
// schema is normalised exactly like a full ReadSchema() would be.
Schema Rebuild(const SchemaSnapshot& snap, const std::set<std::string>& tables, const std::set<std::string>& views,
               const std::set<std::string>& triggers, std::set<std::string>* parents) {
  DbUrl url = ParseUrl("sqlite::memory:");
  SqliteConnection mem(url, OpenOptions{});
  mem.Exec("PRAGMA foreign_keys = OFF");
  auto run = [&](const std::string& sql) {
    // Best effort: a virtual table's shadow tables already exist, say.
    try {
      mem.Exec(sql);
    } catch (const Error&) {
    }
  };
  for (const auto& [key, obj] : snap.objects) {
    if (key.first == "table" && tables.count(key.second) && !obj.sql.empty()) run(obj.sql);
  }
  for (const auto& [key, obj] : snap.objects) {
    if (key.first == "index" && tables.count(obj.tbl_name) && !obj.sql.empty()) run(obj.sql);
  }
  for (const auto& [key, obj] : snap.objects) {
    if (key.first == "view" && views.count(key.second)) run(obj.sql);
    if (key.first == "trigger" && triggers.count(key.second)) run(obj.sql);
  }
  if (parents) {
    Stmt q(mem.handle(), "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)");
    for (const auto& t : tables) {
      q.Bind(1, t);
      while (q.Step()) parents->insert(q.Text(0));
      q.Reset();
    }
  }
  return mem.ReadSchema();
}

}  // namespace

SchemaProbe::SchemaProbe(Connection& conn) : conn_(conn), impl_(std::make_unique<Impl>()) {
  impl_->sqlite = dynamic_cast<SqliteConnection*>(&conn);
}

SchemaProbe::~SchemaProbe() = default;

int64_t SchemaProbe::Cookie() {
  if (!impl_->sqlite) return -1;
  if (!impl_->cookie) impl_->cookie.emplace(impl_->sqlite->handle(), "PRAGMA schema_version");
  Stmt& q = *impl_->cookie;
  int64_t v = q.Step() ? q.Int(0) : -1;
  q.Reset();
  return v;
}

SchemaSnapshot SchemaProbe::Take() {
  SchemaSnapshot s;
  s.engine = conn_.kind();
  if (!impl_->sqlite) {
    s.schema = conn_.ReadSchema();
    std::erase_if(s.schema.tables, [](const TableInfo& t) { return IsHoistTable(t.name); });
    std::erase_if(s.schema.triggers, [](const TriggerInfo& t) { return IsHoistTable(t.table); });
    return s;
  }
  s.cookie = Cookie();
  if (!impl_->master) impl_->master.emplace(impl_->sqlite->handle(), "SELECT type, name, tbl_name, sql FROM sqlite_master");
  Stmt& q = *impl_->master;
  while (q.Step()) {
    std::string name = q.Text(1), tbl = q.Text(2);
    if (SqliteInternal(name) || IsHoistTable(tbl)) continue;
    s.objects.emplace(std::make_pair(q.Text(0), std::move(name)), SchemaSnapshot::Object{std::move(tbl), q.Text(3)});
  }
  q.Reset();
  return s;
}

SchemaComparison SchemaProbe::Compare(const SchemaSnapshot& a, const SchemaSnapshot& b) {
  SchemaComparison out;
  if (a.engine != "sqlite") {
    out.before = a.schema;
    out.after = b.schema;
    out.diff = Diff(out.before, out.after);
    return out;
  }
  std::set<std::string> tables, views, triggers;
  auto visit = [&](const std::pair<std::string, std::string>& key, const SchemaSnapshot::Object* x,
                   const SchemaSnapshot::Object* y) {
    if (x && y && *x == *y) return;
    const std::string& type = key.first;
    if (type == "view") {
      views.insert(key.second);
      return;
    }
    for (const auto* o : {x, y}) {
      if (o) tables.insert(o->tbl_name);  // a table's own row names itself
    }
    if (type == "trigger") triggers.insert(key.second);
  };
  for (const auto& [key, obj] : a.objects) {
    auto it = b.objects.find(key);
    visit(key, &obj, it == b.objects.end() ? nullptr : &it->second);
  }
  for (const auto& [key, obj] : b.objects) {
    if (!a.objects.count(key)) visit(key, nullptr, &obj);
  }
  if (tables.empty() && views.empty() && triggers.empty()) {
    out.before.engine = out.after.engine = "sqlite";
    return out;
  }
  // Foreign-key parents are described too (an implicit REFERENCES p means
  // p's primary key); both sides use the same set of names.
  for (int round = 0; round < 4; ++round) {
    std::set<std::string> parents;
    out.before = Rebuild(a, tables, views, triggers, &parents);
    out.after = Rebuild(b, tables, views, triggers, &parents);
    size_t n = tables.size();
    for (const auto& p : parents) {
      if (!IsHoistTable(p) && (a.objects.count({"table", p}) || b.objects.count({"table", p}))) tables.insert(p);
    }
    if (tables.size() == n) break;
  }
  out.diff = Diff(out.before, out.after);
  return out;
}

}  // namespace hoist::db

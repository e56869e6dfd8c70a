#include "db/migrate_schema.h"

#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "db/sqlite.h"
#include "db/sqlite_connection.h"

namespace hoist::db {

bool IsHoistTable(std::string_view name) {
  if (auto dot = name.rfind('.'); dot != std::string_view::npos) name = name.substr(dot + 1);
  return name == "hoist_schema_migrations" || name == "hoist_locks" || IsInternalTable(name);
}

namespace {

using Row = SchemaSnapshot::Row;

bool SameRow(const Row& a, const Row& b) {
  return a.rowid == b.rowid && a.type == b.type && a.name == b.name && a.tbl_name == b.tbl_name && a.sql == b.sql;
}

bool MentionsReferences(const std::string& sql) {
  static const std::string kWord = "references";
  auto it = std::search(sql.begin(), sql.end(), kWord.begin(), kWord.end(),
                        [](char x, char y) { return std::tolower(static_cast<unsigned char>(x)) == y; });
  return it != sql.end();
}

}  // namespace

struct SchemaProbe::Impl {
  SqliteConnection* sqlite = nullptr;
  std::optional<Stmt> master;
  std::optional<Stmt> cookie;
  /// The rows of the latest Take(), shared with the next one where unchanged.
  std::vector<std::shared_ptr<const Row>> last;
  /// A private in-memory database the touched tables are rebuilt in.
  std::unique_ptr<SqliteConnection> mem;
  /// Descriptions by definition (the table's SQL and its indexes' SQL).
  std::unordered_map<std::string, TableInfo> described;

  SqliteConnection& Mem() {
    if (!mem) {
      mem = std::make_unique<SqliteConnection>(ParseUrl("sqlite::memory:"), OpenOptions{});
      mem->Exec("PRAGMA foreign_keys = OFF");
    }
    return *mem;
  }

  // Describes the named tables as they are in snap: from the cache when
  // their definition was described before, else rebuilt in memory and read
  // with SqliteConnection::ReadSchema, so the description is normalised
  // exactly like a full read of the real database.
  std::vector<TableInfo> Describe(const SchemaSnapshot& snap, const std::set<std::string>& tables) {
    std::map<std::string, const Row*> table_rows;
    std::map<std::string, std::vector<const Row*>> index_rows;
    for (const auto& r : snap.rows) {
      if (r->type == "table" && tables.count(r->name)) table_rows[r->name] = r.get();
      if (r->type == "index" && !r->sql.empty() && tables.count(r->tbl_name)) index_rows[r->tbl_name].push_back(r.get());
    }
    struct Todo {
      std::string name, signature;
      bool references;
    };
    std::vector<TableInfo> out;
    std::vector<Todo> todo;
    for (const auto& [name, row] : table_rows) {
      std::string sig = row->sql;
      for (const Row* i : index_rows[name]) sig += "\x1e" + i->sql;
      // An implicit REFERENCES p(...) depends on p's key: never cached.
      bool refs = MentionsReferences(row->sql);
      if (!refs) {
        if (auto it = described.find(sig); it != described.end()) {
          out.push_back(it->second);
          continue;
        }
      }
      todo.push_back({name, std::move(sig), refs});
    }
    if (todo.empty()) return out;
    std::vector<std::string> created;
    try {
      SqliteConnection& m = Mem();
      auto run = [&](const std::string& sql, const std::string& name) {
        // Best effort: a virtual table's shadow tables exist already, say.
        try {
          m.Exec(sql);
          if (!name.empty()) created.push_back(name);
        } catch (const Error&) {
        }
      };
      std::set<std::string> made;
      for (const auto& t : todo) {
        run(table_rows[t.name]->sql, t.name);
        made.insert(t.name);
        for (const Row* i : index_rows[t.name]) run(i->sql, "");
      }
      for (const auto& t : todo) {
        if (!t.references) continue;
        Stmt q(m.handle(), "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)");
        q.Bind(1, t.name);
        std::vector<std::string> parents;
        while (q.Step()) parents.push_back(q.Text(0));
        for (const auto& p : parents) {
          if (made.count(p)) continue;
          for (const auto& r : snap.rows) {
            if (r->type == "table" && r->name == p) run(r->sql, p);
          }
          made.insert(p);
        }
      }
      Schema s = m.ReadSchema();
      for (const auto& t : todo) {
        for (auto& info : s.tables) {
          if (info.name != t.name) continue;
          if (!t.references) described.emplace(t.signature, info);
          out.push_back(std::move(info));
          break;
        }
      }
      for (const auto& name : created) m.Exec("DROP TABLE IF EXISTS " + QuoteIdent(name));
    } catch (...) {
      mem.reset();  // start clean next time
      throw;
    }
    return out;
  }
};

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
  if (!impl_->master) {
    impl_->master.emplace(impl_->sqlite->handle(),
                          "SELECT rowid, type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid");
  }
  Stmt& q = *impl_->master;
  sqlite3_stmt* st = q.get();
  auto col = [st](int i) {
    const unsigned char* p = sqlite3_column_text(st, i);
    return std::string_view(p ? reinterpret_cast<const char*>(p) : "", static_cast<size_t>(sqlite3_column_bytes(st, i)));
  };
  const auto& prev = impl_->last;
  size_t j = 0;
  while (q.Step()) {
    int64_t rowid = sqlite3_column_int64(st, 0);
    std::string_view type = col(1), name = col(2), tbl = col(3), sql = col(4);
    if (name.rfind("sqlite_", 0) == 0 || IsHoistTable(tbl)) continue;
    while (j < prev.size() && prev[j]->rowid < rowid) ++j;
    if (j < prev.size() && prev[j]->rowid == rowid && prev[j]->type == type && prev[j]->name == name &&
        prev[j]->tbl_name == tbl && prev[j]->sql == sql) {
      s.rows.push_back(prev[j]);  // unchanged: shared, not copied
    } else {
      s.rows.push_back(std::make_shared<const Row>(
          Row{rowid, std::string(type), std::string(name), std::string(tbl), std::string(sql)}));
    }
  }
  q.Reset();
  impl_->last = s.rows;
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
  out.before.engine = out.after.engine = "sqlite";
  std::set<std::string> tables, views, triggers;
  auto touch = [&](const Row& r) {
    if (r.type == "view") {
      views.insert(r.name);
    } else if (r.type == "trigger") {
      triggers.insert(r.name);
    } else {
      tables.insert(r.tbl_name);  // a table's own row names itself
    }
  };
  // Both are in rowid order: walk them together.
  size_t i = 0, j = 0;
  while (i < a.rows.size() || j < b.rows.size()) {
    const Row* x = i < a.rows.size() ? a.rows[i].get() : nullptr;
    const Row* y = j < b.rows.size() ? b.rows[j].get() : nullptr;
    if (x && y && x->rowid == y->rowid) {
      if (x != y && !SameRow(*x, *y)) {
        touch(*x);
        touch(*y);
      }
      ++i;
      ++j;
    } else if (!y || (x && x->rowid < y->rowid)) {
      touch(*x);
      ++i;
    } else {
      touch(*y);
      ++j;
    }
  }
  if (tables.empty() && views.empty() && triggers.empty()) return out;
  out.before.tables = impl_->Describe(a, tables);
  out.after.tables = impl_->Describe(b, tables);
  // Views and triggers as SqliteConnection::ReadSchema describes them.
  for (const auto* snap : {&a, &b}) {
    Schema& s = snap == &a ? out.before : out.after;
    for (const auto& r : snap->rows) {
      if (r->type == "view" && views.count(r->name)) s.views.push_back({r->name, NormalizeSql(r->sql)});
      if (r->type == "trigger" && triggers.count(r->name) && !IsInternalTable(r->tbl_name)) {
        s.triggers.push_back({r->name, r->tbl_name, NormalizeSql(r->sql)});
      }
    }
  }
  Canonicalize(out.before);
  Canonicalize(out.after);
  out.diff = Diff(out.before, out.after);
  return out;
}

}  // namespace hoist::db

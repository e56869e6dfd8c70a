#include "db/schema.h"

#include <algorithm>
#include <cctype>
#include <map>

#include <fmt/format.h>

#include "core/error.h"
#include "sys/sha256.h"

namespace hoist::db {
namespace {

bool Wordish(unsigned char c) {
  return std::isalnum(c) || c == '_' || c == '$' || c == '\'' || c == '"' || c == '`' || c == '[' || c == ']' ||
         c >= 0x80;
}

std::string JoinCols(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

[[noreturn]] void Bad(const std::string& path, const std::string& why) {
  throw Error("db", "invalid", "schema: " + path + ": " + why);
}

// ---- JSON conversion ----------------------------------------------------

json StringList(const std::vector<std::string>& v) { return json(v); }

json ColumnJson(const ColumnInfo& c) {
  return {{"name", c.name},
          {"type", c.type},
          {"not_null", c.not_null},
          {"default", c.default_value ? json(*c.default_value) : json(nullptr)},
          {"pk", c.pk}};
}

json IndexJson(const IndexInfo& i) {
  return {{"name", i.name}, {"columns", StringList(i.columns)}, {"unique", i.unique}, {"where", i.where},
          {"method", i.method}};
}

json UniqueJson(const UniqueInfo& u) { return {{"name", u.name}, {"columns", StringList(u.columns)}}; }

json ForeignKeyJson(const ForeignKeyInfo& f) {
  return {{"name", f.name},
          {"columns", StringList(f.columns)},
          {"ref_table", f.ref_table},
          {"ref_columns", StringList(f.ref_columns)},
          {"on_update", f.on_update},
          {"on_delete", f.on_delete}};
}

json TableJson(const TableInfo& t) {
  json cols = json::array();
  for (const auto& c : t.columns) cols.push_back(ColumnJson(c));
  json idx = json::object();
  for (const auto& i : t.indexes) idx[i.name] = IndexJson(i);
  json uniq = json::array();
  for (const auto& u : t.uniques) uniq.push_back(UniqueJson(u));
  json fks = json::array();
  for (const auto& f : t.foreign_keys) fks.push_back(ForeignKeyJson(f));
  return {{"name", t.name}, {"columns", cols}, {"indexes", idx}, {"uniques", uniq}, {"foreign_keys", fks}};
}

// Lenient readers: Lua turns an empty array into {} (an object).
const json& Field(const json& obj, const char* key, const std::string& path) {
  static const json kNull;
  if (!obj.is_object()) Bad(path, "expected a table");
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

std::string Str(const json& obj, const char* key, const std::string& path, bool required = false) {
  const json& v = Field(obj, key, path);
  if (v.is_null()) {
    if (required) Bad(path + "." + key, "missing");
    return "";
  }
  if (!v.is_string()) Bad(path + "." + key, "expected a string");
  return v.get<std::string>();
}

bool Bool(const json& obj, const char* key, const std::string& path) {
  const json& v = Field(obj, key, path);
  if (v.is_null()) return false;
  if (!v.is_boolean()) Bad(path + "." + key, "expected a boolean");
  return v.get<bool>();
}

std::vector<std::string> Strings(const json& obj, const char* key, const std::string& path) {
  const json& v = Field(obj, key, path);
  std::vector<std::string> out;
  if (v.is_null() || (v.is_object() && v.empty())) return out;
  if (!v.is_array()) Bad(path + "." + key, "expected an array of strings");
  for (const auto& e : v) {
    if (!e.is_string()) Bad(path + "." + key, "expected an array of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

// Iterates an array, or the values of an object (maps keyed by name).
template <typename F>
void Each(const json& v, const std::string& path, F&& f) {
  if (v.is_null()) return;
  if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) f(v[i], path + "[" + std::to_string(i + 1) + "]", std::string());
  } else if (v.is_object()) {
    for (const auto& [k, e] : v.items()) f(e, path + "." + k, k);
  } else {
    Bad(path, "expected a table");
  }
}

std::string NameOr(const json& e, const std::string& key, const std::string& path) {
  std::string n = Str(e, "name", path);
  if (n.empty()) n = key;
  if (n.empty()) Bad(path + ".name", "missing");
  return n;
}

// ---- diff -----------------------------------------------------------------

std::string ColumnText(const ColumnInfo& c) {
  std::string s = c.name + " " + c.type;
  if (c.not_null) s += " NOT NULL";
  if (c.default_value) s += " DEFAULT " + *c.default_value;
  if (c.pk) s += " PRIMARY KEY";
  return s;
}

std::string IndexText(const IndexInfo& i) {
  std::string s = "(" + JoinCols(i.columns) + ")";
  if (i.unique) s += " UNIQUE";
  if (!i.where.empty()) s += " WHERE " + i.where;
  return s;
}

std::string UniqueKey(const UniqueInfo& u) { return "(" + JoinCols(u.columns) + ")"; }

std::string FkKey(const ForeignKeyInfo& f) {
  return "(" + JoinCols(f.columns) + ") -> " + f.ref_table + "(" + JoinCols(f.ref_columns) + ")";
}

std::string FkText(const ForeignKeyInfo& f) {
  std::string s = FkKey(f);
  if (f.on_delete != "NO ACTION") s += " ON DELETE " + f.on_delete;
  if (f.on_update != "NO ACTION") s += " ON UPDATE " + f.on_update;
  return s;
}

void AddDetail(std::string& d, const std::string& what, const std::string& a, const std::string& b) {
  if (a == b) return;
  d += (d.empty() ? "" : ", ") + what + " " + a + " -> " + b;
}

std::string ColumnDetail(const ColumnInfo& a, const ColumnInfo& b) {
  std::string d;
  AddDetail(d, "type", a.type, b.type);
  AddDetail(d, "null", a.not_null ? "NOT NULL" : "nullable", b.not_null ? "NOT NULL" : "nullable");
  AddDetail(d, "default", a.default_value.value_or("none"), b.default_value.value_or("none"));
  AddDetail(d, "primary key position", std::to_string(a.pk), std::to_string(b.pk));
  return d;
}

std::string IndexDetail(const IndexInfo& a, const IndexInfo& b) {
  std::string d;
  AddDetail(d, "columns", "(" + JoinCols(a.columns) + ")", "(" + JoinCols(b.columns) + ")");
  AddDetail(d, "unique", a.unique ? "yes" : "no", b.unique ? "yes" : "no");
  AddDetail(d, "where", a.where.empty() ? "none" : a.where, b.where.empty() ? "none" : b.where);
  AddDetail(d, "method", a.method, b.method);
  return d;
}

// Generic keyed comparison of two lists.
template <typename T, typename KeyF, typename JsonF, typename DetailF>
void Compare(const std::vector<T>& a, const std::vector<T>& b, KeyF key, JsonF to_json, DetailF detail,
             const std::string& kind, const std::string& table, std::vector<SchemaChange>& out) {
  std::map<std::string, const T*> ma, mb;
  for (const auto& x : a) ma[key(x)] = &x;
  for (const auto& x : b) mb[key(x)] = &x;
  std::map<std::string, int> keys;
  for (const auto& [k, x] : ma) keys[k] = 0;
  for (const auto& [k, x] : mb) keys[k] = 0;
  for (const auto& [k, unused] : keys) {
    (void)unused;
    auto ia = ma.find(k);
    auto ib = mb.find(k);
    if (ib == mb.end()) {
      out.push_back({kind, "dropped", table, k, to_json(*ia->second), nullptr, ""});
    } else if (ia == ma.end()) {
      out.push_back({kind, "added", table, k, nullptr, to_json(*ib->second), ""});
    } else if (!(*ia->second == *ib->second)) {
      std::string d = detail(*ia->second, *ib->second);
      if (d.empty()) d = "definition changed";
      out.push_back({kind, "changed", table, k, to_json(*ia->second), to_json(*ib->second), d});
    }
  }
}

const char* Plural(const std::string& kind) {
  if (kind == "table") return "tables";
  if (kind == "column") return "columns";
  if (kind == "index") return "indexes";
  if (kind == "unique") return "uniques";
  if (kind == "foreign_key") return "foreign_keys";
  if (kind == "view") return "views";
  return "triggers";
}

}  // namespace

bool IsInternalTable(std::string_view name) { return name == "hoist_locks" || name == "hoist_identity"; }

std::string NormalizeSql(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  bool pending_space = false;
  auto emit = [&](char c) {
    if (pending_space && !out.empty()) {
      unsigned char prev = static_cast<unsigned char>(out.back());
      bool need = Wordish(prev) && Wordish(static_cast<unsigned char>(c));
      // Never glue two tokens into a comment opener or closer.
      need = need || (prev == '-' && c == '-') || (prev == '/' && c == '*') || (prev == '*' && c == '/');
      if (need) out += ' ';
    }
    pending_space = false;
    out += c;
  };
  size_t i = 0;
  while (i < sql.size()) {
    char c = sql[i];
    if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      while (i < sql.size() && sql[i] != '\n') ++i;
      pending_space = true;
      continue;
    }
    if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      size_t end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? sql.size() : end + 2;
      pending_space = true;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) {
      pending_space = true;
      ++i;
      continue;
    }
    if (c == '\'' || c == '"' || c == '`' || c == '[') {
      char close = c == '[' ? ']' : c;
      emit(c);
      ++i;
      while (i < sql.size()) {
        char d = sql[i++];
        out += d;
        if (d == close) {
          if (close != ']' && i < sql.size() && sql[i] == close) {  // doubled quote = escaped
            out += sql[i++];
            continue;
          }
          break;
        }
      }
      continue;
    }
    if (c == '$') {
      // PostgreSQL dollar quoting: $tag$ ... $tag$ is kept verbatim.
      size_t j = i + 1;
      while (j < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[j])) || sql[j] == '_')) ++j;
      if (j < sql.size() && sql[j] == '$' && (j == i + 1 || !std::isdigit(static_cast<unsigned char>(sql[i + 1])))) {
        std::string tag(sql.substr(i, j - i + 1));
        size_t end = sql.find(tag, j + 1);
        size_t stop = end == std::string_view::npos ? sql.size() : end + tag.size();
        emit('$');
        out.append(sql.substr(i + 1, stop - i - 1));
        i = stop;
        continue;
      }
    }
    emit(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    ++i;
  }
  while (!out.empty() && (out.back() == ';' || out.back() == ' ')) out.pop_back();
  return out;
}

void Canonicalize(Schema& s) {
  auto by_name = [](const auto& a, const auto& b) { return a.name < b.name; };
  std::sort(s.tables.begin(), s.tables.end(), by_name);
  for (auto& t : s.tables) {
    std::sort(t.indexes.begin(), t.indexes.end(), by_name);
    std::sort(t.uniques.begin(), t.uniques.end(),
              [](const UniqueInfo& a, const UniqueInfo& b) { return std::tie(a.columns, a.name) < std::tie(b.columns, b.name); });
    std::sort(t.foreign_keys.begin(), t.foreign_keys.end(), [](const ForeignKeyInfo& a, const ForeignKeyInfo& b) {
      return std::tie(a.columns, a.ref_table, a.ref_columns, a.name) <
             std::tie(b.columns, b.ref_table, b.ref_columns, b.name);
    });
  }
  std::sort(s.views.begin(), s.views.end(), by_name);
  std::sort(s.triggers.begin(), s.triggers.end(), by_name);
}

json SchemaToJson(const Schema& s) {
  json tables = json::object();
  for (const auto& t : s.tables) tables[t.name] = TableJson(t);
  json views = json::object();
  for (const auto& v : s.views) views[v.name] = {{"name", v.name}, {"sql", v.sql}};
  json triggers = json::object();
  for (const auto& t : s.triggers) triggers[t.name] = {{"name", t.name}, {"table", t.table}, {"sql", t.sql}};
  return {{"engine", s.engine}, {"tables", tables}, {"views", views}, {"triggers", triggers}};
}

Schema SchemaFromJson(const json& j) {
  Schema s;
  if (!j.is_object()) Bad("(root)", "expected a schema table as returned by conn:schema()");
  s.engine = Str(j, "engine", "(root)");
  Each(Field(j, "tables", "(root)"), "tables", [&](const json& tj, const std::string& tpath, const std::string& key) {
    TableInfo t;
    t.name = NameOr(tj, key, tpath);
    Each(Field(tj, "columns", tpath), tpath + ".columns", [&](const json& cj, const std::string& cpath, const std::string&) {
      ColumnInfo c;
      c.name = Str(cj, "name", cpath, true);
      c.type = Str(cj, "type", cpath);
      c.not_null = Bool(cj, "not_null", cpath);
      const json& d = Field(cj, "default", cpath);
      if (d.is_string()) c.default_value = d.get<std::string>();
      else if (!d.is_null()) Bad(cpath + ".default", "expected a string or null");
      const json& pk = Field(cj, "pk", cpath);
      if (pk.is_number_integer()) c.pk = pk.get<int>();
      else if (!pk.is_null()) Bad(cpath + ".pk", "expected an integer");
      t.columns.push_back(std::move(c));
    });
    Each(Field(tj, "indexes", tpath), tpath + ".indexes", [&](const json& ij, const std::string& ipath, const std::string& k) {
      IndexInfo i;
      i.name = NameOr(ij, k, ipath);
      i.columns = Strings(ij, "columns", ipath);
      i.unique = Bool(ij, "unique", ipath);
      i.where = Str(ij, "where", ipath);
      i.method = Str(ij, "method", ipath);
      t.indexes.push_back(std::move(i));
    });
    Each(Field(tj, "uniques", tpath), tpath + ".uniques", [&](const json& uj, const std::string& upath, const std::string&) {
      t.uniques.push_back({Str(uj, "name", upath), Strings(uj, "columns", upath)});
    });
    Each(Field(tj, "foreign_keys", tpath), tpath + ".foreign_keys",
         [&](const json& fj, const std::string& fpath, const std::string&) {
           ForeignKeyInfo f;
           f.name = Str(fj, "name", fpath);
           f.columns = Strings(fj, "columns", fpath);
           f.ref_table = Str(fj, "ref_table", fpath, true);
           f.ref_columns = Strings(fj, "ref_columns", fpath);
           if (auto u = Str(fj, "on_update", fpath); !u.empty()) f.on_update = u;
           if (auto d = Str(fj, "on_delete", fpath); !d.empty()) f.on_delete = d;
           t.foreign_keys.push_back(std::move(f));
         });
    s.tables.push_back(std::move(t));
  });
  Each(Field(j, "views", "(root)"), "views", [&](const json& vj, const std::string& vpath, const std::string& key) {
    s.views.push_back({NameOr(vj, key, vpath), Str(vj, "sql", vpath)});
  });
  Each(Field(j, "triggers", "(root)"), "triggers", [&](const json& tj, const std::string& tpath, const std::string& key) {
    s.triggers.push_back({NameOr(tj, key, tpath), Str(tj, "table", tpath), Str(tj, "sql", tpath)});
  });
  Canonicalize(s);
  return s;
}

std::string Fingerprint(Schema s) {
  Canonicalize(s);
  return sys::Sha256Hex(SchemaToJson(s).dump());
}

SchemaDiff Diff(const Schema& a_in, const Schema& b_in) {
  Schema a = a_in, b = b_in;
  Canonicalize(a);
  Canonicalize(b);
  SchemaDiff diff;
  auto& out = diff.changes;
  std::map<std::string, const TableInfo*> ta, tb;
  for (const auto& t : a.tables) ta[t.name] = &t;
  for (const auto& t : b.tables) tb[t.name] = &t;
  std::map<std::string, int> all;
  for (const auto& [k, t] : ta) all[k] = 0;
  for (const auto& [k, t] : tb) all[k] = 0;
  for (const auto& [name, unused] : all) {
    (void)unused;
    auto ia = ta.find(name);
    auto ib = tb.find(name);
    if (ib == tb.end()) {
      out.push_back({"table", "dropped", "", name, TableJson(*ia->second), nullptr, ""});
      continue;
    }
    if (ia == ta.end()) {
      out.push_back({"table", "added", "", name, nullptr, TableJson(*ib->second), ""});
      continue;
    }
    const TableInfo& x = *ia->second;
    const TableInfo& y = *ib->second;
    if (x == y) continue;
    // Column order is part of a table (SELECT * and INSERT without names).
    std::vector<std::string> oa, ob;
    for (const auto& c : x.columns) {
      for (const auto& d : y.columns) {
        if (c.name == d.name) oa.push_back(c.name);
      }
    }
    for (const auto& d : y.columns) {
      for (const auto& c : x.columns) {
        if (c.name == d.name) ob.push_back(d.name);
      }
    }
    if (oa != ob) {
      out.push_back({"table", "changed", "", name, TableJson(x), TableJson(y),
                     "column order (" + JoinCols(oa) + ") -> (" + JoinCols(ob) + ")"});
    }
    Compare(x.columns, y.columns, [](const ColumnInfo& c) { return c.name; }, ColumnJson, ColumnDetail, "column",
            name, out);
    Compare(x.indexes, y.indexes, [](const IndexInfo& i) { return i.name; }, IndexJson, IndexDetail, "index", name,
            out);
    Compare(x.uniques, y.uniques, UniqueKey, UniqueJson,
            [](const UniqueInfo& p, const UniqueInfo& q) {
              std::string d;
              AddDetail(d, "name", p.name.empty() ? "none" : p.name, q.name.empty() ? "none" : q.name);
              return d;
            },
            "unique", name, out);
    Compare(x.foreign_keys, y.foreign_keys, FkKey, ForeignKeyJson,
            [](const ForeignKeyInfo& p, const ForeignKeyInfo& q) {
              std::string d;
              AddDetail(d, "name", p.name.empty() ? "none" : p.name, q.name.empty() ? "none" : q.name);
              AddDetail(d, "on delete", p.on_delete, q.on_delete);
              AddDetail(d, "on update", p.on_update, q.on_update);
              return d;
            },
            "foreign_key", name, out);
  }
  Compare(a.views, b.views, [](const ViewInfo& v) { return v.name; },
          [](const ViewInfo& v) { return json{{"name", v.name}, {"sql", v.sql}}; },
          [](const ViewInfo&, const ViewInfo&) { return std::string("definition changed"); }, "view", "", out);
  Compare(a.triggers, b.triggers, [](const TriggerInfo& t) { return t.name; },
          [](const TriggerInfo& t) { return json{{"name", t.name}, {"table", t.table}, {"sql", t.sql}}; },
          [](const TriggerInfo& p, const TriggerInfo& q) {
            std::string d;
            AddDetail(d, "table", p.table, q.table);
            if (p.sql != q.sql) d += std::string(d.empty() ? "" : ", ") + "definition changed";
            return d;
          },
          "trigger", "", out);
  return diff;
}

std::string SchemaDiff::Text() const {
  if (changes.empty()) return "no differences";
  std::string out;
  for (const auto& c : changes) {
    char sign = c.action == "added" ? '+' : c.action == "dropped" ? '-' : '~';
    const json& obj = c.action == "dropped" ? c.before : c.after;
    std::string line;
    if (c.kind == "table") {
      line = fmt::format("{} table {}", sign, c.name);
      if (c.action == "added") {
        std::vector<std::string> cols;
        for (const auto& col : obj["columns"]) cols.push_back(col["name"].get<std::string>());
        line += " (" + JoinCols(cols) + ")";
      }
    } else if (c.kind == "column") {
      line = fmt::format("{} column {}.{}", sign, c.table, c.name);
      if (c.action == "added") {
        ColumnInfo col;
        col.name = c.name;
        col.type = obj["type"].get<std::string>();
        col.not_null = obj["not_null"].get<bool>();
        if (obj["default"].is_string()) col.default_value = obj["default"].get<std::string>();
        col.pk = obj["pk"].get<int>();
        line = fmt::format("+ column {}.{}", c.table, ColumnText(col));
      }
    } else if (c.kind == "index") {
      IndexInfo i;
      i.columns = obj["columns"].get<std::vector<std::string>>();
      i.unique = obj["unique"].get<bool>();
      i.where = obj["where"].get<std::string>();
      line = fmt::format("{} index {} on {}", sign, c.name, c.table);
      if (c.action != "changed") line += " " + IndexText(i);
    } else if (c.kind == "unique") {
      line = fmt::format("{} unique {} {}", sign, c.table, c.name);
    } else if (c.kind == "foreign_key") {
      ForeignKeyInfo f;
      f.columns = obj["columns"].get<std::vector<std::string>>();
      f.ref_table = obj["ref_table"].get<std::string>();
      f.ref_columns = obj["ref_columns"].get<std::vector<std::string>>();
      f.on_delete = obj["on_delete"].get<std::string>();
      f.on_update = obj["on_update"].get<std::string>();
      line = fmt::format("{} foreign key {} {}", sign, c.table, c.action == "changed" ? c.name : FkText(f));
    } else if (c.kind == "view") {
      line = fmt::format("{} view {}", sign, c.name);
    } else {
      line = fmt::format("{} trigger {} on {}", sign, c.name, obj["table"].get<std::string>());
    }
    if (c.action == "changed") line += ": " + c.detail;
    out += line + "\n";
  }
  out.pop_back();
  return out;
}

json SchemaDiff::ToJson() const {
  json added = json::object(), dropped = json::object(), changed = json::object();
  for (const char* k : {"tables", "columns", "indexes", "uniques", "foreign_keys", "views", "triggers"}) {
    added[k] = json::array();
    dropped[k] = json::array();
    changed[k] = json::array();
  }
  json list = json::array();
  for (const auto& c : changes) {
    std::string label = c.kind == "column"                                  ? c.table + "." + c.name
                        : (c.kind == "unique" || c.kind == "foreign_key") ? c.table + c.name
                                                                           : c.name;
    json& bucket = c.action == "added" ? added : c.action == "dropped" ? dropped : changed;
    bucket[Plural(c.kind)].push_back(label);
    list.push_back({{"kind", c.kind},
                    {"action", c.action},
                    {"table", c.table},
                    {"name", c.name},
                    {"before", c.before},
                    {"after", c.after},
                    {"detail", c.detail}});
  }
  return {{"equal", changes.empty()}, {"changes", list}, {"added", added},
          {"dropped", dropped},      {"changed", changed}, {"text", Text()}};
}

}  // namespace hoist::db

#include "db/migrate_classify.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/strings.h"

namespace hoist::db {
namespace {

using json = nlohmann::json;
using C = MigrationClass;

// ---- a small SQL tokenizer: words (upper-cased keywords, unquoted
// identifiers) and punctuation; comments and string literals skipped.
struct Token {
  std::string upper;  // for keyword comparison
  std::string text;   // identifier as written (quotes removed)
  bool quoted = false;
};

std::vector<Token> Tokenize(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      auto end = s.find("*/", i + 2);
      i = end == std::string_view::npos ? s.size() : end + 2;
    } else if (c == '\'') {
      ++i;
      while (i < s.size()) {
        if (s[i] == '\'' && i + 1 < s.size() && s[i + 1] == '\'') {
          i += 2;
        } else if (s[i] == '\'') {
          ++i;
          break;
        } else {
          ++i;
        }
      }
      out.push_back({"'", "'", false});
    } else if (c == '"' || c == '`' || c == '[') {
      char close = c == '[' ? ']' : c;
      std::string ident;
      ++i;
      while (i < s.size()) {
        if (s[i] == close && i + 1 < s.size() && s[i + 1] == close && close != ']') {
          ident += close;
          i += 2;
        } else if (s[i] == close) {
          ++i;
          break;
        } else {
          ident += s[i++];
        }
      }
      std::string up = ident;
      for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      out.push_back({up, ident, true});
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (static_cast<unsigned char>(c) & 0x80)) {
      size_t b = i;
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_' || s[i] == '$' ||
                              (static_cast<unsigned char>(s[i]) & 0x80))) {
        ++i;
      }
      std::string word(s.substr(b, i - b));
      std::string up = word;
      for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      // Unquoted identifiers fold to lower case in PostgreSQL; SQLite keeps
      // them as written but compares without case. Lower case matches both
      // engines' catalogs for the usual unquoted names.
      std::string lower = word;
      for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out.push_back({up, lower, false});
    } else {
      out.push_back({std::string(1, c), std::string(1, c), false});
      ++i;
    }
  }
  return out;
}

bool Is(const std::vector<Token>& t, size_t i, std::string_view word) { return i < t.size() && t[i].upper == word; }

bool Has(const std::vector<Token>& t, std::string_view word) {
  return std::any_of(t.begin(), t.end(), [&](const Token& k) { return !k.quoted && k.upper == word; });
}

// Index just past a possibly qualified name starting at i; *name = its last part.
size_t ReadName(const std::vector<Token>& t, size_t i, std::string* name) {
  if (i >= t.size()) return i;
  *name = t[i].text;
  ++i;
  while (i + 1 < t.size() && t[i].upper == ".") {
    *name = t[i + 1].text;
    i += 2;
  }
  return i;
}

// After "ALTER TABLE [IF EXISTS] [ONLY]": the table and where its actions start.
size_t AlterTableTarget(const std::vector<Token>& t, std::string* table) {
  if (!(Is(t, 0, "ALTER") && Is(t, 1, "TABLE"))) return 0;
  size_t i = 2;
  if (Is(t, i, "IF") && Is(t, i + 1, "EXISTS")) i += 2;
  if (Is(t, i, "ONLY")) ++i;
  return ReadName(t, i, table);
}

struct Rename {
  std::string table;  // for a column rename; the old name for a table rename
  std::string from, to;
  bool column = false;
};

std::optional<Rename> ParseRename(const std::vector<Token>& t) {
  std::string table;
  size_t i = AlterTableTarget(t, &table);
  if (i == 0 || !Is(t, i, "RENAME")) return std::nullopt;
  ++i;
  if (Is(t, i, "TO")) {
    std::string to;
    ReadName(t, i + 1, &to);
    return Rename{table, table, to, false};
  }
  if (Is(t, i, "CONSTRAINT")) return std::nullopt;
  if (Is(t, i, "COLUMN")) ++i;
  if (i + 2 >= t.size() || !Is(t, i + 1, "TO")) return std::nullopt;
  return Rename{table, t[i].text, t[i + 2].text, true};
}

std::string Last(const std::string& qualified) {
  auto dot = qualified.rfind('.');
  return dot == std::string::npos ? qualified : qualified.substr(dot + 1);
}

std::string Lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

bool SameName(const std::string& a, const std::string& b) { return Lower(Last(a)) == Lower(Last(b)); }

ClassifiedChange Make(C cls, std::string what, std::string why, const SchemaChange* ch = nullptr) {
  ClassifiedChange c;
  c.cls = cls;
  c.what = std::move(what);
  c.why = std::move(why);
  if (ch) {
    c.kind = ch->kind;
    c.action = ch->action;
    c.table = ch->table;
    c.name = ch->name;
  }
  return c;
}

const TableInfo* FindTable(const Schema& s, const std::string& name) {
  for (const auto& t : s.tables) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

bool HasColumn(const TableInfo* t, const std::string& col) {
  if (!t) return false;
  return std::any_of(t->columns.begin(), t->columns.end(), [&](const ColumnInfo& c) { return c.name == col; });
}

// Whether any of cols existed in the table before (expressions count as existing).
bool TouchesExisting(const TableInfo* before, const std::vector<std::string>& cols) {
  if (!before) return false;
  for (const auto& c : cols) {
    std::string bare = c;
    for (const char* suffix : {" DESC", " desc", " ASC", " asc"}) {
      if (bare.ends_with(suffix)) bare.resize(bare.size() - std::string_view(suffix).size());
    }
    if (auto sp = bare.find(" COLLATE "); sp != std::string::npos) bare.resize(sp);
    if (auto sp = bare.find(" collate "); sp != std::string::npos) bare.resize(sp);
    if (!bare.empty() && bare.front() == '"' && bare.back() == '"' && bare.size() > 1) bare = bare.substr(1, bare.size() - 2);
    if (HasColumn(before, bare)) return true;
    bool simple = std::all_of(bare.begin(), bare.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || (static_cast<unsigned char>(ch) & 0x80);
    });
    if (!simple) return true;  // an expression over existing columns
  }
  return false;
}

ColumnInfo ColumnFrom(const json& j) {
  ColumnInfo c;
  c.name = j.value("name", "");
  c.type = j.value("type", "");
  c.not_null = j.value("not_null", false);
  if (j.contains("default") && j["default"].is_string()) c.default_value = j["default"].get<std::string>();
  if (j.contains("pk") && j["pk"].is_number_integer()) c.pk = j["pk"].get<int>();
  return c;
}

bool SameDefinition(const ColumnInfo& a, const ColumnInfo& b) {
  return Lower(a.type) == Lower(b.type) && a.not_null == b.not_null && a.default_value == b.default_value &&
         a.pk == b.pk;
}

bool SameColumns(const TableInfo& a, const TableInfo& b) {
  if (a.columns.size() != b.columns.size()) return false;
  for (size_t i = 0; i < a.columns.size(); ++i) {
    if (a.columns[i].name != b.columns[i].name || !SameDefinition(a.columns[i], b.columns[i])) return false;
  }
  return true;
}

void ClassifyColumnChange(const SchemaChange& ch, std::vector<ClassifiedChange>& out) {
  ColumnInfo a = ColumnFrom(ch.before), b = ColumnFrom(ch.after);
  std::string col = ch.table + "." + ch.name;
  if (Lower(a.type) != Lower(b.type)) {
    out.push_back(Make(C::kIncompatible, fmt::format("change type of column {} ({} -> {})", col, a.type, b.type),
                       "the previous version reads and writes the old type", &ch));
  }
  if (!a.not_null && b.not_null) {
    out.push_back(Make(C::kIncompatible, fmt::format("add NOT NULL to existing column {}", col),
                       "the previous version may insert NULL into it", &ch));
  }
  if (a.not_null && !b.not_null) {
    out.push_back(Make(C::kAdditive, fmt::format("drop NOT NULL from column {}", col), "a relaxed constraint", &ch));
  }
  if (a.pk != b.pk) {
    out.push_back(Make(C::kIncompatible, fmt::format("change the primary key at column {}", col),
                       "the previous version's writes and lookups assume the old key", &ch));
  }
  if (a.default_value != b.default_value) {
    if (b.not_null && a.default_value && !b.default_value) {
      out.push_back(Make(C::kIncompatible, fmt::format("drop the default of NOT NULL column {}", col),
                         "the previous version's INSERTs that omit it fail", &ch));
    } else {
      out.push_back(Make(C::kAdditive, fmt::format("change the default of column {}", col),
                         "existing rows and explicit writes are unaffected", &ch));
    }
  }
}

}  // namespace

const char* ClassName(MigrationClass c) {
  switch (c) {
    case C::kAdditive:
      return "additive";
    case C::kIncompatible:
      return "incompatible";
    case C::kDestructive:
      return "destructive";
    case C::kFailsOnData:
      return "fails-on-data";
  }
  return "?";
}

json ClassifiedChange::ToJson() const {
  json j = {{"class", ClassName(cls)}, {"what", what}, {"why", why}};
  if (!kind.empty()) {
    j["kind"] = kind;
    j["action"] = action;
    j["table"] = table;
    j["name"] = name;
  }
  return j;
}

std::string Classification::Summary() const {
  if (changes.empty()) return std::string(ClassName(cls)) + " (no schema change)";
  const auto& c = changes.front();
  return fmt::format("{} ({}: {})", ClassName(cls), c.what, c.why);
}

json Classification::ToJson() const {
  json list = json::array();
  for (const auto& c : changes) list.push_back(c.ToJson());
  return {{"class", ClassName(cls)}, {"changes", list}, {"summary", Summary()}};
}

bool RefusedByExpand(MigrationClass c, const std::string& phase, bool allow_contract) {
  if (c != C::kDestructive && c != C::kIncompatible) return false;
  return !(phase == "contract" && allow_contract);
}

std::string StatementHead(std::string_view sql) {
  // Skip leading comments and blank lines.
  size_t i = 0;
  while (i < sql.size()) {
    while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
    if (sql.substr(i, 2) == "--") {
      auto nl = sql.find('\n', i);
      i = nl == std::string_view::npos ? sql.size() : nl + 1;
    } else if (sql.substr(i, 2) == "/*") {
      auto end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? sql.size() : end + 2;
    } else {
      break;
    }
  }
  auto nl = sql.find('\n', i);
  std::string line(sql.substr(i, nl == std::string_view::npos ? std::string_view::npos : nl - i));
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  bool more = nl != std::string_view::npos && sql.find_first_not_of(" \t\r\n", nl) != std::string_view::npos;
  if (line.size() > 100) {
    line.resize(100);
    while (!line.empty() && (static_cast<unsigned char>(line.back()) & 0xC0) == 0x80) line.pop_back();
    more = true;
  }
  return more ? line + " …" : line;
}

std::optional<ClassifiedChange> ClassifyStatementText(std::string_view sql) {
  auto t = Tokenize(sql);
  if (t.empty()) return std::nullopt;
  std::string name;
  if (Is(t, 0, "TRUNCATE")) {
    size_t i = 1;
    if (Is(t, i, "TABLE")) ++i;
    if (Is(t, i, "ONLY")) ++i;
    ReadName(t, i, &name);
    return Make(C::kDestructive, "truncate " + name, "every row of the table is deleted");
  }
  if (Is(t, 0, "DELETE") && Is(t, 1, "FROM") && !Has(t, "WHERE")) {
    size_t i = 2;
    if (Is(t, i, "ONLY")) ++i;
    ReadName(t, i, &name);
    return Make(C::kDestructive, "delete every row of " + name, "DELETE without WHERE empties the table");
  }
  if (Is(t, 0, "UPDATE") && !Has(t, "WHERE") && Has(t, "SET") && Has(t, "NULL")) {
    size_t i = 1;
    if (Is(t, i, "ONLY")) ++i;
    ReadName(t, i, &name);
    return Make(C::kIncompatible, "set a column of every row of " + name + " to NULL",
                "UPDATE without WHERE erases what the previous version reads there");
  }
  if (Is(t, 0, "DROP")) {
    size_t i = 1;
    if (Is(t, i, "MATERIALIZED")) ++i;
    std::string what = i < t.size() ? t[i].upper : "";
    ++i;
    if (Is(t, i, "CONCURRENTLY")) ++i;
    if (Is(t, i, "IF") && Is(t, i + 1, "EXISTS")) i += 2;
    ReadName(t, i, &name);
    if (what == "TABLE") return Make(C::kDestructive, "drop table " + name, "its data is deleted");
    if (what == "VIEW") return Make(C::kIncompatible, "drop view " + name, "the previous version may query it");
    if (what == "TRIGGER") {
      return Make(C::kIncompatible, "drop trigger " + name, "the previous version may rely on what it does");
    }
    return std::nullopt;
  }
  if (Is(t, 0, "CREATE") && Is(t, 1, "UNIQUE") && Is(t, 2, "INDEX")) {
    return Make(C::kIncompatible, "create a unique index",
                "cannot tell before it runs whether it covers existing columns the previous version writes");
  }
  std::string table;
  size_t i = AlterTableTarget(t, &table);
  if (i == 0) return std::nullopt;
  if (auto r = ParseRename(t)) {
    return r->column ? Make(C::kIncompatible, fmt::format("rename column {}.{} to {}", table, r->from, r->to),
                            "the previous version still uses the old name")
                     : Make(C::kIncompatible, fmt::format("rename table {} to {}", r->from, r->to),
                            "the previous version still uses the old name");
  }
  for (size_t k = i; k < t.size(); ++k) {
    if (t[k].quoted) continue;
    const std::string& w = t[k].upper;
    if (w == "DROP") {
      size_t n = k + 1;
      if (Is(t, n, "CONSTRAINT")) {
        ReadName(t, Is(t, n + 1, "IF") ? n + 3 : n + 1, &name);
        return Make(C::kIncompatible, fmt::format("drop constraint {} of {}", name, table),
                    "the previous version may rely on it");
      }
      if (Is(t, n, "NOT") || Is(t, n, "DEFAULT") || Is(t, n, "IDENTITY") || Is(t, n, "EXPRESSION")) continue;
      if (Is(t, n, "COLUMN")) ++n;
      if (Is(t, n, "IF") && Is(t, n + 1, "EXISTS")) n += 2;
      if (n < t.size()) {
        return Make(C::kDestructive, fmt::format("drop column {}.{}", table, t[n].text), "its data is deleted");
      }
    }
    if (w == "TYPE" || (w == "DATA" && Is(t, k + 1, "TYPE"))) {
      return Make(C::kIncompatible, "change a column type of " + table,
                  "the previous version reads and writes the old type");
    }
    if (w == "SET" && Is(t, k + 1, "NOT") && Is(t, k + 2, "NULL")) {
      return Make(C::kIncompatible, "add NOT NULL to a column of " + table,
                  "the previous version may insert NULL into it");
    }
    if (w == "ADD") {
      size_t n = k + 1;
      if (Is(t, n, "CONSTRAINT")) n += 2;
      if (Is(t, n, "UNIQUE") || Is(t, n, "PRIMARY") || Is(t, n, "FOREIGN") || Is(t, n, "CHECK") ||
          Is(t, n, "EXCLUDE")) {
        return Make(C::kIncompatible, fmt::format("add a {} constraint to {}", Lower(t[n].upper), table),
                    "the previous version's writes may violate it");
      }
    }
  }
  // ADD COLUMN ... NOT NULL without DEFAULT.
  if (Has(t, "ADD") && Has(t, "NOT") && Has(t, "NULL") && !Has(t, "DEFAULT")) {
    return Make(C::kIncompatible, "add a NOT NULL column without a default to " + table,
                "the previous version's INSERTs do not set it and fail");
  }
  return std::nullopt;
}

Classification Classify(const Schema& before, const Schema& after, const SchemaDiff& diff,
                        const std::vector<Statement>& statements) {
  Classification out;
  std::vector<ClassifiedChange>& found = out.changes;
  std::vector<Rename> renames;
  for (const auto& s : statements) {
    auto t = Tokenize(s.sql);
    if (auto r = ParseRename(t)) renames.push_back(*r);
    if (Is(t, 0, "TRUNCATE") || Is(t, 0, "DELETE") || Is(t, 0, "UPDATE")) {
      if (auto c = ClassifyStatementText(s.sql)) found.push_back(*c);
    }
  }
  const auto& changes = diff.changes;
  std::vector<bool> used(changes.size(), false);

  // Renamed tables: a dropped and an added table, named by a RENAME TO in
  // the SQL or with identical columns.
  for (size_t i = 0; i < changes.size(); ++i) {
    const auto& d = changes[i];
    if (used[i] || d.kind != "table" || d.action != "dropped") continue;
    const TableInfo* old_t = FindTable(before, d.name);
    for (size_t j = 0; j < changes.size(); ++j) {
      const auto& a = changes[j];
      if (used[j] || a.kind != "table" || a.action != "added") continue;
      const TableInfo* new_t = FindTable(after, a.name);
      bool by_sql = std::any_of(renames.begin(), renames.end(), [&](const Rename& r) {
        return !r.column && SameName(r.from, d.name) && SameName(r.to, a.name);
      });
      bool by_shape = old_t && new_t && SameColumns(*old_t, *new_t);
      if (by_sql || by_shape) {
        used[i] = used[j] = true;
        found.push_back(Make(C::kIncompatible, fmt::format("rename table {} to {}", d.name, a.name),
                             "the previous version still uses the old name", &d));
        break;
      }
    }
  }
  // Renamed columns within one table.
  for (size_t i = 0; i < changes.size(); ++i) {
    const auto& d = changes[i];
    if (used[i] || d.kind != "column" || d.action != "dropped") continue;
    ColumnInfo old_c = ColumnFrom(d.before);
    for (size_t j = 0; j < changes.size(); ++j) {
      const auto& a = changes[j];
      if (used[j] || a.kind != "column" || a.action != "added" || a.table != d.table) continue;
      ColumnInfo new_c = ColumnFrom(a.after);
      bool by_sql = std::any_of(renames.begin(), renames.end(), [&](const Rename& r) {
        return r.column && SameName(r.table, d.table) && SameName(r.from, d.name) && SameName(r.to, a.name);
      });
      if (by_sql || SameDefinition(old_c, new_c)) {
        used[i] = used[j] = true;
        found.push_back(Make(C::kIncompatible, fmt::format("rename column {}.{} to {}", d.table, d.name, a.name),
                             "the previous version still uses the old name", &d));
        break;
      }
    }
  }

  for (size_t i = 0; i < changes.size(); ++i) {
    if (used[i]) continue;
    const auto& ch = changes[i];
    const TableInfo* old_t = FindTable(before, ch.table);
    const std::string& k = ch.kind;
    const std::string& act = ch.action;
    std::string on = ch.table.empty() ? "" : " on " + ch.table;
    if (k == "table") {
      if (act == "added") {
        found.push_back(Make(C::kAdditive, "create table " + ch.name, "the previous version ignores it", &ch));
      } else if (act == "dropped") {
        found.push_back(Make(C::kDestructive, "drop table " + ch.name, "its data is deleted", &ch));
      } else {
        found.push_back(Make(C::kIncompatible, fmt::format("reorder the columns of {} ({})", ch.name, ch.detail),
                             "the previous version's SELECT * and INSERTs without column names see another order",
                             &ch));
      }
    } else if (k == "column") {
      std::string col = ch.table + "." + ch.name;
      if (act == "added") {
        ColumnInfo c = ColumnFrom(ch.after);
        if (c.not_null && !c.default_value) {
          found.push_back(Make(C::kIncompatible, fmt::format("add NOT NULL column {} without a default", col),
                               "the previous version's INSERTs do not set it and fail", &ch));
        } else {
          found.push_back(Make(C::kAdditive, fmt::format("add column {}", col),
                               c.not_null ? "NOT NULL with a default: the previous version's INSERTs still work"
                                          : "nullable: the previous version's INSERTs still work",
                               &ch));
        }
      } else if (act == "dropped") {
        found.push_back(Make(C::kDestructive, "drop column " + col,
                             "its data is deleted, and the previous version still reads it", &ch));
      } else {
        ClassifyColumnChange(ch, found);
      }
    } else if (k == "index") {
      const json& obj = act == "dropped" ? ch.before : ch.after;
      bool unique = obj.value("unique", false);
      auto cols = obj.value("columns", std::vector<std::string>{});
      if (act == "added") {
        if (unique && TouchesExisting(old_t, cols)) {
          found.push_back(Make(C::kIncompatible, fmt::format("add unique index {}{} ({})", ch.name, on, Join(cols, ", ")),
                               "UNIQUE on existing columns: the previous version may insert duplicates", &ch));
        } else {
          found.push_back(Make(C::kAdditive, fmt::format("create {}index {}{}", unique ? "unique " : "", ch.name, on),
                               unique ? "unique over new columns only" : "queries are unaffected", &ch));
        }
      } else if (act == "dropped") {
        if (unique) {
          found.push_back(Make(C::kIncompatible, fmt::format("drop unique index {}{}", ch.name, on),
                               "the previous version's upserts (ON CONFLICT) and assumptions may rely on it", &ch));
        } else {
          found.push_back(Make(C::kAdditive, fmt::format("drop index {}{}", ch.name, on),
                               "no data is lost; only query plans change", &ch));
        }
      } else {
        bool was_unique = ch.before.value("unique", false);
        if (unique && !was_unique && TouchesExisting(old_t, cols)) {
          found.push_back(Make(C::kIncompatible, fmt::format("make index {}{} unique", ch.name, on),
                               "UNIQUE on existing columns: the previous version may insert duplicates", &ch));
        } else {
          found.push_back(Make(C::kAdditive, fmt::format("change index {}{} ({})", ch.name, on, ch.detail),
                               "queries are unaffected", &ch));
        }
      }
    } else if (k == "unique") {
      auto cols = (act == "dropped" ? ch.before : ch.after).value("columns", std::vector<std::string>{});
      if (act == "added") {
        if (TouchesExisting(old_t, cols)) {
          found.push_back(Make(C::kIncompatible, fmt::format("add UNIQUE ({}){}", Join(cols, ", "), on),
                               "UNIQUE on existing columns: the previous version may insert duplicates", &ch));
        } else {
          found.push_back(Make(C::kAdditive, fmt::format("add UNIQUE ({}){}", Join(cols, ", "), on),
                               "over new columns only", &ch));
        }
      } else if (act == "dropped") {
        found.push_back(Make(C::kIncompatible, fmt::format("drop UNIQUE ({}){}", Join(cols, ", "), on),
                             "the previous version's upserts (ON CONFLICT) may rely on it", &ch));
      } else {
        found.push_back(Make(C::kAdditive, fmt::format("rename UNIQUE ({}){}", Join(cols, ", "), on), ch.detail, &ch));
      }
    } else if (k == "foreign_key") {
      auto cols = (act == "dropped" ? ch.before : ch.after).value("columns", std::vector<std::string>{});
      if (act == "added") {
        if (TouchesExisting(old_t, cols)) {
          found.push_back(Make(C::kIncompatible, fmt::format("add foreign key {}{}", ch.name, on),
                               "the previous version's writes may violate it", &ch));
        } else {
          found.push_back(Make(C::kAdditive, fmt::format("add foreign key {}{}", ch.name, on),
                               "over new columns only", &ch));
        }
      } else if (act == "dropped") {
        found.push_back(Make(C::kAdditive, fmt::format("drop foreign key {}{}", ch.name, on),
                             "a relaxed constraint", &ch));
      } else {
        found.push_back(Make(C::kIncompatible, fmt::format("change foreign key {}{} ({})", ch.name, on, ch.detail),
                             "deletes and updates behave differently for the previous version", &ch));
      }
    } else if (k == "view") {
      if (act == "added") {
        found.push_back(Make(C::kAdditive, "create view " + ch.name, "the previous version ignores it", &ch));
      } else if (act == "dropped") {
        found.push_back(Make(C::kIncompatible, "drop view " + ch.name, "the previous version may query it", &ch));
      } else {
        found.push_back(Make(C::kIncompatible, "redefine view " + ch.name,
                             "the previous version's queries of it may see other columns or rows", &ch));
      }
    } else if (k == "trigger") {
      if (act == "added") {
        found.push_back(Make(C::kAdditive, "create trigger " + ch.name, "runs on the previous version's writes too",
                             &ch));
      } else if (act == "dropped") {
        found.push_back(Make(C::kIncompatible, "drop trigger " + ch.name,
                             "the previous version may rely on what it does", &ch));
      } else {
        found.push_back(Make(C::kIncompatible, "redefine trigger " + ch.name,
                             "the previous version may rely on what it did", &ch));
      }
    }
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const ClassifiedChange& a, const ClassifiedChange& b) { return a.cls > b.cls; });
  if (!found.empty()) out.cls = found.front().cls;
  return out;
}

std::vector<std::pair<std::string, int>> DroppedTables(const std::vector<Statement>& statements) {
  std::vector<std::pair<std::string, int>> out;
  for (size_t k = 0; k < statements.size(); ++k) {
    auto t = Tokenize(statements[k].sql);
    if (!Is(t, 0, "DROP") || !Is(t, 1, "TABLE")) continue;
    size_t i = 2;
    if (Is(t, i, "IF") && Is(t, i + 1, "EXISTS")) i += 2;
    std::string name;
    ReadName(t, i, &name);
    if (!name.empty()) out.emplace_back(name, static_cast<int>(k));
  }
  return out;
}

int CheckRowsSurvived(Classification& cls, const std::vector<std::pair<std::string, int>>& dropped,
                      const std::map<std::string, int64_t>& before, const std::map<std::string, int64_t>& after) {
  int first = -1;
  for (const auto& [name, index] : dropped) {
    auto b = before.find(name);
    auto a = after.find(name);
    if (b == before.end() || a == after.end() || a->second >= b->second) continue;
    cls.changes.insert(cls.changes.begin(),
                       Make(C::kDestructive,
                            fmt::format("table {} dropped and recreated: {} rows before, {} after", name, b->second,
                                        a->second),
                            "its rows were not copied into the new table"));
    cls.cls = C::kDestructive;
    if (first < 0) first = index;
  }
  return first;
}

}  // namespace hoist::db

#include "db/migrate_fk.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>
#include <variant>
#include <vector>

#include <fmt/format.h>

namespace hoist::db {
namespace {

bool IsSqlite(const Connection& c) { return c.url().engine == Engine::kSqlite; }

std::string Text(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  return "?";
}

// "x", `x`, [x] or x, lowercased.
std::string Ident(std::string s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '`' || s.front() == '[')) s = s.substr(1, s.size() - 2);
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

ForeignKeysOff::ForeignKeysOff(Connection& c, bool legacy_rename) : c_(c) {
  if (!IsSqlite(c)) return;
  auto r = c.Query("PRAGMA foreign_keys");
  was_on_ = !r.rows.empty() && !r.rows[0].empty() && std::holds_alternative<int64_t>(r.rows[0][0]) &&
            std::get<int64_t>(r.rows[0][0]) == 1;
  if (was_on_) c.Exec("PRAGMA foreign_keys = OFF");
  if (legacy_rename) {
    c.Exec("PRAGMA legacy_alter_table = ON");
    legacy_ = true;
  }
}

ForeignKeysOff::~ForeignKeysOff() {
  try {
    if (legacy_) c_.Exec("PRAGMA legacy_alter_table = OFF");
    if (was_on_) c_.Exec("PRAGMA foreign_keys = ON");
  } catch (...) {
    // A closed or broken connection: nothing left to protect.
  }
}

std::map<std::string, int64_t> CountRows(Connection& c, const std::vector<std::pair<std::string, int>>& tables) {
  std::map<std::string, int64_t> out;
  if (tables.empty()) return out;
  // Only tables that exist: a failed query would abort a PostgreSQL transaction.
  std::set<std::string> present;
  for (auto t : c.Tables()) {
    if (auto dot = t.rfind('.'); dot != std::string::npos) t = t.substr(dot + 1);
    present.insert(t);
  }
  for (const auto& [name, index] : tables) {
    (void)index;
    if (out.count(name) || !present.count(name)) continue;
    std::string quoted = "\"";
    for (char ch : name) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    quoted += "\"";
    auto r = c.Query("SELECT count(*) FROM " + quoted);
    if (!r.rows.empty() && !r.rows[0].empty() && std::holds_alternative<int64_t>(r.rows[0][0])) {
      out[name] = std::get<int64_t>(r.rows[0][0]);
    }
  }
  return out;
}

std::map<std::string, int64_t> TableOids(Connection& c) {
  std::map<std::string, int64_t> out;
  if (IsSqlite(c)) return out;
  auto r = c.Query("SELECT c.relname, c.oid::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()");
  for (const auto& row : r.rows) {
    if (row.size() == 2 && std::holds_alternative<int64_t>(row[1])) out[Text(row[0])] = std::get<int64_t>(row[1]);
  }
  return out;
}

std::vector<std::string> RecreatedTables(const std::map<std::string, int64_t>& before,
                                         const std::map<std::string, int64_t>& after,
                                         const std::vector<std::pair<std::string, int>>& known) {
  std::vector<std::string> out;
  for (const auto& [name, oid] : before) {
    auto a = after.find(name);
    if (a == after.end() || a->second == oid) continue;
    bool named = std::any_of(known.begin(), known.end(), [&](const auto& k) { return k.first == name; });
    if (!named) out.push_back(name);
  }
  return out;
}

void RunMeasuringDrops(Connection& c, std::vector<std::pair<std::string, int>>& dropped,
                       std::map<std::string, int64_t>& rows_before,
                       const std::function<void(const StatementHook&)>& body) {
  if (IsSqlite(c)) {
    body(nullptr);
    return;
  }
  const auto oids = TableOids(c);
  std::vector<std::string> hidden;
  struct Remeasure {};
  try {
    c.Tx([&] {
      body(nullptr);
      hidden = RecreatedTables(oids, TableOids(c), dropped);
      if (!hidden.empty()) throw Remeasure{};
    });
    return;
  } catch (const Remeasure&) {
  }
  // Back at the savepoint, the old tables exist again: count them, then
  // run the body once more (the rare case: a DO block, a function, Lua).
  std::vector<std::pair<std::string, int>> extra;
  for (const auto& name : hidden) extra.emplace_back(name, -1);
  for (const auto& [name, n] : CountRows(c, extra)) rows_before[name] = n;
  body([&](int i) {
    auto now = TableOids(c);
    for (auto& [name, index] : extra) {
      auto it = now.find(name);
      if (index < 0 && (it == now.end() || it->second != oids.at(name))) index = i;
    }
  });
  dropped.insert(dropped.end(), extra.begin(), extra.end());
  std::stable_sort(dropped.begin(), dropped.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
}

bool RenameAsideRebuild(const std::vector<Statement>& statements) {
  static const std::string kName = R"(("[^"]+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_$]*))";
  static const std::regex kRename("\\bALTER\\s+TABLE\\s+(?:[A-Za-z_]+\\.)?" + kName + "\\s+RENAME\\s+TO\\s+" + kName,
                                  std::regex::icase);
  static const std::regex kDrop("\\bDROP\\s+TABLE\\s+(?:IF\\s+EXISTS\\s+)?(?:[A-Za-z_]+\\.)?" + kName, std::regex::icase);
  std::set<std::string> aside;
  for (const auto& st : statements) {
    std::smatch m;
    if (std::regex_search(st.sql, m, kRename)) {
      aside.insert(Ident(m[2]));
    } else if (std::regex_search(st.sql, m, kDrop) && aside.count(Ident(m[1]))) {
      return true;
    }
  }
  return false;
}

std::string ForeignKeyViolations(Connection& c) {
  if (!IsSqlite(c)) return "";
  auto r = c.Query("PRAGMA foreign_key_check");
  if (r.rows.empty()) return "";
  std::vector<std::string> shown;
  for (size_t i = 0; i < r.rows.size() && i < 5; ++i) {
    const auto& row = r.rows[i];  // table, rowid, parent, fkid
    std::string rowid = row.size() > 1 && std::holds_alternative<int64_t>(row[1])
                            ? "rowid " + std::to_string(std::get<int64_t>(row[1]))
                            : std::string("a row");
    shown.push_back(fmt::format("{} {} references a missing row of {}", row.empty() ? "?" : Text(row[0]), rowid,
                                row.size() > 2 ? Text(row[2]) : "?"));
  }
  return fmt::format("PRAGMA foreign_key_check found {} row{} violating foreign keys ({}{})", r.rows.size(),
                     r.rows.size() == 1 ? "" : "s", fmt::join(shown, "; "), r.rows.size() > shown.size() ? "; ..." : "");
}

}  // namespace hoist::db

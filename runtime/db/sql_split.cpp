#include "db/sql_split.h"

#include <cctype>

#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"

namespace hoist::db {
namespace {

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; }

bool StartsWithWordCi(std::string_view s, size_t i, std::string_view word) {
  if (i == std::string_view::npos || i + word.size() > s.size()) return false;
  for (size_t k = 0; k < word.size(); ++k) {
    if (std::toupper(static_cast<unsigned char>(s[i + k])) != word[k]) return false;
  }
  bool left_ok = i == 0 || !IsWordChar(s[i - 1]);
  bool right_ok = i + word.size() == s.size() || !IsWordChar(s[i + word.size()]);
  return left_ok && right_ok;
}

[[noreturn]] void Unterminated(const char* what, int line) {
  throw Error("migrate", "invalid", fmt::format("unterminated {} starting on line {}", what, line));
}

}  // namespace

std::vector<Statement> SplitSql(std::string_view s, Dialect dialect) {
  std::vector<Statement> out;
  size_t start = 0;       // start of the current statement
  int line = 1;           // current line
  int start_line = 1;     // line where the current statement's first token is
  bool seen_token = false;
  int depth = 0;          // BEGIN/CASE ... END nesting inside a body
  bool in_trigger = false;
  std::vector<std::string> words;  // first words of the statement (upper-case)

  auto flush = [&](size_t end) {
    std::string sql = Trim(s.substr(start, end - start));
    if (seen_token && !sql.empty()) out.push_back({std::move(sql), start_line});
    start = end + 1;
    seen_token = false;
    depth = 0;
    in_trigger = false;
    words.clear();
  };

  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '\n') {
      ++line;
      ++i;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    // Comments.
    if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      int open_line = line;
      i += 2;
      int nest = 1;  // PostgreSQL nests block comments; SQLite does not, harmless
      while (i < s.size() && nest > 0) {
        if (s[i] == '\n') ++line;
        if (dialect == Dialect::kPostgres && s[i] == '/' && i + 1 < s.size() && s[i + 1] == '*') {
          ++nest;
          i += 2;
        } else if (s[i] == '*' && i + 1 < s.size() && s[i + 1] == '/') {
          --nest;
          i += 2;
        } else {
          ++i;
        }
      }
      if (nest > 0) Unterminated("block comment", open_line);
      continue;
    }
    if (!seen_token) {
      // Comments before a statement's first token are not part of it.
      seen_token = true;
      start_line = line;
      start = i;
    }
    // Strings and quoted identifiers ('' and "" escape themselves).
    if (c == '\'' || c == '"' || (dialect == Dialect::kSqlite && (c == '`' || c == '['))) {
      char close = c == '[' ? ']' : c;
      int open_line = line;
      ++i;
      while (true) {
        if (i >= s.size()) Unterminated(c == '\'' ? "string" : "quoted identifier", open_line);
        if (s[i] == '\n') ++line;
        if (s[i] == close) {
          if (close != ']' && i + 1 < s.size() && s[i + 1] == close) {
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        ++i;
      }
      continue;
    }
    // PostgreSQL dollar quoting: $$...$$ or $tag$...$tag$.
    if (dialect == Dialect::kPostgres && c == '$' && (i == 0 || !IsWordChar(s[i - 1]))) {
      size_t j = i + 1;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      if (j < s.size() && s[j] == '$' && !(j > i + 1 && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
        std::string tag(s.substr(i, j - i + 1));
        int open_line = line;
        size_t close = s.find(tag, j + 1);
        if (close == std::string_view::npos) Unterminated("dollar-quoted string", open_line);
        for (size_t k = i; k < close; ++k) line += s[k] == '\n';
        i = close + tag.size();
        continue;
      }
    }
    if (c == ';') {
      if (depth == 0) {
        flush(i);
      }
      ++i;
      continue;
    }
    if (IsWordChar(c)) {
      size_t j = i;
      while (j < s.size() && IsWordChar(s[j])) ++j;
      std::string word(s.substr(i, j - i));
      for (auto& ch : word) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (words.size() < 4) {
        words.push_back(word);
        // CREATE [TEMP|TEMPORARY] TRIGGER: its body may hold ';'.
        if (dialect == Dialect::kSqlite && word == "TRIGGER" && words.size() >= 2 && words[0] == "CREATE") {
          in_trigger = true;
        }
      }
      if (in_trigger) {
        if (word == "BEGIN" || word == "CASE") ++depth;
        if (word == "END" && depth > 0) --depth;
      } else if (dialect == Dialect::kPostgres) {
        // SQL-standard function bodies: BEGIN ATOMIC ... END.
        if (word == "BEGIN" && StartsWithWordCi(s, s.find_first_not_of(" \t\r\n", j), "ATOMIC")) {
          ++depth;
        } else if (depth > 0 && word == "CASE") {
          ++depth;
        } else if (depth > 0 && word == "END") {
          --depth;
        }
      }
      i = j;
      continue;
    }
    ++i;
  }
  flush(s.size());
  return out;
}

}  // namespace hoist::db

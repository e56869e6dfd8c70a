#include "db/migration_files.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"
#include "sys/fs.h"
#include "sys/sha256.h"

namespace hoist::db {
namespace {

[[noreturn]] void Invalid(const std::string& where, const std::string& msg) {
  throw Error("migrate", "invalid", where + ": " + msg);
}

std::string FileName(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A line's trailing blanks, and the CR of a CRLF file.
constexpr std::string_view kLineEnd = " \t\r";

// A header line without its surrounding blanks.
std::string TrimLine(std::string_view s) { return TrimRight(TrimLeft(s, " \t"), kLineEnd); }

// "0003_add_email.sql" -> version 3, name "add_email", kind "sql".
bool ParseName(const std::string& file, int64_t* version, std::string* name, std::string* kind) {
  auto dot = file.find_last_of('.');
  if (dot == std::string::npos) return false;
  *kind = file.substr(dot + 1);
  std::string stem = file.substr(0, dot);
  size_t i = 0;
  while (i < stem.size() && stem[i] >= '0' && stem[i] <= '9') ++i;
  if (i == 0 || i > 18 || i >= stem.size() || stem[i] != '_' || i + 1 == stem.size()) return false;
  for (size_t k = i + 1; k < stem.size(); ++k) {
    char c = stem[k];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  *version = std::stoll(stem.substr(0, i));
  *name = stem.substr(i + 1);
  return true;
}

// "-- hoist:phase contract" / "-- hoist:no-transaction" in the comment lines
// that open a Lua migration (the returned table may say the same).
void ParseLuaHeader(MigrationFile& m) {
  int line_no = 0;
  size_t i = 0;
  const std::string& src = m.source;
  while (i < src.size()) {
    size_t nl = src.find('\n', i);
    if (nl == std::string::npos) nl = src.size();
    std::string t = TrimLine(std::string_view(src).substr(i, nl - i));
    ++line_no;
    i = nl + 1;
    if (t.empty()) continue;
    if (t.rfind("--", 0) != 0 || t.rfind("--[[", 0) == 0) break;
    std::string body = TrimLine(std::string_view(t).substr(2));
    if (body.rfind("hoist:", 0) != 0) continue;
    std::string directive = body.substr(6), arg;
    if (auto sp = directive.find_first_of(" \t"); sp != std::string::npos) {
      arg = TrimLine(std::string_view(directive).substr(sp));
      directive = directive.substr(0, sp);
    }
    std::string where = fmt::format("{}:{}", m.file, line_no);
    if (directive == "phase") {
      if (arg != "expand" && arg != "contract") {
        Invalid(where, fmt::format("unknown phase '{}' (expected expand or contract)", arg));
      }
      m.phase = arg;
    } else if (directive == "no-transaction") {
      m.no_transaction = true;
    } else {
      Invalid(where, fmt::format("unknown annotation '-- hoist:{}' in a Lua migration (expected phase, "
                                 "no-transaction)",
                                 directive));
    }
  }
}

}  // namespace

std::string NormalizedChecksum(std::string_view text) {
  std::string norm;
  norm.reserve(text.size());
  std::string line;
  size_t i = 0;
  std::vector<std::string> lines;
  while (i <= text.size()) {
    size_t nl = text.find_first_of("\r\n", i);
    if (nl == std::string_view::npos) nl = text.size();
    lines.push_back(TrimRight(text.substr(i, nl - i), kLineEnd));
    if (nl < text.size() && text[nl] == '\r' && nl + 1 < text.size() && text[nl + 1] == '\n') ++nl;
    i = nl + 1;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (const auto& l : lines) {
    norm += l;
    norm += '\n';
  }
  return sys::Sha256Hex(norm);
}

MigrationFile ParseSqlMigration(const std::string& path, std::string source) {
  MigrationFile m;
  m.path = path;
  m.file = FileName(path);
  m.kind = "sql";
  if (!ParseName(m.file, &m.version, &m.name, &m.kind) || m.kind != "sql") {
    Invalid(m.file, "a migration is named NNNN_name.sql (digits, '_', then letters, digits, '_' or '-')");
  }
  enum class Section { kHeader, kUp, kDown } section = Section::kHeader;
  std::string header_sql;
  int line_no = 0;
  size_t i = 0;
  bool saw_up = false;
  while (i < source.size()) {
    size_t nl = source.find('\n', i);
    if (nl == std::string::npos) nl = source.size();
    // Sections keep their lines as written: a trailing blank inside a string
    // literal that spans lines is data (diesel, psql and sqlite3 keep it).
    std::string_view line = std::string_view(source).substr(i, nl - i);
    ++line_no;
    i = nl + 1;
    std::string t = TrimLine(line);
    std::string where = fmt::format("{}:{}", m.file, line_no);
    if (t.rfind("--", 0) == 0) {
      std::string body = TrimLine(std::string_view(t).substr(2));
      if (body.rfind("hoist:", 0) == 0) {
        std::string directive = body.substr(6);
        std::string arg;
        if (auto sp = directive.find_first_of(" \t"); sp != std::string::npos) {
          arg = TrimLine(std::string_view(directive).substr(sp));
          directive = directive.substr(0, sp);
        }
        if (directive == "up") {
          if (saw_up) Invalid(where, "a second '-- hoist:up' section");
          if (section == Section::kDown) Invalid(where, "'-- hoist:up' must come before '-- hoist:down'");
          section = Section::kUp;
          saw_up = true;
          m.up_line = line_no + 1;
          continue;
        }
        if (directive == "down") {
          if (!saw_up) Invalid(where, "'-- hoist:down' before any '-- hoist:up' section");
          if (m.has_down) Invalid(where, "a second '-- hoist:down' section");
          section = Section::kDown;
          m.has_down = true;
          m.down_line = line_no + 1;
          continue;
        }
        if (directive == "phase") {
          if (section != Section::kHeader) Invalid(where, "'-- hoist:phase' belongs in the header, before '-- hoist:up'");
          if (arg != "expand" && arg != "contract") {
            Invalid(where, fmt::format("unknown phase '{}' (expected expand or contract)", arg));
          }
          m.phase = arg;
          continue;
        }
        if (directive == "no-transaction") {
          if (section != Section::kHeader) {
            Invalid(where, "'-- hoist:no-transaction' belongs in the header, before '-- hoist:up'");
          }
          m.no_transaction = true;
          continue;
        }
        Invalid(where, fmt::format("unknown annotation '-- hoist:{}' (expected up, down, phase, no-transaction)",
                                   directive));
      }
    }
    std::string* target = section == Section::kUp ? &m.up : section == Section::kDown ? &m.down : &header_sql;
    *target += line;
    *target += '\n';
  }
  if (!saw_up) {
    // A plain SQL file with no sections is all "up" (and has no down).
    if (m.has_down) Invalid(m.file, "'-- hoist:down' without '-- hoist:up'");
    m.up = header_sql;
    m.up_line = 1;
  } else if (!TrimLine(header_sql).empty()) {
    bool only_comments = true;
    size_t k = 0;
    while (k < header_sql.size()) {
      size_t nl = header_sql.find('\n', k);
      std::string l = TrimLine(std::string_view(header_sql).substr(k, nl - k));
      if (!l.empty() && l.rfind("--", 0) != 0) only_comments = false;
      k = nl + 1;
    }
    if (!only_comments) Invalid(m.file, "SQL before '-- hoist:up' would never run: move it into the up section");
  }
  m.checksum = NormalizedChecksum(source);
  m.source = std::move(source);
  return m;
}

std::vector<MigrationFile> LoadMigrationDir(const std::string& dir) {
  if (!sys::StatPath(dir).exists) {
    throw Error("migrate", "not_found", "migrations directory " + dir + " does not exist");
  }
  std::vector<MigrationFile> out;
  std::map<int64_t, std::string> seen;
  for (const auto& file : sys::ListDir(dir)) {
    bool sql = file.size() > 4 && file.ends_with(".sql");
    bool lua = file.size() > 4 && file.ends_with(".lua");
    if (!sql && !lua) continue;
    std::string path = dir + "/" + file;
    MigrationFile m;
    if (sql) {
      m = ParseSqlMigration(path, sys::ReadFile(path));
    } else {
      m.path = path;
      m.file = file;
      if (!ParseName(file, &m.version, &m.name, &m.kind)) {
        Invalid(file, "a migration is named NNNN_name.lua (digits, '_', then letters, digits, '_' or '-')");
      }
      m.source = sys::ReadFile(path);
      ParseLuaHeader(m);
      m.checksum = NormalizedChecksum(m.source);
    }
    if (auto it = seen.find(m.version); it != seen.end()) {
      throw Error("migrate", "invalid",
                  fmt::format("{} and {} have the same version {}: renumber one of them", it->second, file, m.version));
    }
    seen[m.version] = file;
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.version < b.version; });
  return out;
}

}  // namespace hoist::db

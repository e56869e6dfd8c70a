#include "net/tar.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"
#include "sys/fs.h"

namespace hoist::net {
namespace {

constexpr size_t kBlock = 512;

[[noreturn]] void Corrupt(const std::string& why) { throw Error("tar", "invalid", "corrupt tar archive: " + why); }

void PutString(char* field, size_t width, std::string_view s) { std::memcpy(field, s.data(), std::min(width, s.size())); }

void PutOctal(char* field, size_t width, uint64_t value) {
  // width-1 digits, zero padded, NUL terminated (what GNU tar and Go write).
  std::string digits = fmt::format("{:0{}o}", value, width - 1);
  if (digits.size() > width - 1) throw Error("tar", "invalid", fmt::format("value {} too large for a tar header", value));
  std::memcpy(field, digits.data(), width - 1);
  field[width - 1] = '\0';
}

uint64_t GetNumber(const char* field, size_t width) {
  auto u = reinterpret_cast<const unsigned char*>(field);
  if (u[0] & 0x80) {  // GNU base-256 for large values
    uint64_t v = u[0] & 0x7f;
    for (size_t i = 1; i < width; ++i) v = (v << 8) | u[i];
    return v;
  }
  uint64_t v = 0;
  size_t i = 0;
  while (i < width && (field[i] == ' ' || field[i] == '\0')) ++i;
  for (; i < width && field[i] >= '0' && field[i] <= '7'; ++i) v = v * 8 + static_cast<uint64_t>(field[i] - '0');
  return v;
}

std::string GetString(const char* field, size_t width) { return std::string(field, strnlen(field, width)); }

unsigned Checksum(const char* header) {
  unsigned sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(header[i]);
  }
  return sum;
}

struct Header {
  char bytes[kBlock];
};

Header MakeHeader(std::string_view name, std::string_view prefix, char type, uint32_t mode, uint64_t size,
                  int64_t mtime, std::string_view link) {
  Header h;
  std::memset(h.bytes, 0, kBlock);
  PutString(h.bytes + 0, 100, name);
  PutOctal(h.bytes + 100, 8, mode & 07777);
  PutOctal(h.bytes + 108, 8, 0);
  PutOctal(h.bytes + 116, 8, 0);
  PutOctal(h.bytes + 124, 12, size);
  PutOctal(h.bytes + 136, 12, static_cast<uint64_t>(std::max<int64_t>(mtime, 0)));
  h.bytes[156] = type;
  PutString(h.bytes + 157, 100, link);
  std::memcpy(h.bytes + 257, "ustar\0" "00", 8);
  PutString(h.bytes + 265, 32, "root");
  PutString(h.bytes + 297, 32, "root");
  PutString(h.bytes + 345, 155, prefix);
  // The checksum field: six octal digits, NUL, space.
  std::string sum = fmt::format("{:06o}", Checksum(h.bytes));
  std::memcpy(h.bytes + 148, sum.data(), 6);
  h.bytes[154] = '\0';
  h.bytes[155] = ' ';
  return h;
}

void Pad(std::string& out) { out.append((kBlock - out.size() % kBlock) % kBlock, '\0'); }

/// "<len> key=value\n" where len counts the whole record, itself included.
std::string PaxRecord(std::string_view key, std::string_view value) {
  size_t body = 1 + key.size() + 1 + value.size() + 1;  // ' ' key '=' value '\n'
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  return fmt::format("{} {}={}\n", len, key, value);
}

void AppendEntry(std::string& out, std::string path, char type, uint32_t mode, const std::string& data,
                 const std::string& link, int64_t mtime) {
  if (type == '5') path += '/';
  std::string name = path, prefix;
  if (name.size() > 100) {
    // ustar: split at a '/' into prefix (<= 155) and name (<= 100).
    bool split = false;
    for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
      if (slash <= 155 && path.size() - slash - 1 <= 100 && slash + 1 < path.size()) {
        prefix = path.substr(0, slash);
        name = path.substr(slash + 1);
        split = true;
        break;
      }
    }
    if (!split) {
      std::string records = PaxRecord("path", path);
      Header pax = MakeHeader("PaxHeaders/" + path.substr(0, 80), "", 'x', 0644, records.size(), mtime, "");
      out.append(pax.bytes, kBlock);
      out += records;
      Pad(out);
      name = path.substr(0, 100);
      prefix.clear();
    }
  }
  if (link.size() > 100) {
    std::string records = PaxRecord("linkpath", link);
    Header pax = MakeHeader("PaxHeaders/link", "", 'x', 0644, records.size(), mtime, "");
    out.append(pax.bytes, kBlock);
    out += records;
    Pad(out);
  }
  Header h = MakeHeader(name, prefix, type, mode, type == '0' ? data.size() : 0, mtime, link.substr(0, 100));
  out.append(h.bytes, kBlock);
  if (type == '0') {
    out += data;
    Pad(out);
  }
}

bool UnsafePath(std::string_view p) {
  if (p.empty() || p.front() == '/') return true;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    if (p.substr(start, end - start) == "..") return true;
    start = end + 1;
  }
  return false;
}

std::string Normalize(std::string p) {
  while (p.starts_with("./")) p.erase(0, 2);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

std::string WriteTar(const std::vector<TarEntry>& entries) {
  std::string out;
  for (const auto& e : entries) {
    std::string path = Normalize(e.path);
    if (path.empty() || path == "." || path.front() == '/') {
      throw Error("tar", "invalid", "tar entry needs a relative path, got \"" + e.path + "\"");
    }
    if (e.type != '0' && e.type != '5' && e.type != '2') {
      throw Error("tar", "invalid", fmt::format("cannot write tar entry type '{}' for {}", e.type, path));
    }
    AppendEntry(out, path, e.type, e.mode, e.data, e.link, e.mtime);
  }
  out.append(2 * kBlock, '\0');
  return out;
}

std::vector<TarEntry> ReadTar(std::string_view archive) {
  std::vector<TarEntry> entries;
  std::string long_name, long_link;
  size_t pos = 0;
  while (pos + kBlock <= archive.size()) {
    const char* h = archive.data() + pos;
    if (std::all_of(h, h + kBlock, [](char c) { return c == '\0'; })) return entries;
    if (GetNumber(h + 148, 8) != Checksum(h)) Corrupt(fmt::format("bad header checksum at offset {}", pos));
    uint64_t size = GetNumber(h + 124, 12);
    char type = h[156];
    pos += kBlock;
    if (size > archive.size() - pos) Corrupt(fmt::format("entry at offset {} is truncated", pos - kBlock));
    std::string_view data = archive.substr(pos, size);
    pos += (size + kBlock - 1) / kBlock * kBlock;

    if (type == 'x') {  // PAX extended header for the next entry
      size_t p = 0;
      while (p < data.size()) {
        size_t space = data.find(' ', p);
        if (space == std::string_view::npos) Corrupt("bad PAX record");
        size_t len = std::strtoul(std::string(data.substr(p, space - p)).c_str(), nullptr, 10);
        if (len == 0 || p + len > data.size()) Corrupt("bad PAX record length");
        std::string_view rec = data.substr(space + 1, p + len - space - 2);  // without the '\n'
        size_t eq = rec.find('=');
        if (eq != std::string_view::npos) {
          if (rec.substr(0, eq) == "path") long_name = std::string(rec.substr(eq + 1));
          if (rec.substr(0, eq) == "linkpath") long_link = std::string(rec.substr(eq + 1));
        }
        p += len;
      }
      continue;
    }
    if (type == 'g') continue;  // global PAX header: nothing we use
    if (type == 'L' || type == 'K') {  // GNU long name / long link
      std::string s(data.substr(0, strnlen(data.data(), data.size())));
      (type == 'L' ? long_name : long_link) = s;
      continue;
    }

    TarEntry e;
    std::string name = GetString(h, 100);
    if (std::memcmp(h + 257, "ustar\0", 6) == 0) {
      std::string prefix = GetString(h + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    e.path = Normalize(long_name.empty() ? name : long_name);
    e.link = long_link.empty() ? GetString(h + 157, 100) : long_link;
    long_name.clear();
    long_link.clear();
    e.type = type == '\0' || type == '7' ? '0' : type;
    e.mode = static_cast<uint32_t>(GetNumber(h + 100, 8)) & 07777;  // Go writes the file type bits too
    e.mtime = static_cast<int64_t>(GetNumber(h + 136, 12));
    if (e.type == '0') e.data = std::string(data);
    entries.push_back(std::move(e));
  }
  // A missing end-of-archive marker is tolerated (some writers omit it), a
  // partial block is not.
  if (pos != archive.size()) Corrupt("trailing partial block");
  return entries;
}

namespace {

std::vector<TarEntry> WalkDirectory(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("tar", "not_found", "no such directory: " + dir);
  std::vector<std::string> paths;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    paths.push_back(it->path().lexically_relative(dir).generic_string());
  }
  if (ec) throw Error("tar", "failed", "cannot list " + dir + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  std::vector<TarEntry> entries;
  for (const auto& rel : paths) {
    std::string full = dir + "/" + rel;
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0) {
      throw Error("tar", "failed", "cannot stat " + full + ": " + std::strerror(errno));
    }
    TarEntry e;
    e.path = rel;
    e.mode = st.st_mode & 07777;
    e.mtime = st.st_mtime;
    if (S_ISDIR(st.st_mode)) {
      e.type = '5';
    } else if (S_ISLNK(st.st_mode)) {
      e.type = '2';
      e.link = fs::read_symlink(full, ec).string();
      if (ec) throw Error("tar", "failed", "cannot read link " + full + ": " + ec.message());
    } else if (S_ISREG(st.st_mode)) {
      e.data = sys::ReadFile(full);
    } else {
      continue;  // sockets, fifos, devices have no place in a build context
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace

std::string TarDirectory(const std::string& dir) { return WriteTar(WalkDirectory(dir)); }

std::string TarPath(const std::string& host_path) {
  namespace fs = std::filesystem;
  struct stat st {};
  if (::stat(host_path.c_str(), &st) != 0) {
    throw Error("tar", errno == ENOENT ? "not_found" : "failed",
                "cannot read " + host_path + ": " + std::strerror(errno));
  }
  std::string base = fs::path(host_path).lexically_normal().filename().string();
  if (base.empty()) base = fs::path(host_path).lexically_normal().parent_path().filename().string();
  if (!S_ISDIR(st.st_mode)) {
    return WriteTar({{.path = base, .type = '0', .mode = st.st_mode & 07777, .data = sys::ReadFile(host_path),
                      .mtime = st.st_mtime}});
  }
  // A directory: its tree under base/.
  std::vector<TarEntry> all;
  all.push_back({.path = base, .type = '5', .mode = st.st_mode & 07777, .mtime = st.st_mtime});
  for (auto& e : WalkDirectory(host_path)) {
    e.path = base + "/" + e.path;
    all.push_back(std::move(e));
  }
  return WriteTar(all);
}

void ExtractTar(const std::vector<TarEntry>& entries, const std::string& dest) {
  for (const auto& e : entries) {
    if (UnsafePath(e.path)) throw Error("tar", "invalid", "unsafe path in archive: " + e.path);
  }
  sys::MkdirP(dest);
  for (const auto& e : entries) {
    std::string target = dest + "/" + e.path;
    if (e.type == '5') {
      sys::MkdirP(target, (e.mode & 07777) ? e.mode & 07777 : 0755);
    } else if (e.type == '0') {
      sys::MkdirP(std::filesystem::path(target).parent_path().string());
      sys::WriteAtomic(target, e.data, e.mode & 07777);
    }
  }
  for (const auto& e : entries) {
    if (e.type != '2') continue;
    std::string target = dest + "/" + e.path;
    sys::MkdirP(std::filesystem::path(target).parent_path().string());
    ::unlink(target.c_str());
    if (::symlink(e.link.c_str(), target.c_str()) != 0) {
      throw Error("tar", "failed", "cannot create symlink " + target + ": " + std::strerror(errno));
    }
  }
}

}  // namespace hoist::net

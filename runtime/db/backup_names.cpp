// Names and times of backups: stamps, labels, option checks, paths,
// sidecars and manifests.
#include "db/backup_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "core/error.h"
#include "core/secrets.h"
#include "sys/fs.h"

namespace hoist::db::backup {

namespace detail {

// --- names and times

std::string CompactStamp(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string IsoTime(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms % 1000));
}

std::optional<double> ParseIsoTime(const std::string& s) {
  std::tm tm{};
  int frac_ms = 0;
  int y, mo, d, h, mi, se;
  char tail[16] = {};
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%15s", &y, &mo, &d, &h, &mi, &se, tail) < 6) return std::nullopt;
  std::string rest = tail;
  if (!rest.empty() && rest[0] == '.') {
    size_t i = 1;
    std::string digits;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) digits += rest[i++];
    while (digits.size() < 3) digits += '0';
    frac_ms = std::stoi(digits.substr(0, 3));
    rest = rest.substr(i);
  }
  if (rest != "Z" && !rest.empty()) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  return static_cast<double>(timegm(&tm)) + frac_ms / 1000.0;
}

void CheckLabel(const std::string& label) {
  bool ok = !label.empty() && label.size() <= 64;
  for (char c : label) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
  if (!ok) Fail("invalid", "label must match [A-Za-z0-9._-]{1,64}, got \"" + label + "\"");
}

void CheckRetention(int keep, int keep_safety) {
  if (keep < 0) Fail("invalid", "keep must be >= 0");
  if (keep_safety < 0) Fail("invalid", "keep_safety must be >= 0");
}

void CheckCreateOptions(const CreateOptions& o) {
  CheckLabel(o.label);
  if (o.dir.empty()) Fail("invalid", "dir is required");
  CheckRetention(o.keep, o.keep_safety);
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

void EnsureDir(const std::string& dir) {
  if (dir.empty()) Fail("invalid", "dir is required");
  try {
    sys::MkdirP(dir, 0700);
  } catch (const Error& e) {
    Fail(e.code() == "not_found" ? "not_found" : "failed", "backup directory: " + e.message());
  }
}

std::string ChooseName(const CreateOptions& o, const std::string& stem, const std::string& ext,
                       std::chrono::system_clock::time_point t) {
  std::string base = stem + "-" + CompactStamp(t);
  auto taken = [](const std::string& p) {
    return sys::StatPath(p).exists || sys::StatPath(p + ".json").exists || sys::StatPath(p + ".sha256").exists;
  };
  for (int i = 1;; ++i) {
    std::string name = i == 1 ? base + ext : fmt::format("{}-{}{}", base, i, ext);
    // A name the real dir has would shadow that backup in a sandbox's view,
    // and is not the name the real run would choose.
    if (taken(o.dir + "/" + name) || (!o.read_only.dir.empty() && taken(o.read_only.dir + "/" + name))) continue;
    return o.dir + "/" + name;
  }
}

std::string SidecarPath(const std::string& path) { return path + ".sha256"; }
std::string ManifestPath(const std::string& path) { return path + ".json"; }

std::optional<std::string> ReadSidecarDigest(const std::string& path) {
  std::string text;
  try {
    text = sys::ReadFile(SidecarPath(path));
  } catch (const Error& e) {
    if (e.code() == "not_found") return std::nullopt;
    throw;
  }
  if (sys::StatPath(path).type == "dir") return sys::Sha256Hex(text);
  size_t sp = text.find_first_of(" \t\n");
  std::string hex = text.substr(0, sp);
  if (hex.size() != 64) Fail("invalid", SidecarPath(path) + ": not a sha256sum line");
  return hex;
}

void WriteManifest(const std::string& data_path, const json& manifest) {
  // A reason or a source URL may hold a secret; manifests sit beside the data.
  sys::WriteAtomic(ManifestPath(data_path),
                   Mask(manifest.dump(2, ' ', false, json::error_handler_t::replace)) + "\n", 0600);
}

json BaseManifest(const std::string& engine, const std::string& final_path, const std::string& source,
                  const CreateOptions& o, std::chrono::system_clock::time_point created) {
  json m;
  m["format"] = "hoist-backup/1";
  m["engine"] = engine;
  m["file"] = BaseName(final_path);
  m["source"] = source;
  m["label"] = o.label;
  m["created_at"] = IsoTime(created);
  m["hoist_version"] = HOIST_VERSION;
  m["run_id"] = o.run_id ? json(*o.run_id) : json(nullptr);
  m["protected"] = o.protect || o.safety;
  m["safety"] = o.safety;
  m["reason"] = o.reason.empty() ? json(nullptr) : json(o.reason);
  return m;
}

}  // namespace detail

}  // namespace hoist::db::backup

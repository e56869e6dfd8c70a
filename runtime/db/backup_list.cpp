// Listing a backups directory, newest first, and pruning it by count
// and age.
#include "db/backup_internal.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "sys/fs.h"

namespace hoist::db::backup {

namespace detail {

void RemoveBackup(const std::string& path) {
  sys::Remove(path, /*recursive=*/true);
  sys::Remove(SidecarPath(path));
  sys::Remove(ManifestPath(path));
}

std::vector<std::string> PruneAfterCreate(const CreateOptions& options, const std::string& source) {
  if (options.keep <= 0 && options.keep_safety <= 0) return {};
  PruneOptions po;
  po.keep = options.keep;
  po.keep_safety = options.keep_safety;
  po.source = source;
  po.read_only = options.read_only;
  return Prune(options.dir, po).removed;
}

std::string Str(const json& m, const char* key) {
  auto it = m.find(key);
  return it != m.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace detail

using namespace detail;

// --- manifests, list, prune

std::optional<json> ReadManifest(const std::string& file) {
  std::string text;
  try {
    text = sys::ReadFile(ManifestPath(file));
  } catch (const Error& e) {
    if (e.code() == "not_found") return std::nullopt;
    throw;
  }
  json m = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded() || !m.is_object()) Fail("invalid", ManifestPath(file) + ": not a JSON object");
  return m;
}

namespace {

bool Bool(const json& m, const char* key) {
  auto it = m.find(key);
  return it != m.end() && it->is_boolean() && it->get<bool>();
}

/// A protected backup hoist took itself before changing data. Manifests
/// written before the "safety" key existed are recognised by hoist's own
/// safety labels, so the backups that piled up until then can be pruned.
bool IsSafety(const json& m) {
  auto it = m.find("safety");
  if (it != m.end()) return it->is_boolean() && it->get<bool>();
  static const std::set<std::string> kLabels = {"predeploy", "pre-restore", "pre-migrate", "pre-migrate-down"};
  return kLabels.count(Str(m, "label")) > 0;
}

bool NewestFirst(const Entry& a, const Entry& b) {
  return a.created_at != b.created_at ? a.created_at > b.created_at : a.name > b.name;
}
}  // namespace

std::vector<Entry> List(const std::string& dir) {
  std::vector<Entry> out;
  if (!sys::StatPath(dir).exists) return out;
  std::vector<std::string> names;
  try {
    names = sys::ListDir(dir);
  } catch (const Error& e) {
    Fail(e.code(), e.message());  // already "cannot list DIR: why"
  }
  std::vector<std::string> sorted = names;  // ListDir sorts; binary_search below
  for (const auto& name : names) {
    if (name.empty() || name[0] == '.') continue;  // temp files and our lock
    if (name.ends_with(".json") || name.ends_with(".sha256")) continue;
    bool has_manifest = std::binary_search(sorted.begin(), sorted.end(), name + ".json");
    bool has_sidecar = std::binary_search(sorted.begin(), sorted.end(), name + ".sha256");
    if (!has_manifest && !has_sidecar) continue;  // not ours
    Entry e;
    e.path = dir + "/" + name;
    e.name = name;
    e.has_manifest = has_manifest;
    sys::Stat st = sys::StatPath(e.path);
    e.size = st.size;
    if (has_manifest) {
      try {
        e.manifest = ReadManifest(e.path).value_or(json::object());
      } catch (const Error&) {
        e.manifest = json::object();
        e.has_manifest = false;
      }
    } else {
      e.manifest = json::object();
    }
    const json& m = e.manifest;
    e.engine = Str(m, "engine");
    e.source = Str(m, "source");
    e.label = Str(m, "label");
    e.created_at = Str(m, "created_at");
    if (e.created_at.empty()) {
      std::time_t t = static_cast<std::time_t>(st.mtime);
      e.created_at = IsoTime(std::chrono::system_clock::from_time_t(t));
    }
    if (m.contains("size") && m["size"].is_number_unsigned()) e.size = m["size"].get<uint64_t>();
    e.verified = Bool(m, "verified");
    e.is_protected = Bool(m, "protected");
    e.is_safety = e.is_protected && IsSafety(m);
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), NewestFirst);
  return out;
}

std::vector<Entry> List(const std::string& dir, const ReadOnlyBackups& read_only) {
  std::vector<Entry> all = List(dir);
  if (read_only.dir.empty()) return all;
  std::set<std::string> have;
  for (const auto& e : all) have.insert(e.name);
  for (auto& e : List(read_only.dir)) {
    if (have.count(e.name) || (read_only.gone && read_only.gone->count(e.path))) continue;
    if (read_only.source) e.source = read_only.source(e.source);
    all.push_back(std::move(e));
  }
  std::stable_sort(all.begin(), all.end(), NewestFirst);
  return all;
}

double ParseAge(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string num = text.substr(0, i), unit = text.substr(i);
  double mult = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : unit == "w" ? 604800 : 0;
  char* end = nullptr;
  double v = num.empty() ? -1 : std::strtod(num.c_str(), &end);
  if (mult == 0 || num.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v)) {
    Fail("invalid", "older_than must look like \"30d\", \"12h\", \"90m\", \"45s\" or \"2w\", got \"" + text + "\"");
  }
  return v * mult;
}

PruneResult Prune(const std::string& dir, const PruneOptions& o) {
  CheckRetention(o.keep, o.keep_safety);
  if (o.keep == 0 && o.keep_safety == 0 && o.older_than <= 0) Fail("invalid", "prune needs keep, keep_safety or older_than");
  // keep_safety alone prunes safety backups only; older_than alone ages out
  // unprotected backups only (safety ones go by keep_safety).
  const bool prune_plain = o.keep > 0 || o.older_than > 0;
  PruneResult r;
  std::vector<Entry> all = List(dir, o.read_only);
  // What the read-only view adds is counted, never removed.
  auto untouchable = [&](const Entry& e) {
    return !o.read_only.dir.empty() && e.path.rfind(o.read_only.dir + "/", 0) == 0;
  };
  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Per source, newest first (List's order).
  std::map<std::string, std::vector<const Entry*>> by_source;
  for (const auto& e : all) {
    if (!e.has_manifest) continue;  // never delete what we cannot describe
    if (!o.source.empty() && e.source != o.source) continue;
    by_source[e.source].push_back(&e);
  }
  for (auto& [source, entries] : by_source) {
    const Entry* newest_verified = nullptr;
    for (const Entry* e : entries) {
      if (e->verified) {
        newest_verified = e;
        break;
      }
    }
    int rank = 0, safety_rank = 0;
    for (const Entry* e : entries) {
      auto created = ParseIsoTime(e->created_at);
      bool old_enough = o.older_than <= 0 || (created && now - *created > o.older_than);
      bool goes;
      if (e->is_safety) {
        goes = o.keep_safety > 0 && safety_rank++ >= o.keep_safety && old_enough && e != newest_verified;
      } else if (e->is_protected || e == newest_verified) {
        goes = false;
        if (!e->is_protected) ++rank;  // the newest verified one still counts towards keep
      } else {
        goes = prune_plain && (o.keep == 0 || rank >= o.keep) && old_enough;
        ++rank;
      }
      if (goes) {
        if (!o.dry_run) {
          if (!untouchable(*e)) {
            RemoveBackup(e->path);
          } else if (o.read_only.gone) {
            o.read_only.gone->insert(e->path);
          }
        }
        r.removed.push_back(e->path);
      } else {
        r.kept.push_back(e->path);
      }
    }
  }
  // Leftovers of crashed backups: temp files nobody holds a lock on, and a
  // sidecar or manifest whose data never appeared (killed mid-publish).
  for (const std::string* d : {&dir, &o.read_only.dir}) {
    if (d->empty() || !sys::StatPath(*d).exists) continue;
    for (const auto& name : sys::ListDir(*d)) {
      std::string p = *d + "/" + name;
      if (IsTempName(name)) {
        if (!IsStaleTemp(p)) continue;
      } else if (!IsOrphanMetadata(p)) {
        continue;
      }
      if (!o.dry_run && d == &dir) sys::Remove(p, /*recursive=*/true);
      r.stale.push_back(p);
    }
  }
  return r;
}

}  // namespace hoist::db::backup

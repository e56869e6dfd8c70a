// Verify, restore and drill results, and verify/drill dispatched by the
// backup's engine.
#include "db/backup_internal.h"

#include <fmt/format.h>

#include "core/error.h"
#include "sys/fs.h"

namespace hoist::db::backup {


using namespace detail;

// Engine entry points implemented in backup_sqlite.cpp / backup_pg.cpp.
VerifyResult VerifySqliteFile(const std::string& file, const std::optional<json>& manifest, const VerifyOptions& o);
VerifyResult VerifyPgFile(const std::string& file, const json& manifest, const VerifyOptions& o);
DrillResult DrillSqlite(const std::string& file, const json& manifest, const DrillOptions& o);
DrillResult DrillPg(const std::string& file, const json& manifest, const DrillOptions& o);

// --- results as JSON

json VerifyResult::ToJson() const {
  return json{{"ok", ok},
              {"file", file},
              {"engine", engine},
              {"sha256", sha256},
              {"expected_sha256", expected_sha256},
              {"checksum_ok", checksum_ok},
              {"integrity", integrity},
              {"method", method},
              {"problems", problems},
              {"seconds", seconds}};
}

json RestoreResult::ToJson() const {
  return json{{"file", file},
              {"target", target},
              {"safety_backup", safety_backup.empty() ? json(nullptr) : json(safety_backup)},
              {"verified", verified.ToJson()},
              {"pages", pages},
              {"seconds", seconds}};
}

json DrillResult::ToJson() const {
  return json{{"ok", ok},
              {"file", file},
              {"integrity", integrity},
              {"fingerprint", fingerprint},
              {"fingerprint_ok", fingerprint_ok},
              {"smoke", smoke},
              {"problems", problems},
              {"seconds", seconds},
              {"at", at}};
}

// --- verify and drill, by engine

namespace {

json ManifestOrGuess(const std::string& file) {
  if (auto m = ReadManifest(file)) return *m;
  // No manifest: recognise the data by its first bytes.
  json m = json::object();
  sys::Stat st = sys::StatPath(file);
  if (st.type == "dir") {
    m["engine"] = "postgres";
    m["format"] = "directory";
    return m;
  }
  std::string head;
  {
    Fd fd = OpenRead(file, kArea);
    char buf[16] = {};
    size_t n = PreadFull(fd.get(), buf, sizeof buf, 0, file, kArea);
    head.assign(buf, n);
  }
  if (head.rfind("SQLite format 3", 0) == 0 || LooksZstd(file)) {
    m["engine"] = "sqlite";
  } else if (head.rfind("PGDMP", 0) == 0) {
    m["engine"] = "postgres";
    m["format"] = "custom";
  } else {
    m["engine"] = file.ends_with(".sql") || file.ends_with(".tar") ? "postgres" : "sqlite";
    if (m["engine"] == "postgres") m["format"] = file.ends_with(".sql") ? "plain" : "tar";
  }
  return m;
}

void RequireExists(const std::string& file) {
  if (!sys::StatPath(file).exists) Fail("not_found", "no such backup: " + file);
}

}  // namespace

VerifyResult Verify(const std::string& file, const VerifyOptions& o) {
  RequireExists(file);
  std::optional<json> manifest = ReadManifest(file);
  if (!manifest && !sys::StatPath(SidecarPath(file)).exists) {
    Fail("invalid", file + " has neither a checksum (" + BaseName(SidecarPath(file)) + ") nor a manifest (" +
                        BaseName(ManifestPath(file)) + "): cannot verify it");
  }
  json m = manifest ? *manifest : ManifestOrGuess(file);
  if (Str(m, "engine") == "postgres") return VerifyPgFile(file, m, o);
  return VerifySqliteFile(file, manifest, o);
}

VerifyResult VerifyOrThrow(const std::string& file, const VerifyOptions& o) {
  VerifyResult r = Verify(file, o);
  if (!r.ok) {
    std::string msg;
    for (const auto& p : r.problems) msg += (msg.empty() ? "" : "; ") + p;
    Fail("corrupt", msg.empty() ? BaseName(file) + ": verification failed" : msg);
  }
  return r;
}

DrillResult Drill(const std::string& file, const DrillOptions& o) {
  RequireExists(file);
  json m = ManifestOrGuess(file);
  DrillResult r = Str(m, "engine") == "postgres" ? DrillPg(file, m, o) : DrillSqlite(file, m, o);
  // The drill's record goes into the backup's own manifest (when it has one).
  if (std::optional<json> real = o.record ? ReadManifest(file) : std::nullopt) {
    if (!real->contains("drills") || !(*real)["drills"].is_array()) (*real)["drills"] = json::array();
    (*real)["drills"].push_back(r.ToJson());
    (*real)["last_drill"] = {{"at", r.at}, {"ok", r.ok}};
    WriteManifest(file, *real);
  }
  return r;
}

}  // namespace hoist::db::backup

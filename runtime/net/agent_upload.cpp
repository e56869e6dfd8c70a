#include "net/agent_upload.h"

#include <sys/stat.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <random>

#include <fmt/format.h>

#include "core/error.h"
#include "core/secrets.h"
#include "core/strings.h"
#include "sys/clock.h"
#include "sys/fs.h"
#include "sys/sha256.h"

namespace hoist::net {
namespace {

constexpr std::chrono::seconds kStepTimeout{30};
// A 200 MB debug build over a slow link still fits.
constexpr std::chrono::seconds kUploadTimeout{600};

std::string FirstLine(const std::string& s) { return Trim(s.substr(0, s.find('\n'))); }

std::string Who(const SshHost& host) { return fmt::format("host {} ({})", host.spec().name, host.spec().target); }

/// ${XDG_CACHE_HOME:-$HOME/.cache} of the user ssh logs in as. A fixed
/// script: nothing of ours is interpolated into it.
std::string RemoteCacheDir(SshHost& host) {
  auto r = host.Run({"sh", "-c",
                     "if [ -n \"$XDG_CACHE_HOME\" ]; then printf '%s' \"$XDG_CACHE_HOME\"; "
                     "elif [ -n \"$HOME\" ]; then printf '%s' \"$HOME/.cache\"; else exit 3; fi"},
                    {.timeout = kStepTimeout});
  std::string dir = r.out;
  if (r.exit_code != 0 || dir.empty() || dir[0] != '/') {
    throw Error("agent", "no_cache_dir",
                fmt::format("{}: neither XDG_CACHE_HOME nor HOME is set to an absolute path for the ssh user, so "
                            "hoist has nowhere to keep its agent binary: give that user a home directory",
                            Who(host)));
  }
  return dir;
}

std::string RandomHex() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

[[noreturn]] void ThrowStep(const SshHost& host, const std::string& step, const sys::ProcessResult& r) {
  throw Error("agent", "upload_failed",
              fmt::format("{}: uploading hoist's agent failed at {} (exit {}): {}; check the disk space and "
                          "permissions of the ssh user's cache dir there",
                          Who(host), step, r.exit_code, Mask(FirstLine(r.err).empty() ? "no message" : FirstLine(r.err))));
}

/// The --version line of the binary at path there: "" when nothing runs there.
std::string VersionAt(SshHost& host, const std::string& path) {
  auto r = host.Run({path, "--version"}, {.timeout = kStepTimeout});
  if (r.exit_code != 0) return "";
  return FirstLine(r.out);
}

AgentInstall Locate(SshHost& host, const AgentUploadOptions& o) {
  AgentInstall a;
  a.sha256 = LocalBinarySha256(o.local_binary);
  a.path = RemoteCacheDir(host) + "/hoist/" + AgentDirName(o.version, a.sha256) + "/hoist";
  a.found = VersionAt(host, a.path);
  if (a.found.rfind("hoist ", 0) == 0) a.version = a.found.substr(6);
  return a;
}

}  // namespace

std::string AgentDirName(const std::string& version, const std::string& sha256) {
  return version + "-" + sha256.substr(0, 16);
}

namespace {

// The sha256 of a 200 MB build costs about 0.5 s at every run: it is kept
// in this user's cache dir, keyed by what changes when the file is replaced
// (a stale entry would only make the host refuse the upload as damaged).
std::string PersistedSha256(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return sys::Sha256FileHex(path);  // says why
  std::string key = fmt::format("{} {} {} {} {}.{:09d}", path, st.st_dev, st.st_ino, st.st_size,
                                static_cast<int64_t>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec);
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::string dir = xdg && *xdg ? std::string(xdg) + "/hoist" : home && *home ? std::string(home) + "/.cache/hoist" : "";
  std::string file = dir + "/self-sha256";
  if (!dir.empty()) {
    try {
      std::string text = sys::ReadFile(file);
      if (text.size() > 65 && text.compare(0, text.size() - 65, key) == 0 && text[text.size() - 65] == ' ') {
        return Trim(text.substr(text.size() - 64));
      }
    } catch (const Error&) {
      // none yet, or unreadable: hashed below
    }
  }
  std::string sha = sys::Sha256FileHex(path);
  if (!dir.empty()) {
    try {
      sys::MkdirP(dir, 0700);
      sys::WriteAtomic(file, key + " " + sha, 0600);
    } catch (const Error&) {
      // a read-only home: hashing again next time is all it costs
    }
  }
  return sha;
}

}  // namespace

std::string LocalBinarySha256(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::string> cache;
  std::lock_guard lock(mu);
  auto it = cache.find(path);
  if (it != cache.end()) return it->second;
  return cache[path] = PersistedSha256(path);
}

AgentInstall ProbeAgent(SshHost& host, const AgentUploadOptions& options) { return Locate(host, options); }

AgentInstall EnsureAgent(SshHost& host, const AgentUploadOptions& options) {
  double t0 = sys::Monotonic();
  AgentInstall a = Locate(host, options);
  std::string want = "hoist " + options.version;
  if (a.found == want) {
    a.seconds = sys::Monotonic() - t0;
    return a;
  }
  std::string dir = a.path.substr(0, a.path.rfind('/'));
  std::string parent = dir.substr(0, dir.rfind('/'));
  // Positional parameters, never our text inside the script.
  auto mk = host.Run({"sh", "-c", "mkdir -p -m 0700 -- \"$1\" \"$2\" && chmod 0700 -- \"$1\" \"$2\"", "sh", parent, dir},
                     {.timeout = kStepTimeout});
  if (!mk.ok()) ThrowStep(host, "creating " + dir, mk);

  std::string bytes = sys::ReadFile(options.local_binary);
  if (options.tamper) options.tamper(bytes);
  std::string tmp = dir + "/.upload-" + RandomHex();
  auto remove_tmp = [&] {
    try {
      host.Run({"rm", "-f", "--", tmp}, {.timeout = kStepTimeout});
    } catch (...) {
    }
  };
  sys::ProcessResult put;
  try {
    put = host.Run({"sh", "-c", "umask 077 && cat > \"$1\" && sha256sum -- \"$1\"", "sh", tmp},
                   {.stdin_data = std::move(bytes), .timeout = kUploadTimeout});
  } catch (...) {
    remove_tmp();
    throw;
  }
  if (!put.ok()) {
    remove_tmp();
    ThrowStep(host, "writing " + tmp, put);
  }
  std::string got = FirstLine(put.out).substr(0, 64);
  if (got != a.sha256) {
    remove_tmp();
    throw Error("agent", "checksum_mismatch",
                fmt::format("{}: the uploaded hoist arrived damaged (sha256 {} there, {} here); it was removed and "
                            "{} was not touched. Run again; if it repeats, check the host's disk (df, dmesg) and "
                            "whatever sits between you and it",
                            Who(host), got.empty() ? "unknown" : got, a.sha256, a.path));
  }
  auto mv = host.Run({"sh", "-c", "chmod 0755 -- \"$1\" && mv -f -T -- \"$1\" \"$2\"", "sh", tmp, a.path},
                     {.timeout = kStepTimeout});
  if (!mv.ok()) {
    remove_tmp();
    ThrowStep(host, "moving it to " + a.path, mv);
  }
  std::string now = VersionAt(host, a.path);
  if (now != want) {
    throw Error("agent", "not_runnable",
                fmt::format("{}: the uploaded hoist at {} does not run there (--version said \"{}\"): the host needs "
                            "the same architecture and a compatible libc as this one (a static hoist runs anywhere)",
                            Who(host), a.path, now));
  }
  a.uploaded = true;
  a.version = options.version;
  a.seconds = sys::Monotonic() - t0;
  return a;
}

}  // namespace hoist::net

// Making sure the host runs the same hoist as the one reaching it, with
// nothing but sshd and coreutils there: hoist keeps its own binary at a
// versioned path under the remote user's cache dir,
//   ${XDG_CACHE_HOME:-$HOME/.cache}/hoist/<version>-<sha256 prefix>/hoist
// and uploads it over the host's ssh master when it is missing or answers
// `--version` with another version: to a temp name in that 0700 dir,
// sha256sum checked there, chmod 0755, renamed into place (atomic), so the
// final path only ever holds a complete, verified binary.
#pragma once

#include <functional>
#include <string>

#include "net/ssh.h"

namespace hoist::net {

struct AgentUploadOptions {
  /// The binary to run there (default: this very hoist).
  std::string local_binary = "/proc/self/exe";
  /// The version it reports (`hoist <version>` from --version).
  std::string version = HOIST_VERSION;
  /// Tests only: changes the bytes on their way to the host (a damaged
  /// transfer, for the checksum check to catch). Null in real use.
  std::function<void(std::string& bytes)> tamper;
};

struct AgentInstall {
  std::string path;         ///< the agent binary on the host
  std::string version;      ///< what it reports now ("0.1.0")
  std::string found;        ///< what path's --version said before: "" = nothing there
  bool uploaded = false;    ///< this call put it there
  std::string sha256;       ///< of the binary
  double seconds = 0;
};

/// The agent's directory name for a binary: "<version>-<first 16 hex of sha256>".
std::string AgentDirName(const std::string& version, const std::string& sha256);
/// sha256 of the local binary (cached per path: hashing it once per process).
std::string LocalBinarySha256(const std::string& path);

/// What the host has at the agent path for this binary, without changing
/// anything (`hoist hosts`): found is its --version line, "" when nothing.
AgentInstall ProbeAgent(SshHost& host, const AgentUploadOptions& options = {});

/// Makes the agent path hold this binary (uploading it when it is missing
/// or reports another version) and returns it. Throws ssh's errors, and
/// Error{"agent", code} naming the host and what to do: checksum_mismatch
/// (the upload arrived damaged; the temp file is removed and the final
/// path untouched), no_cache_dir (neither XDG_CACHE_HOME nor HOME is set
/// there), upload_failed (a remote step failed: its stderr), not_runnable
/// (the uploaded binary does not run there: another architecture or libc).
AgentInstall EnsureAgent(SshHost& host, const AgentUploadOptions& options = {});

}  // namespace hoist::net

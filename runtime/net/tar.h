// A small, strict ustar writer and reader: what the Docker archive and build
// APIs exchange (copy in/out, build contexts). Regular files, directories and
// symlinks; long names go through PAX records. Reads what Go's archive/tar
// (dockerd) writes, including PAX and GNU long-name entries.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hoist::net {

struct TarEntry {
  std::string path;   ///< relative, '/'-separated; directories without the trailing '/'
  char type = '0';    ///< '0' file, '5' directory, '2' symlink (others are read, never written)
  uint32_t mode = 0644;  ///< permission bits only (07777)
  std::string data{};      ///< file contents
  std::string link{};      ///< symlink target
  int64_t mtime = 0;       ///< seconds since the epoch
};

/// The archive (ending with the two zero blocks). Throws
/// Error{"tar","invalid",...} for an empty or absolute path, or a type other
/// than '0', '5' and '2'.
std::string WriteTar(const std::vector<TarEntry>& entries);

/// Every entry of an archive, PAX/GNU long names applied. Throws
/// Error{"tar","invalid","corrupt tar archive: <why>"} on a bad checksum or a
/// truncated entry.
std::vector<TarEntry> ReadTar(std::string_view archive);

/// A directory tree as an archive (paths relative to dir, sorted), for a
/// build context. Symlinks are stored as links, not followed. Throws
/// Error{"tar","not_found"} when dir is missing, "failed" on read errors.
std::string TarDirectory(const std::string& dir);

/// One file or a directory tree at host_path, stored under its own base
/// name (what `docker cp host_path container:dir` puts in dir).
std::string TarPath(const std::string& host_path);

/// Writes entries under dest (created if missing). Refuses absolute paths
/// and ".." components ("unsafe path in archive: ../etc/passwd"); symlinks
/// are created last so no entry is written through one.
void ExtractTar(const std::vector<TarEntry>& entries, const std::string& dest);

}  // namespace hoist::net

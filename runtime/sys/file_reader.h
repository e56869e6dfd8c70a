#pragma once
// Reading a whole file from its start, for ReadFile and Sha256FileHex.

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "sys/fs.h"

namespace hoist::sys {

/// Reads path from its start in chunks. A file KeptFd keeps (a database this
/// process has open) is read through that descriptor at explicit offsets
/// and closes nothing; any other (maybe a pipe or /proc) through its own,
/// with read(2). Errors: Error{"fs", "not_found" | "failed", "cannot read
/// <path>: <strerror>"}.
class FileReader {
 public:
  explicit FileReader(const std::string& path);
  /// Up to n bytes into buf; 0 at the end.
  size_t Read(char* buf, size_t n);
  int fd() const { return kept_.get() >= 0 ? kept_.get() : own_.get(); }

 private:
  std::string path_;
  KeptFd kept_;
  Fd own_;
  off_t off_ = 0;
};

}  // namespace hoist::sys

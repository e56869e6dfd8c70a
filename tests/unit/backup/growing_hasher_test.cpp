// GrowingHasher follows files while another process appends to them (how a
// PostgreSQL dump is hashed as pg_dump writes it): the digests must equal
// those of the finished files, whatever the interleaving, including a file
// that is replaced or truncated while it is being followed.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

#include "db/backup_internal.h"
#include "support/support.h"
#include "sys/sha256.h"

namespace {

using hoist::db::backup::detail::GrowingHasher;
using hoist::test::TempDir;
using hoist::test::WriteFile;

void Append(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  ::close(fd);
}

std::string Random(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

/// A child process that appends `chunks` pieces to each of files (round
/// robin), so the hasher really races a writer it does not control.
pid_t SpawnWriter(const std::vector<std::string>& files, int chunks, size_t chunk) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (int i = 0; i < chunks; ++i) {
      for (size_t f = 0; f < files.size(); ++f) {
        std::string data = Random(chunk + static_cast<size_t>(i) * 7, static_cast<unsigned>(i * 31 + f));
        int fd = ::open(files[f].c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
        if (fd < 0 || ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) ::_exit(1);
        ::close(fd);
      }
    }
    ::_exit(0);
  }
  return pid;
}

bool Exited(pid_t pid, int* status) { return ::waitpid(pid, status, WNOHANG) == pid; }

}  // namespace

TEST_SUITE("db/backup") {
  TEST_CASE("a file hashed while another process appends to it gets the digest of the finished file") {
    TempDir t("grow");
    std::string file = t / "dump.sql";
    WriteFile(file, "");
    GrowingHasher h(file, /*is_dir=*/false);
    pid_t pid = SpawnWriter({file}, 400, 64 << 10);
    int status = 0;
    int passes_with_progress = 0;
    while (!Exited(pid, &status)) passes_with_progress += h.Pass() ? 1 : 0;
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    auto digests = h.Finish();
    REQUIRE(digests.size() == 1);
    CHECK(digests.at("") == hoist::sys::Sha256FileHex(file));
    CHECK(h.bytes() == std::filesystem::file_size(file));
    // It followed the writer rather than reading everything at the end.
    CHECK(passes_with_progress > 1);
  }

  TEST_CASE("a directory's files are hashed as they appear and grow, each under its relative path") {
    TempDir t("grow");
    std::string dir = t / "dump.dir";
    std::filesystem::create_directories(dir + "/sub");
    GrowingHasher h(dir, /*is_dir=*/true);
    std::vector<std::string> files = {dir + "/toc.dat", dir + "/3001.dat", dir + "/sub/blobs.toc"};
    pid_t pid = SpawnWriter(files, 200, 16 << 10);
    int status = 0;
    while (!Exited(pid, &status)) h.Pass();
    REQUIRE(WEXITSTATUS(status) == 0);
    auto digests = h.Finish();
    REQUIRE(digests.size() == 3);
    CHECK(digests.at("toc.dat") == hoist::sys::Sha256FileHex(files[0]));
    CHECK(digests.at("3001.dat") == hoist::sys::Sha256FileHex(files[1]));
    CHECK(digests.at("sub/blobs.toc") == hoist::sys::Sha256FileHex(files[2]));
    uint64_t total = 0;
    for (const auto& f : files) total += std::filesystem::file_size(f);
    CHECK(h.bytes() == total);
  }

  TEST_CASE("a followed file that is replaced or truncated is hashed again from its start") {
    TempDir t("grow");
    std::string file = t / "dump.tar";
    Append(file, Random(3 << 20, 1));
    GrowingHasher h(file, /*is_dir=*/false);
    REQUIRE(h.Pass());
    // Replaced by a new file of the same name (another inode), longer than what was hashed.
    std::string other = t / "other";
    WriteFile(other, Random(5 << 20, 2));
    std::filesystem::rename(other, file);
    h.Pass();
    // Truncated below what was hashed, then written again.
    REQUIRE(::truncate(file.c_str(), 1000) == 0);
    h.Pass();
    Append(file, Random(1 << 20, 3));
    auto digests = h.Finish();
    CHECK(digests.at("") == hoist::sys::Sha256FileHex(file));
    CHECK(h.bytes() == std::filesystem::file_size(file));
  }
}

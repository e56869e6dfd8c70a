// Tests for sys/fs against a real temp directory under /tmp: atomicity,
// modes and inodes are properties of the real filesystem.
#include "sys/fs.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "support/support.h"

namespace hoist::sys {
namespace {

using test::CatchError;
using test::TempDir;
using test::WriteFile;


void Put(const std::string& path, const std::string& data) { std::ofstream(path, std::ios::binary) << data; }


/// Sets a umask for one scope, so mode tests do not depend on the caller's.
struct UmaskScope {
  mode_t saved;
  explicit UmaskScope(mode_t m) : saved(::umask(m)) {}
  ~UmaskScope() { ::umask(saved); }
};

}  // namespace

TEST_SUITE("sys/fs") {
  TEST_CASE("ReadFile returns the exact bytes") {
    TempDir dir;
    std::string data("a\0b\nc", 5);
    Put(dir / "f", data);
    CHECK(ReadFile(dir / "f") == data);
    Put(dir / "empty", "");
    CHECK(ReadFile(dir / "empty").empty());
  }

  TEST_CASE("ReadFile of a missing file is not_found with the exact message") {
    TempDir dir;
    Error e = CatchError([&] { ReadFile(dir / "missing"); });
    CHECK(e.area() == "fs");
    CHECK(e.code() == "not_found");
    CHECK(std::string(e.what()) == "fs: cannot read " + (dir / "missing") + ": No such file or directory");
  }

  TEST_CASE("ReadFile of a directory is failed with strerror") {
    TempDir dir;
    Error e = CatchError([&] { ReadFile(dir.path); });
    CHECK(e.code() == "failed");
    CHECK(std::string(e.what()) == "fs: cannot read " + dir.path + ": Is a directory");
  }

  TEST_CASE("WriteAtomic creates the file with the exact mode and leaves no temp file") {
    TempDir dir;
    UmaskScope umask_scope(077);
    WriteAtomic(dir / "state", "secret", 0600);
    CHECK(ReadFile(dir / "state") == "secret");
    CHECK(StatPath(dir / "state").mode == 0600);
    // The umask would strip 0044 from 0644; WriteAtomic must not let it.
    WriteAtomic(dir / "public", "hello");
    CHECK(StatPath(dir / "public").mode == 0644);
    CHECK(ListDir(dir.path) == std::vector<std::string>{"public", "state"});
  }

  TEST_CASE("WriteAtomic sweeps the temp files a killed writer of the same path left, not fresh ones") {
    TempDir dir;
    // What a kill -9 between open and rename leaves (a switch of nginx's include).
    WriteFile(dir / ".upstream.conf.tmp-0a1b2c3d4e5f", "half");
    WriteFile(dir / ".upstream.conf.tmp-ffffffffffff", "a live writer's");
    WriteFile(dir / ".other.conf.tmp-0a1b2c3d4e5f", "another file's");
    timeval old[2] = {{::time(nullptr) - 600, 0}, {::time(nullptr) - 600, 0}};
    REQUIRE(::utimes((dir / ".upstream.conf.tmp-0a1b2c3d4e5f").c_str(), old) == 0);
    REQUIRE(::utimes((dir / ".other.conf.tmp-0a1b2c3d4e5f").c_str(), old) == 0);
    WriteAtomic(dir / "upstream.conf", "upstream api {}\n");
    CHECK(ListDir(dir.path) ==
          std::vector<std::string>{".other.conf.tmp-0a1b2c3d4e5f", ".upstream.conf.tmp-ffffffffffff", "upstream.conf"});
  }

  TEST_CASE("WriteAtomic replaces an existing file with a new inode and mode") {
    TempDir dir;
    Put(dir / "conf", "old contents that are longer");
    ::chmod((dir / "conf").c_str(), 0644);
    uint64_t old_inode = StatPath(dir / "conf").inode;
    WriteAtomic(dir / "conf", "new", 0600);
    Stat st = StatPath(dir / "conf");
    CHECK(ReadFile(dir / "conf") == "new");
    CHECK(st.mode == 0600);
    CHECK(st.size == 3);
    CHECK(st.inode != old_inode);
    CHECK(ListDir(dir.path) == std::vector<std::string>{"conf"});
  }

  TEST_CASE("WriteAtomic into a missing directory is not_found and writes nothing") {
    TempDir dir;
    Error e = CatchError([&] { WriteAtomic(dir / "nodir/f", "x"); });
    CHECK(e.code() == "not_found");
    CHECK(std::string(e.what()) == "fs: cannot write " + (dir / "nodir/f") + ": No such file or directory");
    CHECK(ListDir(dir.path).empty());
  }

  TEST_CASE("WriteAtomic with a relative path writes in the current directory") {
    TempDir dir;
    auto saved = std::filesystem::current_path();
    std::filesystem::current_path(dir.path);
    WriteAtomic("rel.txt", "relative");
    std::filesystem::current_path(saved);
    CHECK(ReadFile(dir / "rel.txt") == "relative");
    CHECK(ListDir(dir.path) == std::vector<std::string>{"rel.txt"});
  }

  TEST_CASE("WriteInPlace keeps the inode and truncates to the new length") {
    TempDir dir;
    Put(dir / "mounted", "a long original content");
    uint64_t inode = StatPath(dir / "mounted").inode;
    WriteInPlace(dir / "mounted", "short");
    CHECK(ReadFile(dir / "mounted") == "short");
    CHECK(StatPath(dir / "mounted").inode == inode);
    CHECK(StatPath(dir / "mounted").size == 5);
  }

  TEST_CASE("WriteInPlace on a missing file is not_found and creates nothing") {
    TempDir dir;
    Error e = CatchError([&] { WriteInPlace(dir / "missing", "x"); });
    CHECK(e.code() == "not_found");
    CHECK(std::string(e.what()) == "fs: cannot write " + (dir / "missing") + ": No such file or directory");
    CHECK_FALSE(StatPath(dir / "missing").exists);
  }

  TEST_CASE("MkdirP creates nested directories and accepts existing ones") {
    TempDir dir;
    MkdirP(dir / "a/b//c/");
    CHECK(StatPath(dir / "a/b/c").type == "dir");
    MkdirP(dir / "a/b/c");
    MkdirP(dir.path);
    CHECK(StatPath(dir / "a/b/c").type == "dir");
  }

  TEST_CASE("MkdirP through an existing file is a conflict") {
    TempDir dir;
    Put(dir / "file", "x");
    Error e = CatchError([&] { MkdirP(dir / "file/sub"); });
    CHECK(e.code() == "conflict");
    CHECK(std::string(e.what()) ==
          "fs: cannot create directory " + (dir / "file/sub") + ": " + (dir / "file") + " exists and is not a directory");
    Error last = CatchError([&] { MkdirP(dir / "file"); });
    CHECK(last.code() == "conflict");
  }

  TEST_CASE("StatPath reports file dir link and missing without following links") {
    TempDir dir;
    Put(dir / "f", "12345");
    ::chmod((dir / "f").c_str(), 0640);
    std::filesystem::create_directory(dir / "d");
    std::filesystem::create_symlink(dir / "f", dir / "l");

    Stat f = StatPath(dir / "f");
    CHECK(f.exists);
    CHECK(f.type == "file");
    CHECK(f.size == 5);
    CHECK(f.mode == 0640);
    CHECK(f.mtime > 1.6e9);
    CHECK(f.inode != 0);
    CHECK(StatPath(dir / "d").type == "dir");
    CHECK(StatPath(dir / "l").type == "link");
    CHECK(StatPath("/dev/null").type == "other");

    Stat missing = StatPath(dir / "missing");
    CHECK_FALSE(missing.exists);
    CHECK(missing.type.empty());
    CHECK_FALSE(StatPath(dir / "f/under-a-file").exists);
  }

  TEST_CASE("ListDir is sorted and skips dot entries") {
    TempDir dir;
    for (const char* n : {"b", "a", "C", ".hidden"}) Put(dir / n, "");
    CHECK(ListDir(dir.path) == std::vector<std::string>{".hidden", "C", "a", "b"});
    Error e = CatchError([&] { ListDir(dir / "missing"); });
    CHECK(e.code() == "not_found");
    CHECK(std::string(e.what()) == "fs: cannot list " + (dir / "missing") + ": No such file or directory");
  }

  TEST_CASE("Glob matches sorted and gives empty on no match") {
    TempDir dir;
    for (const char* n : {"b.conf", "a.conf", "B.conf", "x.txt"}) Put(dir / n, "");
    CHECK(Glob(dir / "*.conf") == std::vector<std::string>{dir / "B.conf", dir / "a.conf", dir / "b.conf"});
    CHECK(Glob(dir / "*.nothing").empty());
  }

  TEST_CASE("Remove of a missing path returns false") {
    TempDir dir;
    CHECK_FALSE(Remove(dir / "missing"));
    CHECK_FALSE(Remove(dir / "missing", true));
  }

  TEST_CASE("Remove deletes a file and an empty directory") {
    TempDir dir;
    Put(dir / "f", "x");
    std::filesystem::create_directory(dir / "d");
    CHECK(Remove(dir / "f"));
    CHECK(Remove(dir / "d"));
    CHECK(ListDir(dir.path).empty());
  }

  TEST_CASE("Remove of a non-empty directory needs recursive") {
    TempDir dir;
    MkdirP(dir / "t/sub");
    Put(dir / "t/sub/f", "x");
    Error e = CatchError([&] { Remove(dir / "t"); });
    CHECK(e.code() == "failed");
    CHECK(std::string(e.what()) == "fs: cannot remove " + (dir / "t") + ": Directory not empty");
    CHECK(Remove(dir / "t", true));
    CHECK_FALSE(StatPath(dir / "t").exists);
  }

  TEST_CASE("recursive Remove never follows symlinks out of the tree") {
    TempDir dir;
    MkdirP(dir / "outside");
    Put(dir / "outside/keep", "precious");
    MkdirP(dir / "tree/sub");
    Put(dir / "tree/sub/f", "x");
    std::filesystem::create_directory_symlink(dir / "outside", dir / "tree/sub/link");
    CHECK(Remove(dir / "tree", true));
    CHECK_FALSE(StatPath(dir / "tree").exists);
    CHECK(ReadFile(dir / "outside/keep") == "precious");
  }

  TEST_CASE("Remove of a symlink to a directory removes only the link") {
    TempDir dir;
    MkdirP(dir / "target");
    Put(dir / "target/keep", "x");
    std::filesystem::create_directory_symlink(dir / "target", dir / "link");
    CHECK(Remove(dir / "link", true));
    CHECK_FALSE(StatPath(dir / "link").exists);
    CHECK(ReadFile(dir / "target/keep") == "x");
  }

  TEST_CASE("Chmod sets exactly the mode given, whatever the umask") {
    TempDir dir;
    UmaskScope umask(077);
    WriteAtomic(dir / "f", "x", 0644);
    Chmod(dir / "f", 02750);
    CHECK(StatPath(dir / "f").mode == 02750);
    MkdirP(dir / "d");
    Chmod(dir / "d", 0711);
    CHECK(StatPath(dir / "d").mode == 0711);
  }

  TEST_CASE("Chmod of a missing file is not_found with the exact message and creates nothing") {
    TempDir dir;
    Error e = CatchError([&] { Chmod(dir / "missing", 0640); });
    CHECK(e.code() == "not_found");
    CHECK(std::string(e.what()) == "fs: cannot chmod " + (dir / "missing") + ": No such file or directory");
    CHECK_FALSE(StatPath(dir / "missing").exists);
  }

  TEST_CASE("DiskFreeOf reports consistent sizes") {
    DiskFree df = DiskFreeOf("/tmp");
    CHECK(df.total > 0);
    CHECK(df.free <= df.total);
    CHECK(df.available <= df.free);
    Error e = CatchError([] { DiskFreeOf("/nonexistent-hoist-path"); });
    CHECK(e.code() == "not_found");
  }

  TEST_CASE("FsyncDir works on a directory and reports a missing one") {
    TempDir dir;
    CHECK_NOTHROW(FsyncDir(dir.path));
    Error e = CatchError([&] { FsyncDir(dir / "missing"); });
    CHECK(e.code() == "not_found");
    CHECK(std::string(e.what()) == "fs: cannot sync directory " + (dir / "missing") + ": No such file or directory");
  }

  TEST_CASE("a kept descriptor is shared, outlives an unlink while held, and is closed once released and unlinked") {
    TempDir dir;
    const std::string a = dir / "a";
    Put(a, "first");
    KeptFd held = KeptFd::Open(a);
    REQUIRE(held.get() >= 0);
    const int fd = held.get();
    CHECK(KeptFd::Open(a).get() == fd);  // one descriptor per file, however often asked
    CHECK(KeptFd::IfAny(a).get() == fd);
    CHECK(KeptFd::IfAny(dir / "b").get() < 0);  // IfAny opens nothing
    errno = 0;
    CHECK(KeptFd::Open(dir / "missing").get() < 0);
    CHECK(errno == ENOENT);
    CHECK(ReadFile(a) == "first");  // read through the kept one, at offset 0 each time
    CHECK(ReadFile(a) == "first");

    REQUIRE(::unlink(a.c_str()) == 0);
    Put(dir / "b", "b");
    KeptFd b = KeptFd::Open(dir / "b");  // would close unlinked, unheld ones
    char buf[5];
    CHECK(::pread(fd, buf, 5, 0) == 5);  // still held: still open
    CHECK(std::string(buf, 5) == "first");

    held = KeptFd();
    Put(dir / "c", "c");
    KeptFd c = KeptFd::Open(dir / "c");
    CHECK(c.get() != fd);
    CHECK(::fcntl(fd, F_GETFD) == -1);  // released and unlinked: closed
    CHECK(::fcntl(b.get(), F_GETFD) != -1);  // linked: kept
  }
}

}  // namespace hoist::sys

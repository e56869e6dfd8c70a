// Tests for net/tar: round trips, the ustar layout (checked against GNU tar,
// which reads what we write and writes what we read), long names, corrupt
// archives and safe extraction.
#include "net/tar.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>

#include "core/error.h"
#include "support/support.h"
#include "sys/process.h"

namespace hoist::net {
namespace {

TEST_SUITE("net/tar") {
  TEST_CASE("write then read keeps paths, types, modes, data and links") {
    std::vector<TarEntry> in = {
        {.path = "bin", .type = '5', .mode = 0755},
        {.path = "bin/busybox", .type = '0', .mode = 0755, .data = std::string("\x7f" "ELF\0\1", 6), .mtime = 1700000000},
        {.path = "etc/config.json", .type = '0', .mode = 0600, .data = "{}\n"},
        {.path = "bin/sh", .type = '2', .mode = 0777, .link = "busybox"},
        {.path = "empty", .type = '0', .mode = 0644},
    };
    std::string archive = WriteTar(in);
    CHECK(archive.size() % 512 == 0);
    auto out = ReadTar(archive);
    REQUIRE(out.size() == in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      CAPTURE(in[i].path);
      CHECK(out[i].path == in[i].path);
      CHECK(out[i].type == in[i].type);
      CHECK(out[i].mode == in[i].mode);
      CHECK(out[i].data == in[i].data);
      CHECK(out[i].link == in[i].link);
    }
    CHECK(out[1].mtime == 1700000000);
  }

  TEST_CASE("long names use the ustar prefix, longer ones a PAX record") {
    std::string dir(120, 'd');
    std::string split = dir + "/" + std::string(90, 'f');     // prefix 120 + name 90
    std::string pax = std::string(300, 'p') + "/file.txt";    // no split fits
    std::string long_link(150, 'l');
    auto out = ReadTar(WriteTar({{.path = split, .data = "a"},
                                 {.path = pax, .data = "b"},
                                 {.path = "link", .type = '2', .link = long_link}}));
    REQUIRE(out.size() == 3);
    CHECK(out[0].path == split);
    CHECK(out[0].data == "a");
    CHECK(out[1].path == pax);
    CHECK(out[1].data == "b");
    CHECK(out[2].link == long_link);
  }

  TEST_CASE("GNU tar lists and extracts what we write") {
    test::TempDir dir("tar");
    std::string long_path = std::string(130, 'x') + "/" + std::string(80, 'y') + ".txt";
    test::WriteFile(dir / "a.tar", WriteTar({{.path = "app", .type = '5', .mode = 0755},
                                              {.path = "app/run.sh", .mode = 0750, .data = "#!/bin/sh\necho hi\n"},
                                              {.path = long_path, .data = "deep"}}));
    auto r = sys::RunProcess({.argv = {"tar", "-xf", dir / "a.tar", "-C", dir.path}});
    REQUIRE_MESSAGE(r.ok(), r.err);
    CHECK(test::ReadAll(dir / "app/run.sh") == "#!/bin/sh\necho hi\n");
    CHECK(test::ReadAll(dir / long_path) == "deep");
    struct stat st {};
    REQUIRE(::stat((dir / "app/run.sh").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0750);
  }

  TEST_CASE("we read what GNU tar writes, including its long names") {
    test::TempDir dir("tar");
    std::string long_name = std::string(200, 'n');
    test::WriteFile(dir / "src/small.txt", "small");
    test::WriteFile(dir / ("src/" + long_name), "long");
    ::chmod((dir / "src/small.txt").c_str(), 0640);
    for (const char* format : {"gnu", "pax", "ustar"}) {
      CAPTURE(format);
      std::string archive = dir / (std::string(format) + ".tar");
      auto r = sys::RunProcess(
          {.argv = {"tar", "--format", format, "-cf", archive, "-C", dir / "src", "small.txt", long_name}});
      if (std::string(format) == "ustar") {
        CHECK_FALSE(r.ok());  // ustar cannot hold a 200-byte name without a '/'
        continue;
      }
      REQUIRE_MESSAGE(r.ok(), r.err);
      auto entries = ReadTar(test::ReadAll(archive));
      REQUIRE(entries.size() == 2);
      CHECK(entries[0].path == "small.txt");
      CHECK(entries[0].mode == 0640);
      CHECK(entries[0].data == "small");
      CHECK(entries[1].path == long_name);
      CHECK(entries[1].data == "long");
    }
  }

  TEST_CASE("corrupt archives are reported") {
    std::string archive = WriteTar({{.path = "a.txt", .data = std::string(1000, 'a')}});
    std::string bad_sum = archive;
    bad_sum[0] = 'b';
    Error e1 = test::CatchError([&] { ReadTar(bad_sum); });
    CHECK(std::string(e1.what()) == "tar: corrupt tar archive: bad header checksum at offset 0");
    Error e2 = test::CatchError([&] { ReadTar(archive.substr(0, 1024)); });
    CHECK(std::string(e2.what()) == "tar: corrupt tar archive: entry at offset 0 is truncated");
    Error e3 = test::CatchError([&] { ReadTar(archive.substr(0, 100)); });
    CHECK(std::string(e3.what()) == "tar: corrupt tar archive: trailing partial block");
    CHECK(ReadTar("").empty());
  }

  TEST_CASE("WriteTar refuses absolute paths and unknown types") {
    Error abs = test::CatchError([] { WriteTar({{.path = "/etc/passwd"}}); });
    CHECK(std::string(abs.what()) == "tar: tar entry needs a relative path, got \"/etc/passwd\"");
    Error type = test::CatchError([] { WriteTar({{.path = "dev", .type = '3'}}); });
    CHECK(std::string(type.what()) == "tar: cannot write tar entry type '3' for dev");
  }

  TEST_CASE("TarDirectory stores a tree with its modes, TarPath under its base name") {
    test::TempDir dir("tar");
    test::WriteFile(dir / "ctx/Dockerfile", "FROM scratch\n");
    test::WriteFile(dir / "ctx/bin/tool", "binary");
    ::chmod((dir / "ctx/bin/tool").c_str(), 0755);
    std::filesystem::create_symlink("tool", dir / "ctx/bin/alias");
    auto entries = ReadTar(TarDirectory(dir / "ctx"));
    REQUIRE(entries.size() == 4);
    CHECK(entries[0].path == "Dockerfile");
    CHECK(entries[1].path == "bin");
    CHECK(entries[1].type == '5');
    CHECK(entries[2].path == "bin/alias");
    CHECK(entries[2].type == '2');
    CHECK(entries[2].link == "tool");
    CHECK(entries[3].path == "bin/tool");
    CHECK(entries[3].mode == 0755);
    CHECK(entries[3].data == "binary");

    auto one = ReadTar(TarPath(dir / "ctx/Dockerfile"));
    REQUIRE(one.size() == 1);
    CHECK(one[0].path == "Dockerfile");
    auto tree = ReadTar(TarPath(dir / "ctx/bin/"));
    REQUIRE(tree.size() == 3);
    CHECK(tree[0].path == "bin");
    CHECK(tree[2].path == "bin/tool");

    Error missing = test::CatchError([&] { TarDirectory(dir / "nope"); });
    CHECK(missing.code() == "not_found");
    CHECK(std::string(missing.what()) == "tar: no such directory: " + (dir / "nope"));
  }

  TEST_CASE("ExtractTar writes files, dirs and links, and refuses to escape") {
    test::TempDir dir("tar");
    ExtractTar(ReadTar(WriteTar({{.path = "out", .type = '5', .mode = 0755},
                                 {.path = "out/a.txt", .mode = 0600, .data = "A"},
                                 {.path = "out/link", .type = '2', .link = "a.txt"}})),
               dir / "dest");
    CHECK(test::ReadAll(dir / "dest/out/a.txt") == "A");
    CHECK(std::filesystem::read_symlink(dir / "dest/out/link") == "a.txt");
    struct stat st {};
    REQUIRE(::stat((dir / "dest/out/a.txt").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);

    std::vector<TarEntry> evil = {{.path = "ok.txt", .data = "fine"}, {.path = "../escape.txt", .data = "x"}};
    Error e = test::CatchError([&] { ExtractTar(evil, dir / "dest2"); });
    CHECK(std::string(e.what()) == "tar: unsafe path in archive: ../escape.txt");
    CHECK_FALSE(std::filesystem::exists(dir / "dest2/ok.txt"));
    CHECK_FALSE(std::filesystem::exists(dir / "escape.txt"));
  }
}

}  // namespace
}  // namespace hoist::net

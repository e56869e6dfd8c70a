// Tests for sys/sha256 against the FIPS 180-2 vectors and across the file
// reader's 1 MiB chunk boundary.
#include "sys/sha256.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "support/support.h"

namespace hoist::sys {
namespace {

using test::TempDir;

constexpr const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";


}  // namespace

TEST_SUITE("sys/sha256") {
  TEST_CASE("Sha256Hex matches the known vectors for empty and abc") {
    CHECK(Sha256Hex("") == kEmpty);
    CHECK(Sha256Hex("abc") == kAbc);
    CHECK(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  }

  TEST_CASE("Sha256FileHex equals Sha256Hex of the same bytes across chunk boundaries") {
    TempDir dir;
    std::string data((3 << 20) + 17, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 7 + i / 1000) & 0xff);
    std::string file = dir.path + "/blob";
    std::ofstream(file, std::ios::binary) << data;
    CHECK(Sha256FileHex(file) == Sha256Hex(data));

    std::string empty = dir.path + "/empty";
    std::ofstream(empty, std::ios::binary).flush();
    CHECK(Sha256FileHex(empty) == kEmpty);
  }

  TEST_CASE("Sha256FileHex of a missing file is fs not_found") {
    try {
      Sha256FileHex("/nonexistent-hoist-file");
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == "not_found");
      CHECK(std::string(e.what()) == "fs: cannot read /nonexistent-hoist-file: No such file or directory");
    }
  }

  TEST_CASE("incremental updates equal the one-shot digest and FinishHex starts over") {
    Sha256 h;
    h.Update("a");
    h.Update("");
    h.Update("bc");
    CHECK(h.FinishHex() == kAbc);
    CHECK(h.FinishHex() == kEmpty);
    h.Update("abc");
    CHECK(h.FinishHex() == kAbc);
  }

  TEST_CASE("a moved-to Sha256 keeps the state") {
    Sha256 a;
    a.Update("ab");
    Sha256 b = std::move(a);
    b.Update("c");
    CHECK(b.FinishHex() == kAbc);
  }
}

}  // namespace hoist::sys

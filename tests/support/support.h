// Shared test helpers: temp dirs, file writing, catching hoist::Error, and
// running the real hoist binary (CLI smoke tests).
#pragma once

#include <doctest/doctest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "sys/process.h"

namespace hoist::test {

/// A fresh directory under /tmp, removed with everything in it.
struct TempDir {
  std::string path;
  explicit TempDir(const char* tag = "test") {
    std::string tmpl = std::string("/tmp/hoist-") + tag + "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    // Not inside REQUIRE: benches build with DOCTEST_CONFIG_DISABLE, where
    // a REQUIRE's expression is never evaluated.
    const bool made = ::mkdtemp(buf.data()) != nullptr;
    if (!made) throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    path = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

/// Writes data to path, creating parent directories.
inline void WriteFile(const std::string& path, const std::string& data) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

/// Damages one byte of a file in place (a bit-rotted backup).
inline void FlipByte(const std::string& path, size_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x55);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

/// Runs f and returns the hoist::Error it throws (fails the test if none).
template <typename F>
Error CatchError(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no hoist::Error thrown");
  return Error("", "", "");
}

/// A finished process for a failure message: exit code, stdout, stderr.
inline std::string Describe(const sys::ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout\n" + r.out + "\n--- stderr\n" + r.err;
}

/// Runs the real hoist binary in dir with args; stdout/stderr captured.
inline sys::ProcessResult RunHoist(const std::string& dir, std::vector<std::string> args,
                                   std::map<std::string, std::string> env = {},
                                   std::optional<std::string> stdin_data = std::nullopt) {
  sys::ProcessSpec spec;
  spec.argv.push_back(HOIST_BINARY);
  for (auto& a : args) spec.argv.push_back(std::move(a));
  spec.cwd = dir;
  spec.env = std::move(env);
  spec.env.emplace("NO_COLOR", "1");
  spec.stdin_data = std::move(stdin_data);
  spec.timeout = std::chrono::milliseconds(60000);
  return sys::RunProcess(spec);
}

/// For integration tests: a required real service (nginx, PostgreSQL,
/// dockerd) is missing. Outside CI the test is reported as skipped (exit
/// 77, CTest's SKIP_RETURN_CODE) with the reason; under CI=true it fails.
inline void SkipUnless(bool available, const std::string& reason) {
  if (available) return;
  const char* ci = std::getenv("CI");
  if (ci && std::string(ci) == "true") {
    FAIL("required service unavailable under CI=true: " << reason);
  }
  std::fprintf(stderr, "SKIPPED: %s\n", reason.c_str());
  std::fflush(stderr);
  std::_Exit(77);
}

}  // namespace hoist::test

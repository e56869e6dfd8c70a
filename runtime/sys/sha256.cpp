// Sha256 on OpenSSL's SHA256_* functions (the same SHA-NI/AVX code as EVP);
// the file variant streams so hashing a multi-GB backup costs 1 MiB.
// Why not EVP: OpenSSL 3's EVP fetch builds its provider name maps on first
// use (~1 ms), which every `hoist run` would pay to hash its playbook.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "sys/sha256.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "sys/fs.h"

namespace hoist::sys {
namespace {

constexpr size_t kFileChunk = 1 << 20;

[[noreturn]] void ThrowOpenSsl(const char* call) {
  throw Error("sha256", "failed", std::string(call) + " failed");
}

std::string Hex(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

[[noreturn]] void ThrowRead(const std::string& path, int err) {
  throw Error("fs", err == ENOENT ? "not_found" : "failed", "cannot read " + path + ": " + std::strerror(err));
}

}  // namespace

void Sha256::CtxFree::operator()(SHA256state_st* ctx) const { delete ctx; }

Sha256::Sha256() : ctx_(new SHA256_CTX) {
  if (SHA256_Init(ctx_.get()) != 1) ThrowOpenSsl("SHA256_Init");
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(std::string_view data) {
  if (SHA256_Update(ctx_.get(), data.data(), data.size()) != 1) ThrowOpenSsl("SHA256_Update");
}

std::string Sha256::FinishHex() {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  if (SHA256_Final(digest, ctx_.get()) != 1) ThrowOpenSsl("SHA256_Final");
  if (SHA256_Init(ctx_.get()) != 1) ThrowOpenSsl("SHA256_Init");
  return Hex(digest, sizeof digest);
}

std::string Sha256Hex(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.FinishHex();
}

std::string Sha256FileHex(const std::string& path) {
  // A database this process has open is read through its kept descriptor
  // (sys::KeptFd): closing a descriptor of it would drop SQLite's locks.
  const KeptFd kept_file = KeptFd::IfAny(path);
  const int kept_fd = kept_file.get();
  Fd own;
  if (kept_fd < 0) {
    own = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (own.get() < 0) ThrowRead(path, errno);
  }
  const int fd = kept_fd >= 0 ? kept_fd : own.get();
  Sha256 h;
  std::vector<char> buf(kFileChunk);
  for (off_t off = 0;;) {
    ssize_t n = kept_fd >= 0 ? ::pread(fd, buf.data(), buf.size(), off) : ::read(fd, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowRead(path, errno);
    }
    off += n;
    h.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  return h.FinishHex();
}

}  // namespace hoist::sys

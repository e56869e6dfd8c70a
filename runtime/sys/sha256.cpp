// Sha256 on OpenSSL EVP; the file variant streams so hashing a multi-GB
// backup costs 1 MiB of memory.
#include "sys/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"

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

void Sha256::CtxFree::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_) ThrowOpenSsl("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) ThrowOpenSsl("EVP_DigestInit_ex");
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(std::string_view data) {
  if (EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1) ThrowOpenSsl("EVP_DigestUpdate");
}

std::string Sha256::FinishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), digest, &len) != 1) ThrowOpenSsl("EVP_DigestFinal_ex");
  if (EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) ThrowOpenSsl("EVP_DigestInit_ex");
  return Hex(digest, len);
}

std::string Sha256Hex(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.FinishHex();
}

std::string Sha256FileHex(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowRead(path, errno);
  std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) { ::close(*f); });
  Sha256 h;
  std::vector<char> buf(kFileChunk);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowRead(path, errno);
    }
    h.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  return h.FinishHex();
}

}  // namespace hoist::sys

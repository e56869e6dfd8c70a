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
#include "sys/file_reader.h"

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
  FileReader in(path);  // a database this process has open: through its kept descriptor
  Sha256 h;
  std::vector<char> buf(kFileChunk);
  while (size_t n = in.Read(buf.data(), buf.size())) h.Update(std::string_view(buf.data(), n));
  return h.FinishHex();
}

}  // namespace hoist::sys

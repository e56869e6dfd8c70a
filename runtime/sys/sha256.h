// SHA-256 over OpenSSL's EVP interface: of a string, of a file (streamed,
// constant memory) or incrementally. Digests are lowercase hex.
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct SHA256state_st;

namespace hoist::sys {

/// Hex digest of data.
std::string Sha256Hex(std::string_view data);

/// Hex digest of a file's contents, read in 1 MiB chunks. Throws
/// hoist::Error{"fs","not_found"|"failed","cannot read <path>: <strerror>"}.
std::string Sha256FileHex(const std::string& path);

/// Incremental hashing: Update any number of times, then FinishHex. After
/// FinishHex the object starts over, ready for a new message.
/// Throws hoist::Error{"sha256","failed",...} only if OpenSSL itself fails.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(std::string_view data);
  std::string FinishHex();

 private:
  struct CtxFree {
    void operator()(SHA256state_st* ctx) const;
  };
  std::unique_ptr<SHA256state_st, CtxFree> ctx_;
};

}  // namespace hoist::sys

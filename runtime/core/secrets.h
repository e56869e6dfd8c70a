// The process-wide secret registry. Every secret value hoist reads is
// registered here, and every line that leaves the process (logs, journal,
// errors, JSON events) passes through Mask().
#pragma once

#include <string>
#include <string_view>

namespace hoist {

/// The shortest secret Mask() replaces: masking shorter ones would mangle
/// ordinary text (every "on" of a 2-letter password).
constexpr size_t kMinSecretLength = 4;

/// Registers a secret value; later Mask() calls replace it with "***" in
/// every form it can take in hoist's output: as given, percent-encoded
/// (upper and lower hex, as in a URL) and percent-decoded (a value that is
/// itself encoded), and JSON-escaped. Returns false (and registers nothing)
/// for a value shorter than kMinSecretLength.
bool RegisterSecret(std::string_view value);

/// True when text holds a registered secret in any of its forms.
bool ContainsSecret(std::string_view text);

/// RFC 3986 percent-encoding of everything but the unreserved characters
/// (A-Z a-z 0-9 - . _ ~): a password or name made safe inside a URL.
std::string PercentEncode(std::string_view value, bool lower_hex = false);

/// `text` with every registered secret replaced by "***" (longest first).
std::string Mask(std::string_view text);

/// For tests: forget every registered secret.
void ClearSecrets();

/// Reads secret NAME from the environment variable NAME, else from the file
/// named by NAME_FILE (trailing newline removed), registers and returns it.
/// Throws Error{"secret","not_found",...} naming both places it looked.
std::string ReadSecret(const std::string& name);

}  // namespace hoist

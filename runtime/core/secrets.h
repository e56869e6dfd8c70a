// The process-wide secret registry. Every secret value hoist reads is
// registered here, and every line that leaves the process (logs, journal,
// errors, JSON events) passes through Mask().
#pragma once

#include <string>
#include <string_view>

namespace hoist {

/// Registers a secret value; later Mask() calls replace it with "***".
/// Values shorter than 3 bytes are ignored (masking them would mangle text).
void RegisterSecret(std::string_view value);

/// `text` with every registered secret replaced by "***" (longest first).
std::string Mask(std::string_view text);

/// For tests: forget every registered secret.
void ClearSecrets();

/// Reads secret NAME from the environment variable NAME, else from the file
/// named by NAME_FILE (trailing newline removed), registers and returns it.
/// Throws Error{"secret","not_found",...} naming both places it looked.
std::string ReadSecret(const std::string& name);

}  // namespace hoist

// Helpers shared by the two engines' connections (not part of the API).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hoist::db::detail {

/// " (at line L, column C: <that line of sql, trimmed to ~80 chars>)" for a
/// byte offset into sql; "" when the offset is outside it.
std::string PositionSuffix(std::string_view sql, size_t byte_offset);

/// The first line of sql, trimmed, at most 80 bytes (for journal names and
/// messages).
std::string FirstLine(std::string_view sql);

/// "5 s", "0.25 s".
std::string Seconds(double s);

}  // namespace hoist::db::detail

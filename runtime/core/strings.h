// String helpers every floor uses: trimming, joining, an exception's text.
// One copy here so they cannot drift apart.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace hoist {

/// The characters std::isspace accepts in the "C" locale.
inline constexpr std::string_view kWhitespace = " \t\n\v\f\r";

/// s without leading and trailing characters from `chars`.
std::string Trim(std::string_view s, std::string_view chars = kWhitespace);
/// s without leading characters from `chars`.
std::string TrimLeft(std::string_view s, std::string_view chars = kWhitespace);
/// s without trailing characters from `chars`.
std::string TrimRight(std::string_view s, std::string_view chars = kWhitespace);

/// The items with `sep` between each two: Join({"a", "b"}, ", ") == "a, b".
std::string Join(const std::vector<std::string>& items, std::string_view sep);

/// What an exception says: a hoist::Error's message (without area and
/// code), otherwise what().
std::string ErrorText(const std::exception& e);

/// Edit distance, for "did you mean" suggestions.
size_t EditDistance(const std::string& a, const std::string& b);
/// The closest candidate within distance max(2, len/3), or "" (a case
/// slip first).
std::string Suggest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace hoist

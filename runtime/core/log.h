// Logging setup: spdlog to stderr, every message masked for secrets. The
// CLI picks the level (-v/-q) and whether output is JSON.
#pragma once

#include <string_view>

namespace hoist::log {

enum class Level { kDebug, kInfo, kWarn, kError };

/// Configures the default logger. json=true makes log lines NDJSON events on
/// stdout instead of text on stderr.
void Setup(Level min_level, bool json);

/// Logs a masked message (thread-safe).
void Write(Level level, std::string_view message);

inline void Info(std::string_view m) { Write(Level::kInfo, m); }
inline void Warn(std::string_view m) { Write(Level::kWarn, m); }
inline void Error(std::string_view m) { Write(Level::kError, m); }

/// Optional observer of every log line (tests capture warnings with it).
using Observer = void (*)(void* ctx, Level level, std::string_view masked_message);
void SetObserver(Observer fn, void* ctx);

const char* LevelName(Level level);

}  // namespace hoist::log

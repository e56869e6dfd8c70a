#include "core/log.h"

#include <cstdio>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "core/secrets.h"

namespace hoist::log {
namespace {

struct Config {
  Level min = Level::kInfo;
  bool json = false;
  Observer observer = nullptr;
  void* observer_ctx = nullptr;
  std::shared_ptr<spdlog::logger> logger;
} g_config;

spdlog::level::level_enum ToSpd(Level l) {
  switch (l) {
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

void Setup(Level min_level, bool json) {
  g_config.min = min_level;
  g_config.json = json;
  if (!g_config.logger) {
    g_config.logger = std::make_shared<spdlog::logger>("hoist", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  }
  g_config.logger->set_pattern("%^%l%$: %v");
  g_config.logger->set_level(ToSpd(min_level));
}

void SetObserver(Observer fn, void* ctx) {
  g_config.observer = fn;
  g_config.observer_ctx = ctx;
}

void Write(Level level, std::string_view message) {
  std::string masked = Mask(message);
  if (g_config.observer) g_config.observer(g_config.observer_ctx, level, masked);
  if (level < g_config.min) return;
  if (g_config.json) {
    nlohmann::json ev = {{"event", "log"}, {"level", LevelName(level)}, {"message", masked}};
    std::string line = ev.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
    return;
  }
  if (!g_config.logger) Setup(g_config.min, false);
  g_config.logger->log(ToSpd(level), "{}", masked);
}

}  // namespace hoist::log

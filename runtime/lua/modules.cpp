#include "lua/modules.h"

#include <atomic>

namespace hoist::lua {
namespace {

std::atomic<const NativeModule*> g_modules{nullptr};
std::atomic<size_t> g_count{0};

}  // namespace

void SetNativeModules(std::span<const NativeModule> modules) {
  g_count = 0;
  g_modules = modules.data();
  g_count = modules.size();
}

std::span<const NativeModule> NativeModules() { return {g_modules.load(), g_count.load()}; }

}  // namespace hoist::lua

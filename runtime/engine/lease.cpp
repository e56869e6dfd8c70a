#include "engine/lease.h"

#include <unistd.h>

#include <chrono>
#include <sys/random.h>

#include <fmt/format.h>

#include "core/log.h"

namespace hoist::engine {

LeaseKeeper::LeaseKeeper(StoreFactory open_store, Lease lease, double ttl)
    : open_store_(std::move(open_store)), lease_(std::move(lease)), ttl_(ttl), thread_([this] { Loop(); }) {}

LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool LeaseKeeper::lost() const {
  std::lock_guard lock(mu_);
  return lost_;
}

void LeaseKeeper::Loop() {
  std::unique_ptr<StateStore> store;  // opened at the first beat: keeps start-up fast
  auto period = std::chrono::duration<double>(ttl_ / 3.0);
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (cv_.wait_for(lock, period, [this] { return stop_; })) break;
    lock.unlock();
    bool ok = true;
    try {
      if (!store) store = open_store_();
      ok = store->Heartbeat(lease_.env, lease_.token, ttl_);
    } catch (const std::exception& e) {
      store.reset();  // a shared store's connection may be gone: a new one next beat
      log::Warn(fmt::format("lease heartbeat failed (will retry): {}", e.what()));
    }
    lock.lock();
    if (!ok && !lost_) {
      lost_ = true;
      log::Warn(fmt::format("the lease on environment '{}' was released by someone else (hoist lock release) or expired",
                            lease_.env));
    }
  }
}

std::string NewLeaseToken() {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) r = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return fmt::format("{}-{:016x}", getpid(), r);
}

}  // namespace hoist::engine

// Keeps a deploy lease alive: heartbeats from a background thread on its own
// state-store connection, so a crashed run's lease simply expires.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "engine/state_store.h"

namespace hoist::engine {

class LeaseKeeper {
 public:
  using StoreFactory = std::function<std::unique_ptr<StateStore>()>;

  /// Starts heartbeating `lease` (already acquired) every ttl/3 seconds.
  LeaseKeeper(StoreFactory open_store, Lease lease, double ttl);
  /// Stops the thread (does not release: the owner does, on its store).
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  /// True once a heartbeat found the lease taken away (forced release).
  bool lost() const;

 private:
  void Loop();

  StoreFactory open_store_;
  Lease lease_;
  double ttl_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool lost_ = false;
  std::thread thread_;
};

/// A unique token for one lease holder.
std::string NewLeaseToken();

}  // namespace hoist::engine

// Taking turns at the Lua VM. run:each works several hosts at once, one
// thread each, but a Lua VM runs one thread at a time: each thread holds
// the turn (a mutex) while it runs Lua, and gives it up while it waits on
// the world (a remote call, a sleep, a process), so the other hosts' work
// goes on meanwhile. A thread that takes no turns (every ordinary run) pays
// nothing.
#pragma once

#include <mutex>

namespace hoist {

/// Marks the calling thread as taking turns on m (nullptr: it takes none).
/// The thread must hold m whenever it is not inside a TurnGivenUp.
void SetTurn(std::mutex* m);
/// Whether the calling thread takes turns (it runs inside run:each).
bool TakingTurns();

/// RAII: the calling thread gives its turn up for this scope and waits for
/// it again at the end (also when unwinding). No-op for a thread taking no
/// turns, and inside another TurnGivenUp. Nothing inside may touch the Lua VM.
class TurnGivenUp {
 public:
  TurnGivenUp();
  ~TurnGivenUp();
  TurnGivenUp(const TurnGivenUp&) = delete;
  TurnGivenUp& operator=(const TurnGivenUp&) = delete;

 private:
  std::mutex* m_;
};

}  // namespace hoist

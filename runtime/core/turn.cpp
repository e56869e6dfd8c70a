#include "core/turn.h"

namespace hoist {
namespace {
thread_local std::mutex* t_turn = nullptr;
}

void SetTurn(std::mutex* m) { t_turn = m; }
bool TakingTurns() { return t_turn != nullptr; }

// A world wrapping another (a sandbox's simulated host reading the real
// one) gives the turn up twice: the inner scope must find none to give.
TurnGivenUp::TurnGivenUp() : m_(t_turn) {
  if (!m_) return;
  t_turn = nullptr;
  m_->unlock();
}

TurnGivenUp::~TurnGivenUp() {
  if (!m_) return;
  m_->lock();
  t_turn = m_;
}

}  // namespace hoist

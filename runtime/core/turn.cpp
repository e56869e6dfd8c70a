#include "core/turn.h"

namespace hoist {
namespace {
thread_local std::mutex* t_turn = nullptr;
}

void SetTurn(std::mutex* m) { t_turn = m; }
bool TakingTurns() { return t_turn != nullptr; }

TurnGivenUp::TurnGivenUp() : m_(t_turn) {
  if (m_) m_->unlock();
}

TurnGivenUp::~TurnGivenUp() {
  if (m_) m_->lock();
}

}  // namespace hoist

// hoist::Error: the one exception type the runtime raises for expected
// failures. It carries an area ("db", "proc"), a short code playbooks branch
// on ("timeout", "not_found") and a human message.
#pragma once

#include <stdexcept>
#include <string>

namespace hoist {

class Error : public std::runtime_error {
 public:
  /// what() is "area: message"; code is a short lowercase token.
  Error(std::string area, std::string code, std::string message)
      : std::runtime_error(area.empty() ? message : area + ": " + message),
        area_(std::move(area)), code_(std::move(code)), message_(std::move(message)) {}

  const std::string& area() const { return area_; }
  const std::string& code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  std::string area_;
  std::string code_;
  std::string message_;
};

}  // namespace hoist

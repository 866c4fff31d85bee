// A C++ exception that carries a pairpick error code (E_FORMAT, E_SHAPE, …) across the binding,
// where it becomes a PairpickError with the same code.
#pragma once
#include <stdexcept>
#include <string>

namespace pp {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

}  // namespace pp

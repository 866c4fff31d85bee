// A C++ exception that carries a pairpick error code (core/codes.h) across the binding, where it
// becomes a PairpickError with the same code.
#pragma once
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/codes.h"

namespace pp {

// The code whose JS name is `name` ("E_IO"); E_INTERNAL when no code has that name.
inline pp_status status_named(const char* name) {
#define PP_NAMED(id, text) \
  if (std::strcmp(name, text) == 0) return id;
  PP_ERRORS(PP_NAMED)
#undef PP_NAMED
  return PP_E_INTERNAL;
}

class Error : public std::runtime_error {
 public:
  Error(pp_status code, const std::string& message) : std::runtime_error(message), code_(code) {}
  // The same with the code given by its JS name.
  Error(const char* code_name, const std::string& message) : Error(status_named(code_name), message) {}

  pp_status code() const { return code_; }

 private:
  pp_status code_;
};

}  // namespace pp

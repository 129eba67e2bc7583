// Query parameters shared by the surfaces.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "util/error.h"

namespace era::api {

// An integer query parameter from min to max, or `dflt` when absent; 400 invalid_<name> otherwise.
inline int64_t int_param(const std::optional<std::string>& s, int64_t dflt, int64_t min, int64_t max,
                         const char* name) {
  if (!s) return dflt;
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(s->c_str(), &end, 10);
  if (s->empty() || *end || errno || n < min || n > max)
    throw bad_request("invalid_" + std::string(name), std::string(name) + " must be an integer from " +
                                                          std::to_string(min) + " to " + std::to_string(max));
  return n;
}

}  // namespace era::api

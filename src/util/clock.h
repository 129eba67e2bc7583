#pragma once

#include <chrono>
#include <cstdint>

namespace era {

// Seconds since the Unix epoch.
inline int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Milliseconds since the Unix epoch.
inline int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace era

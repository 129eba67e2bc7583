// Time and dates, once for the whole proxy: the clock (Unix seconds and milliseconds) and the date
// formats the proxy reads and writes (HTTP's IMF-fixdate, ISO 8601 with milliseconds, SigV4's
// "YYYYMMDDTHHMMSSZ"). All in UTC; parsing is strict and returns nullopt on anything else.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

namespace dates {

// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 IMF-fixdate) from Unix milliseconds.
std::string http_date(int64_t unix_ms);
// Unix seconds from an IMF-fixdate.
std::optional<int64_t> parse_http_date(std::string_view value);

// "2024-01-02T03:04:05.678Z" from Unix milliseconds.
std::string iso8601(int64_t unix_ms);
// Unix milliseconds from "YYYY-MM-DDTHH:MM:SS[.fff...]Z" (fractions beyond milliseconds dropped).
std::optional<int64_t> parse_iso8601(std::string_view value);

// "YYYYMMDDTHHMMSSZ" (SigV4's x-amz-date) from Unix seconds.
std::string amz_date(int64_t unix_s);

}  // namespace dates
}  // namespace era

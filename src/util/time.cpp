#include "util/time.h"

#include <cstdio>
#include <ctime>

namespace era::dates {
namespace {

std::tm utc(int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}

std::string format(int64_t unix_s, const char* fmt) {
  std::tm tm = utc(unix_s);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, fmt, &tm);
  return std::string(buf, n);
}

// Floor division, so times before 1970 format too.
int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

std::string http_date(int64_t unix_ms) {
  // Names spelled out: strftime's %a and %b would follow the locale.
  std::tm tm = utc(floor_div(unix_ms, 1000));
  static const char* const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::optional<int64_t> parse_http_date(std::string_view value) {
  const std::string v(value);
  std::tm tm{};
  const char* rest = strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!rest || *rest != '\0') return std::nullopt;
  return int64_t(timegm(&tm));
}

std::string iso8601(int64_t unix_ms) {
  const int64_t secs = floor_div(unix_ms, 1000);
  char out[16];
  std::snprintf(out, sizeof out, ".%03dZ", static_cast<int>(unix_ms - secs * 1000));
  return format(secs, "%Y-%m-%dT%H:%M:%S") + out;
}

std::optional<int64_t> parse_iso8601(std::string_view value) {
  const std::string v(value);
  std::tm tm{};
  const char* rest = strptime(v.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return std::nullopt;
  int64_t ms = int64_t(timegm(&tm)) * 1000;
  if (*rest == '.') {
    int64_t frac = 0, digits = 0;
    const char* start = ++rest;
    for (; *rest >= '0' && *rest <= '9'; ++rest)
      if (digits < 3) frac = frac * 10 + (*rest - '0'), ++digits;
    if (rest == start) return std::nullopt;
    while (digits++ < 3) frac *= 10;
    ms += frac;
  }
  if (*rest != 'Z' || rest[1] != '\0') return std::nullopt;
  return ms;
}

std::string amz_date(int64_t unix_s) { return format(unix_s, "%Y%m%dT%H%M%SZ"); }

}  // namespace era::dates

#include "util/log.h"

#include <atomic>
#include <cstdio>

#include "util/time.h"

namespace era::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::info)};

const char* name_of(Level l) {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "info";
}
}  // namespace

void set_level(Level l) { g_level.store(static_cast<int>(l)); }
Level level() { return static_cast<Level>(g_level.load()); }

bool parse_level(const std::string& n, Level& out) {
  if (n == "debug") out = Level::debug;
  else if (n == "info") out = Level::info;
  else if (n == "warn") out = Level::warn;
  else if (n == "error") out = Level::error;
  else return false;
  return true;
}

void write(Level l, const std::string& message) {
  if (static_cast<int>(l) < g_level.load()) return;
  const std::string stamp = dates::iso8601(unix_now_ms());
  // One fprintf per line: stdio locks the stream, so lines from many threads never interleave.
  std::fprintf(stderr, "%s %-5s %s\n", stamp.c_str(), name_of(l), message.c_str());
}

}  // namespace era::log

#include "util/log.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdio>

#include "util/time.h"

namespace era::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::info)};
std::atomic<int> g_format{static_cast<int>(Format::text)};
thread_local const std::string* t_request_id = nullptr;

const char* name_of(Level l) {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "info";
}

std::string stamp_now() { return dates::iso8601(unix_now_ms()); }
}  // namespace

void set_level(Level l) { g_level.store(static_cast<int>(l)); }
Level level() { return static_cast<Level>(g_level.load()); }
void set_format(Format f) { g_format.store(static_cast<int>(f)); }
Format format() { return static_cast<Format>(g_format.load()); }

bool parse_level(const std::string& n, Level& out) {
  if (n == "debug") out = Level::debug;
  else if (n == "info") out = Level::info;
  else if (n == "warn") out = Level::warn;
  else if (n == "error") out = Level::error;
  else return false;
  return true;
}

bool parse_format(const std::string& n, Format& out) {
  if (n == "text") out = Format::text;
  else if (n == "json") out = Format::json;
  else return false;
  return true;
}

void set_request_id(const std::string* id) { t_request_id = id; }

std::string render(Level l, const std::string& message, const std::vector<Field>& fields) {
  const std::string stamp = stamp_now();
  if (format() == Format::json) {
    nlohmann::ordered_json j;
    j["time"] = stamp;
    j["level"] = name_of(l);
    j["msg"] = message;
    if (t_request_id) j["request_id"] = *t_request_id;
    for (const auto& f : fields) {
      const std::string key(f.key);
      if (f.number) {
        auto v = nlohmann::json::parse(f.value, nullptr, false);
        j[key] = v.is_number() ? nlohmann::ordered_json(v) : nlohmann::ordered_json(f.value);
      } else {
        j[key] = f.value;
      }
    }
    // Invalid UTF-8 (a tenant's key in a message) is replaced, never allowed to break the line.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  char head[64];
  std::snprintf(head, sizeof head, "%s %-5s ", stamp.c_str(), name_of(l));
  std::string line = head + message;
  for (const auto& f : fields) {
    line += ' ';
    line += f.key;
    line += '=';
    line += f.value;
  }
  return line;
}

void write(Level l, const std::string& message) { write(l, message, {}); }

void write(Level l, const std::string& message, const std::vector<Field>& fields) {
  if (static_cast<int>(l) < g_level.load()) return;
  const std::string line = render(l, message, fields);
  // One fprintf per line: stdio locks the stream, so lines from many threads never interleave.
  std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace era::log

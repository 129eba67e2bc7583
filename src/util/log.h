// The logger: the one global the project allows. Lines go to stderr, one per event, never with a
// token or a body in them (callers pass only what may be logged).
//
// Two formats (server.log_format): "text", one readable line per event, and "json", one JSON object
// per line: {"time", "level", "msg", "request_id" (when logged while a request is handled), ...fields}.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace era::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };
enum class Format { text, json };

void set_level(Level level);
Level level();
bool parse_level(const std::string& name, Level& out);
void set_format(Format format);
Format format();
bool parse_format(const std::string& name, Format& out);

// A named value of a structured line. `number` values are written bare in JSON (they must be a JSON
// number); the others as strings. In text they follow the message as key=value.
struct Field {
  std::string_view key;
  std::string value;
  bool number = false;
};

void write(Level level, const std::string& message);
void write(Level level, const std::string& message, const std::vector<Field>& fields);
inline void debug(const std::string& m) { write(Level::debug, m); }
inline void info(const std::string& m) { write(Level::info, m); }
inline void warn(const std::string& m) { write(Level::warn, m); }
inline void error(const std::string& m) { write(Level::error, m); }

// The request this thread is handling (set by the router's observer for the length of a request), so
// every line logged meanwhile carries its id. Pass nullptr to clear. The string must outlive the use.
void set_request_id(const std::string* id);

// The line as it would be written (no newline); for tests.
std::string render(Level level, const std::string& message, const std::vector<Field>& fields);

}  // namespace era::log

// The logger: the one global the project allows. Lines go to stderr, one per event, never with a
// token or a body in them (callers pass only what may be logged).
#pragma once

#include <string>

namespace era::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

void set_level(Level level);
Level level();
bool parse_level(const std::string& name, Level& out);

void write(Level level, const std::string& message);
inline void debug(const std::string& m) { write(Level::debug, m); }
inline void info(const std::string& m) { write(Level::info, m); }
inline void warn(const std::string& m) { write(Level::warn, m); }
inline void error(const std::string& m) { write(Level::error, m); }

}  // namespace era::log

// Fuzz target: the configuration (config/config.h). The first input byte picks the mode:
// - even: the rest is a TOML file, loaded with load_config() as `serve --config` loads it;
// - odd: the second byte picks a setting and the rest is its value, given through its environment
//   variable (and, for settings that have one, its flag), as a deployment would.
// Must hold: nothing but ConfigError escapes (toml++ errors, std::stoi and friends included), nothing
// crashes or hangs, and a configuration that loads passes validate().
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config/config.h"

namespace {

// The TOML text goes into a memory file, read by path as a real config file is.
const std::string& memory_file() {
  static const std::string path = [] {
    const int fd = memfd_create("era-fuzz-config", 0);
    if (fd < 0) std::abort();
    return "/proc/self/fd/" + std::to_string(fd);
  }();
  return path;
}

void write_file(const uint8_t* data, size_t size) {
  const int fd = std::stoi(memory_file().substr(memory_file().rfind('/') + 1));
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace era;
  if (size == 0) return 0;
  // A fuzzed *_file setting must not make the target read a device or a pipe for ever.
  auto no_env = [](const char*) -> const char* { return nullptr; };
  try {
    Config c;
    if ((data[0] & 1) == 0) {
      write_file(data + 1, size - 1);
      c = load_config(memory_file(), {}, no_env);
    } else {
      if (size < 2) return 0;
      const auto& table = settings();
      const Setting& s = table[data[1] % table.size()];
      const std::string value(reinterpret_cast<const char*>(data + 2), size - 2);
      if (s.key.size() > 5 && s.key.compare(s.key.size() - 5, 5, "_file") == 0) return 0;  // a path, read as is
      if (value.find('\0') != std::string::npos) return 0;  // environment values and argv hold no NUL
      const std::string env_name = s.env;
      c = load_config("", {}, [&](const char* name) -> const char* {
        return name == env_name ? value.c_str() : nullptr;
      });
      if (!s.flag.empty()) c = load_config("", {{s.flag, value}}, no_env);
    }
    validate(c);
  } catch (const ConfigError&) {
  }
  return 0;
}

// Config: every setting of the proxy, resolved once at start-up from (lowest to highest precedence)
// built-in defaults, the TOML file, environment variables and command-line flags.
//
// Settings are declared once, in the table returned by settings() (config.cpp): each has its TOML key,
// its environment variable, its flag and a parser that validates the value. A new setting is one new
// row there plus a field here; loading, flags, validation messages and `config.example.toml` checks all
// follow from the table.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace era {

// Thrown for a bad configuration: the message names the key and what is allowed.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Config {
  // [server]
  std::string host = "127.0.0.1";
  int port = 8787;
  int threads = 128;                  // worker threads; each kept-alive connection holds one
  int keep_alive_max_count = 100000;  // requests per kept-alive connection
  int keep_alive_timeout = 5;         // seconds an idle kept-alive connection is held (also bounds
                                      // how long SIGTERM waits for idle connections to close)
  int read_timeout = 60;              // seconds to wait for bytes of a request in progress
  int listen_backlog = 1024;
  std::string log_level = "info";

  // top level
  std::string backend = "local";

  // [storage]
  std::string data_dir = "data";
  uint64_t r2_max_object_size = 5ull << 30;  // bytes; R2's single-upload limit (5 GiB)

  // [d1] limits, D1's by default (a statement past them is refused or interrupted, changing nothing)
  int d1_max_sql_bytes = 100000;          // bytes of SQL in one request's statement text
  int d1_max_params = 100;                // bound parameters per statement
  int d1_statement_timeout_ms = 30000;    // a statement running longer is interrupted
  int d1_max_result_bytes = 50000000;     // a result set larger than this is refused

  // Where each setting's value came from ("default", "file", "env", "flag"), by TOML key.
  std::map<std::string, std::string> source;
};

struct Setting {
  std::string key;   // TOML dotted path, e.g. "server.port"
  std::string env;   // environment variable, e.g. "ERA_PROXY_PORT"; empty if none
  std::string flag;  // command-line flag without dashes, e.g. "port"; empty if none
  std::string help;  // one line, shown by --help and used in error messages
  bool secret = false;  // never printed or logged
  std::function<void(Config&, const std::string&)> apply;  // parses and stores; throws ConfigError
};

// The table of every setting.
const std::vector<Setting>& settings();

// Values given on the command line, by flag name (only the flags that were given).
using FlagValues = std::map<std::string, std::string>;

// Resolves the configuration. `config_file` may be empty (then ERA_PROXY_CONFIG is consulted; if that
// is empty too, defaults + environment + flags only). `env` looks up environment variables (tests pass
// their own). Throws ConfigError.
Config load_config(const std::string& config_file, const FlagValues& flags,
                   const std::function<const char*(const char*)>& env);

// Cross-field checks run after all sources are applied. Throws ConfigError.
void validate(const Config& config);

}  // namespace era

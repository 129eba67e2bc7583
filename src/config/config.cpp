#include "config/config.h"

#include <toml++/toml.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <sstream>

namespace era {
namespace {

[[noreturn]] void fail(const std::string& key, const std::string& value, const std::string& allowed) {
  throw ConfigError("invalid value '" + value + "' for " + key + ": " + allowed);
}

Setting int_setting(std::string key, std::string env, std::string flag, std::string help, int Config::*field,
                    long long min, long long max) {
  Setting s{key, std::move(env), std::move(flag), std::move(help), false, nullptr};
  s.apply = [key, field, min, max](Config& c, const std::string& v) {
    errno = 0;
    char* end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || errno != 0 || *end != '\0' || n < min || n > max)
      fail(key, v, "an integer from " + std::to_string(min) + " to " + std::to_string(max));
    c.*field = static_cast<int>(n);
  };
  return s;
}

Setting bytes_setting(std::string key, std::string env, std::string flag, std::string help,
                      uint64_t Config::*field, unsigned long long min, unsigned long long max) {
  Setting s{key, std::move(env), std::move(flag), std::move(help), false, nullptr};
  s.apply = [key, field, min, max](Config& c, const std::string& v) {
    errno = 0;
    char* end = nullptr;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || errno != 0 || *end != '\0' || n < min || n > max)
      fail(key, v, "a byte count from " + std::to_string(min) + " to " + std::to_string(max));
    c.*field = n;
  };
  return s;
}

Setting string_setting(std::string key, std::string env, std::string flag, std::string help,
                       std::string Config::*field, bool allow_empty = false) {
  Setting s{key, std::move(env), std::move(flag), std::move(help), false, nullptr};
  s.apply = [key, field, allow_empty](Config& c, const std::string& v) {
    if (v.empty() && !allow_empty) fail(key, v, "a non-empty string");
    c.*field = v;
  };
  return s;
}

Setting enum_setting(std::string key, std::string env, std::string flag, std::string help,
                     std::string Config::*field, std::vector<std::string> allowed) {
  Setting s{key, std::move(env), std::move(flag), std::move(help), false, nullptr};
  s.apply = [key, field, allowed](Config& c, const std::string& v) {
    for (const auto& a : allowed)
      if (v == a) {
        c.*field = v;
        return;
      }
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + ("\"" + a + "\"");
    fail(key, v, "one of " + list);
  };
  return s;
}

std::vector<Setting> make_settings() {
  std::vector<Setting> t;
  t.push_back(enum_setting("backend", "ERA_PROXY_BACKEND", "backend", "storage backend", &Config::backend,
                           {"local"}));
  t.push_back(string_setting("server.host", "ERA_PROXY_HOST", "host", "address to listen on", &Config::host));
  t.push_back(int_setting("server.port", "ERA_PROXY_PORT", "port", "TCP port to listen on (0: any free port)",
                          &Config::port, 0, 65535));
  t.push_back(int_setting("server.threads", "ERA_PROXY_THREADS", "threads",
                          "worker threads (each open connection holds one)", &Config::threads, 2, 4096));
  t.push_back(int_setting("server.keep_alive_max_count", "ERA_PROXY_KEEP_ALIVE_MAX_COUNT", "",
                          "requests served on one kept-alive connection", &Config::keep_alive_max_count, 1,
                          INT_MAX));
  t.push_back(int_setting("server.keep_alive_timeout", "ERA_PROXY_KEEP_ALIVE_TIMEOUT", "",
                          "seconds an idle kept-alive connection stays open", &Config::keep_alive_timeout, 1,
                          3600));
  t.push_back(int_setting("server.read_timeout", "ERA_PROXY_READ_TIMEOUT", "",
                          "seconds to wait for more bytes of a request", &Config::read_timeout, 1, 3600));
  t.push_back(int_setting("server.listen_backlog", "ERA_PROXY_LISTEN_BACKLOG", "",
                          "pending connections the kernel queues", &Config::listen_backlog, 1, 65535));
  t.push_back(enum_setting("server.log_level", "ERA_PROXY_LOG_LEVEL", "log-level", "log level",
                           &Config::log_level, {"debug", "info", "warn", "error"}));
  t.push_back(string_setting("storage.data_dir", "ERA_PROXY_DATA_DIR", "data-dir",
                             "directory for the local backend's databases and objects", &Config::data_dir));
  t.push_back(bytes_setting("storage.r2_max_object_size", "ERA_PROXY_R2_MAX_OBJECT_SIZE", "r2-max-object-size",
                            "largest R2 object accepted, in bytes (larger uploads get 413)",
                            &Config::r2_max_object_size, 1, 5ull << 40));
  t.push_back(int_setting("d1.max_sql_bytes", "ERA_PROXY_D1_MAX_SQL_BYTES", "",
                          "bytes of SQL a D1 request may hold (D1: 100000)", &Config::d1_max_sql_bytes, 1,
                          100000000));
  t.push_back(int_setting("d1.max_params", "ERA_PROXY_D1_MAX_PARAMS", "",
                          "bound parameters per D1 statement (D1: 100)", &Config::d1_max_params, 1, 32766));
  t.push_back(int_setting("d1.statement_timeout_ms", "ERA_PROXY_D1_STATEMENT_TIMEOUT_MS", "",
                          "milliseconds a D1 statement may run before it is interrupted (D1: 30000)",
                          &Config::d1_statement_timeout_ms, 1, 3600000));
  t.push_back(int_setting("d1.max_result_bytes", "ERA_PROXY_D1_MAX_RESULT_BYTES", "",
                          "bytes a D1 result set may hold before it is refused", &Config::d1_max_result_bytes, 1024,
                          2000000000));
  return t;
}

// A TOML value as the string the setting parsers take; tables and arrays are not settings.
bool toml_scalar(const toml::node& n, std::string& out) {
  if (auto s = n.as_string()) out = s->get();
  else if (auto i = n.as_integer()) out = std::to_string(i->get());
  else if (auto b = n.as_boolean()) out = b->get() ? "true" : "false";
  else if (auto f = n.as_floating_point()) {
    std::ostringstream os;
    os << f->get();
    out = os.str();
  } else return false;
  return true;
}

void apply_toml(Config& c, const toml::table& root, const std::string& path) {
  const auto& table = settings();
  std::function<void(const toml::table&, const std::string&)> walk = [&](const toml::table& t,
                                                                        const std::string& prefix) {
    for (const auto& [k, node] : t) {
      std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      if (auto sub = node.as_table()) {
        walk(*sub, key);
        continue;
      }
      const Setting* s = nullptr;
      for (const auto& row : table)
        if (row.key == key) s = &row;
      if (!s) throw ConfigError(path + ": unknown setting '" + key + "' (see config.example.toml)");
      std::string v;
      if (!toml_scalar(node, v)) throw ConfigError(path + ": " + key + " must be a string, number or boolean");
      s->apply(c, v);
      c.source[key] = "file";
    }
  };
  walk(root, "");
}

}  // namespace

const std::vector<Setting>& settings() {
  static const std::vector<Setting> table = make_settings();
  return table;
}

Config load_config(const std::string& config_file, const FlagValues& flags,
                   const std::function<const char*(const char*)>& env) {
  Config c;
  for (const auto& s : settings()) c.source[s.key] = "default";

  std::string file = config_file;
  if (file.empty()) {
    const char* e = env("ERA_PROXY_CONFIG");
    if (e && *e) file = e;
  }
  if (!file.empty()) {
    toml::table root;
    try {
      root = toml::parse_file(file);
    } catch (const toml::parse_error& err) {
      std::ostringstream os;
      os << file << ": " << err.description() << " (line " << err.source().begin.line << ")";
      throw ConfigError(os.str());
    }
    apply_toml(c, root, file);
  }
  for (const auto& s : settings()) {
    if (s.env.empty()) continue;
    const char* v = env(s.env.c_str());
    if (!v) continue;
    try {
      s.apply(c, v);
    } catch (const ConfigError& e) {
      throw ConfigError(std::string(e.what()) + " (from " + s.env + ")");
    }
    c.source[s.key] = "env";
  }
  for (const auto& [flag, value] : flags) {
    const Setting* s = nullptr;
    for (const auto& row : settings())
      if (row.flag == flag) s = &row;
    if (!s) throw ConfigError("unknown flag --" + flag);
    try {
      s->apply(c, value);
    } catch (const ConfigError& e) {
      throw ConfigError(std::string(e.what()) + " (from --" + flag + ")");
    }
    c.source[s->key] = "flag";
  }
  validate(c);
  return c;
}

void validate(const Config& c) {
  if (c.threads < 2) throw ConfigError("server.threads must be at least 2");
}

}  // namespace era

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <unistd.h>

#include "config/config.h"

using namespace era;

namespace {
struct Env {
  std::map<std::string, std::string> vars;
  std::function<const char*(const char*)> fn() {
    return [this](const char* n) -> const char* {
      auto it = vars.find(n);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

std::string temp_toml(const std::string& text) {
  char name[] = "/tmp/era-config-XXXXXX";
  int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(name) << text;
  return name;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("defaults are the embedded local mode on 127.0.0.1:8787") {
  Env env;
  Config c = load_config("", {}, env.fn());
  CHECK(c.host == "127.0.0.1");
  CHECK(c.port == 8787);
  CHECK(c.backend == "local");
  CHECK(c.source["server.port"] == "default");
}

TEST_CASE("precedence: flags > environment > file > defaults") {
  auto file = temp_toml("backend = \"local\"\n[server]\nport = 1000\nthreads = 10\nhost = \"0.0.0.0\"\n");
  Env env;
  env.vars["ERA_PROXY_PORT"] = "2000";
  env.vars["ERA_PROXY_THREADS"] = "20";
  Config c = load_config(file, {{"port", "3000"}}, env.fn());
  CHECK(c.port == 3000);
  CHECK(c.source["server.port"] == "flag");
  CHECK(c.threads == 20);
  CHECK(c.source["server.threads"] == "env");
  CHECK(c.host == "0.0.0.0");
  CHECK(c.source["server.host"] == "file");
  std::remove(file.c_str());
}

TEST_CASE("ERA_PROXY_CONFIG names the file when no flag does") {
  auto file = temp_toml("[server]\nport = 4321\n");
  Env env;
  env.vars["ERA_PROXY_CONFIG"] = file;
  CHECK(load_config("", {}, env.fn()).port == 4321);
  std::remove(file.c_str());
}

TEST_CASE("bad values name the key and what is allowed") {
  Env env;
  CHECK(error_of([&] { load_config("", {{"port", "70000"}}, env.fn()); }).find("server.port") != std::string::npos);
  CHECK(error_of([&] { load_config("", {{"port", "12abc"}}, env.fn()); }).find("0 to 65535") != std::string::npos);
  env.vars["ERA_PROXY_BACKEND"] = "s3";
  auto msg = error_of([&] { load_config("", {}, env.fn()); });
  CHECK(msg.find("backend") != std::string::npos);
  CHECK(msg.find("\"local\"") != std::string::npos);
  CHECK(msg.find("ERA_PROXY_BACKEND") != std::string::npos);
  env.vars.clear();
  auto file = temp_toml("[server]\nthreads = \"x\"\n");
  CHECK(error_of([&] { load_config(file, {}, env.fn()); }).find("server.threads") != std::string::npos);
  std::ofstream(file) << "[server]\nportt = 1\n";
  CHECK(error_of([&] { load_config(file, {}, env.fn()); }).find("unknown setting 'server.portt'") !=
        std::string::npos);
  std::ofstream(file) << "[server\n";
  CHECK(error_of([&] { load_config(file, {}, env.fn()); }).find(file) != std::string::npos);
  std::remove(file.c_str());
  CHECK(error_of([&] { load_config("", {{"nope", "1"}}, env.fn()); }).find("--nope") != std::string::npos);
}

TEST_CASE("every setting is documented in config.example.toml") {
  std::ifstream in(std::string(ERA_SOURCE_DIR) + "/config.example.toml");
  REQUIRE(in.good());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& s : settings()) {
    auto dot = s.key.rfind('.');
    std::string leaf = dot == std::string::npos ? s.key : s.key.substr(dot + 1);
    CHECK_MESSAGE(text.find("# " + leaf + " = ") != std::string::npos, "config.example.toml lacks " << s.key);
    if (!s.env.empty()) CHECK_MESSAGE(text.find(s.env) != std::string::npos, "config.example.toml lacks " << s.env);
  }
}

TEST_CASE("observability keys: log format, metrics access, audit trail — file, env and flag") {
  Env env;
  Config d = load_config("", {}, env.fn());
  CHECK(d.log_format == "text");
  CHECK(d.audit_file.empty());
  CHECK(d.audit_max_bytes == 64ull << 20);
  CHECK(d.audit_keep == 5);
  CHECK_FALSE(d.metrics_open_on_loopback);
  CHECK(d.metrics_store_sizes_ttl == 60);

  auto file = temp_toml("[server]\nlog_format = \"json\"\n[metrics]\nopen_on_loopback = true\nstore_sizes_ttl = 0\n"
                        "[audit]\nfile = \"/tmp/a.log\"\nmax_bytes = 8192\nkeep = 3\nqueue = 7\n");
  Config c = load_config(file, {}, env.fn());
  CHECK(c.log_format == "json");
  CHECK(c.metrics_open_on_loopback);
  CHECK(c.metrics_store_sizes_ttl == 0);
  CHECK(c.audit_file == "/tmp/a.log");
  CHECK(c.audit_max_bytes == 8192);
  CHECK(c.audit_keep == 3);
  CHECK(c.audit_queue == 7);

  env.vars["ERA_PROXY_LOG_FORMAT"] = "text";
  env.vars["ERA_PROXY_AUDIT_FILE"] = "-";
  env.vars["ERA_METRICS_TOKEN"] = "metrics-token-0123456789";
  Config e = load_config(file, {}, env.fn());
  CHECK(e.log_format == "text");
  CHECK(e.audit_file == "-");
  CHECK(e.metrics_token == "metrics-token-0123456789");
  Config f = load_config(file, {{"log-format", "json"}, {"audit-file", "/tmp/b.log"}}, env.fn());
  CHECK(f.log_format == "json");
  CHECK(f.audit_file == "/tmp/b.log");
  std::remove(file.c_str());

  Env bad;
  CHECK(error_of([&] { load_config("", {{"log-format", "xml"}}, bad.fn()); }).find("server.log_format") !=
        std::string::npos);
  bad.vars["ERA_PROXY_AUDIT_MAX_BYTES"] = "100";
  CHECK(error_of([&] { load_config("", {}, bad.fn()); }).find("audit.max_bytes") != std::string::npos);
  bad.vars.clear();
  bad.vars["ERA_PROXY_AUDIT_KEEP"] = "0";
  CHECK(error_of([&] { load_config("", {}, bad.fn()); }).find("audit.keep") != std::string::npos);
  bad.vars.clear();
  bad.vars["ERA_METRICS_TOKEN"] = "a-metrics-token-long-enough";
  bad.vars["ERA_METRICS_TOKEN_FILE"] = "/tmp/x";
  CHECK(error_of([&] { load_config("", {}, bad.fn()); }).find("metrics token once") != std::string::npos);
}

TEST_CASE("allowed origins and per-namespace quotas: off by default, set from file, env and flags") {
  Env env;
  Config d = load_config("", {}, env.fn());
  CHECK(d.allowed_origins.empty());
  CHECK(d.quota_kv_bytes == 0);
  CHECK(d.quota_r2_bytes == 0);
  CHECK(d.quota_d1_bytes == 0);
  auto file = temp_toml("[auth]\nallowed_origins = \"https://a.example\"\n[quota]\nkv_bytes = 1000\n");
  env.vars["ERA_PROXY_QUOTA_R2_BYTES"] = "2000";
  Config c = load_config(file, {{"quota-d1-bytes", "3000"}}, env.fn());
  CHECK(c.allowed_origins == "https://a.example");
  CHECK(c.quota_kv_bytes == 1000);
  CHECK(c.quota_r2_bytes == 2000);
  CHECK(c.quota_d1_bytes == 3000);
  env.vars["ERA_PROXY_QUOTA_KV_BYTES"] = "-1";
  CHECK(error_of([&] { load_config("", {}, env.fn()); }).find("quota.kv_bytes") != std::string::npos);
  std::remove(file.c_str());
}

TEST_CASE("runner.disk_quota_mb: 256 by default, 0 turns it off, from the file or ERA_PROXY_RUNNER_DISK_QUOTA_MB") {
  Env env;
  CHECK(load_config("", {}, env.fn()).runner_disk_quota_mb == 256);
  auto file = temp_toml("[runner]\ndisk_quota_mb = 0\n");
  CHECK(load_config(file, {}, env.fn()).runner_disk_quota_mb == 0);
  env.vars["ERA_PROXY_RUNNER_DISK_QUOTA_MB"] = "32";
  CHECK(load_config(file, {}, env.fn()).runner_disk_quota_mb == 32);
  env.vars["ERA_PROXY_RUNNER_DISK_QUOTA_MB"] = "-1";
  CHECK(error_of([&] { load_config("", {}, env.fn()); }).find("runner.disk_quota_mb") != std::string::npos);
  std::remove(file.c_str());
}

TEST_CASE("[d1] call budget, statements per call and the local per-namespace files: file and environment") {
  Env env;
  Config d = load_config("", {}, env.fn());
  CHECK(d.d1_request_timeout_ms == 30000);
  CHECK(d.d1_max_statements == 1000);
  CHECK(d.d1_journal_limit_mb == 64);
  CHECK(d.d1_max_open_databases == 64);
  CHECK(d.d1_readers_per_namespace == 4);
  CHECK(d.d1_max_concurrent_per_namespace == 8);
  auto file = temp_toml(
      "[d1]\nrequest_timeout_ms = 5000\nmax_statements = 50\njournal_limit_mb = 8\nmax_open_databases = 3\n"
      "readers_per_namespace = 2\nmax_concurrent_per_namespace = 5\n");
  env.vars["ERA_PROXY_D1_MAX_STATEMENTS"] = "60";
  Config c = load_config(file, {}, env.fn());
  CHECK(c.d1_request_timeout_ms == 5000);
  CHECK(c.d1_max_statements == 60);
  CHECK(c.source["d1.max_statements"] == "env");
  CHECK(c.d1_journal_limit_mb == 8);
  CHECK(c.d1_max_open_databases == 3);
  CHECK(c.d1_readers_per_namespace == 2);
  CHECK(c.d1_max_concurrent_per_namespace == 5);
  std::remove(file.c_str());
  env.vars["ERA_PROXY_D1_REQUEST_TIMEOUT_MS"] = "0";
  CHECK(error_of([&] { load_config("", {}, env.fn()); }).find("d1.request_timeout_ms") != std::string::npos);
}

TEST_CASE("cloudflare.registry_flush_ms: 1000 by default, from the file or ERA_CF_REGISTRY_FLUSH_MS, 50 to 60000") {
  Env env;
  CHECK(load_config("", {}, env.fn()).cf_registry_flush_ms == 1000);
  auto file = temp_toml("[cloudflare]\nregistry_flush_ms = 2500\n");
  CHECK(load_config(file, {}, env.fn()).cf_registry_flush_ms == 2500);
  env.vars["ERA_CF_REGISTRY_FLUSH_MS"] = "200";
  Config c = load_config(file, {}, env.fn());
  CHECK(c.cf_registry_flush_ms == 200);
  CHECK(c.source["cloudflare.registry_flush_ms"] == "env");
  for (const char* bad : {"0", "49", "60001", "x"}) {
    env.vars["ERA_CF_REGISTRY_FLUSH_MS"] = bad;
    CHECK(error_of([&] { load_config("", {}, env.fn()); }).find("cloudflare.registry_flush_ms") != std::string::npos);
  }
  std::remove(file.c_str());
}

TEST_CASE("[cloudflare] KV read cache and write batching: defaults, file, environment, bounds") {
  Env env;
  Config d = load_config("", {}, env.fn());
  CHECK(d.cf_kv_cache_ttl_s == 30);
  CHECK(d.cf_kv_cache_bytes == 64ull << 20);
  CHECK(d.cf_kv_batch_max_keys == 10000);
  CHECK(d.cf_kv_same_key_interval_ms == 1000);
  auto file = temp_toml(
      "[cloudflare]\nkv_cache_ttl_s = 0\nkv_cache_bytes = 1048576\nkv_batch_max_keys = 100\n"
      "kv_same_key_interval_ms = 0\n");
  env.vars["ERA_CF_KV_CACHE_TTL_S"] = "45";
  Config c = load_config(file, {}, env.fn());
  CHECK(c.cf_kv_cache_ttl_s == 45);
  CHECK(c.source["cloudflare.kv_cache_ttl_s"] == "env");
  CHECK(c.cf_kv_cache_bytes == 1048576);
  CHECK(c.cf_kv_batch_max_keys == 100);
  CHECK(c.cf_kv_same_key_interval_ms == 0);
  env.vars["ERA_CF_KV_CACHE_BYTES"] = "2097152";
  env.vars["ERA_CF_KV_BATCH_MAX_KEYS"] = "500";
  env.vars["ERA_CF_KV_SAME_KEY_INTERVAL_MS"] = "250";
  Config e = load_config(file, {}, env.fn());
  CHECK(e.cf_kv_cache_bytes == 2097152);
  CHECK(e.cf_kv_batch_max_keys == 500);
  CHECK(e.cf_kv_same_key_interval_ms == 250);
  std::remove(file.c_str());
  // The cache may not outlive KV's own 60 s window; a bulk call carries at most 10,000 pairs.
  Env bad;
  bad.vars["ERA_CF_KV_CACHE_TTL_S"] = "61";
  CHECK(error_of([&] { load_config("", {}, bad.fn()); }).find("cloudflare.kv_cache_ttl_s") != std::string::npos);
  bad.vars.clear();
  bad.vars["ERA_CF_KV_BATCH_MAX_KEYS"] = "10001";
  CHECK(error_of([&] { load_config("", {}, bad.fn()); }).find("cloudflare.kv_batch_max_keys") != std::string::npos);
  bad.vars.clear();
  bad.vars["ERA_CF_KV_BATCH_MAX_KEYS"] = "0";
  CHECK(error_of([&] { load_config("", {}, bad.fn()); }).find("cloudflare.kv_batch_max_keys") != std::string::npos);
  bad.vars.clear();
  bad.vars["ERA_CF_KV_SAME_KEY_INTERVAL_MS"] = "-1";
  CHECK(error_of([&] { load_config("", {}, bad.fn()); }).find("cloudflare.kv_same_key_interval_ms") != std::string::npos);
}

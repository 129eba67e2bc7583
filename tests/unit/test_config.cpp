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
  CHECK(c.workers == 20);  // server.threads: the old name of server.workers
  CHECK(c.source["server.threads"] == "env");
  CHECK(c.host == "0.0.0.0");
  CHECK(c.source["server.host"] == "file");
  std::remove(file.c_str());
}

TEST_CASE("the event-loop server's settings: file, environment, flags, old names and bounds") {
  Env none;
  Config d = load_config("", {}, none.fn());
  CHECK(d.workers == 64);
  CHECK(d.io_threads == 0);  // auto: one per 4 cores
  CHECK(d.queue == 1024);
  CHECK(d.head_timeout_ms == 10000);
  CHECK(d.max_head_bytes == 65536);
  CHECK(d.max_headers == 100);
  CHECK(d.max_connections == 16384);
  CHECK(d.max_connections_per_peer == 0);
  CHECK(d.keep_alive_timeout == 5);

  auto file = temp_toml(
      "[server]\nworkers = 7\nio_threads = 3\nqueue = 0\nhead_timeout_ms = 2500\nmax_head_bytes = 4096\n"
      "max_headers = 20\nmax_connections = 500\nmax_connections_per_peer = 9\nkeep_alive_timeout = 30\n");
  Config f = load_config(file, {}, none.fn());
  CHECK(f.workers == 7);
  CHECK(f.io_threads == 3);
  CHECK(f.queue == 0);
  CHECK(f.head_timeout_ms == 2500);
  CHECK(f.max_head_bytes == 4096);
  CHECK(f.max_headers == 20);
  CHECK(f.max_connections == 500);
  CHECK(f.max_connections_per_peer == 9);
  CHECK(f.keep_alive_timeout == 30);
  std::remove(file.c_str());

  Env env;
  env.vars["ERA_PROXY_WORKERS"] = "12";
  env.vars["ERA_PROXY_IO_THREADS"] = "4";
  env.vars["ERA_PROXY_QUEUE"] = "33";
  env.vars["ERA_PROXY_HEAD_TIMEOUT_MS"] = "700";
  env.vars["ERA_PROXY_MAX_HEAD_BYTES"] = "2048";
  env.vars["ERA_PROXY_MAX_HEADERS"] = "50";
  env.vars["ERA_PROXY_MAX_CONNECTIONS"] = "100";
  env.vars["ERA_PROXY_MAX_CONNECTIONS_PER_PEER"] = "5";
  env.vars["ERA_PROXY_KEEP_ALIVE_TIMEOUT"] = "8";
  Config e = load_config("", {}, env.fn());
  CHECK(e.workers == 12);
  CHECK(e.io_threads == 4);
  CHECK(e.queue == 33);
  CHECK(e.head_timeout_ms == 700);
  CHECK(e.max_head_bytes == 2048);
  CHECK(e.max_headers == 50);
  CHECK(e.max_connections == 100);
  CHECK(e.max_connections_per_peer == 5);
  CHECK(e.keep_alive_timeout == 8);
  CHECK(e.source["server.workers"] == "env");

  Config g = load_config("", {{"workers", "3"}, {"io-threads", "1"}, {"queue", "2"}, {"max-connections", "64"}},
                         env.fn());
  CHECK(g.workers == 3);
  CHECK(g.io_threads == 1);
  CHECK(g.queue == 2);
  CHECK(g.max_connections == 64);
  CHECK(g.source["server.workers"] == "flag");

  // The old name still works, and the new one wins when both are in the file.
  auto both = temp_toml("[server]\nthreads = 40\nworkers = 30\n");
  CHECK(load_config(both, {}, none.fn()).workers == 30);
  std::remove(both.c_str());
  auto old = temp_toml("[server]\nthreads = 40\n");
  CHECK(load_config(old, {}, none.fn()).workers == 40);
  std::remove(old.c_str());

  for (const char* bad : {"ERA_PROXY_WORKERS=0", "ERA_PROXY_IO_THREADS=-1", "ERA_PROXY_IO_THREADS=65", "ERA_PROXY_QUEUE=-1",
                          "ERA_PROXY_HEAD_TIMEOUT_MS=10", "ERA_PROXY_MAX_HEAD_BYTES=100", "ERA_PROXY_MAX_HEADERS=x",
                          "ERA_PROXY_MAX_CONNECTIONS=1", "ERA_PROXY_MAX_CONNECTIONS_PER_PEER=-3"}) {
    INFO(bad);
    std::string kv = bad;
    Env b;
    b.vars[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
    CHECK_THROWS_AS(load_config("", {}, b.fn()), ConfigError);
  }
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

TEST_CASE("[cloudflare] call budget, replicas and the queue bound: defaults, file, environment, flags, bounds") {
  Env env;
  Config d = load_config("", {}, env.fn());
  CHECK(d.cf_call_budget == 1100);
  CHECK(d.cf_replicas == 1);
  CHECK(d.cf_budget_max_wait_ms == 5000);
  CHECK(d.revocation_refresh == 60);
  auto file = temp_toml("[cloudflare]\ncall_budget = 600\nreplicas = 3\nbudget_max_wait_ms = 250\n");
  Config c = load_config(file, {}, env.fn());
  CHECK(c.cf_call_budget == 600);
  CHECK(c.cf_replicas == 3);
  CHECK(c.cf_budget_max_wait_ms == 250);
  env.vars["ERA_CF_CALL_BUDGET"] = "60";
  env.vars["ERA_CF_BUDGET_MAX_WAIT_MS"] = "0";
  c = load_config(file, {{"cf-replicas", "2"}}, env.fn());
  CHECK(c.cf_call_budget == 60);
  CHECK(c.source["cloudflare.call_budget"] == "env");
  CHECK(c.cf_budget_max_wait_ms == 0);
  CHECK(c.cf_replicas == 2);
  CHECK(c.source["cloudflare.replicas"] == "flag");
  env.vars.clear();
  env.vars["ERA_CF_REPLICAS"] = "0";
  CHECK(error_of([&] { load_config("", {}, env.fn()); }).find("cloudflare.replicas") != std::string::npos);
  env.vars.clear();
  env.vars["ERA_CF_CALL_BUDGET"] = "-5";
  CHECK(error_of([&] { load_config("", {}, env.fn()); }).find("cloudflare.call_budget") != std::string::npos);
  std::remove(file.c_str());
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

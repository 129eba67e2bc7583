#include "config/config.h"

#include <toml++/toml.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "util/crypto.h"

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

Setting bool_setting(std::string key, std::string env, std::string flag, std::string help, bool Config::*field) {
  Setting s{key, std::move(env), std::move(flag), std::move(help), false, nullptr};
  s.apply = [key, field](Config& c, const std::string& v) {
    if (v == "true") c.*field = true;
    else if (v == "false") c.*field = false;
    else fail(key, v, "true or false");
  };
  return s;
}

std::vector<Setting> make_settings() {
  std::vector<Setting> t;
  t.push_back(enum_setting("backend", "ERA_PROXY_BACKEND", "backend", "storage backend", &Config::backend,
                           {"local", "cloudflare"}));
  t.push_back(string_setting("server.host", "ERA_PROXY_HOST", "host", "address to listen on", &Config::host));
  t.push_back(int_setting("server.port", "ERA_PROXY_PORT", "port", "TCP port to listen on (0: any free port)",
                          &Config::port, 0, 65535));
  t.push_back(int_setting("server.threads", "ERA_PROXY_THREADS", "threads",
                          "the old name of server.workers (server.workers wins when both are given)",
                          &Config::workers, 1, 4096));
  t.push_back(int_setting("server.workers", "ERA_PROXY_WORKERS", "workers",
                          "threads running requests' handlers (idle connections need none)", &Config::workers, 1,
                          4096));
  t.push_back(int_setting("server.io_threads", "ERA_PROXY_IO_THREADS", "io-threads",
                          "event-loop threads that own the connections (0: one per 4 cores, at least one)",
                          &Config::io_threads, 0, 64));
  t.push_back(int_setting("server.queue", "ERA_PROXY_QUEUE", "queue",
                          "requests that may wait for a busy worker; past it they get 503 at once", &Config::queue,
                          0, 1000000));
  t.push_back(int_setting("server.head_timeout_ms", "ERA_PROXY_HEAD_TIMEOUT_MS", "",
                          "milliseconds a request head may take from its first byte", &Config::head_timeout_ms,
                          100, 3600000));
  t.push_back(int_setting("server.max_head_bytes", "ERA_PROXY_MAX_HEAD_BYTES", "",
                          "largest request head (request line and headers) in bytes; larger gets 431",
                          &Config::max_head_bytes, 1024, 16 << 20));
  t.push_back(int_setting("server.max_headers", "ERA_PROXY_MAX_HEADERS", "",
                          "most header fields in a request; more gets 431", &Config::max_headers, 8, 10000));
  t.push_back(int_setting("server.max_connections", "ERA_PROXY_MAX_CONNECTIONS", "max-connections",
                          "open connections in all; past it new ones get 503 and are closed",
                          &Config::max_connections, 16, 10000000));
  t.push_back(int_setting("server.max_connections_per_peer", "ERA_PROXY_MAX_CONNECTIONS_PER_PEER", "",
                          "open TCP connections per client address (0: no cap; the Unix socket has none)",
                          &Config::max_connections_per_peer, 0, 10000000));
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
  t.push_back(enum_setting("server.log_format", "ERA_PROXY_LOG_FORMAT", "log-format",
                           "log line format: text, or json (one object per line)", &Config::log_format,
                           {"text", "json"}));
  t.push_back(string_setting("server.public_url", "ERA_PROXY_PUBLIC_URL", "public-url",
                             "URL sandboxes reach the proxy at, given to sessions as ERA_STORAGE_URL "
                             "(default: http:// + the address and port the request reached, never its Host header)",
                             &Config::public_url));
  t.push_back(string_setting("storage.data_dir", "ERA_PROXY_DATA_DIR", "data-dir",
                             "directory for the local backend's databases and objects", &Config::data_dir));
  t.push_back(bytes_setting("storage.r2_max_object_size", "ERA_PROXY_R2_MAX_OBJECT_SIZE", "r2-max-object-size",
                            "largest R2 object accepted, in bytes (larger uploads get 413)",
                            &Config::r2_max_object_size, 1, 5ull << 40));
  t.push_back(bytes_setting("storage.kv_cache_bytes", "ERA_PROXY_KV_CACHE_BYTES", "kv-cache-bytes",
                            "bytes of KV entries the local backend keeps in memory for reads (0 = none)",
                            &Config::kv_cache_bytes, 0, 1ull << 40));

  // [cloudflare]: secrets have no flag (a flag shows in `ps`) and are marked secret (never printed).
  auto cf = [&t](const char* key, const char* env, const char* flag, const char* help, std::string Config::*f,
                 bool secret = false) {
    Setting s = string_setting(std::string("cloudflare.") + key, env, flag, help, f);
    s.secret = secret;
    t.push_back(std::move(s));
  };
  cf("account_id", "ERA_CF_ACCOUNT_ID", "cf-account-id", "Cloudflare account id", &Config::cf_account_id);
  cf("api_token", "ERA_CF_API_TOKEN", "", "Cloudflare API token (secret)", &Config::cf_api_token, true);
  cf("api_token_file", "ERA_CF_API_TOKEN_FILE", "cf-api-token-file", "file holding the Cloudflare API token",
     &Config::cf_api_token_file);
  cf("api_token_id", "ERA_CF_API_TOKEN_ID", "cf-api-token-id",
     "the API token's id: derive the R2 S3 keys from the token instead of giving them",
     &Config::cf_api_token_id);
  cf("kv_namespace_id", "ERA_CF_KV_NAMESPACE_ID", "cf-kv-namespace-id", "the one KV namespace every ns maps into",
     &Config::cf_kv_namespace_id);
  cf("d1_database_id", "ERA_CF_D1_DATABASE_ID", "cf-d1-database-id", "the one D1 database every ns maps into",
     &Config::cf_d1_database_id);
  cf("r2_bucket", "ERA_CF_R2_BUCKET", "cf-r2-bucket", "the one R2 bucket every ns maps into",
     &Config::cf_r2_bucket);
  cf("r2_access_key_id", "ERA_CF_R2_ACCESS_KEY_ID", "", "R2 S3 access key id (secret)",
     &Config::cf_r2_access_key_id, true);
  cf("r2_access_key_id_file", "ERA_CF_R2_ACCESS_KEY_ID_FILE", "cf-r2-access-key-id-file",
     "file holding the R2 S3 access key id", &Config::cf_r2_access_key_id_file);
  cf("r2_secret_access_key", "ERA_CF_R2_SECRET_ACCESS_KEY", "", "R2 S3 secret access key (secret)",
     &Config::cf_r2_secret_access_key, true);
  cf("r2_secret_access_key_file", "ERA_CF_R2_SECRET_ACCESS_KEY_FILE", "cf-r2-secret-access-key-file",
     "file holding the R2 S3 secret access key", &Config::cf_r2_secret_access_key_file);
  cf("api_base", "ERA_CF_API_BASE", "cf-api-base",
     "base of every KV and D1 URL (default https://api.cloudflare.com/client/v4/accounts/<account id>)",
     &Config::cf_api_base);
  cf("r2_endpoint", "ERA_CF_R2_ENDPOINT", "cf-r2-endpoint",
     "R2 S3 endpoint, bucket in the path (default https://<account id>.r2.cloudflarestorage.com)",
     &Config::cf_r2_endpoint);
  t.push_back(int_setting("cloudflare.connect_timeout_ms", "ERA_CF_CONNECT_TIMEOUT_MS", "",
                          "milliseconds to connect to Cloudflare", &Config::cf_connect_timeout_ms, 100, 60000));
  t.push_back(int_setting("cloudflare.timeout_ms", "ERA_CF_TIMEOUT_MS", "",
                          "milliseconds for one upstream call (streams: the stall limit)", &Config::cf_timeout_ms,
                          100, 600000));
  t.push_back(int_setting("cloudflare.max_attempts", "ERA_CF_MAX_ATTEMPTS", "",
                          "tries of an upstream call that may be retried, first included", &Config::cf_max_attempts,
                          1, 10));
  t.push_back(int_setting("cloudflare.r2_part_size_mib", "ERA_CF_R2_PART_SIZE_MIB", "",
                          "objects larger than this many MiB are uploaded to R2 in parts of this size",
                          &Config::cf_r2_part_size_mib, 5, 5000));
  t.push_back(int_setting("cloudflare.call_budget", "ERA_CF_CALL_BUDGET", "cf-call-budget",
                          "Cloudflare REST calls (KV, D1) the API token may make per 5 minutes, for all replicas "
                          "together (0: no budget)",
                          &Config::cf_call_budget, 0, 1000000));
  t.push_back(int_setting("cloudflare.replicas", "ERA_CF_REPLICAS", "cf-replicas",
                          "proxies sharing the API token: each keeps call_budget / replicas", &Config::cf_replicas, 1,
                          10000));
  t.push_back(int_setting("cloudflare.budget_max_wait_ms", "ERA_CF_BUDGET_MAX_WAIT_MS", "",
                          "milliseconds a call may wait for room in the budget before the client gets 503",
                          &Config::cf_budget_max_wait_ms, 0, 600000));
  t.push_back(int_setting("cloudflare.registry_flush_ms", "ERA_CF_REGISTRY_FLUSH_MS", "",
                          "milliseconds between the resource registry's batched writes to D1",
                          &Config::cf_registry_flush_ms, 50, 60000));
  // KV economy (cloudflare_kv.h): the read cache and the write group commit.
  t.push_back(int_setting("cloudflare.kv_cache_ttl_s", "ERA_CF_KV_CACHE_TTL_S", "",
                          "seconds a KV read stays cached in this replica (0 = no cache; at most KV's 60 s window)",
                          &Config::cf_kv_cache_ttl_s, 0, 60));
  t.push_back(bytes_setting("cloudflare.kv_cache_bytes", "ERA_CF_KV_CACHE_BYTES", "",
                            "bytes of KV values the read cache may hold", &Config::cf_kv_cache_bytes, 0, 1ull << 40));
  t.push_back(int_setting("cloudflare.kv_batch_max_keys", "ERA_CF_KV_BATCH_MAX_KEYS", "",
                          "KV writes sent in one bulk call at most (Cloudflare takes 10000)",
                          &Config::cf_kv_batch_max_keys, 1, 10000));
  t.push_back(int_setting("cloudflare.kv_same_key_interval_ms", "ERA_CF_KV_SAME_KEY_INTERVAL_MS", "",
                          "milliseconds a write waits after the last write of the same key (KV: 1 a second)",
                          &Config::cf_kv_same_key_interval_ms, 0, 10000));
  t.push_back(enum_setting("auth.mode", "ERA_PROXY_AUTH", "auth",
                           "authentication: off (loopback hosts only) or token", &Config::auth_mode,
                           {"off", "token"}));
  t.push_back(string_setting("auth.admin_token", "ERA_ADMIN_TOKEN", "",
                             "the admin credential (at least 16 bytes)", &Config::admin_token));
  t.back().secret = true;
  t.push_back(string_setting("auth.admin_token_file", "ERA_ADMIN_TOKEN_FILE", "admin-token-file",
                             "file holding the admin credential (mode 0600)", &Config::admin_token_file));
  t.push_back(string_setting("auth.token_secret", "ERA_TOKEN_SECRET", "",
                             "secret that signs session tokens (at least 32 bytes)", &Config::token_secret));
  t.back().secret = true;
  t.push_back(string_setting("auth.token_secret_file", "ERA_TOKEN_SECRET_FILE", "token-secret-file",
                             "file holding the token secret (mode 0600)", &Config::token_secret_file));
  t.push_back(int_setting("auth.default_ttl", "ERA_PROXY_DEFAULT_TTL", "",
                          "seconds a session lasts when it names no ttl_seconds", &Config::default_ttl, 1, INT_MAX));
  t.push_back(int_setting("auth.max_ttl", "ERA_PROXY_MAX_TTL", "", "the longest a session or token may last, in seconds",
                          &Config::max_ttl, 1, INT_MAX));
  t.push_back(int_setting("auth.revocation_refresh", "ERA_PROXY_REVOCATION_REFRESH", "",
                          "seconds between reloads of revoked sessions from the store", &Config::revocation_refresh,
                          1, 3600));
  t.push_back(int_setting("auth.rate_limit", "ERA_PROXY_RATE_LIMIT", "",
                          "requests per second per session (0: no limit)", &Config::rate_limit, 0, INT_MAX));
  t.push_back(int_setting("auth.rate_burst", "ERA_PROXY_RATE_BURST", "",
                          "requests a session may make at once (0: the rate)", &Config::rate_burst, 0, INT_MAX));
  t.push_back(int_setting("auth.write_bytes_per_sec", "ERA_PROXY_WRITE_BYTES_PER_SEC", "",
                          "request-body bytes per second per session (0: no limit)", &Config::write_bytes_per_sec, 0,
                          INT_MAX));
  t.push_back(int_setting("auth.write_burst_bytes", "ERA_PROXY_WRITE_BURST_BYTES", "",
                          "request-body bytes a session may send at once (0: the rate)", &Config::write_burst_bytes, 0,
                          INT_MAX));
  t.push_back(string_setting("auth.allowed_origins", "ERA_PROXY_ALLOWED_ORIGINS", "allowed-origins",
                             "web origins (scheme://host[:port], comma-separated) besides the proxy's own whose "
                             "browser requests are served (\"\": none)",
                             &Config::allowed_origins, true));
  t.push_back(bytes_setting("quota.kv_bytes", "ERA_PROXY_QUOTA_KV_BYTES", "quota-kv-bytes",
                            "bytes of KV values each namespace may hold (0: no quota)", &Config::quota_kv_bytes, 0,
                            1ull << 50));
  t.push_back(bytes_setting("quota.r2_bytes", "ERA_PROXY_QUOTA_R2_BYTES", "quota-r2-bytes",
                            "bytes of R2 objects each namespace may hold (0: no quota)", &Config::quota_r2_bytes, 0,
                            1ull << 50));
  t.push_back(bytes_setting("quota.d1_bytes", "ERA_PROXY_QUOTA_D1_BYTES", "quota-d1-bytes",
                            "bytes of D1 tables each namespace may hold (0: no quota)", &Config::quota_d1_bytes, 0,
                            1ull << 50));
  t.push_back(bool_setting("runner.enabled", "ERA_PROXY_RUNNER_ENABLED", "",
                           "serve POST /api/sessions/{id}/run (code in a bubblewrap sandbox)", &Config::runner_enabled));
  t.push_back(string_setting("runner.sessions_dir", "ERA_PROXY_RUNNER_SESSIONS_DIR", "",
                             "sessions' working directories (\"\": <data_dir>/sessions)", &Config::runner_sessions_dir,
                             true));
  t.push_back(string_setting("runner.socket", "ERA_PROXY_RUNNER_SOCKET", "",
                             "Unix socket the proxy also listens on, the sandbox's way to it (\"\": <data_dir>/proxy.sock)",
                             &Config::runner_socket, true));
  t.push_back(string_setting("runner.bwrap", "ERA_PROXY_RUNNER_BWRAP", "", "bubblewrap executable", &Config::runner_bwrap));
  t.push_back(string_setting("runner.python", "ERA_PROXY_RUNNER_PYTHON", "", "python3 used in the sandbox (under /usr)",
                             &Config::runner_python));
  t.push_back(string_setting("runner.node", "ERA_PROXY_RUNNER_NODE", "", "node used in the sandbox (under /usr)",
                             &Config::runner_node));
  t.push_back(int_setting("runner.default_timeout", "ERA_PROXY_RUNNER_DEFAULT_TIMEOUT", "",
                          "seconds a run may take when the request gives no timeout", &Config::runner_default_timeout, 1,
                          86400));
  t.push_back(int_setting("runner.max_timeout", "ERA_PROXY_RUNNER_MAX_TIMEOUT", "",
                          "largest timeout a request may ask for, in seconds", &Config::runner_max_timeout, 1, 86400));
  t.push_back(int_setting("runner.max_concurrent", "ERA_PROXY_RUNNER_MAX_CONCURRENT", "",
                          "runs at once (of different sessions; a session's runs take turns)",
                          &Config::runner_max_concurrent, 1, 1024));
  t.push_back(int_setting("runner.queue_timeout", "ERA_PROXY_RUNNER_QUEUE_TIMEOUT", "",
                          "seconds a run waits for a free slot before a 503", &Config::runner_queue_timeout, 1, 3600));
  t.push_back(int_setting("runner.memory_mb", "ERA_PROXY_RUNNER_MEMORY_MB", "",
                          "memory of a run (cgroup) and of each of its processes (RLIMIT_DATA), MiB", &Config::runner_memory_mb, 16, 1048576));
  t.push_back(int_setting("runner.max_processes", "ERA_PROXY_RUNNER_MAX_PROCESSES", "",
                          "processes and threads per run", &Config::runner_max_processes, 4, 65536));
  t.push_back(int_setting("runner.max_output_bytes", "ERA_PROXY_RUNNER_MAX_OUTPUT_BYTES", "",
                          "stdout and stderr kept per run, each; more ends the run", &Config::runner_max_output_bytes,
                          1024, 64 << 20));
  t.push_back(int_setting("runner.max_file_mb", "ERA_PROXY_RUNNER_MAX_FILE_MB", "",
                          "largest file a run may write, MiB (RLIMIT_FSIZE)", &Config::runner_max_file_mb, 1, 1048576));
  t.push_back(int_setting("runner.tmp_mb", "ERA_PROXY_RUNNER_TMP_MB", "",
                          "size of the sandbox's private /tmp and /dev/shm, MiB each", &Config::runner_tmp_mb, 1, 65536));
  t.push_back(int_setting("runner.disk_quota_mb", "ERA_PROXY_RUNNER_DISK_QUOTA_MB", "",
                          "bytes on disk a session's working directory may hold, MiB (0: no quota; enforced as "
                          "root with loop devices)",
                          &Config::runner_disk_quota_mb, 0, 1048576));
  t.push_back(int_setting("runner.uid", "ERA_PROXY_RUNNER_UID", "",
                          "host uid the sandbox runs as when the proxy runs as root", &Config::runner_uid, 1, 2147483646));
  t.push_back(int_setting("runner.gid", "ERA_PROXY_RUNNER_GID", "",
                          "host gid the sandbox runs as when the proxy runs as root", &Config::runner_gid, 1, 2147483646));
  t.push_back(string_setting("metrics.token", "ERA_METRICS_TOKEN", "",
                             "a credential for GET /metrics only (at least 16 bytes; the admin's works too)",
                             &Config::metrics_token));
  t.back().secret = true;
  t.push_back(string_setting("metrics.token_file", "ERA_METRICS_TOKEN_FILE", "metrics-token-file",
                             "file holding the metrics token (mode 0600)", &Config::metrics_token_file));
  t.push_back(bool_setting("metrics.open_on_loopback", "ERA_PROXY_METRICS_OPEN_ON_LOOPBACK", "",
                           "serve GET /metrics without a credential to loopback clients",
                           &Config::metrics_open_on_loopback));
  t.push_back(int_setting("metrics.store_sizes_ttl", "ERA_PROXY_METRICS_STORE_SIZES_TTL", "",
                          "seconds store sizes are cached between scrapes (0: read on every scrape)",
                          &Config::metrics_store_sizes_ttl, 0, 86400));
  t.push_back(string_setting("audit.file", "ERA_PROXY_AUDIT_FILE", "audit-file",
                             "audit trail file (\"-\": stdout; \"\": none)", &Config::audit_file, true));
  t.push_back(bytes_setting("audit.max_bytes", "ERA_PROXY_AUDIT_MAX_BYTES", "",
                            "size at which the audit file is rotated, in bytes", &Config::audit_max_bytes, 4096,
                            1ull << 40));
  t.push_back(int_setting("audit.keep", "ERA_PROXY_AUDIT_KEEP", "", "rotated audit files kept", &Config::audit_keep,
                          1, 1000));
  t.push_back(int_setting("audit.queue", "ERA_PROXY_AUDIT_QUEUE", "",
                          "audit events queued for the writer before requests wait for it", &Config::audit_queue, 1,
                          10000000));
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
  t.push_back(int_setting("d1.request_timeout_ms", "ERA_PROXY_D1_REQUEST_TIMEOUT_MS", "",
                          "milliseconds one D1 call (query, exec or batch) may take in all (D1: 30000)",
                          &Config::d1_request_timeout_ms, 1, 3600000));
  t.push_back(int_setting("d1.max_statements", "ERA_PROXY_D1_MAX_STATEMENTS", "",
                          "statements in one D1 call (D1: 1000 per Worker invocation)", &Config::d1_max_statements, 1,
                          100000));
  t.push_back(int_setting("d1.journal_limit_mb", "ERA_PROXY_D1_JOURNAL_LIMIT_MB", "",
                          "MiB a namespace's D1 write-ahead log is truncated back to after a call (local mode)",
                          &Config::d1_journal_limit_mb, 1, 1048576));
  t.push_back(int_setting("d1.max_open_databases", "ERA_PROXY_D1_MAX_OPEN_DATABASES", "",
                          "namespace D1 files kept open at once, least recently used closed first (local mode)",
                          &Config::d1_max_open_databases, 1, 100000));
  t.push_back(int_setting("d1.readers_per_namespace", "ERA_PROXY_D1_READERS_PER_NAMESPACE", "",
                          "read-only connections per namespace D1 file (local mode)", &Config::d1_readers_per_namespace,
                          1, 1024));
  t.push_back(int_setting("d1.max_concurrent_per_namespace", "ERA_PROXY_D1_MAX_CONCURRENT_PER_NAMESPACE", "",
                          "D1 calls of one namespace served at once; more get 429 (local mode)",
                          &Config::d1_max_concurrent_per_namespace, 1, 100000));
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
  if (c.backend == "cloudflare") resolve_cloudflare(c);
  return c;
}

namespace {

std::string read_secret_file(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(key + ": cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string v = ss.str();
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ')) v.pop_back();
  if (v.empty()) throw ConfigError(key + ": " + path + " is empty");
  return v;
}

}  // namespace

void resolve_cloudflare(Config& c) {
  auto from_file = [](std::string& value, const std::string& file, const std::string& key) {
    if (!file.empty()) {
      if (!value.empty()) throw ConfigError(key + " and " + key + "_file are both set: give one");
      value = read_secret_file(key + "_file", file);
    }
  };
  from_file(c.cf_api_token, c.cf_api_token_file, "cloudflare.api_token");
  from_file(c.cf_r2_access_key_id, c.cf_r2_access_key_id_file, "cloudflare.r2_access_key_id");
  from_file(c.cf_r2_secret_access_key, c.cf_r2_secret_access_key_file, "cloudflare.r2_secret_access_key");
  if (c.cf_r2_access_key_id.empty() && c.cf_r2_secret_access_key.empty() && !c.cf_api_token_id.empty() &&
      !c.cf_api_token.empty()) {
    // Cloudflare's documented derivation: id = the token's id, secret = hex SHA-256 of the token value.
    c.cf_r2_access_key_id = c.cf_api_token_id;
    c.cf_r2_secret_access_key = crypto::sha256_hex(c.cf_api_token);
  }
  std::vector<std::string> missing;
  auto need = [&](const std::string& v, const char* what) {
    if (v.empty()) missing.push_back(what);
  };
  if (c.cf_api_base.empty() || c.cf_r2_endpoint.empty()) need(c.cf_account_id, "cloudflare.account_id (ERA_CF_ACCOUNT_ID)");
  need(c.cf_api_token, "cloudflare.api_token (ERA_CF_API_TOKEN or ERA_CF_API_TOKEN_FILE)");
  need(c.cf_kv_namespace_id, "cloudflare.kv_namespace_id (ERA_CF_KV_NAMESPACE_ID)");
  need(c.cf_d1_database_id, "cloudflare.d1_database_id (ERA_CF_D1_DATABASE_ID)");
  need(c.cf_r2_bucket, "cloudflare.r2_bucket (ERA_CF_R2_BUCKET)");
  need(c.cf_r2_access_key_id,
       "cloudflare.r2_access_key_id (ERA_CF_R2_ACCESS_KEY_ID, or ERA_CF_API_TOKEN_ID to derive it from the token)");
  need(c.cf_r2_secret_access_key,
       "cloudflare.r2_secret_access_key (ERA_CF_R2_SECRET_ACCESS_KEY, or ERA_CF_API_TOKEN_ID to derive it)");
  if (!missing.empty()) {
    std::string m = "backend \"cloudflare\" needs ";
    for (size_t i = 0; i < missing.size(); ++i) m += (i ? ", " : "") + missing[i];
    throw ConfigError(m);
  }
  if (c.cf_api_base.empty()) c.cf_api_base = "https://api.cloudflare.com/client/v4/accounts/" + c.cf_account_id;
  if (c.cf_r2_endpoint.empty()) c.cf_r2_endpoint = "https://" + c.cf_account_id + ".r2.cloudflarestorage.com";
  while (!c.cf_api_base.empty() && c.cf_api_base.back() == '/') c.cf_api_base.pop_back();
  while (!c.cf_r2_endpoint.empty() && c.cf_r2_endpoint.back() == '/') c.cf_r2_endpoint.pop_back();
  for (const std::string* url : {&c.cf_api_base, &c.cf_r2_endpoint})
    if (url->rfind("https://", 0) != 0 && url->rfind("http://", 0) != 0)
      throw ConfigError("invalid value '" + *url + "' for cloudflare.api_base/r2_endpoint: an http(s) URL");
}

void validate(const Config& c) {
  if (c.runner_default_timeout > c.runner_max_timeout)
    throw ConfigError("runner.default_timeout (" + std::to_string(c.runner_default_timeout) +
                      ") must not exceed runner.max_timeout (" + std::to_string(c.runner_max_timeout) + ")");
  if (c.default_ttl > c.max_ttl)
    throw ConfigError("auth.default_ttl (" + std::to_string(c.default_ttl) + ") is longer than auth.max_ttl (" +
                      std::to_string(c.max_ttl) + ")");
  if (!c.admin_token.empty() && !c.admin_token_file.empty())
    throw ConfigError("give the admin credential once: auth.admin_token or auth.admin_token_file, not both");
  if (!c.token_secret.empty() && !c.token_secret_file.empty())
    throw ConfigError("give the token secret once: auth.token_secret or auth.token_secret_file, not both");
  if (!c.metrics_token.empty() && !c.metrics_token_file.empty())
    throw ConfigError("give the metrics token once: metrics.token or metrics.token_file, not both");
}

}  // namespace era

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
  int workers = 64;                   // threads running handlers (server.threads is its old name)
  int io_threads = 0;                 // event-loop threads owning the connections (0: one per 4 cores, at least 1)
  int queue = 1024;                   // requests waiting for a worker before 503s
  int head_timeout_ms = 10000;        // a request head must arrive within this from its first byte
  int max_head_bytes = 65536;         // request line and headers
  int max_headers = 100;              // header fields per request
  int max_connections = 16384;        // open connections in all
  int max_connections_per_peer = 0;   // open connections per client address (0: no cap; never on the Unix socket)
  int keep_alive_max_count = 100000;  // requests per kept-alive connection
  int keep_alive_timeout = 5;         // seconds an idle kept-alive connection is held (also bounds
                                      // how long SIGTERM waits for idle connections to close)
  int read_timeout = 60;              // seconds a request body (or a response's reader) may pause
  int listen_backlog = 1024;
  std::string log_level = "info";
  std::string log_format = "text";  // "text" or "json" (one JSON object per line)
  std::string public_url;  // the URL sandboxes reach the proxy at (session env); "": from the Host header

  // top level
  std::string backend = "local";

  // [storage]
  std::string data_dir = "data";
  uint64_t r2_max_object_size = 5ull << 30;  // bytes; R2's single-upload limit (5 GiB)
  uint64_t kv_cache_bytes = 32ull << 20;      // local KV read cache (0 = none)

  // [cloudflare]: used when backend = "cloudflare". Secrets (api_token, r2_secret_access_key and
  // r2_access_key_id) come from the environment, the file, or a *_file path; they are never printed.
  std::string cf_account_id;
  std::string cf_api_token;
  std::string cf_api_token_file;
  std::string cf_api_token_id;  // the token's id: with the token, derives the R2 S3 keys
  std::string cf_kv_namespace_id;
  std::string cf_d1_database_id;
  std::string cf_r2_bucket;
  std::string cf_r2_access_key_id;
  std::string cf_r2_access_key_id_file;
  std::string cf_r2_secret_access_key;
  std::string cf_r2_secret_access_key_file;
  std::string cf_api_base;     // default https://api.cloudflare.com/client/v4/accounts/<account id>
  std::string cf_r2_endpoint;  // default https://<account id>.r2.cloudflarestorage.com
  int cf_connect_timeout_ms = 5000;
  int cf_timeout_ms = 30000;
  int cf_max_attempts = 4;
  int cf_r2_part_size_mib = 16;  // objects above this go up as multipart, in parts of this size
  int cf_call_budget = 1100;      // REST calls per 5 minutes for the API token, all replicas together
  int cf_replicas = 1;            // proxies sharing the token: each keeps cf_call_budget / cf_replicas
  int cf_budget_max_wait_ms = 5000;  // a call waiting longer for room in the budget: 503 + Retry-After
  int cf_registry_flush_ms = 1000;  // resource registry changes go to D1 in one batch at most this often
  int cf_kv_cache_ttl_s = 30;                  // KV read cache window in seconds (0 = off; at most 60)
  uint64_t cf_kv_cache_bytes = 64ull << 20;    // KV read cache size
  int cf_kv_batch_max_keys = 10000;            // KV writes per bulk call
  int cf_kv_same_key_interval_ms = 1000;       // KV: one write a second per key

  // [runner]: running a session's code in a bubblewrap sandbox (POST /api/sessions/{id}/run)
  bool runner_enabled = true;
  std::string runner_sessions_dir;  // "" = <data_dir>/sessions
  std::string runner_socket;        // "" = <data_dir>/proxy.sock
  std::string runner_bwrap = "/usr/bin/bwrap";
  std::string runner_python = "/usr/bin/python3";
  std::string runner_node = "/usr/bin/node";
  int runner_default_timeout = 30;  // seconds
  int runner_max_timeout = 300;     // seconds
  int runner_max_concurrent = 4;
  int runner_queue_timeout = 60;  // seconds a run waits for a free slot
  int runner_memory_mb = 512;     // per run (cgroup, where there is one) and per process (RLIMIT_DATA)
  int runner_max_processes = 64;  // per run
  int runner_max_output_bytes = 1048576;  // per stream
  int runner_max_file_mb = 64;
  int runner_tmp_mb = 64;
  int runner_disk_quota_mb = 256;  // per session's working directory; 0 = none (needs root and loop devices)
  int runner_uid = 65534;  // host ids the sandbox runs as when the proxy runs as root
  int runner_gid = 65534;

  // [auth] (see auth/setup.h for how they combine, and config.example.toml)
  std::string auth_mode = "off";       // "off" (loopback hosts only) or "token"
  std::string admin_token;             // secret: never printed or logged
  std::string admin_token_file;        // or: a file holding it (refused if others may read it)
  std::string token_secret;            // secret: the HMAC key that signs session tokens
  std::string token_secret_file;       // or: a file holding it; neither: <data_dir>/token_secret
  int default_ttl = 86400;             // seconds a session lasts when ttl_seconds is not given
  int max_ttl = 2592000;               // the longest a session or a minted token may last (30 days)
  int revocation_refresh = 60;         // seconds between reloads of the revocation set from the store
  int rate_limit = 0;                  // requests per second per session; 0: no limit
  int rate_burst = 0;                  // requests a session may make at once; 0: rate_limit
  int write_bytes_per_sec = 0;         // request-body bytes per second per session; 0: no limit
  int write_burst_bytes = 0;           // bytes a session may send at once; 0: write_bytes_per_sec
  std::string allowed_origins;         // web origins besides the proxy's own that may call it, comma-separated
  // [quota]: bytes each namespace may hold, per store; 0: no quota (the default)
  uint64_t quota_kv_bytes = 0;
  uint64_t quota_r2_bytes = 0;
  uint64_t quota_d1_bytes = 0;
  // [d1] limits, D1's by default (a statement past them is refused or interrupted, changing nothing)
  int d1_max_sql_bytes = 100000;          // bytes of SQL in one request's statement text
  int d1_max_params = 100;                // bound parameters per statement
  int d1_statement_timeout_ms = 30000;    // a statement running longer is interrupted
  int d1_max_result_bytes = 50000000;     // a result set larger than this is refused
  int d1_request_timeout_ms = 30000;      // a whole call (query, exec, batch) running longer is stopped
  int d1_max_statements = 1000;           // statements in one call (exec's statements, batch entries)
  // local mode: a SQLite file per namespace
  int d1_journal_limit_mb = 64;           // a namespace's WAL is truncated back to this after a call
  int d1_max_open_databases = 64;         // namespace files kept open (least recently used closed)
  int d1_readers_per_namespace = 4;       // read-only connections per namespace file
  int d1_max_concurrent_per_namespace = 8;  // calls of one namespace at once (more: 429 d1_busy)

  // [metrics]: GET /metrics (Prometheus). The admin credential is always accepted.
  std::string metrics_token;       // secret: a credential good for GET /metrics only
  std::string metrics_token_file;  // or: a file holding it (mode 0600)
  bool metrics_open_on_loopback = false;  // no credential needed from a loopback peer (never the runner's socket)
  int metrics_store_sizes_ttl = 60;       // seconds the store sizes (registry counters) are cached between scrapes

  // [audit]: one JSON line per state change and per denial (obs/audit.h)
  std::string audit_file;                   // "": no audit trail; "-": stdout; else a file path
  uint64_t audit_max_bytes = 64ull << 20;   // the file is rotated before it grows past this
  int audit_keep = 5;                       // rotated files kept (<file>.1 .. <file>.N)
  int audit_queue = 10000;                  // events waiting for the writer before requests wait

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

// For backend = "cloudflare": reads secrets given as *_file paths, derives the R2 S3 keys from the API
// token when asked to, fills in the default API base and R2 endpoint, and checks that everything the
// backend needs is there (the message names each missing setting with its environment variable).
// Called by load_config. Throws ConfigError.
void resolve_cloudflare(Config& config);

}  // namespace era

#include "app/backends.h"

#include <chrono>
#include <stdexcept>
#include <utility>

#include "store/cloudflare/cloudflare_backend.h"
#include "store/local/local_backend.h"
#include "store/quota.h"

namespace era {

namespace {

std::unique_ptr<Backend> open_plain(const Config& config) {
  D1Limits d1;
  d1.max_sql_bytes = static_cast<size_t>(config.d1_max_sql_bytes);
  d1.max_params = config.d1_max_params;
  d1.statement_timeout_ms = config.d1_statement_timeout_ms;
  d1.max_result_bytes = config.d1_max_result_bytes;
  d1.request_timeout_ms = config.d1_request_timeout_ms;
  d1.max_statements = config.d1_max_statements;
  if (config.backend == "local") {
    LocalOptions o;
    o.data_dir = config.data_dir;
    o.kv_cache_bytes = static_cast<size_t>(config.kv_cache_bytes);
    o.d1 = d1;
    o.d1_files.journal_limit_bytes = int64_t(config.d1_journal_limit_mb) << 20;
    o.d1_files.max_open_namespaces = static_cast<size_t>(config.d1_max_open_databases);
    o.d1_files.readers_per_namespace = static_cast<size_t>(config.d1_readers_per_namespace);
    o.d1_files.max_concurrent_per_namespace = config.d1_max_concurrent_per_namespace;
    return std::make_unique<LocalBackend>(o);
  }
  if (config.backend == "cloudflare") {
    cf::CloudflareOptions o;
    o.api_base = config.cf_api_base;
    o.api_token = config.cf_api_token;
    o.kv_namespace_id = config.cf_kv_namespace_id;
    o.d1_database_id = config.cf_d1_database_id;
    o.r2_endpoint = config.cf_r2_endpoint;
    o.r2_bucket = config.cf_r2_bucket;
    o.r2_credentials = {config.cf_r2_access_key_id, config.cf_r2_secret_access_key};
    o.http.connect_timeout_ms = config.cf_connect_timeout_ms;
    o.http.timeout_ms = config.cf_timeout_ms;
    o.http.max_attempts = config.cf_max_attempts;
    o.r2_part_size = uint64_t(config.cf_r2_part_size_mib) << 20;
    o.budget.calls = config.cf_call_budget;
    o.budget.replicas = config.cf_replicas;
    o.budget.max_wait_ms = config.cf_budget_max_wait_ms;
    o.r2_max_object_size = config.r2_max_object_size;
    o.registry.flush_ms = config.cf_registry_flush_ms;
    o.kv.cache_ttl = std::chrono::seconds(config.cf_kv_cache_ttl_s);
    o.kv.cache_bytes = static_cast<size_t>(config.cf_kv_cache_bytes);
    o.kv.batch_max_keys = static_cast<size_t>(config.cf_kv_batch_max_keys);
    o.kv.same_key_interval = std::chrono::milliseconds(config.cf_kv_same_key_interval_ms);
    o.d1 = d1;
    return std::make_unique<cf::CloudflareBackend>(std::move(o));
  }
  throw std::runtime_error("unknown backend '" + config.backend + "'");
}

}  // namespace

std::unique_ptr<Backend> open_backend(const Config& config) {
  // Quotas wrap whichever backend it is (store/quota.h).
  if (config.backend == "cloudflare" && config.quota_d1_bytes)
    throw std::runtime_error("quota.d1_bytes is not available with the cloudflare backend: it learns no table "
                             "sizes from D1 (kv_bytes and r2_bytes are)");
  return with_quotas(open_plain(config), {config.quota_kv_bytes, config.quota_r2_bytes, config.quota_d1_bytes});
}

}  // namespace era

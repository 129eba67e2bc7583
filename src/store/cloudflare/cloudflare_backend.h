// The cloudflare backend: every store forwards to the real Cloudflare account named in [cloudflare]
// (KV and D1 over the v4 REST API, R2 over its S3 API), through one pooled HttpClient. Nothing is
// kept on local disk; what each replica holds in memory is listed in docs/operations.md.
#pragma once

#include <memory>

#include "store/backend.h"
#include "store/cloudflare/call_budget.h"
#include "store/cloudflare/cloudflare_d1.h"
#include "store/cloudflare/cloudflare_kv.h"
#include "store/cloudflare/cloudflare_r2.h"
#include "store/cloudflare/cloudflare_registry.h"
#include "store/cloudflare/cloudflare_sessions.h"
#include "store/cloudflare/d1_client.h"
#include "store/cloudflare/http_client.h"
#include "store/cloudflare/rest_api.h"
#include "store/cloudflare/s3_client.h"
#include "store/cloudflare/stats_cache.h"

namespace era::cf {

// What the cloudflare backend needs from the configuration ([cloudflare] and the D1 limits).
struct CloudflareOptions {
  std::string api_base;  // https://api.cloudflare.com/client/v4/accounts/<account id>
  std::string api_token;
  std::string kv_namespace_id;
  std::string d1_database_id;
  std::string r2_endpoint;  // https://<account id>.r2.cloudflarestorage.com
  std::string r2_bucket;
  sigv4::Credentials r2_credentials;
  HttpOptions http;
  BudgetOptions budget;  // the API token's REST call budget (KV and D1; R2's S3 calls are free of it)
  uint64_t r2_part_size = 16u << 20;  // objects above this go up as multipart, in parts of this size
  uint64_t r2_max_object_size = 5ull << 30;  // parts grow so this fits in R2's 10,000 parts
  RegistryOptions registry;
  KvOptions kv;  // read cache and write batching (cloudflare_kv.h)
  D1Limits d1;
  int64_t stats_max_age_ms = 5000;  // `resources stats` answered from a copy at most this old
};

class CloudflareBackend : public Backend {
 public:
  explicit CloudflareBackend(CloudflareOptions options);

  KvStore& kv() override { return *kv_; }
  ObjectStore& r2() override { return *r2_; }
  SessionStore& sessions() override { return *sessions_; }
  // User SQL over D1: rewritten and guarded on a shadow schema before /raw (cloudflare_d1.h).
  SqlStore& d1() override { return *d1_noting_; }
  // Resource discovery from tables of the D1 database that every replica shares (cloudflare_registry.h),
  // its stats from a copy in memory (stats_cache.h).
  ResourceRegistry& registry() override { return *stats_; }
  // The registry itself, under the stats cache (its queue and flush, for tests and tools).
  CloudflareRegistry& cloudflare_registry() { return *registry_; }
  // The registry's flusher and marker (cloudflare_registry.h).
  void start(const std::string& instance) override { registry_->start(instance); }
  void close() override { registry_->close(); }
  std::vector<CheckItem> check() override;

 private:
  CloudflareOptions options_;
  std::shared_ptr<CallBudget> budget_;  // shared: the /metrics collector holds a weak reference
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<RestApi> api_;
  std::unique_ptr<S3Client> s3_;
  std::unique_ptr<D1Client> d1_;
  std::unique_ptr<CloudflareRegistry> registry_;
  std::unique_ptr<StatsCache> stats_;
  std::unique_ptr<ChangeNotingRecorder> recorder_;
  std::unique_ptr<ChangeNotingSql> d1_noting_;
  std::unique_ptr<CloudflareKv> kv_;
  std::unique_ptr<CloudflareR2> r2_;
  std::unique_ptr<CloudflareSessions> sessions_;
  std::unique_ptr<SqlStore> d1_store_;
};

}  // namespace era::cf

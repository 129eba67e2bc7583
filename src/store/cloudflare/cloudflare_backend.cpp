#include "store/cloudflare/cloudflare_backend.h"

#include <utility>

#include "store/cloudflare/token_check.h"
#include "util/error.h"

namespace era::cf {
namespace {

CheckItem run_check(const std::string& what, const std::function<void()>& fn) {
  try {
    fn();
    return {what, true, "ok"};
  } catch (const ApiError& e) {
    return {what, false, e.what()};
  } catch (const std::exception& e) {
    return {what, false, e.what()};
  }
}

}  // namespace

CloudflareBackend::CloudflareBackend(CloudflareOptions options) : options_(std::move(options)) {
  const CloudflareOptions& o = options_;
  http_ = std::make_unique<HttpClient>(o.http);
  api_ = std::make_unique<RestApi>(*http_, o.api_base, o.api_token);
  s3_ = std::make_unique<S3Client>(*http_, o.r2_endpoint, o.r2_bucket, o.r2_credentials);
  d1_ = std::make_unique<D1Client>(*api_, o.d1_database_id);
  d1_store_ = std::make_unique<CloudflareD1>(*d1_, o.d1);
  registry_ = std::make_unique<CloudflareRegistry>(*d1_, *d1_store_, o.registry);
  kv_ = std::make_unique<CloudflareKv>(*api_, o.kv_namespace_id, registry_.get(), o.kv);
  r2_ = std::make_unique<CloudflareR2>(*s3_, *http_, o.r2_part_size, o.r2_max_object_size, registry_.get());
  registry_->set_walkers(
      {{"kv", ':', [this](const std::function<void(StoredEntry)>& fn) { kv_->walk(fn); },
        [this](const std::string& ns, const std::string& key) -> std::optional<StoredEntry> {
          auto v = kv_->get(ns, key);
          if (!v) return std::nullopt;
          return StoredEntry{ns, key, int64_t(v->value.size()), v->metadata, v->expiration};
        }},
       {"r2", '/', [this](const std::function<void(StoredEntry)>& fn) { r2_->walk(fn); },
        [this](const std::string& ns, const std::string& key) -> std::optional<StoredEntry> {
          auto info = r2_->head(ns, key);
          if (!info) return std::nullopt;
          return StoredEntry{ns, key, int64_t(info->size), nlohmann::json(info->custom_metadata).dump(), std::nullopt};
        }}});
  sessions_ = std::make_unique<CloudflareSessions>(*d1_);
}

std::vector<CheckItem> CloudflareBackend::check() {
  std::vector<CheckItem> out;
  // The token: account-owned ones verify under the account base, user-owned ones at /user/tokens/verify.
  out.push_back(verify_api_token(*api_));
  out.push_back(run_check("KV namespace " + options_.kv_namespace_id, [&] { kv_->check(); }));
  out.push_back(run_check("D1 database " + options_.d1_database_id, [&] {
    HttpRequest req = api_->request("POST", "/d1/database/" + options_.d1_database_id + "/raw", "D1 database check");
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = R"({"sql":"SELECT 1","params":[]})";
    api_->call(req);
  }));
  out.push_back(run_check("R2 bucket " + options_.r2_bucket + " (S3 keys)", [&] { s3_->check(); }));
  return out;
}

}  // namespace era::cf

#include "store/cloudflare/cloudflare_backend.h"

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

CloudflareBackend::CloudflareBackend(const Config& config) : config_(config) {
  HttpOptions o;
  o.connect_timeout_ms = config.cf_connect_timeout_ms;
  o.timeout_ms = config.cf_timeout_ms;
  o.max_attempts = config.cf_max_attempts;
  http_ = std::make_unique<HttpClient>(o);
  api_ = std::make_unique<RestApi>(*http_, config.cf_api_base, config.cf_api_token);
  s3_ = std::make_unique<S3Client>(*http_, config.cf_r2_endpoint, config.cf_r2_bucket,
                                   sigv4::Credentials{config.cf_r2_access_key_id, config.cf_r2_secret_access_key});
  d1_ = std::make_unique<D1Client>(*api_, config.cf_d1_database_id);
  d1_store_ = std::make_unique<CloudflareD1>(*d1_, d1_limits(config));
  registry_ = std::make_unique<CloudflareRegistry>(*d1_, *d1_store_);
  kv_ = std::make_unique<CloudflareKv>(*api_, config.cf_kv_namespace_id, registry_.get());
  r2_ = std::make_unique<CloudflareR2>(*s3_, *http_, uint64_t(config.cf_r2_part_size_mib) << 20, registry_.get());
  registry_->set_walkers(
      {{"kv", ':', [this](const std::function<void(StoredEntry)>& fn) { kv_->walk(fn); },
        [this](const std::string& ns, const std::string& key) -> std::optional<int64_t> {
          auto v = kv_->get(ns, key);
          return v ? std::optional<int64_t>(int64_t(v->value.size())) : std::nullopt;
        }},
       {"r2", '/', [this](const std::function<void(StoredEntry)>& fn) { r2_->walk(fn); },
        [this](const std::string& ns, const std::string& key) -> std::optional<int64_t> {
          auto info = r2_->head(ns, key);
          return info ? std::optional<int64_t>(int64_t(info->size)) : std::nullopt;
        }}});
  sessions_ = std::make_unique<CloudflareSessions>(*d1_);
}

std::vector<CheckItem> CloudflareBackend::check() {
  std::vector<CheckItem> out;
  // The token: account tokens verify under the account base; a 404 there (user tokens, or the
  // emulator, which has no token endpoint) leaves the verdict to the calls below, which use it.
  out.push_back(run_check("API token", [&] {
    HttpRequest req = api_->request("GET", "/tokens/verify", "API token verify");
    HttpResponse r = api_->send(req);
    if (r.status == 404) return;
    if (r.status != 200) throw upstream_error(req.what, r);
    auto env = RestApi::envelope(r, req.what);
    if (env.value("success", false) != true) throw upstream_error(req.what, r);
    if (env.contains("result") && env["result"].is_object() && env["result"].value("status", "active") != "active")
      throw ApiError(502, "upstream_error", "the API token is " + env["result"].value("status", std::string("?")));
  }));
  out.push_back(run_check("KV namespace " + config_.cf_kv_namespace_id, [&] { kv_->check(); }));
  out.push_back(run_check("D1 database " + config_.cf_d1_database_id, [&] {
    HttpRequest req = api_->request("POST", "/d1/database/" + config_.cf_d1_database_id + "/raw", "D1 database check");
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = R"({"sql":"SELECT 1","params":[]})";
    api_->call(req);
  }));
  out.push_back(run_check("R2 bucket " + config_.cf_r2_bucket + " (S3 keys)", [&] { s3_->check(); }));
  return out;
}

}  // namespace era::cf

#include "store/backend.h"

#include <stdexcept>

#include "store/cloudflare/cloudflare_backend.h"
#include "store/local/local_backend.h"
#include "store/quota.h"

namespace era {

namespace {

std::unique_ptr<Backend> open_plain(const Config& config) {
  if (config.backend == "local") return std::make_unique<LocalBackend>(config);
  if (config.backend == "cloudflare") return std::make_unique<cf::CloudflareBackend>(config);
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

#include "store/backend.h"

#include <stdexcept>

#include "store/cloudflare/cloudflare_backend.h"
#include "store/local/local_backend.h"

namespace era {

std::unique_ptr<Backend> open_backend(const Config& config) {
  if (config.backend == "local") return std::make_unique<LocalBackend>(config);
  if (config.backend == "cloudflare") return std::make_unique<cf::CloudflareBackend>(config);
  throw std::runtime_error("unknown backend '" + config.backend + "'");
}

}  // namespace era

#include "store/backend.h"

#include <stdexcept>

#include "store/cloudflare/cloudflare_backend.h"
#include "store/local/local_backend.h"

namespace era {

D1Limits d1_limits(const Config& config) {
  D1Limits limits;
  limits.max_sql_bytes = static_cast<size_t>(config.d1_max_sql_bytes);
  limits.max_params = config.d1_max_params;
  limits.statement_timeout_ms = config.d1_statement_timeout_ms;
  limits.max_result_bytes = config.d1_max_result_bytes;
  limits.request_timeout_ms = config.d1_request_timeout_ms;
  limits.max_statements = config.d1_max_statements;
  return limits;
}

std::unique_ptr<Backend> open_backend(const Config& config) {
  if (config.backend == "local") return std::make_unique<LocalBackend>(config);
  if (config.backend == "cloudflare") return std::make_unique<cf::CloudflareBackend>(config);
  throw std::runtime_error("unknown backend '" + config.backend + "'");
}

}  // namespace era

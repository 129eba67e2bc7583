#include "api/api.h"

#include "auth/middleware.h"
#include "auth/setup.h"

namespace era::api {

void register_health(http::Router& router, Services&) {
  router.add("GET", "/healthz", http::Access::open(), [](http::Ctx& c) { c.ok({{"status", "ok"}, {"version", ERA_VERSION}}); });
}

void register_all(http::Router& router, Services& services) {
  auth::install_middleware(router, services.auth, services.limiter,
                           auth::request_policy(services.config, services.auth.required()));
  register_health(router, services);
  register_kv(router, services);
  register_sessions(router, services);
  register_sdk(router, services);
  register_run(router, services);
  register_r2(router, services);
  register_d1(router, services);
  register_resources(router, services);
  register_explorer(router, services);
  register_observe(router, services);
}

}  // namespace era::api

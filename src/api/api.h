// The HTTP surfaces. Each register_* function adds one surface's routes to the router; handlers
// are small lambdas that validate input, call a store through its interface and shape the JSON.
#pragma once

#include "config/config.h"
#include "http/router.h"
#include "store/backend.h"

namespace era::api {

struct Services {
  const Config& config;
  Backend& backend;
};

void register_health(http::Router& router, Services& services);
void register_kv(http::Router& router, Services& services);
void register_r2(http::Router& router, Services& services);
void register_d1(http::Router& router, Services& services);
void register_resources(http::Router& router, Services& services);

// Every surface, in one call (what `serve` uses).
void register_all(http::Router& router, Services& services);

}  // namespace era::api

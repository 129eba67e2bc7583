// Backend: the set of stores one configuration serves from. `local` (SQLite + files under the data
// dir) and `cloudflare` (REST + S3) implement it; the API layer sees only these interfaces.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/kv_store.h"
#include "store/session_store.h"
#include "store/object_store.h"
#include "store/sql_store.h"
#include "store/registry.h"

namespace era {

// One line of `era-storage-proxy check`: what was checked, whether it passed, and why not.
struct CheckItem {
  std::string what;
  bool ok = false;
  std::string detail;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual KvStore& kv() = 0;
  // Sessions and revocations (auth): kept where the backend keeps its metadata.
  virtual SessionStore& sessions() = 0;
  virtual ObjectStore& r2() = 0;
  virtual SqlStore& d1() = 0;
  virtual ResourceRegistry& registry() = 0;
  // Starts background work; called once by `serve`, after the port is bound and before serving.
  // `instance` names this process stably across restarts on one host ("host:port").
  virtual void start(const std::string& instance) { (void)instance; }
  // Stops background work and closes the stores; called once, after the server stopped serving.
  virtual void close() = 0;
  // Verifies the configuration against the backend's real resources (for `era-storage-proxy check`).
  virtual std::vector<CheckItem> check() { return {}; }
};

// Each backend takes its own options struct (LocalOptions, cf::CloudflareOptions), built from the
// configuration in main: no store sees the application's Config.

}  // namespace era

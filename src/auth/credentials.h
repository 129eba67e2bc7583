// Where the signing secret and the admin credential come from, resolved the same way by `serve` and
// by the `token` command:
//   token secret:  auth.token_secret / ERA_TOKEN_SECRET, else auth.token_secret_file /
//                  ERA_TOKEN_SECRET_FILE, else <data_dir>/token_secret — generated (32 random bytes,
//                  hex, mode 0600) the first time, so tokens survive a restart.
//   admin:         auth.admin_token / ERA_ADMIN_TOKEN, else auth.admin_token_file /
//                  ERA_ADMIN_TOKEN_FILE, else none.
// A credential file is refused (ConfigError) unless it is a regular file that neither the group nor
// others may read or write. Short secrets are refused: 32 bytes for the signing secret, 16 for the
// admin credential. Errors name the file or setting, never the value.
#pragma once

#include <optional>
#include <string>

#include "config/config.h"

namespace era::auth {

struct Secret {
  std::string value;
  std::string source;  // for the start-up line: "auth.token_secret", a file path, ...
};

Secret resolve_token_secret(const Config& config);
std::optional<Secret> resolve_admin_token(const Config& config);
// The metrics token (GET /metrics only): metrics.token / ERA_METRICS_TOKEN, else metrics.token_file /
// ERA_METRICS_TOKEN_FILE, else none. At least 16 bytes.
std::optional<Secret> resolve_metrics_token(const Config& config);

// Reads a credential file after checking its type and mode; trailing newlines are dropped.
std::string read_credential_file(const std::string& path);

}  // namespace era::auth

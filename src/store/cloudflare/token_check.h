// The API token check of `era-storage-proxy check`: Cloudflare verifies account-owned tokens at
// /accounts/{account_id}/tokens/verify and user-owned tokens at /user/tokens/verify, and a token of
// one kind is refused at the other's endpoint. The account endpoint is tried first (under the
// configured API base), then the user endpoint (the API base's root, when the base has the
// documented ".../accounts/<id>" shape); the line says which kind verified, or both refusals.
#pragma once

#include <string>

#include "store/backend.h"
#include "store/cloudflare/rest_api.h"

namespace era::cf {

// The user-token endpoint for an API base ".../client/v4/accounts/<id>" (".../client/v4/user/tokens/verify");
// "" when the base has no "/accounts/" segment (the emulator's local explorer).
std::string user_token_verify_url(const std::string& api_base);

CheckItem verify_api_token(RestApi& api);

}  // namespace era::cf

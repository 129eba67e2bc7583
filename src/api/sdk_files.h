// The SDK files, embedded at build time (src/api/sdk_embed.cmake): served by GET /api/sdk/{file} so
// a VM host can inject them. Embedding (rather than reading sdk/ at run time) means the served SDK
// always matches the binary's API, and an installed binary needs no source tree beside it.
#pragma once

#include <string_view>
#include <vector>

namespace era::api {

struct SdkFile {
  std::string_view name;   // "era_storage.py", "era_storage.js", "era_storage.d.ts"
  std::string_view bytes;
};

const std::vector<SdkFile>& sdk_files();

}  // namespace era::api

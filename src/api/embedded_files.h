// Files embedded at build time (src/api/embed.cmake), so the binary serves exactly what it was built
// with and an installed binary needs no source tree beside it:
//   sdk_files()       sdk/: served by GET /api/sdk/{file} so a VM host can inject them; embedding means
//                     the served SDK always matches the binary's API.
//   explorer_files()  explorer/: the admin web page, served by GET /explorer/{file} (api/explorer.cpp).
#pragma once

#include <string_view>
#include <vector>

namespace era::api {

struct EmbeddedFile {
  std::string_view name;  // the file's base name: "era_storage.py", "app.js"
  std::string_view bytes;
};

const std::vector<EmbeddedFile>& sdk_files();
const std::vector<EmbeddedFile>& explorer_files();

// The file called `name` in `files`, or nullptr.
inline const EmbeddedFile* find_file(const std::vector<EmbeddedFile>& files, std::string_view name) {
  for (const auto& f : files)
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace era::api

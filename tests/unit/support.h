// What the unit tests share: a temporary directory that honours ERA_TEST_TMP (ctest points it into the
// build tree, so a failed run leaves its files where the build is), and `status_of`, the HTTP status an
// operation ends with (200 when it returns, the ApiError's status when it throws one).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>

#include "util/error.h"

namespace era::test {

// A fresh directory, removed (with everything in it) when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "era") {
    static std::atomic<int> counter{0};
    const char* base = std::getenv("ERA_TEST_TMP");
    std::filesystem::path root = base && *base ? std::filesystem::path(base) : std::filesystem::temp_directory_path();
    std::filesystem::create_directories(root);
    for (;;) {
      path_ = root / (tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
      std::error_code ec;
      if (std::filesystem::create_directory(path_, ec)) break;  // false: it exists (a stale run): next
      if (ec) throw std::filesystem::filesystem_error("cannot create a test directory", path_, ec);
    }
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The status an operation ends with: 200 when it returns, the ApiError's status when it throws one
// (its code into *code when asked). Any other exception propagates: a test must see it.
inline int status_of(const std::function<void()>& fn, std::string* code = nullptr) {
  try {
    fn();
  } catch (const ApiError& e) {
    if (code) *code = e.code();
    return e.status();
  }
  return 200;
}

}  // namespace era::test

// What the unit tests share: a temporary directory that honours ERA_TEST_TMP (ctest points it into the
// build tree, so a failed run leaves its files where the build is), `status_of`, the HTTP status an
// operation ends with (200 when it returns, the ApiError's status when it throws one), and
// `wait_until`, for an event a test can only observe by looking (a file another process writes).
// The scripted fake upstream (Cloudflare's stand-in) and the short-timeout client options the tests
// against it share are in fake_upstream.h, apart: it brings libcurl's and the server's headers.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <thread>

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

// Waits until `happened()` holds, looking every 10 ms; returns false if it still does not after
// `limit`. The limit is a safety net against a hang, never a measurement: keep it far above any
// plausible wait on a loaded machine under a sanitizer.
inline bool wait_until(const std::function<bool()>& happened,
                       std::chrono::steady_clock::duration limit = std::chrono::seconds(120)) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (!happened()) {
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace era::test

// Streaming MD5 (OpenSSL EVP): R2 and S3 give a single upload's hex MD5 as its ETag, so the proxy
// computes it while the bytes pass through, without holding them.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace era {

class Md5 {
 public:
  Md5();
  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // The lowercase hex digest. Call once; the object is spent afterwards.
  std::string hex_digest();

  static std::string hex_of(std::string_view s) {
    Md5 m;
    m.update(s);
    return m.hex_digest();
  }

 private:
  struct Free {
    void operator()(void* ctx) const;
  };
  std::unique_ptr<void, Free> ctx_;
};

}  // namespace era

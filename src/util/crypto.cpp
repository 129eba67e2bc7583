#include "util/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>

#include "util/encoding.h"

namespace era::crypto {
namespace {

// SHA-256 fetched from the provider once: EVP_sha256() makes every EVP_Digest look the algorithm
// up again (OpenSSL 3's implicit fetch, a lock and a hash-table search per call). The object is
// shared, read-only, by every thread, and lives as long as the process.
const EVP_MD* sha256_md() {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched ? fetched : EVP_sha256();
  }();
  return md;
}

}  // namespace

std::string sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!EVP_Digest(data.data(), data.size(), md, &len, sha256_md(), nullptr))
    throw std::runtime_error("SHA-256 failed");
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string sha256_hex(std::string_view data) { return enc::hex(sha256(data)); }

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), md, &len))
    throw std::runtime_error("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<char*>(md), len);
}

bool constant_time_equal(std::string_view a, std::string_view b) { return constant_time_equal_sha256(a, sha256(b)); }

bool constant_time_equal_sha256(std::string_view a, std::string_view b_sha256) {
  const std::string ha = sha256(a);
  return b_sha256.size() == ha.size() && CRYPTO_memcmp(ha.data(), b_sha256.data(), ha.size()) == 0;
}

}  // namespace era::crypto

#include "util/md5.h"

#include <openssl/evp.h>

#include <stdexcept>

#include "util/encoding.h"

namespace era {

void Md5::Free::operator()(void* ctx) const { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx)); }

Md5::Md5() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_.get()), EVP_md5(), nullptr) != 1)
    throw std::runtime_error("cannot initialise MD5");
}

void Md5::update(const void* data, size_t size) {
  if (size && EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_.get()), data, size) != 1)
    throw std::runtime_error("MD5 update failed");
}

std::string Md5::hex_digest() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_.get()), out, &n) != 1)
    throw std::runtime_error("MD5 final failed");
  return enc::hex(std::string_view(reinterpret_cast<const char*>(out), n));
}

}  // namespace era

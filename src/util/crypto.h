// SHA-256 and HMAC-SHA256 on OpenSSL, once for session tokens and SigV4, and a constant-time compare.
#pragma once

#include <string>
#include <string_view>

namespace era::crypto {

std::string sha256(std::string_view data);      // 32 raw bytes
std::string sha256_hex(std::string_view data);  // 64 lowercase hex digits
std::string hmac_sha256(std::string_view key, std::string_view data);  // 32 raw bytes

// Constant-time equality of two byte strings (the time depends on neither's contents; both are hashed
// first, so unequal lengths leak nothing either).
bool constant_time_equal(std::string_view a, std::string_view b);
// The same against a value known only by its sha256() (`b_sha256`, 32 raw bytes): a secret compared
// on every request is hashed once, not on each compare.
bool constant_time_equal_sha256(std::string_view a, std::string_view b_sha256);

}  // namespace era::crypto

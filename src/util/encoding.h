// Byte encodings used across the proxy: base64 (standard and URL-safe), hex, percent-encoding.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace era::enc {

std::string base64_encode(std::string_view bytes, bool url_safe = false);
// Strict decoding: rejects characters outside the alphabet and bad padding. Accepts both alphabets'
// padding rules: standard input must be padded, URL-safe input may omit padding.
std::optional<std::string> base64_decode(std::string_view text, bool url_safe = false);

std::string hex(std::string_view bytes);

// Percent-encodes every byte outside A-Za-z0-9-._~ (RFC 3986 unreserved); `keep` lists extra bytes
// left as they are (e.g. "/" for a path).
std::string percent_encode(std::string_view s, std::string_view keep = "");
// Decodes %XX sequences; returns nullopt on a malformed escape. '+' is left as is.
std::optional<std::string> percent_decode(std::string_view s);

}  // namespace era::enc

// AWS Signature Version 4, as R2's S3-compatible API checks it (SHA-256 and HMAC-SHA256 from util/crypto).
//
// Only header-based signing of a single-chunk (or UNSIGNED-PAYLOAD) body: R2 rejects aws-chunked
// streaming signatures, so a streamed PutObject is signed with UNSIGNED-PAYLOAD and its bytes go out as
// one plain body. The canonical forms follow the AWS rules exactly (S3 flavour: the path is encoded
// once, never normalised), checked by the known-answer vectors in tests/unit/data/sigv4-vectors.json
// and, end to end, by the emulator's own signature verification.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace era::cf::sigv4 {

using Pairs = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kUnsignedPayload = "UNSIGNED-PAYLOAD";
constexpr const char* kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string region = "auto";
  std::string service = "s3";
};

struct Request {
  std::string method;
  std::string path;  // decoded path, e.g. "/bucket/ns/my key": encoded here once, '/' kept
  Pairs query;       // decoded names and values, in any order ("uploads" with "" for a bare flag)
  Pairs headers;     // every header that is signed (sent as is); must include host and x-amz-date
  std::string payload_hash;  // hex SHA-256 of the body, or UNSIGNED-PAYLOAD
};

// The S3 canonical URI of a decoded path: each byte outside A-Za-z0-9-._~ and '/' as %XX.
std::string canonical_uri(std::string_view path);
// The canonical query string: names and values RFC 3986-encoded, sorted by name then value.
std::string canonical_query(const Pairs& query);
// The query string to put on the wire: the same as the canonical one, so what is signed is what is sent.
inline std::string wire_query(const Pairs& query) { return canonical_query(query); }

// The canonical request; `signed_headers` receives the "a;b;c" list.
std::string canonical_request(const Request& r, std::string* signed_headers);
// The signature (lowercase hex) of `r` at `amz` (a dates::amz_date()).
std::string signature(const Credentials& c, const Request& r, const std::string& amz);
// The Authorization header value.
std::string authorization(const Credentials& c, const Request& r, const std::string& amz);

}  // namespace era::cf::sigv4

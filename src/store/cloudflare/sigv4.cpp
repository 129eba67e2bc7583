#include "store/cloudflare/sigv4.h"

#include <algorithm>

#include "util/crypto.h"
#include "util/encoding.h"
#include "util/text.h"

namespace era::cf::sigv4 {

using crypto::hmac_sha256;
using crypto::sha256_hex;
namespace {

// Header values are trimmed and inner runs of spaces collapsed to one, as the canonical form requires.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string scope(const Credentials& c, const std::string& amz) {
  return amz.substr(0, 8) + "/" + c.region + "/" + c.service + "/aws4_request";
}

}  // namespace

std::string canonical_uri(std::string_view path) {
  std::string p = enc::percent_encode(path, "/");
  return p.empty() ? "/" : p;
}

std::string canonical_query(const Pairs& query) {
  std::vector<std::pair<std::string, std::string>> enc_pairs;
  enc_pairs.reserve(query.size());
  for (const auto& [k, v] : query) enc_pairs.emplace_back(enc::percent_encode(k), enc::percent_encode(v));
  std::sort(enc_pairs.begin(), enc_pairs.end());
  std::string out;
  for (const auto& [k, v] : enc_pairs) out += (out.empty() ? "" : "&") + k + "=" + v;
  return out;
}

std::string canonical_request(const Request& r, std::string* signed_headers) {
  std::vector<std::pair<std::string, std::string>> h;
  h.reserve(r.headers.size());
  for (const auto& [k, v] : r.headers) h.emplace_back(text::lower(k), canonical_value(v));
  std::sort(h.begin(), h.end());
  std::string headers, names;
  for (const auto& [k, v] : h) {
    headers += k + ":" + v + "\n";
    names += (names.empty() ? "" : ";") + k;
  }
  if (signed_headers) *signed_headers = names;
  return r.method + "\n" + canonical_uri(r.path) + "\n" + canonical_query(r.query) + "\n" + headers + "\n" +
         names + "\n" + r.payload_hash;
}

std::string signature(const Credentials& c, const Request& r, const std::string& amz) {
  const std::string creq = canonical_request(r, nullptr);
  const std::string sts = "AWS4-HMAC-SHA256\n" + amz + "\n" + scope(c, amz) + "\n" + sha256_hex(creq);
  std::string key = hmac_sha256("AWS4" + c.secret_access_key, amz.substr(0, 8));
  key = hmac_sha256(key, c.region);
  key = hmac_sha256(key, c.service);
  key = hmac_sha256(key, "aws4_request");
  return enc::hex(hmac_sha256(key, sts));
}

std::string authorization(const Credentials& c, const Request& r, const std::string& amz) {
  std::string names;
  canonical_request(r, &names);
  return "AWS4-HMAC-SHA256 Credential=" + c.access_key_id + "/" + scope(c, amz) + ", SignedHeaders=" + names +
         ", Signature=" + signature(c, r, amz);
}

}  // namespace era::cf::sigv4

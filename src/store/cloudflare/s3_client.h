// S3Client: signed requests to R2's S3-compatible API, path style (<endpoint>/<bucket>/<key>), region
// "auto". Bodies go out as one plain body signed UNSIGNED-PAYLOAD (R2 rejects aws-chunked signing),
// and no x-amz-checksum-* header is ever sent (R2 has rejected them).
#pragma once

#include <string>

#include "store/cloudflare/http_client.h"
#include "store/cloudflare/sigv4.h"

namespace era::cf {

class S3Client {
 public:
  S3Client(HttpClient& http, std::string endpoint, std::string bucket, sigv4::Credentials creds);

  // A request for `key` in the bucket ("" for the bucket itself) with `query` (decoded pairs); the
  // signature is added per attempt, over every header set on the request by then.
  HttpRequest request(const std::string& method, const std::string& key, const sigv4::Pairs& query,
                      const std::string& what) const;

  HttpResponse send(HttpRequest& req) { return http_.send(req); }

  const std::string& bucket() const { return bucket_; }

  // ListObjectsV2 with max-keys=1: proves the keys and the bucket. Throws ApiError with the reason.
  void check();

 private:
  HttpClient& http_;
  std::string endpoint_;  // scheme://host[:port][/base path]
  std::string host_;      // host[:port], as sent in Host
  std::string base_path_;
  std::string bucket_;
  sigv4::Credentials creds_;
};

}  // namespace era::cf

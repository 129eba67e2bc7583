#include "store/cloudflare/s3_client.h"

#include "util/error.h"
#include "util/time.h"

namespace era::cf {

S3Client::S3Client(HttpClient& http, std::string endpoint, std::string bucket, sigv4::Credentials creds)
    : http_(http), endpoint_(std::move(endpoint)), bucket_(std::move(bucket)), creds_(std::move(creds)) {
  const auto scheme = endpoint_.find("://");
  const auto host_start = scheme == std::string::npos ? 0 : scheme + 3;
  const auto slash = endpoint_.find('/', host_start);
  host_ = endpoint_.substr(host_start, slash == std::string::npos ? std::string::npos : slash - host_start);
  base_path_ = slash == std::string::npos ? "" : endpoint_.substr(slash);
}

HttpRequest S3Client::request(const std::string& method, const std::string& key, const sigv4::Pairs& query,
                              const std::string& what) const {
  HttpRequest r;
  r.method = method;
  r.what = what;
  // The decoded path as the upstream sees it: the endpoint's own path (the emulator serves S3 under
  // /cdn-cgi/local/r2/s3), then bucket and key. Signed and sent with the same single encoding.
  const std::string path = base_path_ + "/" + bucket_ + (key.empty() ? "" : "/" + key);
  const std::string q = sigv4::wire_query(query);
  r.url = endpoint_.substr(0, endpoint_.size() - base_path_.size()) + sigv4::canonical_uri(path) + (q.empty() ? "" : "?" + q);
  const sigv4::Credentials creds = creds_;
  const std::string host = host_;
  r.sign = [creds, host, path, query](HttpRequest& req, std::vector<std::pair<std::string, std::string>>& extra) {
    const std::string amz = dates::amz_date(unix_now());
    const std::string payload = req.reader || !req.body.empty() ? sigv4::kUnsignedPayload : sigv4::kEmptySha256;
    sigv4::Request s;
    s.method = req.method;
    s.path = path;
    s.query = query;
    s.headers = {{"host", host}, {"x-amz-date", amz}, {"x-amz-content-sha256", payload}};
    for (const auto& [k, v] : req.headers) s.headers.emplace_back(k, v);
    s.payload_hash = payload;
    extra.emplace_back("x-amz-date", amz);
    extra.emplace_back("x-amz-content-sha256", payload);
    extra.emplace_back("Authorization", sigv4::authorization(creds, s, amz));
  };
  return r;
}

void S3Client::check() {
  HttpRequest req = request("GET", "", {{"list-type", "2"}, {"max-keys", "1"}}, "R2 bucket check");
  HttpResponse r = http_.send(req);
  if (r.status != 200) throw upstream_error(req.what, r);
}

}  // namespace era::cf

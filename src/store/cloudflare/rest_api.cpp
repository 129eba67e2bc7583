#include "store/cloudflare/rest_api.h"

namespace era::cf {

HttpRequest RestApi::request(const std::string& method, const std::string& path, const std::string& what) const {
  HttpRequest r;
  r.method = method;
  r.url = base_ + path;
  r.what = what;
  r.budget = budget_;
  r.headers.emplace_back("Authorization", "Bearer " + token_);
  return r;
}

nlohmann::json RestApi::envelope(const HttpResponse& r, const std::string& what) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object())
    throw ApiError(502, "upstream_error", "Cloudflare " + what + " failed: the answer (HTTP " +
                                              std::to_string(r.status) + ") is not a JSON envelope");
  return j;
}

nlohmann::json RestApi::call(HttpRequest& req) {
  HttpResponse r = http_.send(req);
  if (r.status < 200 || r.status >= 300) throw upstream_error(req.what, r);
  auto j = envelope(r, req.what);
  if (j.value("success", false) != true) throw upstream_error(req.what, r);
  return j;
}

}  // namespace era::cf

// RestApi: Cloudflare's v4 REST API (KV, D1) under one configurable account base, e.g.
// https://api.cloudflare.com/client/v4/accounts/<account id>, or the emulator's local explorer. Adds
// the bearer token, decodes the {"success", "errors", "result"} envelope, and leaves the meaning of
// each 4xx to the store that made the call.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "store/cloudflare/http_client.h"

namespace era::cf {

class RestApi {
 public:
  // `budget`: the token's call budget that every request made here spends (none: unlimited).
  RestApi(HttpClient& http, std::string base, std::string token, CallBudget* budget = nullptr)
      : http_(http), base_(std::move(base)), token_(std::move(token)), budget_(budget) {}

  // A request to base + path (path starts with '/', already percent-encoded) with the token on it,
  // spending the token's budget.
  HttpRequest request(const std::string& method, const std::string& path, const std::string& what) const;

  HttpResponse send(HttpRequest& req) { return http_.send(req); }

  // Sends and decodes the envelope of a 2xx answer; returns the whole envelope. A non-2xx answer is
  // turned into upstream_error() unless the caller handles it first through send().
  nlohmann::json call(HttpRequest& req);

  // The envelope of a JSON answer, or a 502 if the body is not one.
  static nlohmann::json envelope(const HttpResponse& r, const std::string& what);

  const std::string& base() const { return base_; }

 private:
  HttpClient& http_;
  std::string base_;
  std::string token_;
  CallBudget* budget_;
};

}  // namespace era::cf

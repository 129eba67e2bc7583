// Fuzz target: the router's path matching and per-segment percent-decoding (http/router.h), through
// Router::handle() as the server calls it, on the proxy's route patterns (each handler answers the
// parameters it was given). Input: the method, a newline, then the request target (path and query).
// Must hold:
// - no crash or hang, and never a 500: bad paths get a 4xx JSON error;
// - a parameter round-trips: the matched parameters, percent-encoded again, reach the same route
//   with the same values (decoding is per segment, so "a%2Fb" in {ns} is one value, never two
//   segments), and one-segment parameters are never empty;
// - percent_decode(percent_encode(x)) == x for any bytes (the encoder the SDKs' paths rely on);
// - Router::try_inline (the server's I/O-thread path; here the KV GET route has a probe that always
//   says yes, R2's list one that says no) either answers exactly as handle() does, or declines having
//   changed nothing.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "http/router.h"
#include "util/encoding.h"
#include "util/log.h"

namespace {

using era::http::json;

// The proxy's routes (src/api/*.cpp), by method and pattern.
const char* const kRoutes[][2] = {
    {"GET", "/healthz"},
    {"POST", "/api/storage/d1/{ns}/query"},
    {"POST", "/api/storage/d1/{ns}/exec"},
    {"POST", "/api/storage/d1/{ns}/batch"},
    {"PUT", "/api/storage/kv/{ns}/{key...}"},
    {"GET", "/api/storage/kv/{ns}/{key...}"},
    {"DELETE", "/api/storage/kv/{ns}/{key...}"},
    {"GET", "/api/storage/kv/{ns}"},
    {"PUT", "/api/storage/r2/{ns}/{key...}"},
    {"HEAD", "/api/storage/r2/{ns}/{key...}"},
    {"GET", "/api/storage/r2/{ns}/{key...}"},
    {"DELETE", "/api/storage/r2/{ns}/{key...}"},
    {"GET", "/api/storage/r2/{ns}"},
    {"GET", "/api/resources/list"},
    {"GET", "/api/resources/stats"},
    {"POST", "/api/sessions/{id}/run"},
    {"GET", "/api/sdk/{file}"},
    {"POST", "/api/sessions"},
    {"GET", "/api/sessions"},
    {"GET", "/api/sessions/{id}"},
    {"DELETE", "/api/sessions/{id}"},
};

void fail(const char* what, const std::string& method, const std::string& target, const std::string& detail) {
  std::fprintf(stderr, "\n==== router: %s\n%s %s\n%s\n", what, method.c_str(), target.c_str(), detail.c_str());
  std::abort();
}

era::http::Router& router() {
  static era::http::Router* r = [] {
    era::log::set_level(era::log::Level::error);
    auto* out = new era::http::Router;
    for (const auto& route : kRoutes) {
      const std::string pattern = route[1];
      auto answer = [pattern](era::http::Ctx& c) { c.ok({{"route", pattern}, {"params", c.params}}); };
      const std::string method = route[0];
      if (method == "GET" && pattern == "/api/storage/kv/{ns}/{key...}")
        out->add(method, pattern, era::http::Access::open(), answer, [](era::http::Ctx&) { return true; });
      else if (method == "GET" && pattern == "/api/storage/r2/{ns}")
        out->add(method, pattern, era::http::Access::open(), answer, [](era::http::Ctx&) { return false; });
      else
        out->add(method, pattern, answer);
    }
    return out;
  }();
  return *r;
}

era::http::Response serve(const std::string& method, const std::string& target) {
  era::http::Request req;
  req.method = method;
  req.target = target;
  req.path = target.substr(0, target.find('?'));
  era::http::Response res;
  router().handle(req, res);
  return res;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  {
    const std::string encoded = era::enc::percent_encode(input, "/");
    const auto back = era::enc::percent_decode(encoded);
    if (!back || *back != input) fail("percent_decode(percent_encode(x)) != x", "-", encoded, "");
  }
  const size_t nl = input.find('\n');
  if (nl == std::string::npos) return 0;
  const std::string method = input.substr(0, nl), target = input.substr(nl + 1);

  const era::http::Response res = serve(method, target);
  {
    era::http::Request req;
    req.method = method;
    req.target = target;
    req.path = target.substr(0, target.find('?'));
    era::http::Response inl;
    if (router().try_inline(req, inl, nullptr, false)) {
      if (inl.status != res.status || inl.body != res.body)
        fail("try_inline answered differently from handle()", method, target, res.body + "\n" + inl.body);
    } else if (inl.status != -1 || !inl.body.empty() || !inl.headers.empty()) {
      fail("try_inline declined but changed the response", method, target, inl.body);
    }
  }
  const json body = json::parse(res.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) fail("the answer is not a JSON object", method, target, res.body);
  if (res.status >= 500) fail("a 5xx answer", method, target, res.body);
  if (res.status != 200) {
    if (res.status < 400 || !body.contains("code") || !body["code"].is_string())
      fail("an error without a 4xx status and a code", method, target, res.body);
    return 0;
  }
  // Matched: encode the parameters again into the pattern; the same route must give the same values.
  const std::string pattern = body["route"].get<std::string>();
  const auto params = body["params"].get<std::vector<std::string>>();
  std::string path;
  size_t i = 0;
  for (size_t pos = 1; pos <= pattern.size();) {
    size_t end = pattern.find('/', pos);
    if (end == std::string::npos) end = pattern.size();
    const std::string seg = pattern.substr(pos, end - pos);
    path += "/";
    if (seg.size() > 2 && seg.front() == '{') {
      if (i >= params.size()) fail("fewer parameters than the pattern has", method, target, res.body);
      const bool rest = seg.find("...}") != std::string::npos;
      if (!rest && params[i].empty()) fail("an empty one-segment parameter", method, target, res.body);
      path += era::enc::percent_encode(params[i++], rest ? "/" : "");
    } else {
      path += seg;
    }
    pos = end + 1;
  }
  const era::http::Response again = serve(method, path);
  if (again.body != res.body) fail("re-encoded parameters route differently", method, path, res.body + "\n" + again.body);
  return 0;
}

#include "store/cloudflare/token_check.h"

namespace era::cf {
namespace {

struct Verdict {
  int status = 0;
  bool active = false;
  std::string token_status;  // result.status when the envelope said success
  std::string detail;        // the upstream's code and message otherwise
};

Verdict ask(RestApi& api, const std::string& url, const std::string& what) {
  HttpRequest req = api.request("GET", "", what);
  req.url = url;
  Verdict v;
  HttpResponse r = api.send(req);  // 5xx and network trouble throw, with the reason
  v.status = r.status;
  if (r.status == 200) {
    auto env = nlohmann::json::parse(r.body, nullptr, false);
    if (env.is_object() && env.value("success", false) == true) {
      v.token_status = "active";
      if (env.contains("result") && env["result"].is_object() && env["result"].contains("status") &&
          env["result"]["status"].is_string())
        v.token_status = env["result"]["status"].get<std::string>();
      v.active = v.token_status == "active";
      return v;
    }
  }
  v.detail = upstream_detail(r);
  return v;
}

std::string describe(const Verdict& v) {
  if (!v.token_status.empty()) return "token " + v.token_status;
  return "HTTP " + std::to_string(v.status) + (v.detail.empty() ? "" : " (" + v.detail + ")");
}

}  // namespace

std::string user_token_verify_url(const std::string& api_base) {
  const auto at = api_base.rfind("/accounts/");
  if (at == std::string::npos) return "";
  return api_base.substr(0, at) + "/user/tokens/verify";
}

CheckItem verify_api_token(RestApi& api) {
  const std::string what = "API token";
  try {
    const Verdict account = ask(api, api.base() + "/tokens/verify", "API token verify (account)");
    if (account.active) return {what, true, "an account-owned token, active"};
    if (!account.token_status.empty())
      return {what, false, "the account-owned API token is " + account.token_status + " (it must be active)"};
    const std::string user_url = user_token_verify_url(api.base());
    if (user_url.empty()) {
      if (account.status == 404)
        return {what, true,
                "this API base has no token endpoint (the emulator has none); the checks below use the token"};
      return {what, false, "the token did not verify at " + api.base() + "/tokens/verify: " + describe(account)};
    }
    const Verdict user = ask(api, user_url, "API token verify (user)");
    if (user.active) return {what, true, "a user-owned token, active"};
    if (!user.token_status.empty())
      return {what, false, "the user-owned API token is " + user.token_status + " (it must be active)"};
    return {what, false,
            "the token verified neither as an account-owned token (/accounts/<id>/tokens/verify: " + describe(account) +
                ") nor as a user-owned token (/user/tokens/verify: " + describe(user) +
                "): check its value, and that it has access to this account"};
  } catch (const std::exception& e) {
    return {what, false, e.what()};
  }
}

}  // namespace era::cf

#include "auth/setup.h"

#include <arpa/inet.h>

#include <cstring>

#include "auth/credentials.h"

namespace era::auth {

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
  }
  return false;
}

AuthSettings auth_settings(const Config& c, std::string& notes) {
  const bool loopback = is_loopback_host(c.host);
  AuthSettings s;
  s.required = c.auth_mode == "token";
  s.max_ttl = c.max_ttl;
  s.refresh_seconds = c.revocation_refresh;
  if (!s.required && !loopback)
    throw ConfigError("auth is off but server.host '" + c.host +
                      "' is not a loopback address: anyone who can reach it could use every namespace. "
                      "Set auth.mode = \"token\" (ERA_PROXY_AUTH=token, --auth token) with an admin credential, "
                      "or listen on 127.0.0.1");
  auto admin = resolve_admin_token(c);
  if (s.required && !loopback && !admin)
    throw ConfigError("auth.mode is \"token\" on the non-loopback address '" + c.host +
                      "' but no admin credential is configured: set auth.admin_token_file, "
                      "auth.admin_token or ERA_ADMIN_TOKEN");
  Secret secret = resolve_token_secret(c);
  s.secret = std::move(secret.value);
  if (admin) s.admin_token = std::move(admin->value);
  if (!s.required)
    notes += "WARNING: auth is off: any local process may use every namespace (allowed on loopback only; "
             "set auth.mode = \"token\" to require tokens)\n";
  notes += std::string("auth: ") + (s.required ? "token" : "off") + ", token secret from " + secret.source +
           ", admin credential " + (admin ? "from " + admin->source : std::string("not configured")) + "\n";
  if (s.required && !admin)
    notes += "auth: without an admin credential, sessions can only be minted offline "
             "(`era-storage-proxy token`)\n";
  return s;
}

RequestPolicy request_policy(const Config& c, bool auth_required) {
  RequestPolicy p;
  p.auth_required = auth_required;
  for (size_t i = 0; i <= c.allowed_origins.size();) {
    size_t j = c.allowed_origins.find(',', i);
    if (j == std::string::npos) j = c.allowed_origins.size();
    std::string o = c.allowed_origins.substr(i, j - i);
    while (!o.empty() && o.front() == ' ') o.erase(0, 1);
    while (!o.empty() && o.back() == ' ') o.pop_back();
    if (!o.empty()) p.allowed_origins.push_back(o);
    i = j + 1;
  }
  if (!c.host.empty() && c.host != "0.0.0.0" && c.host != "::" && c.host != "[::]") p.host_names.push_back(c.host);
  // public_url: scheme://host[:port][/path]
  const size_t scheme = c.public_url.find("://");
  if (scheme != std::string::npos) {
    std::string rest = c.public_url.substr(scheme + 3);
    rest = rest.substr(0, rest.find('/'));
    if (!rest.empty() && rest.front() == '[') rest = rest.substr(0, rest.find(']') + 1);
    else rest = rest.substr(0, rest.find(':'));
    if (!rest.empty()) p.host_names.push_back(rest);
    p.allowed_origins.push_back(c.public_url.substr(0, c.public_url.find('/', scheme + 3)));
  }
  return p;
}

RateLimits rate_limits(const Config& c) {
  RateLimits r;
  r.requests_per_sec = c.rate_limit;
  r.request_burst = c.rate_burst;
  r.bytes_per_sec = c.write_bytes_per_sec;
  r.byte_burst = c.write_burst_bytes;
  return r;
}

}  // namespace era::auth

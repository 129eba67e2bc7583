#include "http/message.h"

#include <strings.h>

#include "util/encoding.h"

namespace era::http {
namespace {

// A query component: '+' is a space, %XX a byte; a malformed escape is kept as it is.
std::string decode_query(std::string_view s) {
  std::string plus(s);
  for (char& c : plus)
    if (c == '+') c = ' ';
  auto decoded = enc::percent_decode(plus);
  return decoded ? *decoded : plus;
}

// The value of the first `name` in the query of `target`, if any.
bool find_param(const std::string& target, const std::string& name, std::string* value) {
  const size_t q = target.find('?');
  if (q == std::string::npos) return false;
  std::string_view query(target);
  query.remove_prefix(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    if (decode_query(pair.substr(0, eq)) != name) continue;
    if (value) *value = eq == std::string_view::npos ? "" : decode_query(pair.substr(eq + 1));
    return true;
  }
  return false;
}

std::string first_value(const Headers& h, const std::string& name) {
  auto it = h.find(name);
  return it == h.end() ? std::string() : it->second;
}

}  // namespace

bool CaseLess::operator()(const std::string& a, const std::string& b) const {
  return ::strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string Request::get_header_value(const std::string& name) const { return first_value(headers, name); }
bool Request::has_param(const std::string& name) const { return find_param(target, name, nullptr); }
std::string Request::get_param_value(const std::string& name) const {
  std::string v;
  find_param(target, name, &v);
  return v;
}

std::string Response::get_header_value(const std::string& name) const { return first_value(headers, name); }

void Response::replace_header(const std::string& name, const std::string& value) {
  headers.erase(name);
  headers.emplace(name, value);
}

void Response::set_content(std::string content, const std::string& content_type) {
  body = std::move(content);
  provider = nullptr;
  content_length = 0;
  replace_header("Content-Type", content_type);
}

void Response::set_content_provider(uint64_t length, const std::string& content_type, ContentProvider p) {
  body.clear();
  provider = std::move(p);
  content_length = length;
  replace_header("Content-Type", content_type);
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    default: return "";
  }
}

}  // namespace era::http

#include "http/headers.h"

#include "util/error.h"
#include "util/text.h"

namespace era::http {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (size_t i = 0;;) {
    size_t j = s.find(sep, i);
    out.push_back(trim(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i)));
    if (j == std::string_view::npos) return out;
    i = j + 1;
  }
}

// A decimal number of at most 19 digits (so it fits in uint64 without overflow checks).
std::optional<uint64_t> number(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

}  // namespace

std::vector<std::string> parse_etag_list(std::string_view value) {
  auto bad = [] { return ApiError(400, "invalid_etag", "invalid If-Match / If-None-Match: expected \"etag\", ... or *"); };
  value = trim(value);
  if (value == "*") return {"*"};
  std::vector<std::string> out;
  for (auto item : split(value, ',')) {
    if (item.empty()) continue;
    if (item.size() >= 2 && item.substr(0, 2) == "W/") item.remove_prefix(2);
    if (item.front() == '"') {
      if (item.size() < 2 || item.back() != '"') throw bad();
      item = item.substr(1, item.size() - 2);
    }
    if (item.find('"') != std::string_view::npos) throw bad();
    out.emplace_back(item);
  }
  if (out.empty()) throw bad();
  return out;
}

Range parse_range(std::string_view value) {
  // 416, not 400: the library answers 416 to the malformed ranges it catches itself, and one
  // status for every bad Range is simpler for clients.
  auto bad = [](const std::string& why) { return ApiError(416, "invalid_range", "invalid Range header: " + why); };
  value = trim(value);
  const std::string_view unit = "bytes=";
  if (value.size() < unit.size() || text::lower(value.substr(0, unit.size())) != unit)
    throw bad("only the unit 'bytes=' is supported");
  std::string_view spec = trim(value.substr(unit.size()));
  if (spec.find(',') != std::string_view::npos) throw bad("only one range per request is supported");
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) throw bad("expected bytes=first-last, bytes=first- or bytes=-suffix");
  const std::string_view first = trim(spec.substr(0, dash)), last = trim(spec.substr(dash + 1));
  Range r;
  if (first.empty()) {
    auto n = number(last);
    if (!n) throw bad("expected bytes=-suffix with a decimal suffix length");
    r.suffix = *n;
    return r;
  }
  auto a = number(first);
  if (!a) throw bad("the first byte must be a decimal number");
  r.offset = *a;
  if (!last.empty()) {
    auto b = number(last);
    if (!b || *b < *a) throw bad("the last byte must be a decimal number not below the first");
    r.length = *b - *a + 1;
  }
  return r;
}

std::string media_type(std::string_view value) { return text::lower(trim(value.substr(0, value.find(';')))); }

bool accepts(std::string_view accept, std::string_view type) {
  for (auto item : split(accept, ','))
    if (media_type(item) == type) return true;
  return false;
}

}  // namespace era::http

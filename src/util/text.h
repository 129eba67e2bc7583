// Small ASCII text helpers shared by every layer (header names, SQL keywords, schemes).
#pragma once

#include <string>
#include <string_view>

namespace era::text {

// `s` with A-Z turned into a-z; every other byte as is (never locale-dependent).
inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

// `s` without leading and trailing spaces, tabs, CR and LF.
inline std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (b < e && ws(s[b])) ++b;
  while (e > b && ws(s[e - 1])) --e;
  return s.substr(b, e - b);
}

}  // namespace era::text

#include "store/cloudflare/xml.h"

#include <cstdlib>

namespace era::cf::xml {

std::vector<std::string_view> blocks(std::string_view doc, std::string_view tag) {
  std::vector<std::string_view> out;
  const std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  const std::string empty = "<" + std::string(tag) + "/>";
  size_t pos = 0;
  while (pos < doc.size()) {
    const size_t a = doc.find(open, pos), e = doc.find(empty, pos);
    if (e != std::string_view::npos && (a == std::string_view::npos || e < a)) {
      out.emplace_back();
      pos = e + empty.size();
      continue;
    }
    if (a == std::string_view::npos) break;
    const size_t b = doc.find(close, a + open.size());
    if (b == std::string_view::npos) break;
    out.push_back(doc.substr(a + open.size(), b - a - open.size()));
    pos = b + close.size();
  }
  return out;
}

std::vector<std::string> all(std::string_view doc, std::string_view tag) {
  std::vector<std::string> out;
  for (auto b : blocks(doc, tag)) out.push_back(decode(b));
  return out;
}

std::string first(std::string_view doc, std::string_view tag) {
  auto b = blocks(doc, tag);
  return b.empty() ? "" : decode(b.front());
}

namespace {
void put_utf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}
}  // namespace

std::string decode(std::string_view t) {
  std::string out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '&') {
      out += t[i];
      continue;
    }
    const size_t semi = t.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out += t[i];
      continue;
    }
    const std::string_view ent = t.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      const std::string num(ent.substr(1));
      const bool hex = !num.empty() && (num[0] == 'x' || num[0] == 'X');
      const unsigned long cp = std::strtoul(num.c_str() + (hex ? 1 : 0), nullptr, hex ? 16 : 10);
      put_utf8(out, cp);
    } else {
      out.append(t.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

std::string escape(std::string_view t) {
  std::string out;
  for (char c : t) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace era::cf::xml

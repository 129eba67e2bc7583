#include "ns/names.h"

#include "util/error.h"

namespace era::ns {

bool is_valid_namespace(std::string_view ns) {
  if (ns.empty() || ns.size() > kMaxNamespaceLength) return false;
  for (unsigned char c : ns) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void check_namespace(std::string_view ns) {
  if (!is_valid_namespace(ns))
    throw ApiError(400, "invalid_namespace",
                   "invalid namespace: a namespace is 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'");
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

bool is_valid_kv_key(std::string_view key) {
  return !key.empty() && key.size() <= kMaxKvKeyBytes && key != "." && key != ".." &&
         key.find('\0') == std::string_view::npos && is_valid_utf8(key);
}

void check_kv_key(std::string_view key) {
  if (key.empty()) throw ApiError(400, "invalid_key", "invalid key: a key must not be empty");
  if (key.size() > kMaxKvKeyBytes)
    throw ApiError(400, "key_too_long", "key too long: a KV key is at most 512 bytes of UTF-8");
  if (key == "." || key == "..") throw ApiError(400, "invalid_key", "invalid key: a key cannot be '.' or '..'");
  if (key.find('\0') != std::string_view::npos)
    throw ApiError(400, "invalid_key", "invalid key: a key cannot contain a NUL character");
  if (!is_valid_utf8(key)) throw ApiError(400, "invalid_key", "invalid key: a key must be valid UTF-8");
}

std::string kv_name(std::string_view ns, std::string_view key) {
  std::string out;
  out.reserve(ns.size() + 1 + key.size());
  out.append(ns).push_back(':');
  out.append(key);
  return out;
}

void check_r2_key(std::string_view key) {
  if (key.empty()) throw ApiError(400, "invalid_key", "invalid key: a key must not be empty");
  if (key.size() > kMaxR2KeyBytes)
    throw ApiError(400, "key_too_long", "key too long: an R2 key is at most 1024 bytes of UTF-8");
  if (!is_valid_utf8(key)) throw ApiError(400, "invalid_key", "invalid key: a key must be valid UTF-8");
}

std::string r2_name(std::string_view ns, std::string_view key) {
  std::string out;
  out.reserve(ns.size() + 1 + key.size());
  out.append(ns).push_back('/');
  out.append(key);
  return out;
}

namespace {
bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}
}  // namespace

bool is_reserved_sql_name(std::string_view physical) {
  // Families SQLite (and its bundled extensions) name built-ins in: any new member is reserved too.
  for (std::string_view p : {"sqlite_", "pragma_", "json_", "jsonb_"})
    if (starts_with_nocase(physical, p)) return true;
  // Single eponymous virtual tables / table-valued functions of SQLite builds in use.
  for (std::string_view n : {"dbstat", "fts3tokenize", "generate_series", "carray", "fts4aux", "fts5vocab",
                             "rtree", "rtree_i32", "zipfile", "fsdir", "completion", "sqlite_dbpage", "sqlite_stmt"})
    if (physical.size() == n.size() && starts_with_nocase(physical, n)) return true;
  return false;
}

std::string prefix_upper_bound(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    auto last = static_cast<unsigned char>(s.back());
    if (last != 0xFF) {
      s.back() = static_cast<char>(last + 1);
      return s;
    }
    s.pop_back();
  }
  return s;
}

}  // namespace era::ns

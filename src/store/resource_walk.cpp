#include "store/resource_walk.h"

#include <algorithm>
#include <limits>

#include "ns/names.h"
#include "util/encoding.h"
#include "util/error.h"

namespace era {
namespace {

// Cursor: base64url("<type>\n<order>"); the type never holds a newline, the order may.
std::string encode_cursor(const std::string& type, const std::string& order) {
  return enc::base64_encode(type + "\n" + order, true);
}

std::pair<std::string, std::string> decode_cursor(const std::string& cursor) {
  auto raw = enc::base64_decode(cursor, true);
  size_t nl = raw ? raw->find('\n') : std::string::npos;
  // Orders are names of UTF-8 keys: anything else was not made by a previous page (and could not be
  // bound as text by a backend whose names are TEXT).
  if (nl == std::string::npos || !ns::is_valid_utf8(*raw))
    throw ApiError(400, "invalid_cursor", "invalid cursor: pass the cursor of a previous page as is");
  return {raw->substr(0, nl), raw->substr(nl + 1)};
}

// Appends one UTF-8 encoded code point.
void put_code_point(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace

const char* const kNamesEnd = "\x7f";

std::string utf8_prefix_bound(const std::string& prefix) {
  std::string s = prefix;
  while (!s.empty()) {
    // The last code point starts at the last byte that is not a continuation byte (10xxxxxx).
    size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + start;
    const size_t n = s.size() - start;
    uint32_t cp = n == 1 ? p[0] : n == 2 ? (p[0] & 0x1Fu) : n == 3 ? (p[0] & 0x0Fu) : (p[0] & 0x07u);
    for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (p[i] & 0x3Fu);
    s.resize(start);
    if (cp == 0x10FFFF) continue;  // no greater code point: carry into the one before
    ++cp;
    if (cp == 0xD800) cp = 0xE000;  // surrogates are not characters
    put_code_point(s, cp);
    return s;
  }
  return s;
}

std::vector<std::string> ordered_namespaces(const ResourceSource::Filter& f, char separator) {
  std::vector<std::string> out;
  if (f.ns) {
    if (!f.scope || f.scope->count(*f.ns)) out.push_back(*f.ns);
  } else if (f.scope) {
    out.assign(f.scope->begin(), f.scope->end());
  }
  std::sort(out.begin(), out.end(), [separator](const std::string& a, const std::string& b) {
    return a + separator < b + separator;
  });
  return out;
}

// ---- NamedSource: one name range per namespace of the filter, else every name ----

std::vector<NamedSource::Range> NamedSource::ranges(const Filter& f) const {
  if (!ns::is_valid_utf8(f.key_prefix))
    throw ApiError(400, "invalid_key_prefix", "key_prefix must be valid UTF-8 of at most 1024 bytes");
  std::vector<Range> out;
  if (f.ns || f.scope) {
    for (const auto& ns : ordered_namespaces(f, separator_)) {
      std::string lo = ns + separator_ + f.key_prefix;
      std::string hi = utf8_prefix_bound(lo);  // never "": the separator can always be incremented
      out.push_back({std::move(lo), std::move(hi), ""});
    }
  } else {
    out.push_back({"", kNamesEnd, f.key_prefix});
  }
  return out;
}

ResourceSource::Batch NamedSource::page(const Filter& f, const std::string& after, int64_t offset, int limit) {
  Batch b;
  for (const auto& r : ranges(f)) {
    if (!after.empty() && r.hi <= after) continue;  // wholly before the cursor
    const int64_t want_offset = offset - b.skipped;
    auto got = rows(r, after, want_offset, limit - int(b.entries.size()));
    const bool any = !got.empty();
    for (auto& e : got) b.entries.push_back(std::move(e));
    if (any || want_offset == 0)
      b.skipped += want_offset;  // rows came back: the whole offset was consumed in this range
    else
      b.skipped += count_rows(r, after, want_offset);
    if (int(b.entries.size()) >= limit) break;
  }
  return b;
}

int64_t NamedSource::count(const Filter& f) {
  int64_t n = 0;
  if (f.key_prefix.empty()) {
    TallyByNs by_ns;
    add_stats(f, by_ns);
    for (const auto& [_, t] : by_ns) n += t.count;
    return n;
  }
  for (const auto& r : ranges(f)) n += count_rows(r, "", std::numeric_limits<int64_t>::max());
  return n;
}

void NamedSource::add_stats(const Filter& f, TallyByNs& by_ns) {
  std::optional<std::vector<std::string>> only;
  if (f.ns || f.scope) {
    only = ordered_namespaces(f, separator_);
    if (only->empty()) return;
  }
  for (const auto& [ns, t] : counters(only)) {
    if (t.count <= 0) continue;
    by_ns[ns].count += t.count;
    by_ns[ns].bytes += t.bytes;
  }
}

// ---- ResourceWalk ----

ResourceWalk::ResourceWalk(std::vector<std::unique_ptr<ResourceSource>> sources) : sources_(std::move(sources)) {}
ResourceWalk::~ResourceWalk() = default;

ResourcePage ResourceWalk::list(const ResourceQuery& q) {
  ResourceSource::Filter filter{q.ns, q.scope, q.key_prefix};
  std::string start_type, after;
  if (!q.cursor.empty()) std::tie(start_type, after) = decode_cursor(q.cursor);

  ResourcePage page;
  int64_t offset = q.offset;
  std::vector<ResourceSource::Entry> got;
  for (const auto& src : sources_) {
    if (q.type && *q.type != src->type()) continue;
    page.total += src->count(filter);
    if (!start_type.empty() && std::string(src->type()) < start_type) continue;
    if (int64_t(got.size()) > q.limit) continue;  // page full: only totals from here on
    const std::string from = std::string(src->type()) == start_type ? after : std::string();
    auto batch = src->page(filter, from, offset, q.limit + 1 - int(got.size()));
    offset -= batch.skipped;
    for (auto& e : batch.entries) got.push_back(std::move(e));
  }
  page.has_more = int64_t(got.size()) > q.limit;
  if (page.has_more) got.resize(size_t(q.limit));
  if (page.has_more && !got.empty()) page.cursor = encode_cursor(got.back().resource.type, got.back().order);
  for (auto& e : got) page.resources.push_back(std::move(e.resource));
  return page;
}

ResourceStats ResourceWalk::stats(const std::optional<std::string>& ns,
                                  const std::optional<std::set<std::string>>& scope) {
  ResourceSource::Filter filter{ns, scope, ""};
  ResourceStats s;
  for (const auto& src : sources_) {
    TallyByNs by_ns;
    src->add_stats(filter, by_ns);
    int64_t& type_total = s.by_type[src->type()];
    int64_t& type_size = s.size_by_type[src->type()];
    for (const auto& [name, t] : by_ns) {
      if (t.count <= 0) continue;
      type_total += t.count;
      type_size += t.bytes;
      s.by_namespace[name] += t.count;
      s.total += t.count;
      s.total_size += t.bytes;
      auto& per_type = s.by_namespace_type[name];
      for (const char* ty : {"d1", "kv", "r2"}) per_type.emplace(ty, ResourceStats::Count{});
      per_type[src->type()].count += t.count;
      per_type[src->type()].size += t.bytes;
    }
  }
  for (const char* t : {"d1", "kv", "r2"}) s.by_type.emplace(t, 0), s.size_by_type.emplace(t, 0);
  return s;
}

ReindexReport ResourceWalk::reindex() {
  ReindexReport r;
  for (const auto& src : sources_) src->reindex(r.repairs);
  return r;
}

void report_tally_repairs(const char* type, const TallyByNs& before, const TallyByNs& after,
                          std::vector<std::string>& repairs) {
  std::set<std::string> all;
  for (const auto& [ns, _] : before) all.insert(ns);
  for (const auto& [ns, _] : after) all.insert(ns);
  for (const auto& ns : all) {
    auto b = before.count(ns) ? before.at(ns) : Tally{};
    auto a = after.count(ns) ? after.at(ns) : Tally{};
    if (a == b) continue;
    repairs.push_back(std::string(type) + " " + ns + ": count " + std::to_string(b.count) + " -> " +
                      std::to_string(a.count) + ", bytes " + std::to_string(b.bytes) + " -> " +
                      std::to_string(a.bytes));
  }
}

}  // namespace era

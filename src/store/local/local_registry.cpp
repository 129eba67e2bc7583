#include "store/local/local_registry.h"

#include <algorithm>

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
  if (nl == std::string::npos)
    throw ApiError(400, "invalid_cursor", "invalid cursor: pass the cursor of a previous page as is");
  return {raw->substr(0, nl), raw->substr(nl + 1)};
}

}  // namespace

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

LocalRegistry::LocalRegistry(std::vector<std::unique_ptr<ResourceSource>> sources) : sources_(std::move(sources)) {}

ResourcePage LocalRegistry::list(const ResourceQuery& q) {
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

ResourceStats LocalRegistry::stats(const std::optional<std::string>& ns,
                                   const std::optional<std::set<std::string>>& scope) {
  ResourceSource::Filter filter{ns, scope, ""};
  ResourceStats s;
  for (const auto& src : sources_) {
    std::map<std::string, std::pair<int64_t, int64_t>> by_ns;
    src->add_stats(filter, by_ns);
    int64_t& type_total = s.by_type[src->type()];
    int64_t& type_size = s.size_by_type[src->type()];
    for (const auto& [name, cb] : by_ns) {
      if (cb.first <= 0) continue;
      type_total += cb.first;
      type_size += cb.second;
      s.by_namespace[name] += cb.first;
      auto& per_type = s.by_namespace_type[name];
      for (const char* t : {"d1", "kv", "r2"}) per_type.emplace(t, ResourceStats::Count{});
      per_type[src->type()].count += cb.first;
      per_type[src->type()].size += cb.second;
      s.total += cb.first;
      s.total_size += cb.second;
    }
  }
  for (const char* t : {"d1", "kv", "r2"}) s.by_type.emplace(t, 0), s.size_by_type.emplace(t, 0);
  return s;
}

ReindexReport LocalRegistry::reindex() {
  ReindexReport r;
  for (const auto& src : sources_) src->reindex(r.repairs);
  return r;
}

}  // namespace era

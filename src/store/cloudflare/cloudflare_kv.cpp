#include "store/cloudflare/cloudflare_kv.h"

#include <openssl/rand.h>

#include <algorithm>

#include "ns/names.h"
#include "util/encoding.h"
#include "util/error.h"

namespace era::cf {
namespace {

using nlohmann::json;

constexpr int kUpstreamMinLimit = 10;   // Cloudflare's keys list takes 10..1000
constexpr int kUpstreamMaxLimit = 1000;
constexpr int kMaxListRounds = 64;      // upstream pages read for one of ours (tombstones make empty pages)

std::string stored_name(const std::string& ns, const std::string& key) {
  std::string name = ns::kv_name(ns, key);
  if (name.size() > ns::kMaxKvKeyBytes)
    throw ApiError(400, "key_too_long",
                   "key too long: with the cloudflare backend the stored name \"<namespace>:<key>\" is at most "
                   "512 bytes, so this key may be at most " +
                       std::to_string(ns::kMaxKvKeyBytes - ns.size() - 1) + " bytes in namespace " + ns);
  return name;
}

std::string random_boundary() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
  return "era-" + enc::hex(std::string_view(reinterpret_cast<char*>(b), sizeof b));
}

std::optional<std::string> metadata_text(const json& item) {
  if (!item.contains("metadata") || item["metadata"].is_null()) return std::nullopt;
  return item["metadata"].dump();
}

std::optional<int64_t> expiration_of(const json& item) {
  if (item.contains("expiration") && item["expiration"].is_number_integer()) return item["expiration"].get<int64_t>();
  return std::nullopt;
}

// Our list cursor: where to resume upstream and which key we returned last.
std::string encode_cursor(const std::string& upstream, const std::string& last) {
  return enc::base64_encode(json{{"c", upstream}, {"a", last}}.dump(), true);
}

void decode_cursor(const std::string& cursor, std::string& upstream, std::string& last) {
  if (cursor.empty()) return;
  auto raw = enc::base64_decode(cursor, true);
  json j = raw ? json::parse(*raw, nullptr, false) : json();
  if (!j.is_object() || !j.contains("c") || !j["c"].is_string() || !j.contains("a") || !j["a"].is_string())
    throw ApiError(400, "invalid_cursor", "invalid cursor: pass the cursor of a previous page as is");
  upstream = j["c"].get<std::string>();
  last = j["a"].get<std::string>();
}

}  // namespace

std::string CloudflareKv::value_path(const std::string& name) const {
  return path_ + "/values/" + enc::percent_encode(name);
}

std::string CloudflareKv::multipart_body(const std::string& boundary, const KvValue& v) {
  std::string b;
  b.reserve(v.value.size() + 512);
  b += "--" + boundary + "\r\n";
  b += "Content-Disposition: form-data; name=\"value\"; filename=\"value\"\r\n";
  b += "Content-Type: application/octet-stream\r\n\r\n";
  b += v.value;
  b += "\r\n";
  if (v.metadata) {
    b += "--" + boundary + "\r\n";
    b += "Content-Disposition: form-data; name=\"metadata\"\r\n\r\n";
    b += *v.metadata;
    b += "\r\n";
  }
  b += "--" + boundary + "--\r\n";
  return b;
}

void CloudflareKv::put(const std::string& ns, const std::string& key, const KvValue& v) {
  const std::string name = stored_name(ns, key);
  if (v.value.size() > ns::kMaxKvValueBytes)
    throw too_large("value_too_large", "value too large: a KV value is at most 25 MiB (26214400 bytes)");
  if (v.metadata && v.metadata->size() > ns::kMaxKvMetadataBytes)
    throw too_large("metadata_too_large", "metadata too large: at most 1024 bytes of serialized JSON");
  std::string boundary = random_boundary();
  while (v.value.find(boundary) != std::string::npos || (v.metadata && v.metadata->find(boundary) != std::string::npos))
    boundary = random_boundary();
  std::string path = value_path(name);
  if (v.expiration) path += "?expiration=" + std::to_string(*v.expiration);
  HttpRequest req = api_.request("PUT", path, "KV put");
  req.headers.emplace_back("Content-Type", "multipart/form-data; boundary=" + boundary);
  req.body = multipart_body(boundary, v);
  // Registry first: a crash between the two can only show a resource that is not there. In order with
  // every other write of this key (ResourceRecorder::order).
  std::optional<KeyLocks::Guard> in_order;
  if (recorder_) in_order.emplace(recorder_->order("kv", ns, key));
  if (recorder_) recorder_->record_put("kv", ns, key, int64_t(v.value.size()), v.metadata, v.expiration);
  try {
    api_.call(req);
  } catch (...) {
    if (recorder_) resync(ns, key);
    throw;
  }
}

void CloudflareKv::resync(const std::string& ns, const std::string& key) noexcept {
  try {
    if (auto now = get(ns, key))
      recorder_->record_put("kv", ns, key, int64_t(now->value.size()), now->metadata, now->expiration);
    else
      recorder_->record_remove("kv", ns, key);
  } catch (...) {
    // The row may stay showing a value that is not there; reindex repairs it.
  }
}

void CloudflareKv::walk(const std::function<void(StoredEntry)>& fn) {
  std::string cursor;
  for (;;) {
    std::string q = "/keys?limit=" + std::to_string(kUpstreamMaxLimit);
    if (!cursor.empty()) q += "&cursor=" + enc::percent_encode(cursor);
    HttpRequest req = api_.request("GET", path_ + q, "KV list (reindex)");
    json env = api_.call(req);
    if (!env.contains("result") || !env["result"].is_array())
      throw ApiError(502, "upstream_error", "Cloudflare KV list failed: the answer has no result list");
    for (const auto& item : env["result"]) {
      const std::string name = item.value("name", "");
      const auto at = name.find(':');
      if (at == std::string::npos || !ns::is_valid_namespace(name.substr(0, at))) continue;  // not ours
      fn(StoredEntry{name.substr(0, at), name.substr(at + 1), std::nullopt, metadata_text(item), expiration_of(item)});
    }
    cursor.clear();
    if (env.contains("result_info") && env["result_info"].is_object() && env["result_info"].contains("cursor") &&
        env["result_info"]["cursor"].is_string())
      cursor = env["result_info"]["cursor"].get<std::string>();
    if (cursor.empty()) return;
  }
}

std::optional<KvValue> CloudflareKv::get(const std::string& ns, const std::string& key) {
  const std::string name = stored_name(ns, key);
  HttpRequest req = api_.request("GET", value_path(name), "KV get");
  req.headers.emplace_back("Accept", "application/octet-stream");
  HttpResponse r = api_.send(req);
  if (r.status == 404) return std::nullopt;
  if (r.status != 200) throw upstream_error(req.what, r);
  KvValue v;
  v.value = std::move(r.body);
  if (auto exp = r.header("expiration")) {
    char* end = nullptr;
    long long e = std::strtoll(exp->c_str(), &end, 10);
    if (!exp->empty() && *end == '\0') v.expiration = e;
  }
  // Metadata (and expiration, where the answer had no header) from the key's own list entry: the
  // exact name sorts first among the names it prefixes.
  HttpRequest lreq = api_.request(
      "GET", path_ + "/keys?limit=" + std::to_string(kUpstreamMinLimit) + "&prefix=" + enc::percent_encode(name),
      "KV get");
  json env = api_.call(lreq);
  if (env.contains("result") && env["result"].is_array())
    for (const auto& item : env["result"])
      if (item.is_object() && item.value("name", "") == name) {
        v.metadata = metadata_text(item);
        if (!v.expiration) v.expiration = expiration_of(item);
        break;
      }
  return v;
}

void CloudflareKv::remove(const std::string& ns, const std::string& key) {
  HttpRequest req = api_.request("DELETE", value_path(stored_name(ns, key)), "KV delete");
  std::optional<KeyLocks::Guard> in_order;
  if (recorder_) in_order.emplace(recorder_->order("kv", ns, key));
  HttpResponse r = api_.send(req);
  if (r.status != 404 && (r.status < 200 || r.status >= 300)) throw upstream_error(req.what, r);
  // 404: already gone, not an error. The registry forgets it only now that the store has.
  if (recorder_) recorder_->record_remove("kv", ns, key);
}

KvPage CloudflareKv::list(const std::string& ns, const std::string& prefix, int limit, const std::string& cursor) {
  const std::string full = ns::kv_name(ns, prefix);
  std::string upstream, after;
  decode_cursor(cursor, upstream, after);
  KvPage page;
  const int want = std::clamp(limit + 1, kUpstreamMinLimit, kUpstreamMaxLimit);
  for (int round = 0; round < kMaxListRounds; ++round) {
    std::string q = "/keys?limit=" + std::to_string(want) + "&prefix=" + enc::percent_encode(full);
    if (!upstream.empty()) q += "&cursor=" + enc::percent_encode(upstream);
    HttpRequest req = api_.request("GET", path_ + q, "KV list");
    json env = api_.call(req);
    if (!env.contains("result") || !env["result"].is_array())
      throw ApiError(502, "upstream_error", "Cloudflare KV list failed: the answer has no result list");
    std::string next;
    if (env.contains("result_info") && env["result_info"].is_object() && env["result_info"].contains("cursor") &&
        env["result_info"]["cursor"].is_string())
      next = env["result_info"]["cursor"].get<std::string>();
    for (const auto& item : env["result"]) {
      const std::string name = item.value("name", "");
      if (name.compare(0, full.size(), full) != 0) continue;  // not ours: never show another namespace
      std::string k = name.substr(ns.size() + 1);
      if (!after.empty() && k.compare(after) <= 0) continue;  // returned on an earlier page
      if (page.keys.size() == size_t(limit)) {
        // More in this upstream page: resume it, after the last key we return.
        page.complete = false;
        page.cursor = encode_cursor(upstream, page.keys.back().name);
        return page;
      }
      page.keys.push_back(KvKeyInfo{std::move(k), metadata_text(item), expiration_of(item)});
    }
    if (next.empty()) return page;  // complete
    upstream = next;
    if (page.keys.size() == size_t(limit)) {
      page.complete = false;
      page.cursor = encode_cursor(upstream, page.keys.back().name);
      return page;
    }
  }
  // Many empty upstream pages in a row (tombstones): hand back a cursor to go on from.
  page.complete = false;
  page.cursor = encode_cursor(upstream, page.keys.empty() ? after : page.keys.back().name);
  return page;
}

void CloudflareKv::check() {
  HttpRequest req = api_.request("GET", path_ + "/keys?limit=" + std::to_string(kUpstreamMinLimit), "KV namespace check");
  api_.call(req);
}

}  // namespace era::cf

#include "store/cloudflare/cloudflare_kv.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "ns/names.h"
#include "store/cloudflare/coalescer.h"
#include "store/kv_cache.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/time.h"

namespace era::cf {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kUpstreamMinLimit = 10;   // Cloudflare's keys list takes 10..1000
constexpr int kUpstreamMaxLimit = 1000;
constexpr int kMaxListRounds = 64;      // upstream pages read for one of ours (tombstones make empty pages)
constexpr size_t kBulkGetMaxKeys = 100;  // Cloudflare's bulk/get limit
constexpr size_t kBulkItemOverhead = 128;  // JSON punctuation and field names of one bulk write item
constexpr int kNoSuchKey = 10009;

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

// Cloudflare gives expirations as JSON numbers, integral or not (its examples show 1577836800.0).
std::optional<int64_t> expiration_of(const json& item) {
  if (!item.is_object() || !item.contains("expiration")) return std::nullopt;
  const json& e = item["expiration"];
  if (e.is_number_integer()) return e.get<int64_t>();
  if (e.is_number_float() && std::isfinite(e.get<double>())) return int64_t(e.get<double>());
  return std::nullopt;
}

std::optional<int64_t> expiration_header(const HttpResponse& r) {
  auto exp = r.header("expiration");
  if (!exp || exp->empty()) return std::nullopt;
  char* end = nullptr;
  const long long e = std::strtoll(exp->c_str(), &end, 10);
  if (*end != '\0') return std::nullopt;
  return int64_t(e);
}

// The Cloudflare error codes of an answer's envelope (none if it is not one).
std::vector<int> error_codes(const HttpResponse& r) {
  std::vector<int> out;
  auto j = json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("errors") || !j["errors"].is_array()) return out;
  for (const auto& e : j["errors"])
    if (e.is_object() && e.contains("code") && e["code"].is_number_integer()) out.push_back(e["code"].get<int>());
  return out;
}

bool has_code(const std::vector<int>& codes, int code) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

bool is_namespace_code(int c) { return (c >= 10010 && c <= 10014) || c == 10018; }

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

bool has_replacement_char(const std::string& s) { return s.find("\xEF\xBF\xBD") != std::string::npos; }

// ---- the operations the coalescers carry

struct WriteOp : CoalescedOp {
  std::string ns, key, name;  // name: the stored "ns:key"
  bool remove = false;
  KvValue value;  // a put's value, expiration as it is to be sent
};

struct ReadOp : CoalescedOp {
  std::string name;
  std::optional<KvValue> found;
  bool read_alone = false;  // bulk/get could not carry it: the caller reads it with single calls
};

}  // namespace

struct CloudflareKv::Impl {
  Impl(CloudflareKv& kv, const KvOptions& o)
      : owner(kv), options(o), cache(o.cache_ttl, o.cache_bytes), writes_policy{*this}, reads_policy{*this},
        writes(writes_policy), reads(reads_policy) {}

  // ---- upstream calls

  // The error for an answer that is not a success; `what` names the call.
  ApiError failure(const std::string& what, const HttpResponse& r) const {
    const auto codes = error_codes(r);
    if ((r.status == 404 && !has_code(codes, kNoSuchKey)) ||
        std::any_of(codes.begin(), codes.end(), is_namespace_code)) {
      const std::string d = upstream_detail(r);
      return ApiError(502, "upstream_error",
                      "Cloudflare " + what + " failed: the KV namespace " + owner.namespace_id_ +
                          " is not usable (HTTP " + std::to_string(r.status) + (d.empty() ? "" : ", " + d) +
                          "): check cloudflare.kv_namespace_id and the API token's Workers KV permission");
    }
    return upstream_error(what, r);
  }

  // Sends and checks the envelope of an answer that must be a success.
  json call(HttpRequest& req) {
    HttpResponse r = owner.api_.send(req);
    if (r.status < 200 || r.status >= 300) throw failure(req.what, r);
    json env = RestApi::envelope(r, req.what);
    if (env.value("success", false) != true) throw failure(req.what, r);
    return env;
  }

  void put_one(const WriteOp& op) {
    const KvValue& v = op.value;
    std::string path = owner.value_path(op.name);
    if (v.expiration_ttl) path += "?expiration_ttl=" + std::to_string(*v.expiration_ttl);
    else if (v.expiration) path += "?expiration=" + std::to_string(*v.expiration);
    HttpRequest req = owner.api_.request("PUT", path, "KV put");
    if (v.metadata) {
      std::string boundary = random_boundary();
      while (v.value.find(boundary) != std::string::npos || v.metadata->find(boundary) != std::string::npos)
        boundary = random_boundary();
      req.headers.emplace_back("Content-Type", "multipart/form-data; boundary=" + boundary);
      req.body = multipart_body(boundary, v);
    } else {
      req.headers.emplace_back("Content-Type", "application/octet-stream");
      req.body = v.value;
    }
    call(req);
  }

  // PUT bulk; returns the names Cloudflare says it did not store.
  std::unordered_set<std::string> put_bulk(const std::vector<const WriteOp*>& ops) {
    json items = json::array();
    for (const WriteOp* op : ops) {
      const KvValue& v = op->value;
      json item{{"key", op->name}};
      if (ns::is_valid_utf8(v.value)) {
        item["value"] = v.value;
      } else {
        item["value"] = enc::base64_encode(v.value);
        item["base64"] = true;
      }
      if (v.metadata) item["metadata"] = json::parse(*v.metadata);
      if (v.expiration_ttl) item["expiration_ttl"] = *v.expiration_ttl;
      else if (v.expiration) item["expiration"] = *v.expiration;
      items.push_back(std::move(item));
    }
    HttpRequest req = owner.api_.request("PUT", owner.path_ + "/bulk", "KV bulk write");
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = items.dump();
    return unsuccessful(call(req));
  }

  void delete_one(const std::string& name) {
    HttpRequest req = owner.api_.request("DELETE", owner.value_path(name), "KV delete");
    HttpResponse r = owner.api_.send(req);
    if (r.status >= 200 && r.status < 300) return;
    // A missing key is already what a delete wants, but only 10009 says that it is the key that is missing.
    if (r.status == 404 && has_code(error_codes(r), kNoSuchKey)) return;
    throw failure(req.what, r);
  }

  std::unordered_set<std::string> delete_bulk(const std::vector<const WriteOp*>& ops) {
    json names = json::array();
    for (const WriteOp* op : ops) names.push_back(op->name);
    HttpRequest req = owner.api_.request("POST", owner.path_ + "/bulk/delete", "KV bulk delete");
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = names.dump();
    return unsuccessful(call(req));
  }

  static std::unordered_set<std::string> unsuccessful(const json& env) {
    std::unordered_set<std::string> out;
    if (env.contains("result") && env["result"].is_object() && env["result"].contains("unsuccessful_keys") &&
        env["result"]["unsuccessful_keys"].is_array())
      for (const auto& k : env["result"]["unsuccessful_keys"])
        if (k.is_string()) out.insert(k.get<std::string>());
    return out;
  }

  // One key alone: GET values/<key> (value, expiration header) and, unless `metadata` is given,
  // GET metadata/<key>. nullopt: no such key.
  std::optional<KvValue> read_alone(const std::string& name, const std::optional<KvValue>& from_bulk) {
    HttpRequest req = owner.api_.request("GET", owner.value_path(name), "KV get");
    req.headers.emplace_back("Accept", "application/octet-stream");
    HttpResponse r = owner.api_.send(req);
    if (r.status == 404 && has_code(error_codes(r), kNoSuchKey)) return std::nullopt;
    if (r.status != 200) throw failure(req.what, r);
    KvValue v;
    v.value = std::move(r.body);
    v.expiration = expiration_header(r);
    if (from_bulk) {
      v.metadata = from_bulk->metadata;
      if (!v.expiration) v.expiration = from_bulk->expiration;
      return v;
    }
    HttpRequest mreq = owner.api_.request("GET", owner.path_ + "/metadata/" + enc::percent_encode(name), "KV get metadata");
    HttpResponse m = owner.api_.send(mreq);
    if (m.status == 404 && has_code(error_codes(m), kNoSuchKey)) return std::nullopt;  // deleted in between
    if (m.status != 200) throw failure(mreq.what, m);
    json env = RestApi::envelope(m, mreq.what);
    if (env.value("success", false) != true) throw failure(mreq.what, m);
    if (env.contains("result") && !env["result"].is_null()) v.metadata = env["result"].dump();
    return v;
  }

  // ---- group commit of writes

  struct WritesPolicy : Coalescer<WriteOp>::Policy {
    explicit WritesPolicy(Impl& i) : impl(i) {}
    Impl& impl;
    std::unordered_map<std::string, Clock::time_point> last_write;  // names written within the interval

    void take(std::deque<WriteOp*>& queue, std::vector<WriteOp*>& round,
              std::optional<Clock::time_point>& retry_at) override {
      const auto now = Clock::now();
      const auto interval = impl.options.same_key_interval;
      for (auto it = last_write.begin(); it != last_write.end();)
        it = now - it->second >= interval ? last_write.erase(it) : std::next(it);
      std::unordered_set<std::string> in_round, held;
      size_t bytes = 0;
      std::deque<WriteOp*> keep;
      for (WriteOp* op : queue) {
        bool go = in_round.count(op->name) > 0;
        if (!go && !held.count(op->name)) {
          auto last = last_write.find(op->name);
          if (last != last_write.end()) {
            const auto at = last->second + interval;
            if (!retry_at || at < *retry_at) retry_at = at;
          } else if (in_round.size() < impl.options.batch_max_keys &&
                     (in_round.empty() || bytes + op_bytes(*op) <= impl.options.batch_max_bytes)) {
            go = true;
            in_round.insert(op->name);
          }
          if (!go) held.insert(op->name);  // later writes of this name wait with it: order kept
        }
        if (go) {
          bytes += op_bytes(*op);
          round.push_back(op);
        } else {
          keep.push_back(op);
        }
      }
      queue.swap(keep);
      if (interval.count() > 0)
        for (const auto& name : in_round) last_write[name] = now;
    }

    static size_t op_bytes(const WriteOp& op) {
      return kBulkItemOverhead + 2 * op.name.size() + op.value.value.size() * 4 / 3 +
             (op.value.metadata ? op.value.metadata->size() : 0);
    }

    void send(std::vector<WriteOp*>& round) override { impl.send_writes(round); }
  };

  // Folds the round per name (the last write wins; the others are acknowledged with it) and sends at
  // most one call for the puts and one for the deletes.
  void send_writes(std::vector<WriteOp*>& round) {
    std::vector<std::string> order;
    std::unordered_map<std::string, std::vector<WriteOp*>> by_name;
    for (WriteOp* op : round) {
      auto& ops = by_name[op->name];
      if (ops.empty()) order.push_back(op->name);
      ops.push_back(op);
    }
    std::vector<const WriteOp*> puts, deletes;
    ResourceRecorder* recorder = owner.recorder_;
    for (const auto& name : order) {
      const WriteOp* last = by_name[name].back();
      if (last->remove) {
        deletes.push_back(last);
        continue;
      }
      // The registry first (cloudflare_registry.h): a crash between the two can only show a resource
      // that is not there. Rounds are sequential, so the registry hears of one key's writes in the
      // order the store gets them.
      if (recorder) {
        try {
          recorder->record_put("kv", last->ns, last->key, int64_t(last->value.value.size()), last->value.metadata,
                               last->value.expiration);
        } catch (...) {
          const std::exception_ptr e = std::current_exception();
          for (WriteOp* op : by_name[name]) op->error = e;  // not sent: nothing changed
          continue;
        }
      }
      puts.push_back(last);
    }
    auto settle = [&](const std::vector<const WriteOp*>& finals, const std::function<std::unordered_set<std::string>()>& go) {
      if (finals.empty()) return;
      std::exception_ptr error;
      std::unordered_set<std::string> refused;
      try {
        refused = go();
      } catch (...) {
        error = std::current_exception();
      }
      for (const WriteOp* f : finals) {
        std::exception_ptr e = error;
        if (!e && refused.count(f->name))
          e = std::make_exception_ptr(ApiError(
              503, "upstream_unavailable",
              "Cloudflare KV did not store this write (it listed the key as unsuccessful): try again"));
        // A put that failed keeps the row it recorded: it may have landed, and a read cannot tell.
        if (e) cache.forget(f->name);  // the write may or may not have landed
        else if (f->remove) cache.wrote(f->name, std::nullopt);
        else cache.wrote(f->name, f->value);
        if (!e && f->remove && recorder) {
          // The registry forgets it only now that the store has.
          try {
            recorder->record_remove("kv", f->ns, f->key);
          } catch (...) {
            e = std::current_exception();  // deleted, but still listed until the registry hears of it
          }
        }
        for (WriteOp* op : by_name[f->name]) op->error = e;
      }
    };
    settle(puts, [&] {
      if (puts.size() == 1) {
        put_one(*puts[0]);
        return std::unordered_set<std::string>{};
      }
      return put_bulk(puts);
    });
    settle(deletes, [&] {
      if (deletes.size() == 1) {
        delete_one(deletes[0]->name);
        return std::unordered_set<std::string>{};
      }
      return delete_bulk(deletes);
    });
  }

  // ---- coalesced reads

  struct ReadsPolicy : Coalescer<ReadOp>::Policy {
    explicit ReadsPolicy(Impl& i) : impl(i) {}
    Impl& impl;

    void take(std::deque<ReadOp*>& queue, std::vector<ReadOp*>& round, std::optional<Clock::time_point>&) override {
      std::unordered_set<std::string> names;
      std::deque<ReadOp*> keep;
      for (ReadOp* op : queue) {
        if (names.count(op->name) || names.size() < kBulkGetMaxKeys) {
          names.insert(op->name);
          round.push_back(op);
        } else {
          keep.push_back(op);
        }
      }
      queue.swap(keep);
    }

    void send(std::vector<ReadOp*>& round) override { impl.send_reads(round); }
  };

  void send_reads(std::vector<ReadOp*>& round) {
    std::vector<std::string> names;
    std::unordered_set<std::string> seen;
    for (ReadOp* op : round)
      if (seen.insert(op->name).second) names.push_back(op->name);
    HttpRequest req = owner.api_.request("POST", owner.path_ + "/bulk/get", "KV get");
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = json{{"keys", names}, {"type", "text"}, {"withMetadata", true}}.dump();
    HttpResponse r = owner.api_.send(req);
    if (r.status >= 400 && r.status < 500) {
      const auto codes = error_codes(r);
      const bool namespace_error =
          (r.status == 404 && !has_code(codes, kNoSuchKey)) || std::any_of(codes.begin(), codes.end(), is_namespace_code);
      if (namespace_error || r.status == 401 || r.status == 403) throw failure(req.what, r);
      // Refused for what it carried (a value that is not text): each key is read on its own.
      for (ReadOp* op : round) op->read_alone = true;
      return;
    }
    if (r.status < 200 || r.status >= 300) throw failure(req.what, r);
    json env = RestApi::envelope(r, req.what);
    if (env.value("success", false) != true) throw failure(req.what, r);
    if (!env.contains("result") || !env["result"].is_object() || !env["result"].contains("values") ||
        !env["result"]["values"].is_object())
      throw ApiError(502, "upstream_error", "Cloudflare KV get failed: the bulk answer has no values object");
    const json& values = env["result"]["values"];
    for (ReadOp* op : round) {
      auto it = values.find(op->name);
      if (it == values.end()) {
        op->error = std::make_exception_ptr(
            ApiError(502, "upstream_error", "Cloudflare KV get failed: the bulk answer left out a key it was asked for"));
        continue;
      }
      if (it->is_null()) continue;  // no such key
      if (!it->is_object() || !it->contains("value") || !(*it)["value"].is_string()) {
        // Not a text value (Cloudflare parsed it or could not carry it): read it raw.
        op->read_alone = true;
        continue;
      }
      KvValue v;
      v.value = (*it)["value"].get<std::string>();
      v.metadata = metadata_text(*it);
      v.expiration = expiration_of(*it);
      op->found = std::move(v);
    }
  }

  CloudflareKv& owner;
  KvOptions options;
  KvReadCache cache;
  WritesPolicy writes_policy;
  ReadsPolicy reads_policy;
  Coalescer<WriteOp> writes;
  Coalescer<ReadOp> reads;
};

CloudflareKv::CloudflareKv(RestApi& api, std::string namespace_id, ResourceRecorder* recorder, KvOptions options)
    : api_(api),
      namespace_id_(namespace_id),
      path_("/storage/kv/namespaces/" + namespace_id),
      recorder_(recorder),
      impl_(std::make_unique<Impl>(*this, options)) {}

CloudflareKv::~CloudflareKv() = default;

void CloudflareKv::wait_writes_queued(size_t n) { impl_->writes.wait_queued(n); }
void CloudflareKv::wait_reads_queued(size_t n) { impl_->reads.wait_queued(n); }

std::string CloudflareKv::value_path(const std::string& name) const {
  return path_ + "/values/" + enc::percent_encode(name);
}

std::string CloudflareKv::multipart_body(const std::string& boundary, const KvValue& v) {
  std::string b;
  b.reserve(v.value.size() + 512);
  b += "--" + boundary + "\r\n";
  if (ns::is_valid_utf8(v.value)) {
    // Text: a plain form field, as wrangler's FormData sends a string.
    b += "Content-Disposition: form-data; name=\"value\"\r\n\r\n";
  } else {
    // Bytes: a file part, as the official client sends an upload, so nothing decodes them as text.
    b += "Content-Disposition: form-data; name=\"value\"; filename=\"value\"\r\n";
    b += "Content-Type: application/octet-stream\r\n\r\n";
  }
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

int64_t CloudflareKv::expiration_to_send(int64_t expiration, int64_t now) {
  return std::max(expiration, now + kMinExpirationS + kExpirationMarginS);
}

void CloudflareKv::put(const std::string& ns, const std::string& key, const KvValue& v) {
  const std::string name = stored_name(ns, key);
  if (v.value.size() > ns::kMaxKvValueBytes)
    throw too_large("value_too_large", "value too large: a KV value is at most 25 MiB (26214400 bytes)");
  if (v.metadata && v.metadata->size() > ns::kMaxKvMetadataBytes)
    throw too_large("metadata_too_large", "metadata too large: at most 1024 bytes of serialized JSON");
  if (v.expiration_ttl && *v.expiration_ttl < kMinExpirationS)
    throw bad_request("invalid_expiration", "expiration_ttl must be at least 60 seconds");
  WriteOp op;
  op.ns = ns;
  op.key = key;
  op.name = name;
  op.value = v;
  if (!v.expiration_ttl && v.expiration) op.value.expiration = expiration_to_send(*v.expiration, unix_now());
  impl_->writes.submit(op);  // the registry hears of it in the round (send_writes)
}

bool CloudflareKv::cached(const std::string& ns, const std::string& key, std::optional<KvValue>& out) {
  return impl_->cache.lookup(stored_name(ns, key), out, unix_now());
}

std::optional<KvValue> CloudflareKv::get(const std::string& ns, const std::string& key) {
  const std::string name = stored_name(ns, key);
  std::optional<KvValue> out;
  if (impl_->cache.lookup(name, out, unix_now())) return out;
  const uint64_t generation = impl_->cache.begin_read();
  ReadOp op;
  op.name = name;
  impl_->reads.submit(op);
  if (op.read_alone) op.found = impl_->read_alone(name, std::nullopt);
  else if (op.found && has_replacement_char(op.found->value)) op.found = impl_->read_alone(name, op.found);
  impl_->cache.fill(name, op.found, generation);
  if (op.found && op.found->expiration && *op.found->expiration <= unix_now()) return std::nullopt;
  return std::move(op.found);
}

void CloudflareKv::remove(const std::string& ns, const std::string& key) {
  WriteOp op;
  op.ns = ns;
  op.key = key;
  op.name = stored_name(ns, key);
  op.remove = true;
  impl_->writes.submit(op);  // the registry forgets it in the round, once the store has
}

void CloudflareKv::walk(const std::function<void(StoredEntry)>& fn) {
  std::string cursor;
  for (;;) {
    std::string q = "/keys?limit=" + std::to_string(kUpstreamMaxLimit);
    if (!cursor.empty()) q += "&cursor=" + enc::percent_encode(cursor);
    HttpRequest req = api_.request("GET", path_ + q, "KV list (reindex)");
    json env = impl_->call(req);
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
    json env = impl_->call(req);
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
  impl_->call(req);
}

}  // namespace era::cf

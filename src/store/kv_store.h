// KvStore: the key-value capability, in the shape of Cloudflare Workers KV.
//
// Contract, for every implementation:
// - Namespaces and keys arrive already validated (ns rules in ns/names.h); a store maps them onto its
//   shared space as "ns:key" and never lets one namespace see another's keys.
// - put() replaces value, metadata and expiration together and returns only once the write is
//   durable: after a crash, every acknowledged put is still there.
// - An entry whose expiration (unix seconds) has passed is gone: get() does not return it and
//   list() does not list it.
// - list() returns names without the namespace, in byte order, at most `limit` of them, starting
//   after `cursor` (an opaque string from a previous page, "" for the first). A cursor keeps its
//   place while keys are written: no key present for the whole walk is skipped or repeated.
// - Errors are thrown as era::ApiError with the status and code the client should see.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace era {

struct KvValue {
  std::string value;                    // the bytes stored
  std::optional<std::string> metadata;  // compact JSON text, or none
  std::optional<int64_t> expiration;    // unix seconds, or none (never expires)
  // The client's relative form, when it gave one: `expiration` is then the time it was computed for
  // (now + ttl). A store whose upstream takes a TTL passes this on as is (Cloudflare's expiration_ttl),
  // so time spent on the way cannot push it under the upstream's minimum; others use `expiration`.
  std::optional<int64_t> expiration_ttl = std::nullopt;
};

struct KvKeyInfo {
  std::string name;  // the key, without the namespace
  std::optional<std::string> metadata;
  std::optional<int64_t> expiration;
};

struct KvPage {
  std::vector<KvKeyInfo> keys;
  bool complete = true;
  std::string cursor;  // empty when complete
};

class KvStore {
 public:
  virtual ~KvStore() = default;

  virtual void put(const std::string& ns, const std::string& key, const KvValue& value) = 0;
  virtual std::optional<KvValue> get(const std::string& ns, const std::string& key) = 0;
  // Deleting a missing key is not an error.
  virtual void remove(const std::string& ns, const std::string& key) = 0;
  virtual KvPage list(const std::string& ns, const std::string& prefix, int limit, const std::string& cursor) = 0;

  // get() from memory only: true with `out` set (nullopt: known absent) when the store can answer
  // without waiting for anything (no I/O, no upstream call), false when only get() can. It answers
  // exactly as get() would at this moment; the server calls it on an I/O thread, which must never
  // block. A store without a cache says false.
  virtual bool cached(const std::string& ns, const std::string& key, std::optional<KvValue>& out) {
    (void)ns, (void)key, (void)out;
    return false;
  }
};

}  // namespace era

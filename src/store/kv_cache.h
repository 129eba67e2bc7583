// KvReadCache: what one proxy knows of KV values, for at most `ttl`, bounded by bytes (least recently
// used goes first). It holds values and known absences ("no such key"). Shared by both backends:
// - cloudflare (CloudflareKv): ttl at most 60 s, Workers KV's own consistency window, so the cache adds
//   no staleness KV itself does not allow; a write acknowledged through this proxy is put into the
//   cache (wrote(): a delete as an absence) before the writer is answered (read-your-writes here).
// - local (LocalKv): the proxy is the data dir's only writer (it holds the dir's lock), so the cache is
//   exact: a write drops the key's entry (forget()) once committed, before the writer is answered.
// Either way, lookup() answers from memory only and never waits for I/O: the server answers a cached
// KV read on its I/O thread (KvStore::cached, http::Router::try_inline).
//
// A read that was already on its way to the store when a write to the same key was acknowledged must
// not put its older answer over the write's: every fill carries the generation taken when its read
// began and is dropped if a write (or an eviction, whose generation is forgotten) came later.
//
// ttl 0 or max_bytes 0 turns the cache off: lookups miss, fills and writes keep nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "store/kv_store.h"

namespace era {

class KvReadCache {
 public:
  using Clock = std::chrono::steady_clock;
  KvReadCache(std::chrono::milliseconds ttl, size_t max_bytes) : ttl_(ttl), max_bytes_(max_bytes) {}

  bool enabled() const { return ttl_.count() > 0 && max_bytes_ > 0; }

  // Taken before a read goes upstream; passed to fill().
  uint64_t begin_read();

  // A hit sets `out` (nullopt: known absent) and returns true. A value past its KV expiration
  // (`now_unix`) reads as absent.
  bool lookup(const std::string& name, std::optional<KvValue>& out, int64_t now_unix);

  // What a read begun at `generation` found, unless a write to `name` came after it began.
  void fill(const std::string& name, const std::optional<KvValue>& found, uint64_t generation);

  // A write acknowledged upstream: `now` is the key's state (nullopt after a delete).
  void wrote(const std::string& name, const std::optional<KvValue>& now);

  // A write whose outcome is unknown: nothing is known of the key any more.
  void forget(const std::string& name);

  size_t bytes() const;

 private:
  struct Entry {
    std::string name;
    std::optional<KvValue> value;
    Clock::time_point until;
    uint64_t generation;
    size_t bytes;
  };
  using Lru = std::list<Entry>;

  void erase(Lru::iterator it);  // remembers its generation in floor_
  void insert(const std::string& name, const std::optional<KvValue>& value, uint64_t generation);

  const std::chrono::milliseconds ttl_;
  const size_t max_bytes_;
  mutable std::mutex mu_;
  Lru lru_;  // most recently used first
  std::unordered_map<std::string, Lru::iterator> index_;
  size_t bytes_ = 0;
  uint64_t generation_ = 0;
  // The newest generation of an entry no longer held: a fill older than it may predate a write whose
  // entry is gone, so it is dropped (a miss later, never a stale value).
  uint64_t floor_ = 0;
};

}  // namespace era

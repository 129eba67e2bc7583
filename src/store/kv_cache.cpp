#include "store/kv_cache.h"

#include <algorithm>

namespace era {
namespace {

constexpr size_t kEntryOverhead = 96;  // the list node, the index slot, the name's copy

size_t size_of(const std::string& name, const std::optional<KvValue>& v) {
  size_t n = kEntryOverhead + 2 * name.size();
  if (v) n += v->value.size() + (v->metadata ? v->metadata->size() : 0);
  return n;
}

}  // namespace

uint64_t KvReadCache::begin_read() {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

bool KvReadCache::lookup(const std::string& name, std::optional<KvValue>& out, int64_t now_unix) {
  if (!enabled()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(name);
  if (it == index_.end()) return false;
  if (it->second->until <= Clock::now()) {
    erase(it->second);
    return false;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  const Entry& e = *it->second;
  if (e.value && e.value->expiration && *e.value->expiration <= now_unix) out.reset();
  else out = e.value;
  return true;
}

void KvReadCache::fill(const std::string& name, const std::optional<KvValue>& found, uint64_t generation) {
  if (!enabled()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (generation < floor_) return;
  auto it = index_.find(name);
  if (it != index_.end() && it->second->generation > generation) return;  // a write came after the read began
  insert(name, found, generation);
}

void KvReadCache::wrote(const std::string& name, const std::optional<KvValue>& now) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;  // reads begun before this write cannot fill over it, cache on or off
  if (!enabled()) return;
  insert(name, now, generation_);
}

void KvReadCache::forget(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  auto it = index_.find(name);
  if (it != index_.end()) erase(it->second);
  floor_ = std::max(floor_, generation_);
}

size_t KvReadCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

void KvReadCache::erase(Lru::iterator it) {
  floor_ = std::max(floor_, it->generation);
  bytes_ -= it->bytes;
  index_.erase(it->name);  // the key is the entry's own name: erased before the entry goes
  lru_.erase(it);
}

void KvReadCache::insert(const std::string& name, const std::optional<KvValue>& value, uint64_t generation) {
  auto old = index_.find(name);
  if (old != index_.end()) {  // replaced, not evicted: its generation need not be remembered
    const Lru::iterator entry = old->second;
    bytes_ -= entry->bytes;
    index_.erase(old);
    lru_.erase(entry);
  }
  const size_t n = size_of(name, value);
  if (n > max_bytes_ / 4) {  // one value may not push out most of the cache
    floor_ = std::max(floor_, generation);
    return;
  }
  while (bytes_ + n > max_bytes_ && !lru_.empty()) erase(std::prev(lru_.end()));
  lru_.push_front(Entry{name, value, Clock::now() + ttl_, generation, n});
  index_[name] = lru_.begin();
  bytes_ += n;
}

}  // namespace era

// Per-namespace byte quotas, as decorators around the store interfaces: one place for every backend
// (open_backend wraps whichever backend it opens). Off by default (quota.* = 0).
//
// Usage comes from the resource registry's per-namespace tally (ResourceStats::by_namespace_type), so it
// is the same figure /api/resources/stats reports, in both backends:
// - KV: a put that would take the namespace's value bytes past quota.kv_bytes (counting the old value
//   of the key as freed) is refused before it is sent to the store.
// - R2: the same for object bytes, with the size from Content-Length; an upload of unknown length is
//   counted while it streams and aborted (the store then keeps the previous object) once past it.
// - D1: the pages of the namespace's tables and indexes (SqlStore::tables); once at or past
//   quota.d1_bytes, statements that write are refused (reads, DELETE and DROP still run, so a
//   namespace can always free space). A write is checked before it runs, so one statement may
//   overshoot the quota by what it adds itself.
// Refusals are ApiError 507 "quota_exceeded" and change nothing; deletes are never refused. Checks
// and writes are not one transaction: concurrent writes to one namespace may overshoot by their own
// sizes.
#pragma once

#include <cstdint>
#include <memory>

#include "store/backend.h"

namespace era {

struct QuotaLimits {
  uint64_t kv_bytes = 0;  // 0: no quota
  uint64_t r2_bytes = 0;
  uint64_t d1_bytes = 0;

  bool any() const { return kv_bytes || r2_bytes || d1_bytes; }
};

// `inner` with the quotas enforced on its stores (returned as it is when no quota is set).
std::unique_ptr<Backend> with_quotas(std::unique_ptr<Backend> inner, QuotaLimits limits);

}  // namespace era

// The parts of the ObjectStore contract every backend computes the same way.
#include "store/object_store.h"

#include <algorithm>

#include "store/object_range.h"
#include "util/error.h"

namespace era {
namespace {

bool listed(const std::vector<std::string>& etags, const std::string& etag) {
  return std::find(etags.begin(), etags.end(), etag) != etags.end();
}

bool is_any(const std::vector<std::string>& etags) { return etags.size() == 1 && etags[0] == "*"; }

}  // namespace

bool Precondition::holds(const std::optional<std::string>& current) const {
  if (if_match) {
    if (!current) return false;
    if (!is_any(*if_match) && !listed(*if_match, *current)) return false;
  }
  if (if_none_match && current) {
    if (is_any(*if_none_match) || listed(*if_none_match, *current)) return false;
  }
  return true;
}

std::pair<uint64_t, uint64_t> resolve_range(const std::optional<ByteRange>& range, uint64_t size) {
  if (!range) return {0, size};
  auto unsatisfiable = [&] {
    ApiError e(416, "range_not_satisfiable",
               "range not satisfiable: the object is " + std::to_string(size) + " bytes");
    e.unsatisfiable_size = size;
    return e;
  };
  if (range->suffix) {
    if (*range->suffix == 0 || size == 0) throw unsatisfiable();
    const uint64_t n = std::min(*range->suffix, size);
    return {size - n, n};
  }
  const uint64_t offset = range->offset.value_or(0);
  if (offset >= size) throw unsatisfiable();
  uint64_t length = size - offset;
  if (range->length) {
    if (*range->length == 0) throw unsatisfiable();
    length = std::min(length, *range->length);
  }
  return {offset, length};
}

}  // namespace era

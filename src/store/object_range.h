// Helpers shared by ObjectStore implementations.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "store/object_store.h"

namespace era {

// The (offset, length) a range selects in an object of `size` bytes; the whole object for none.
// Throws ApiError 416 "range_not_satisfiable" (with Content-Range: bytes */size) for a range that
// starts at or past the end, selects nothing, or addresses an empty object.
std::pair<uint64_t, uint64_t> resolve_range(const std::optional<ByteRange>& range, uint64_t size);

}  // namespace era

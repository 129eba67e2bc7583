// The resource registry of the local backend: the generic ResourceWalk (store/resource_walk.h) over
// sources that keep no copy of the resources: lists read the stores' own tables through their indexes
// (KV's `kv`, R2's object table, D1's schema), and stats read the counters that each store's writer job
// maintains in the same transaction as its write. Nothing can drift; `reindex` recomputes the counters
// from the tables anyway and reports repairs.
#pragma once

#include <functional>
#include <memory>

#include "store/sql/sqlite.h"
#include "store/resource_walk.h"

namespace era {

// A source over one table of the meta database whose rows are named "<ns><separator><key>" (a BLOB
// column `name`, with `ns` and `size` beside it) and counted in resource_counters under `type`.
// KV and R2 are both such tables.
struct TableSpec {
  const char* type;          // "kv"
  const char* table;         // "kv"
  char separator;            // ':'
  const char* metadata_col;  // column with compact JSON metadata
  const char* created_col;   // unix-milliseconds columns
  const char* updated_col;
  bool expires;              // rows have an `expiration` (unix seconds) after which they do not exist
};
std::unique_ptr<ResourceSource> make_table_source(TableSpec spec, sqlite::Writer& writer,
                                                  sqlite::ReaderPool& readers,
                                                  std::function<int64_t()> now_seconds);

}  // namespace era

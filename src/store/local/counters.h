// Resource counters of the local backend: per (type, namespace), how many resources and how many
// bytes. Every store's writer job that adds, replaces or removes a resource calls bump() in the same
// transaction as the write, so the counters can never drift from the data across a crash.
#pragma once

#include <cstdint>
#include <string>

#include "store/sql/sqlite.h"

namespace era::counters {

void create_schema(sqlite::Db& db);
// Adds `dcount` resources and `dbytes` bytes to (type, ns); drops the row when it reaches zero.
void bump(sqlite::Db& db, const char* type, const std::string& ns, int64_t dcount, int64_t dbytes);

}  // namespace era::counters

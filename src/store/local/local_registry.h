// LocalRegistry: ResourceRegistry of the local backend. It keeps no copy of the resources: lists read
// the stores' own tables through their indexes (KV's `kv`, R2's object table, D1's schema), and stats
// read the counters that each store's writer job maintains in the same transaction as its write.
// Nothing can drift; `reindex` recomputes the counters from the tables anyway and reports repairs.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "store/sql/sqlite.h"
#include "store/registry.h"

namespace era {

// One type of resource, as the registry walks it. Entries come in ascending `order` (bytes).
class ResourceSource {
 public:
  struct Filter {
    std::optional<std::string> ns;                // one namespace
    std::optional<std::set<std::string>> scope;  // or only these
    std::string key_prefix;
  };
  struct Entry {
    Resource resource;
    std::string order;  // position in this source's order; resumes a walk
  };
  struct Batch {
    std::vector<Entry> entries;
    int64_t skipped = 0;  // how many of the requested offset were skipped
  };

  virtual ~ResourceSource() = default;
  virtual const char* type() const = 0;
  // Skips `offset` entries after `after` ("" for the start), then returns up to `limit`.
  virtual Batch page(const Filter& filter, const std::string& after, int64_t offset, int limit) = 0;
  // How many entries the filter matches.
  virtual int64_t count(const Filter& filter) = 0;
  // Adds this type's count and bytes per namespace (restricted to `filter`, key_prefix ignored).
  virtual void add_stats(const Filter& filter, std::map<std::string, std::pair<int64_t, int64_t>>& by_ns) = 0;
  // Recomputes this source's counters from its data; appends a line per repair.
  virtual void reindex(std::vector<std::string>& repairs) = 0;
};

class LocalRegistry : public ResourceRegistry {
 public:
  // Sources in type order ("d1", "kv", "r2").
  explicit LocalRegistry(std::vector<std::unique_ptr<ResourceSource>> sources);

  ResourcePage list(const ResourceQuery& query) override;
  ResourceStats stats(const std::optional<std::string>& ns,
                      const std::optional<std::set<std::string>>& scope) override;
  ReindexReport reindex() override;

 private:
  std::vector<std::unique_ptr<ResourceSource>> sources_;
};

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

// D1 tables, read straight from the SQL store's own schema registry (which cannot drift). Tables have
// no cheap size and no timestamps: those fields are left unknown.
class SqlStore;
std::unique_ptr<ResourceSource> make_d1_source(SqlStore& d1);

// Namespaces of a filter in the order their KV/R2 internal names sort ("ns" + separator).
std::vector<std::string> ordered_namespaces(const ResourceSource::Filter& filter, char separator);

}  // namespace era

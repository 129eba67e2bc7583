// The resource walk of a ResourceRegistry, once for both backends: resources come from one
// ResourceSource per type, and ResourceWalk pages over them (cursor, offset, totals) and sums their
// stats. A backend supplies its sources (local: SQLite tables of the meta database; cloudflare: rows of
// its registry table in D1); the walk, the cursor format and the name ranges are the same for both.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store/registry.h"

namespace era {

// How many resources and how many bytes (per namespace, per type).
struct Tally {
  int64_t count = 0;
  int64_t bytes = 0;
  bool operator==(const Tally& o) const { return count == o.count && bytes == o.bytes; }
  bool operator!=(const Tally& o) const { return !(*this == o); }
};
using TallyByNs = std::map<std::string, Tally>;

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
  virtual void add_stats(const Filter& filter, TallyByNs& by_ns) = 0;
  // Recomputes this source's counters from its data; appends a line per repair.
  virtual void reindex(std::vector<std::string>& repairs) = 0;
};

// A source whose entries are named "<ns><separator><key>" and walked in name order (KV and R2 in both
// backends). It turns a filter into name ranges and pages over them; a backend answers the queries on
// one range.
class NamedSource : public ResourceSource {
 public:
  // Names [lo, hi) in name order; `key_prefix`, when not empty, is checked on each row's key (a walk of
  // every namespace, where the prefix cannot be a range).
  struct Range {
    std::string lo, hi, key_prefix;
  };

  NamedSource(const char* type, char separator) : type_(type), separator_(separator) {}
  const char* type() const override { return type_; }
  char separator() const { return separator_; }

  Batch page(const Filter& filter, const std::string& after, int64_t offset, int limit) override;
  int64_t count(const Filter& filter) override;
  void add_stats(const Filter& filter, TallyByNs& by_ns) override;

  // The ranges of a filter, in walk order.
  std::vector<Range> ranges(const Filter& filter) const;

 protected:
  // Up to `limit` entries of `r` whose name is > `after` ("" for none), skipping `offset` of them first.
  virtual std::vector<Entry> rows(const Range& r, const std::string& after, int64_t offset, int limit) = 0;
  // How many entries of `r` after `after` there are, counting at most `up_to`.
  virtual int64_t count_rows(const Range& r, const std::string& after, int64_t up_to) = 0;
  // Maintained counters per namespace (only `namespaces` when set), expired entries already subtracted.
  virtual TallyByNs counters(const std::optional<std::vector<std::string>>& namespaces) = 0;

 private:
  const char* type_;
  char separator_;
};

// Namespaces of a filter in the order their internal names sort ("ns" + separator).
std::vector<std::string> ordered_namespaces(const ResourceSource::Filter& filter, char separator);

// Every internal name starts with a namespace byte ([A-Za-z0-9_-], all below 0x7f), so every name sorts
// below this one. It is valid UTF-8, so it also bounds a TEXT column bound through JSON (cloudflare).
extern const char* const kNamesEnd;

// The smallest valid UTF-8 string greater than every valid UTF-8 string that starts with `prefix` (the
// last code point incremented, skipping surrogates; "" when none exists). `prefix` must be valid UTF-8.
// Keys are valid UTF-8, whose byte order is code point order, so [prefix, bound) holds exactly them.
std::string utf8_prefix_bound(const std::string& prefix);

// ResourceRegistry over sources in type order ("d1", "kv", "r2"). Cursor: base64url("<type>\n<order>").
class ResourceWalk : public ResourceRegistry {
 public:
  explicit ResourceWalk(std::vector<std::unique_ptr<ResourceSource>> sources);
  ~ResourceWalk() override;

  ResourcePage list(const ResourceQuery& query) override;
  ResourceStats stats(const std::optional<std::string>& ns,
                      const std::optional<std::set<std::string>>& scope) override;
  ReindexReport reindex() override;

 private:
  std::vector<std::unique_ptr<ResourceSource>> sources_;
};

// D1 tables as resources, read straight from the SQL store's own schema registry (which cannot drift).
// Tables have no cheap size and no timestamps: those fields are left unknown. (store/sql_table_source.cpp)
class SqlStore;
std::unique_ptr<ResourceSource> make_sql_table_source(SqlStore& d1);

// Lines for a reindex report: one per namespace whose tally changed.
void report_tally_repairs(const char* type, const TallyByNs& before, const TallyByNs& after,
                          std::vector<std::string>& repairs);

}  // namespace era

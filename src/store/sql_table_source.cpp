// ResourceSource over D1's tables (either backend: it reads only the SqlStore interface), in (namespace, table) order. The order string is
// "<ns>\n<table>": a namespace never holds '\n', and '\n' sorts below every namespace byte, so
// comparing order strings compares (namespace, table) pairs.
#include <algorithm>

#include "store/resource_walk.h"
#include "store/sql_store.h"

namespace era {
namespace {

class SqlTableSource : public ResourceSource {
 public:
  explicit SqlTableSource(SqlStore& d1) : d1_(d1) {}
  const char* type() const override { return "d1"; }

  Batch page(const Filter& f, const std::string& after, int64_t offset, int limit) override {
    Batch b;
    for (auto& [ns, table] : matching(f)) {
      std::string order = ns + "\n" + table;
      if (!after.empty() && order <= after) continue;
      if (b.skipped < offset) {
        ++b.skipped;
        continue;
      }
      if (int(b.entries.size()) >= limit) break;
      Entry e;
      e.order = std::move(order);
      e.resource.type = "d1";
      e.resource.ns = ns;
      e.resource.key = table;
      b.entries.push_back(std::move(e));
    }
    return b;
  }

  int64_t count(const Filter& f) override { return int64_t(matching(f).size()); }

  void add_stats(const Filter& f, TallyByNs& by_ns) override {
    Filter all = f;
    all.key_prefix.clear();
    for (const auto& [ns, _] : matching(all)) by_ns[ns].count += 1;
  }

  void reindex(std::vector<std::string>&) override {}  // nothing maintained: read from the schema

 private:
  std::vector<std::pair<std::string, std::string>> matching(const Filter& f) {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& [ns, table] : d1_.all_tables()) {
      if (f.ns && ns != *f.ns) continue;
      if (f.scope && !f.scope->count(ns)) continue;
      if (table.compare(0, f.key_prefix.size(), f.key_prefix) != 0) continue;
      out.emplace_back(std::move(ns), std::move(table));
    }
    return out;  // all_tables() is sorted by (namespace, table)
  }

  SqlStore& d1_;
};

}  // namespace

std::unique_ptr<ResourceSource> make_sql_table_source(SqlStore& d1) { return std::make_unique<SqlTableSource>(d1); }

}  // namespace era

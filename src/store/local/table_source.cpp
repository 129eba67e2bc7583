// ResourceSource over a named table of the meta database (KV's `kv`, R2's object table).
//
// Order: by the internal name "<ns><sep><key>" (bytes), which is the table's unique index, so every
// page is an index range scan. A namespace filter or a session's scope becomes one name range per
// namespace, visited in the order those ranges sort.
#include <algorithm>
#include <map>

#include "ns/names.h"
#include "store/local/counters.h"
#include "store/local/local_registry.h"

namespace era {
namespace {

class TableSource : public ResourceSource {
 public:
  TableSource(TableSpec spec, sqlite::Writer& writer, sqlite::ReaderPool& readers, std::function<int64_t()> now)
      : spec_(spec), writer_(writer), readers_(readers), now_(std::move(now)) {
    const std::string t = spec.table;
    alive_ = spec.expires ? "(expiration IS NULL OR expiration > ?9)" : "(?9 IS NOT NULL)";
    const std::string cols = std::string("name, ns, size, ") + spec.metadata_col + ", " + spec.created_col + ", " +
                             spec.updated_col;
    // ?1 lower bound (inclusive) ?2 upper bound (exclusive) ?4 key prefix (whole-table walks) ?9 now.
    // One bound on each side, so SQLite walks exactly the index range the page needs.
    const std::string where = " WHERE name >= ?1 AND name < ?2 AND " + alive_ +
                              " AND (length(?4) = 0 OR substr(name, length(ns) + 2, length(?4)) = ?4)";
    page_sql_ = "SELECT " + cols + " FROM " + t + where + " ORDER BY name LIMIT ?5 OFFSET ?6";
    skip_sql_ = "SELECT count(*) FROM (SELECT 1 FROM " + t + where + " LIMIT ?6)";
    count_sql_ = "SELECT count(*) FROM " + t + where;
    counter_one_sql_ = "SELECT count, bytes FROM resource_counters WHERE type = ?1 AND ns = ?2";
    counter_all_sql_ = "SELECT ns, count, bytes FROM resource_counters WHERE type = ?1";
    expired_sql_ = spec.expires ? "SELECT ns, count(*), sum(size) FROM " + t +
                                      " WHERE expiration IS NOT NULL AND expiration <= ?1 GROUP BY ns"
                                : "";
    actual_sql_ = "SELECT ns, count(*), sum(size) FROM " + t + " GROUP BY ns";
  }

  const char* type() const override { return spec_.type; }

  Batch page(const Filter& f, const std::string& after, int64_t offset, int limit) override {
    Batch b;
    auto db = readers_.lease();
    for (const auto& [lo, hi, prefix] : ranges(f)) {
      if (!after.empty() && hi <= after) continue;  // wholly before the cursor
      int64_t want_offset = offset - b.skipped;
      sqlite::StmtUse st(db->cached(page_sql_.c_str()));
      bind_range(*st, lo, hi, after, prefix);
      st->bind(5, int64_t(limit) - int64_t(b.entries.size())).bind(6, want_offset);
      size_t before = b.entries.size();
      while (st->step()) b.entries.push_back(entry(*st));
      if (b.entries.size() > before || want_offset == 0) {
        b.skipped += want_offset;  // rows came back: the whole offset was consumed in this range
      } else {
        sqlite::StmtUse sk(db->cached(skip_sql_.c_str()));
        bind_range(*sk, lo, hi, after, prefix);
        sk->bind(6, want_offset);
        sk->step();
        b.skipped += sk->int64(0);
      }
      if (int(b.entries.size()) >= limit) break;
    }
    return b;
  }

  int64_t count(const Filter& f) override {
    if (f.key_prefix.empty()) {
      std::map<std::string, std::pair<int64_t, int64_t>> by_ns;
      add_stats(f, by_ns);
      int64_t n = 0;
      for (const auto& [_, cb] : by_ns) n += cb.first;
      return n;
    }
    auto db = readers_.lease();
    int64_t n = 0;
    for (const auto& [lo, hi, prefix] : ranges(f)) {
      sqlite::StmtUse st(db->cached(count_sql_.c_str()));
      bind_range(*st, lo, hi, "", prefix);
      st->step();
      n += st->int64(0);
    }
    return n;
  }

  void add_stats(const Filter& f, std::map<std::string, std::pair<int64_t, int64_t>>& by_ns) override {
    auto db = readers_.lease();
    std::map<std::string, std::pair<int64_t, int64_t>> mine;
    if (f.ns || f.scope) {
      for (const auto& ns : ordered_namespaces(f, spec_.separator)) {
        sqlite::StmtUse st(db->cached(counter_one_sql_.c_str()));
        st->bind_text(1, spec_.type).bind_text(2, ns);
        if (st->step()) mine[ns] = {st->int64(0), st->int64(1)};
      }
    } else {
      sqlite::StmtUse st(db->cached(counter_all_sql_.c_str()));
      st->bind_text(1, spec_.type);
      while (st->step()) mine[st->text(0)] = {st->int64(1), st->int64(2)};
    }
    // Counters count rows; rows past their expiration but not yet swept are not resources.
    if (spec_.expires) {
      sqlite::StmtUse st(db->cached(expired_sql_.c_str()));
      st->bind(1, now_());
      while (st->step()) {
        auto it = mine.find(st->text(0));
        if (it == mine.end()) continue;
        it->second.first -= st->int64(1);
        it->second.second -= st->int64(2);
      }
    }
    for (const auto& [ns, cb] : mine) {
      if (cb.first <= 0) continue;
      by_ns[ns].first += cb.first;
      by_ns[ns].second += cb.second;
    }
  }

  void reindex(std::vector<std::string>& repairs) override {
    writer_.submit([&](sqlite::Db& db) {
      std::map<std::string, std::pair<int64_t, int64_t>> actual, counted;
      {
        sqlite::StmtUse st(db.cached(actual_sql_.c_str()));
        while (st->step()) actual[st->text(0)] = {st->int64(1), st->int64(2)};
      }
      {
        sqlite::StmtUse st(db.cached(counter_all_sql_.c_str()));
        st->bind_text(1, spec_.type);
        while (st->step()) counted[st->text(0)] = {st->int64(1), st->int64(2)};
      }
      std::map<std::string, bool> all;
      for (const auto& [ns, _] : actual) all[ns] = true;
      for (const auto& [ns, _] : counted) all[ns] = true;
      for (const auto& [ns, _] : all) {
        auto a = actual.count(ns) ? actual[ns] : std::make_pair(int64_t(0), int64_t(0));
        auto c = counted.count(ns) ? counted[ns] : std::make_pair(int64_t(0), int64_t(0));
        if (a == c) continue;
        repairs.push_back(std::string(spec_.type) + " " + ns + ": count " + std::to_string(c.first) + " -> " +
                          std::to_string(a.first) + ", bytes " + std::to_string(c.second) + " -> " +
                          std::to_string(a.second));
        counters::bump(db, spec_.type, ns, a.first - c.first, a.second - c.second);
      }
    });
  }

 private:
  struct Range {
    std::string lo, hi, prefix;
  };

  // Name ranges to walk, in order. One per namespace when the filter names some; otherwise the
  // whole table, with the key prefix checked per row.
  std::vector<Range> ranges(const Filter& f) const {
    std::vector<Range> out;
    if (f.ns || f.scope) {
      for (const auto& ns : ordered_namespaces(f, spec_.separator)) {
        std::string lo = ns + spec_.separator + f.key_prefix;
        out.push_back({lo, ns::prefix_upper_bound(lo), ""});
      }
    } else {
      out.push_back({"", "\xFF", f.key_prefix});  // names start with an ASCII namespace byte
    }
    return out;
  }

  // The lower bound is the later of the range's start and the cursor's successor (after + NUL is the
  // smallest byte string greater than after).
  void bind_range(sqlite::Stmt& st, const std::string& lo, const std::string& hi, const std::string& after,
                  const std::string& prefix) {
    std::string from = after.empty() ? lo : std::max(lo, after + std::string(1, '\0'));
    st.bind_blob(1, from).bind_blob(2, hi).bind_blob(4, prefix).bind(9, now_());
  }

  Entry entry(sqlite::Stmt& st) const {
    Entry e;
    e.order = st.text(0);
    Resource& r = e.resource;
    r.type = spec_.type;
    r.ns = st.text(1);
    r.key = e.order.substr(r.ns.size() + 1);
    r.size = st.int64(2);
    r.metadata = st.opt_text(3);
    r.created_at_ms = st.int64(4);
    r.updated_at_ms = st.int64(5);
    return e;
  }

  TableSpec spec_;
  sqlite::Writer& writer_;
  sqlite::ReaderPool& readers_;
  std::function<int64_t()> now_;
  std::string alive_, page_sql_, skip_sql_, count_sql_, counter_one_sql_, counter_all_sql_, expired_sql_,
      actual_sql_;
};

}  // namespace

std::unique_ptr<ResourceSource> make_table_source(TableSpec spec, sqlite::Writer& writer, sqlite::ReaderPool& readers,
                                                  std::function<int64_t()> now_seconds) {
  return std::make_unique<TableSource>(spec, writer, readers, std::move(now_seconds));
}

}  // namespace era

// NamedSource over a named table of the meta database (KV's `kv`, R2's object table).
//
// Order: by the internal name "<ns><sep><key>" (bytes), which is the table's unique index, so every
// page is an index range scan (the ranges come from the generic walk).
#include <algorithm>

#include "store/local/counters.h"
#include "store/local/local_registry.h"

namespace era {
namespace {

class TableSource : public NamedSource {
 public:
  TableSource(TableSpec spec, sqlite::Writer& writer, sqlite::ReaderPool& readers, std::function<int64_t()> now)
      : NamedSource(spec.type, spec.separator), spec_(spec), writer_(writer), readers_(readers), now_(std::move(now)) {
    const std::string t = spec.table;
    const std::string alive = spec.expires ? "(expiration IS NULL OR expiration > ?9)" : "(?9 IS NOT NULL)";
    const std::string cols = std::string("name, ns, size, ") + spec.metadata_col + ", " + spec.created_col + ", " +
                             spec.updated_col;
    // ?1 lower bound (inclusive) ?2 upper bound (exclusive) ?4 key prefix (whole-table walks) ?9 now.
    // One bound on each side, so SQLite walks exactly the index range the page needs.
    const std::string where = " WHERE name >= ?1 AND name < ?2 AND " + alive +
                              " AND (length(?4) = 0 OR substr(name, length(ns) + 2, length(?4)) = ?4)";
    page_sql_ = "SELECT " + cols + " FROM " + t + where + " ORDER BY name LIMIT ?5 OFFSET ?6";
    skip_sql_ = "SELECT count(*) FROM (SELECT 1 FROM " + t + where + " LIMIT ?6)";
    counter_one_sql_ = "SELECT count, bytes FROM resource_counters WHERE type = ?1 AND ns = ?2";
    counter_all_sql_ = "SELECT ns, count, bytes FROM resource_counters WHERE type = ?1";
    expired_sql_ = spec.expires ? "SELECT ns, count(*), sum(size) FROM " + t +
                                      " WHERE expiration IS NOT NULL AND expiration <= ?1 GROUP BY ns"
                                : "";
    actual_sql_ = "SELECT ns, count(*), sum(size) FROM " + t + " GROUP BY ns";
  }

  void reindex(std::vector<std::string>& repairs) override {
    writer_.submit([&](sqlite::Db& db) {
      TallyByNs actual, counted;
      {
        sqlite::StmtUse st(db.cached(actual_sql_.c_str()));
        while (st->step()) actual[st->text(0)] = {st->int64(1), st->int64(2)};
      }
      {
        sqlite::StmtUse st(db.cached(counter_all_sql_.c_str()));
        st->bind_text(1, spec_.type);
        while (st->step()) counted[st->text(0)] = {st->int64(1), st->int64(2)};
      }
      report_tally_repairs(spec_.type, counted, actual, repairs);
      for (const auto& [ns, a] : actual) {
        Tally c = counted.count(ns) ? counted[ns] : Tally{};
        counters::bump(db, spec_.type, ns, a.count - c.count, a.bytes - c.bytes);
      }
      for (const auto& [ns, c] : counted)
        if (!actual.count(ns)) counters::bump(db, spec_.type, ns, -c.count, -c.bytes);
    });
  }

 protected:
  std::vector<Entry> rows(const Range& r, const std::string& after, int64_t offset, int limit) override {
    std::vector<Entry> out;
    auto db = readers_.lease();
    sqlite::StmtUse st(db->cached(page_sql_.c_str()));
    bind_range(*st, r, after);
    st->bind(5, int64_t(limit)).bind(6, offset);
    while (st->step()) out.push_back(entry(*st));
    return out;
  }

  int64_t count_rows(const Range& r, const std::string& after, int64_t up_to) override {
    auto db = readers_.lease();
    sqlite::StmtUse st(db->cached(skip_sql_.c_str()));
    bind_range(*st, r, after);
    st->bind(6, up_to);
    st->step();
    return st->int64(0);
  }

  TallyByNs counters(const std::optional<std::vector<std::string>>& namespaces) override {
    auto db = readers_.lease();
    TallyByNs mine;
    if (namespaces) {
      for (const auto& ns : *namespaces) {
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
        it->second.count -= st->int64(1);
        it->second.bytes -= st->int64(2);
      }
    }
    return mine;
  }

 private:
  // The lower bound is the later of the range's start and the cursor's successor (after + NUL is the
  // smallest byte string greater than after).
  void bind_range(sqlite::Stmt& st, const Range& r, const std::string& after) {
    std::string from = after.empty() ? r.lo : std::max(r.lo, after + std::string(1, '\0'));
    st.bind_blob(1, from).bind_blob(2, r.hi).bind_blob(4, r.key_prefix).bind(9, now_());
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
  std::string page_sql_, skip_sql_, counter_one_sql_, counter_all_sql_, expired_sql_, actual_sql_;
};

}  // namespace

std::unique_ptr<ResourceSource> make_table_source(TableSpec spec, sqlite::Writer& writer, sqlite::ReaderPool& readers,
                                                  std::function<int64_t()> now_seconds) {
  return std::make_unique<TableSource>(spec, writer, readers, std::move(now_seconds));
}

}  // namespace era

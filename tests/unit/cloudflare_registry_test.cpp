// The cloudflare registry's batched flush, run on SQLite itself: the exact statements a flush sends
// to D1 (D1 is SQLite; parameters are bound as text, as D1's /raw takes them), checked for what they
// leave in the rows and counters: last change per key, removes, counters always equal to the rows,
// idempotence (a retried batch changes nothing), ordering across replicas by time, chunking under
// D1's 2,000,000-byte value limit, and the replica marker riding along.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <map>
#include <string>
#include <vector>

#include "store/cloudflare/cloudflare_registry.h"

using era::cf::CloudflareRegistry;
using era::cf::D1Statement;
using era::cf::RegistryChange;

namespace {

struct Db {
  sqlite3* h = nullptr;
  Db() {
    REQUIRE(sqlite3_open(":memory:", &h) == SQLITE_OK);
    for (const auto& st : CloudflareRegistry::schema_statements()) run(st);
  }
  ~Db() { sqlite3_close(h); }
  // Runs one statement with text parameters (as D1's /raw binds them); returns its rows as text.
  std::vector<std::vector<std::string>> run(const D1Statement& st) {
    sqlite3_stmt* s = nullptr;
    REQUIRE_MESSAGE(sqlite3_prepare_v2(h, st.sql.c_str(), -1, &s, nullptr) == SQLITE_OK, sqlite3_errmsg(h), "\n",
                    st.sql);
    for (size_t i = 0; i < st.params.size(); ++i)
      sqlite3_bind_text(s, int(i + 1), st.params[i].data(), int(st.params[i].size()), SQLITE_TRANSIENT);
    std::vector<std::vector<std::string>> rows;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        const unsigned char* t = sqlite3_column_text(s, c);
        row.push_back(t ? reinterpret_cast<const char*>(t) : "NULL");
      }
      rows.push_back(std::move(row));
    }
    CHECK_MESSAGE(rc == SQLITE_DONE, sqlite3_errmsg(h));
    sqlite3_finalize(s);
    return rows;
  }
  // One flush: every batch in its own transaction, as D1 runs a batch. Returns the last statement's rows.
  std::vector<std::vector<std::string>> flush(const std::vector<RegistryChange>& changes, const std::string& replica = "",
                                              int64_t now = 1000000, size_t max_param = CloudflareRegistry::kMaxParamBytes) {
    std::vector<std::vector<std::string>> last;
    for (const auto& batch : CloudflareRegistry::flush_batches(changes, replica, now, max_param)) {
      run({"BEGIN", {}});
      for (const auto& st : batch) last = run(st);
      run({"COMMIT", {}});
    }
    return last;
  }
  std::map<std::string, std::string> rows() {  // name -> "size|metadata|created|updated|expiration"
    std::map<std::string, std::string> out;
    for (auto& r : run({"SELECT name, size, metadata, created, updated, expiration FROM \"era:resources\"", {}}))
      out[r[0]] = r[1] + "|" + r[2] + "|" + r[3] + "|" + r[4] + "|" + r[5];
    return out;
  }
  std::map<std::string, std::string> counters() {  // "type ns" -> "count bytes"
    std::map<std::string, std::string> out;
    for (auto& r : run({"SELECT type, ns, count, bytes FROM \"era:resource_counters\"", {}}))
      out[r[0] + " " + r[1]] = r[2] + " " + r[3];
    return out;
  }
  // The counters as the rows say they should be.
  std::map<std::string, std::string> counted() {
    std::map<std::string, std::string> out;
    for (auto& r : run({"SELECT type, ns, count(*), sum(size) FROM \"era:resources\" GROUP BY type, ns", {}}))
      out[r[0] + " " + r[1]] = r[2] + " " + r[3];
    return out;
  }
};

RegistryChange put(const std::string& type, const std::string& ns, const std::string& key, int64_t size, int64_t at,
                   std::optional<std::string> meta = std::nullopt, std::optional<int64_t> exp = std::nullopt) {
  return RegistryChange{true, type, ns, key, size, std::move(meta), exp, at};
}
RegistryChange remove(const std::string& type, const std::string& ns, const std::string& key, int64_t at) {
  return RegistryChange{false, type, ns, key, 0, std::nullopt, std::nullopt, at};
}

}  // namespace

TEST_CASE("registry flush: puts and removes of many keys land in one batch with counters equal to the rows") {
  Db db;
  auto batches = CloudflareRegistry::flush_batches(
      {put("kv", "a", "k1", 10, 100, std::string(R"({"m":"x"})"), 2000000000), put("kv", "a", "k2", 5, 100),
       put("r2", "a", "dir/o", 7, 100), put("kv", "b", "k", 1, 100)},
      "", 1000);
  CHECK(batches.size() == 1);  // one D1 call for every change
  db.flush({put("kv", "a", "k1", 10, 100, std::string(R"({"m":"x"})"), 2000000000), put("kv", "a", "k2", 5, 100),
            put("r2", "a", "dir/o", 7, 100), put("kv", "b", "k", 1, 100)});
  auto rows = db.rows();
  CHECK(rows.size() == 4);
  CHECK(rows["a:k1"] == R"(10|{"m":"x"}|100|100|2000000000)");
  CHECK(rows["a/dir/o"] == "7|NULL|100|100|NULL");
  CHECK(db.counters() == std::map<std::string, std::string>{{"kv a", "2 15"}, {"kv b", "1 1"}, {"r2 a", "1 7"}});

  // A rewrite keeps `created`, replaces the rest; a remove drops the row and its counter share.
  db.flush({put("kv", "a", "k1", 3, 200), remove("kv", "a", "k2", 200), remove("kv", "b", "k", 200),
            remove("kv", "a", "never", 200)});
  rows = db.rows();
  CHECK(rows["a:k1"] == "3|NULL|100|200|NULL");
  CHECK(rows.count("a:k2") == 0);
  CHECK(db.counters() == std::map<std::string, std::string>{{"kv a", "1 3"}, {"r2 a", "1 7"}});
  CHECK(db.counters() == db.counted());
}

TEST_CASE("registry flush: a batch sent twice (a retry after a lost answer) changes nothing more") {
  Db db;
  std::vector<RegistryChange> changes = {put("kv", "a", "x", 10, 100), put("kv", "a", "y", 4, 100),
                                         remove("kv", "a", "z", 100)};
  db.flush({put("kv", "a", "z", 9, 50)});
  db.flush(changes);
  const auto rows = db.rows();
  const auto counters = db.counters();
  db.flush(changes);
  CHECK(db.rows() == rows);
  CHECK(db.counters() == counters);
  CHECK(counters == std::map<std::string, std::string>{{"kv a", "2 14"}});
}

TEST_CASE("registry flush: a change older than the row (another replica wrote since) does not replace it") {
  Db db;
  db.flush({put("kv", "a", "k", 10, 500)});       // replica B's later put, flushed first
  db.flush({put("kv", "a", "k", 99, 400)});       // replica A's earlier put, flushed late
  CHECK(db.rows()["a:k"] == "10|NULL|500|500|NULL");
  db.flush({remove("kv", "a", "k", 450)});         // an older delete does not remove the newer row
  CHECK(db.rows().count("a:k") == 1);
  CHECK(db.counters() == db.counted());
  db.flush({remove("kv", "a", "k", 600)});
  CHECK(db.rows().empty());
  CHECK(db.counters().empty());  // empty counters are dropped
}

TEST_CASE("registry flush: a put on one replica and a later delete on another end deleted, in either flush order") {
  Db db;
  db.flush({remove("kv", "a", "k", 500)}, "", 1000);  // replica B's delete, flushed first
  db.flush({put("kv", "a", "k", 10, 400)}, "", 1000);  // replica A's earlier put, flushed late
  CHECK(db.rows().empty());
  CHECK(db.counters().empty());
  db.flush({put("kv", "a", "k", 3, 600)}, "", 1000);   // a put after the delete lands
  CHECK(db.rows().count("a:k") == 1);
  CHECK(db.counters() == db.counted());
  // Tombstones are forgotten after an hour.
  CHECK(db.run({"SELECT count(*) FROM \"era:resource_tombstones\"", {}})[0][0] == "1");
  db.flush({put("kv", "a", "other", 1, 700)}, "", 500 + 3600 * 1000 + 1);
  CHECK(db.run({"SELECT count(*) FROM \"era:resource_tombstones\"", {}})[0][0] == "0");
}

TEST_CASE("registry flush: changes are chunked so no parameter passes D1's value limit; every chunk lands") {
  std::vector<RegistryChange> changes;
  for (int i = 0; i < 300; ++i)
    changes.push_back(put(i % 2 ? "kv" : "r2", "ns", "key-" + std::to_string(i), i, 100, std::string(R"({"p":")") +
                                                                                           std::string(200, 'm') + "\"}"));
  const size_t limit = 8000;
  auto batches = CloudflareRegistry::flush_batches(changes, "host:1", 1000, limit);
  CHECK(batches.size() > 5);
  for (const auto& b : batches)
    for (const auto& st : b)
      for (const auto& p : st.params) CHECK(p.size() <= limit);
  // The default limit sits under D1's 2,000,000 bytes.
  CHECK(CloudflareRegistry::kMaxParamBytes < 2000000);
  Db db;
  db.flush(changes, "host:1", 1000, limit);
  CHECK(db.rows().size() == 300);
  CHECK(db.counters() == db.counted());
}

TEST_CASE("registry flush: the replica marker rides along and stale markers are reported, free of a call") {
  Db db;
  // A flush with nothing queued but a marker to refresh is one batch holding only the marker.
  auto only_marker = CloudflareRegistry::flush_batches({}, "host:1", 1000);
  REQUIRE(only_marker.size() == 1);
  CHECK(only_marker[0].size() == 2);
  CHECK(CloudflareRegistry::flush_batches({}, "", 1000).empty());  // one-shot commands: nothing to send

  const int64_t hour = CloudflareRegistry::kStaleMarkerSeconds * 1000;
  db.flush({put("kv", "a", "k", 1, 10)}, "old:1", 1000);  // a replica that flushed once, long ago
  db.flush({}, "live:1", 1000 + hour);                      // another, an hour later
  auto stale = db.flush({}, "me:1", 2000 + hour);
  REQUIRE(stale.size() == 1);
  CHECK(stale[0][0] == "old:1");
  CHECK(db.run({"SELECT id, seen FROM \"era:registry_replicas\" WHERE id = 'me:1'", {}})[0][1] ==
        std::to_string(2000 + hour));
  // Marked repaired, it is not reported again until it flushes again.
  db.run({"UPDATE \"era:registry_replicas\" SET repaired = 5000 WHERE id = 'old:1'", {}});
  CHECK(db.flush({}, "me:1", 3000 + hour).empty());
}

TEST_CASE("registry flush: keys with quotes, unicode, control bytes and JSON metadata survive exactly") {
  Db db;
  const std::string odd = std::string("q\"'\\ \xc3\xa9\x01 end");
  db.flush({put("kv", "a", odd, 3, 1, std::string(R"({"s":"\"x\"","n":[1,2]})")), put("r2", "a", "a/b/" + odd, 4, 1)});
  auto r = db.run({"SELECT key, metadata FROM \"era:resources\" WHERE type = 'kv'", {}});
  REQUIRE(r.size() == 1);
  CHECK(r[0][0] == odd);
  CHECK(r[0][1] == R"({"s":"\"x\"","n":[1,2]})");
  CHECK(db.run({"SELECT name FROM \"era:resources\" WHERE type = 'r2'", {}})[0][0] == "a/a/b/" + odd);
}

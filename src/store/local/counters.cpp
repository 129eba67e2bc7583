#include "store/local/counters.h"

namespace era::counters {

void create_schema(sqlite::Db& db) {
  db.exec(R"sql(
    CREATE TABLE IF NOT EXISTS resource_counters (
      type  TEXT NOT NULL,
      ns    TEXT NOT NULL,
      count INTEGER NOT NULL,
      bytes INTEGER NOT NULL,
      PRIMARY KEY (type, ns)
    ) WITHOUT ROWID;
  )sql");
}

void bump(sqlite::Db& db, const char* type, const std::string& ns, int64_t dcount, int64_t dbytes) {
  if (dcount == 0 && dbytes == 0) return;
  {
    sqlite::StmtUse st(db.cached(R"sql(
      INSERT INTO resource_counters (type, ns, count, bytes) VALUES (?1, ?2, ?3, ?4)
      ON CONFLICT(type, ns) DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes)sql"));
    st->bind_text(1, type).bind_text(2, ns).bind(3, dcount).bind(4, dbytes).run();
  }
  if (dcount < 0) {
    sqlite::StmtUse st(db.cached("DELETE FROM resource_counters WHERE type = ?1 AND ns = ?2 AND count <= 0"));
    st->bind_text(1, type).bind_text(2, ns).run();
  }
}

}  // namespace era::counters

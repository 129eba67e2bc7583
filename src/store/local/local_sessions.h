// LocalSessions: SessionStore in the local metadata database, written through the shared
// sqlite::Writer (so session writes group-commit with KV writes and never see SQLITE_BUSY).
#pragma once

#include "store/sql/sqlite.h"
#include "store/session_store.h"

namespace era {

class LocalSessions : public SessionStore {
 public:
  LocalSessions(sqlite::Writer& writer, sqlite::ReaderPool& readers);

  void create(const SessionRecord& session) override;
  std::optional<SessionRecord> get(const std::string& id, int64_t now) override;
  std::vector<SessionRecord> list(int64_t now, const std::string& after, int limit) override;
  bool revoke(const std::string& id, int64_t now, int64_t until) override;
  std::vector<std::string> revoked(int64_t now) override;
  int64_t sweep(int64_t now) override;

  static void create_schema(sqlite::Db& db);

 private:
  sqlite::Writer& writer_;
  sqlite::ReaderPool& readers_;
};

}  // namespace era

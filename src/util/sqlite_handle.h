// The one RAII owner of SQLite's raw handles, for every layer that touches SQLite: store/sql/sqlite.h
// (connections, statements, pools, the writer) builds on it, and ns/sql_guard.cpp (which prepares on a
// bare sqlite3* and may not include store/) uses it directly. Light on purpose: sqlite3.h and <memory>.
#pragma once

#include <sqlite3.h>

#include <memory>

namespace era::sqlite {

// Owns a prepared statement (finalized when it leaves scope); null when a prepare produced none.
struct Finalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, Finalize>;

// Owns a connection (closed when it leaves scope; close_v2 waits for its statements to be finalized).
struct Close {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, Close>;

}  // namespace era::sqlite

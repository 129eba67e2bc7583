// From one D1 file for every namespace (data_dir/d1.sqlite3) to a file per namespace: run at start,
// before any call, so nothing writes either layout meanwhile.
//
// Each namespace is copied into <ns>.sqlite3.tmp (tables with their rows and rowids, their
// AUTOINCREMENT counters, then indexes, views and triggers, so no trigger fires during the copy, and
// its rows of "era:d1_objects"), committed, closed and renamed into place. Only when every namespace
// is in place is the old file renamed to d1.sqlite3.migrated; a crash before that leaves it where it
// was, and the next start copies everything again from it.
#include <filesystem>
#include <map>

#include "store/local/local_d1.h"
#include "store/sql/guarded_sql.h"
#include "util/log.h"

namespace era {
namespace {

namespace fs = std::filesystem;

std::string quoted(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::vector<std::string> strings(sqlite::Db& db, const std::string& sql, const std::string& arg = {}) {
  sqlite::Stmt s(db, sql.c_str());
  if (!arg.empty()) s.bind_text(1, arg);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

void copy_namespace(const std::string& old_path, const std::string& ns, const std::vector<sql::SchemaObject>& objects,
                    const std::string& target) {
  const std::string tmp = target + ".tmp";
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(tmp + suffix);
  {
    sqlite::Db db(tmp);
    db.exec("PRAGMA foreign_keys=OFF");
    sqlite::Stmt attach(db, "ATTACH DATABASE ?1 AS old");
    attach.bind_text(1, old_path).run();
    db.exec("BEGIN IMMEDIATE");
    db.exec(std::string("CREATE TABLE IF NOT EXISTS ") + sqlfront::kObjectsTable +
            " (physical TEXT PRIMARY KEY COLLATE NOCASE, ns TEXT NOT NULL, type TEXT NOT NULL) WITHOUT ROWID");
    // Tables first, with their rows; then what refers to them.
    for (const char* type : {"table", "index", "view", "trigger"}) {
      for (const auto& o : objects) {
        if (o.type != type) continue;
        auto sql = strings(db, "SELECT sql FROM old.sqlite_master WHERE name = ?1 AND sql IS NOT NULL", o.physical);
        if (!sql.empty()) db.exec(sql[0]);  // an automatic index has no SQL: its CREATE TABLE makes it
        if (o.type == "table") {
          std::string cols;
          for (const auto& c : strings(db, "SELECT name FROM pragma_table_xinfo(?1, 'old') WHERE hidden = 0", o.physical))
            cols += (cols.empty() ? "" : ", ") + quoted(c);
          // Rowids are kept too (a table without an INTEGER PRIMARY KEY may be referred to by them).
          const bool rowid =
              strings(db, "SELECT 1 FROM pragma_table_list WHERE schema = 'old' AND name = ?1 AND wr = 1", o.physical)
                  .empty();
          const std::string t = quoted(o.physical);
          db.exec("INSERT INTO main." + t + " (" + (rowid ? "rowid, " : "") + cols + ") SELECT " +
                  (rowid ? "rowid, " : "") + cols + " FROM old." + t);
          if (!strings(db, "SELECT name FROM old.sqlite_master WHERE name = 'sqlite_sequence'").empty() &&
              !strings(db, "SELECT name FROM main.sqlite_master WHERE name = 'sqlite_sequence'").empty()) {
            // The copy itself set the counter to the highest rowid copied; the old one may be higher.
            sqlite::Stmt clear(db, "DELETE FROM main.sqlite_sequence WHERE name = ?1");
            clear.bind_text(1, o.physical).run();
            sqlite::Stmt seq(db, "INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq FROM old.sqlite_sequence "
                                 "WHERE name = ?1");
            seq.bind_text(1, o.physical).run();
          }
        }
        sqlite::Stmt row(db, "INSERT INTO \"era:d1_objects\" (physical, ns, type) VALUES (?1, ?2, ?3)");
        row.bind_text(1, o.physical).bind_text(2, ns).bind_text(3, o.type).run();
      }
    }
    db.exec("COMMIT");
    db.exec("DETACH DATABASE old");
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  for (const char* suffix : {"-wal", "-shm"}) fs::remove(tmp + suffix);
  fs::rename(tmp, target);
}

}  // namespace

void LocalD1::migrate_single_file(const std::string& old_path, const std::string& dir) {
  fs::create_directories(dir);
  std::map<std::string, std::vector<sql::SchemaObject>> by_ns;
  {
    // Fold a WAL left by the old layout into the file first, so the copy reads everything.
    sqlite::Db old(old_path);
    old.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    if (strings(old, "SELECT name FROM sqlite_master WHERE name = 'era:d1_objects'").empty()) {
      log::warn("D1: " + old_path + " holds no ownership table; nothing to migrate");
    } else {
      sqlite::Stmt s(old, "SELECT physical, ns, type FROM \"era:d1_objects\"");
      while (s.step()) by_ns[s.text(1)].push_back({s.text(0), s.text(1), s.text(2)});
    }
  }
  for (const auto& [ns, objects] : by_ns) copy_namespace(old_path, ns, objects, file_of(dir, ns));
  fs::rename(old_path, old_path + ".migrated");
  for (const char* suffix : {"-wal", "-shm"}) fs::remove(old_path + suffix);
  log::info("D1: moved " + std::to_string(by_ns.size()) + " namespace(s) from " + old_path +
            " to a file each in " + dir + "; the old file is now " + old_path + ".migrated");
}

}  // namespace era

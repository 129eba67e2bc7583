// Fuzz target: the D1 SQL front both stores use (store/sql/guarded_sql.h), with a differential oracle.
//
// Input: SQL text namespace "a" sends to D1 exec. It goes through the real front: the call's limits
// and rewrite (check_and_rewrite), then run_guarded, which prepares each statement under the guard
// on the connection and hands it to an executor, then diffs ownership and checks dependents after
// DDL — the very code LocalD1 and the cloudflare store run. The executor here steps each statement on
// a real SQLite database configured as the stores configure one (configure_connection: the guard's
// hardening, D1's limits, foreign keys on; one transaction per call), and records the answers. That
// database also holds other namespaces' tables ("victims"), full of canary values. The oracle:
//   1. no result holds a canary ("CANARY"), nor an 8-byte blob that is an address inside a loaded
//      module (fts3_tokenizer's pointer leak);
//   2. once a call the front accepted has committed, the victims' rows, their sqlite_master rows,
//      sqlite_sequence rows and the ownership table are unchanged, and no table references a victim
//      table through a foreign key. (Checked after the call, not inside it: while a statement runs the
//      guard's authorizer is on the connection and would deny the bookkeeping reads; and a call the
//      front refuses after running a statement, e.g. DDL whose dependents check fails, leaves its
//      effects only until the rollback, as the stores' own transaction does.);
//   3. differential: the same input run on a second database whose victims hold other values, other
//      row counts and another table name gives exactly the same answers (rows, errors, messages).
//      What namespace "a" sees must not depend on what other namespaces hold, nor on which tables
//      they have. An answer that also differs between two runs on the same database (random(),
//      'now') is not counted.
// Crashes (ASan/UBSan) and hangs (libFuzzer's -timeout: a statement loop that does not advance is one)
// are findings too.
//
// ERA_FUZZ_FINDINGS=<dir>: survey mode for long runs: a violation is written to <dir> (one file per
// kind of violation and statement shape, with a .txt saying what was seen) and fuzzing goes on,
// instead of stopping at the first one (the default, and what scripts/test does).
#include <dlfcn.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ns/sql_guard.h"
#include "ns/sql_rewrite.h"
#include "ns/sql_tokenizer.h"
#include "store/sql/guarded_sql.h"
#include "util/error.h"
#include "util/sqlite_handle.h"

namespace {

using namespace era;

constexpr const char* kNs = "a";
constexpr size_t kMaxResultBytes = 1 << 20;
constexpr int kMaxProgressTicks = 3000;  // x 1000 VM steps: the fuzzer's stand-in for the statement timeout

// Namespace a's own objects, created first (so their pages are the same in both databases).
const char* kOwnSchema = R"(
CREATE TABLE "era:d1_objects" (physical TEXT PRIMARY KEY COLLATE NOCASE, ns TEXT NOT NULL, type TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE a_mine (id INTEGER PRIMARY KEY, x TEXT, y);
INSERT INTO a_mine VALUES (1, 'one', 1), (2, 'two', 2.5), (3, NULL, x'00ff');
CREATE TABLE a_kids (id INTEGER PRIMARY KEY AUTOINCREMENT, mine_id REFERENCES a_mine(id) ON DELETE CASCADE, z TEXT UNIQUE);
CREATE INDEX a_kids_z ON a_kids (z);
CREATE VIEW a_v AS SELECT x, y FROM a_mine;
CREATE TRIGGER a_t AFTER INSERT ON a_mine BEGIN INSERT INTO a_kids (mine_id, z) VALUES (new.id, 'k' || new.id); END;
INSERT INTO a_mine VALUES (4, 'four', 4);
)";

struct Object {
  const char* physical;
  const char* ns;
  const char* type;
};
const Object kOwnObjects[] = {{"a_mine", "a", "table"}, {"a_kids", "a", "table"}, {"a_kids_z", "a", "index"},
                              {"a_v", "a", "view"},     {"a_t", "a", "trigger"}};

// The victims: namespace b (tables, index, view, trigger, AUTOINCREMENT), a_b (whose physical names
// start with "a_", namespace a's prefix), json (its table "each" is physically json_each) and pragma
// (its "table_info" is physically pragma_table_info). `v` is 1 or 2: the two databases differ in
// values, row counts and in the name of b's extra table.
std::string victim_schema(int v) {
  const std::string c = "CANARY" + std::to_string(v) + "_";
  std::string rows;
  for (int i = 1; i <= (v == 1 ? 3 : 5); ++i)
    rows += std::string(i > 1 ? "," : "") + "(" + std::to_string(i) + ", '" + c + "secret" + std::to_string(i) +
            "', " + std::to_string(v * 1000 + i) + ", x'" + (v == 1 ? "c0ffee" : "deadbeef") + "')";
  return "CREATE TABLE b_secret (id INTEGER PRIMARY KEY, v TEXT, n INTEGER, blob BLOB);\n"
         "INSERT INTO b_secret VALUES " + rows + ";\n"
         "CREATE TABLE b_items (id INTEGER PRIMARY KEY AUTOINCREMENT, secret_id REFERENCES b_secret(id), note TEXT UNIQUE);\n"
         "INSERT INTO b_items (secret_id, note) VALUES (1, '" + c + "note1')" + (v == 2 ? ", (2, '" + c + "note2')" : "") + ";\n"
         "CREATE INDEX b_items_note ON b_items (note);\n"
         "CREATE VIEW b_view AS SELECT v, n FROM b_secret;\n"
         "CREATE TRIGGER b_trig AFTER INSERT ON b_items BEGIN UPDATE b_secret SET n = n + 1 WHERE id = new.secret_id; END;\n"
         "CREATE TABLE " + std::string(v == 1 ? "b_extra_one" : "b_extra_two") + " (k TEXT);\n"
         "INSERT INTO " + std::string(v == 1 ? "b_extra_one" : "b_extra_two") + " VALUES ('" + c + "extra');\n"
         "CREATE TABLE a_b_q (k PRIMARY KEY, v) WITHOUT ROWID;\n"
         "INSERT INTO a_b_q VALUES ('" + c + "q', " + std::to_string(v) + ");\n"
         "CREATE TABLE json_each (key, value);\n"
         "INSERT INTO json_each VALUES ('" + c + "each', " + std::to_string(v * 7) + ");\n"
         "CREATE TABLE pragma_table_info (cid, name);\n"
         "INSERT INTO pragma_table_info VALUES (" + std::to_string(v) + ", '" + c + "ti');\n";
}

std::vector<Object> victim_objects(int v) {
  return {{"b_secret", "b", "table"}, {"b_items", "b", "table"},         {"b_items_note", "b", "index"},
          {"b_view", "b", "view"},    {"b_trig", "b", "trigger"},        {v == 1 ? "b_extra_one" : "b_extra_two", "b", "table"},
          {"a_b_q", "a_b", "table"},  {"json_each", "json", "table"}, {"pragma_table_info", "pragma", "table"}};
}

bool survey() { return std::getenv("ERA_FUZZ_FINDINGS") != nullptr; }

// A serialized database image per variant, built once.
struct Image {
  std::vector<unsigned char> bytes;
  std::vector<sql::SchemaObject> objects;
  std::set<std::string> victim_tables;  // lower-cased
  std::set<std::string> victim_names;   // every victim object, lower-cased
  std::string victim_state;             // victim_state() of the fresh database
};

void must(int rc, sqlite3* db, const char* what) {
  if (rc == SQLITE_OK) return;
  std::fprintf(stderr, "fuzz setup failed (%s): %s\n", what, sqlite3_errmsg(db));
  std::abort();
}

std::string victim_state(sqlite3* db, const Image& img);

Image build_image(int v) {
  sqlite3* db = nullptr;
  must(sqlite3_open(":memory:", &db), db, "open");
  Image img;
  std::string sql = kOwnSchema + victim_schema(v);
  for (const auto& o : kOwnObjects) img.objects.push_back({o.physical, o.ns, o.type});
  for (const auto& o : victim_objects(v)) {
    img.objects.push_back({o.physical, o.ns, o.type});
    img.victim_names.insert(sql::ascii_lower(o.physical));
    if (std::string(o.type) == "table") img.victim_tables.insert(sql::ascii_lower(o.physical));
  }
  for (const auto& o : img.objects)
    sql += "INSERT INTO \"era:d1_objects\" VALUES ('" + o.physical + "', '" + o.ns + "', '" + o.type + "');\n";
  must(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), db, "schema");
  sqlite3_int64 size = 0;
  unsigned char* p = sqlite3_serialize(db, "main", &size, 0);
  if (!p) must(SQLITE_NOMEM, db, "serialize");
  img.bytes.assign(p, p + size);
  sqlite3_free(p);
  img.victim_state = victim_state(db, img);
  sqlite3_close(db);
  return img;
}

const Image& image(int v) {
  static const Image one = build_image(1), two = build_image(2);
  return v == 1 ? one : two;
}

void add_value(std::string& out, sqlite3_stmt* s, int i) {
  switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER: out += "i" + std::to_string(sqlite3_column_int64(s, i)); break;
    case SQLITE_FLOAT: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "f%.17g", sqlite3_column_double(s, i));
      out += buf;
      break;
    }
    case SQLITE_NULL: out += "n"; break;
    default: {
      const bool blob = sqlite3_column_type(s, i) == SQLITE_BLOB;
      const void* p = blob ? sqlite3_column_blob(s, i) : static_cast<const void*>(sqlite3_column_text(s, i));
      const int n = sqlite3_column_bytes(s, i);
      out += (blob ? "b" : "t") + std::to_string(n) + ":";
      if (p) out.append(static_cast<const char*>(p), static_cast<size_t>(n));
    }
  }
  out += "|";
}

// Rows of an unguarded bookkeeping query, sorted, as one string.
std::string dump(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
    std::string err = std::string("<") + sqlite3_errmsg(db) + ">";
    sqlite3_finalize(s);
    return err;
  }
  std::vector<std::string> rows;
  while (sqlite3_step(s) == SQLITE_ROW) {
    std::string r;
    for (int i = 0; i < sqlite3_column_count(s); ++i) add_value(r, s, i);
    rows.push_back(std::move(r));
  }
  sqlite3_finalize(s);
  std::sort(rows.begin(), rows.end());
  std::string out;
  for (auto& r : rows) out += r + "\n";
  return out;
}

std::string sql_list(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "'" : ",'") + n + "'";
  return out;
}

// Everything of the victims a statement of namespace a must never change.
std::string victim_state(sqlite3* db, const Image& img) {
  std::string out;
  for (const auto& t : img.victim_tables) out += t + ":\n" + dump(db, "SELECT * FROM main." + sql::quote_ident(t));
  const std::string names = sql_list(img.victim_names), tables = sql_list(img.victim_tables);
  out += "schema:\n" + dump(db, "SELECT type, name, tbl_name, rootpage, sql FROM main.sqlite_master WHERE lower(name) IN (" +
                                    names + ") OR lower(tbl_name) IN (" + tables + ")");
  out += "sequence:\n" + dump(db, "SELECT name, seq FROM main.sqlite_sequence WHERE lower(name) IN (" + tables + ")");
  out += "owners:\n" + dump(db, "SELECT physical, ns, type FROM main.\"era:d1_objects\"");
  out += "foreign keys to victims:\n" +
         dump(db, "SELECT m.name, f.\"table\" FROM main.sqlite_master AS m, pragma_foreign_key_list(m.name) AS f "
                  "WHERE m.type = 'table' AND lower(m.name) NOT IN (" + tables + ") AND lower(f.\"table\") IN (" +
                  tables + ")");
  return out;
}

struct Finding {
  std::string kind;    // stable: canary_returned, address_returned, victim_changed, differs
  std::string detail;  // what was seen
};

// One run of the input on a fresh copy of image `v`: the answers, as one comparable string.
struct Run {
  std::string answers;
  std::vector<Finding> findings;
};

int progress(void* ticks) { return ++*static_cast<int*>(ticks) > kMaxProgressTicks; }

bool is_module_address(const void* p, int n) {
  if (n != 8) return false;
  uintptr_t addr = 0;
  std::memcpy(&addr, p, 8);
  if (addr < 4096) return false;
  Dl_info info;
  return dladdr(reinterpret_cast<void*>(addr), &info) != 0 && info.dli_fname != nullptr;
}

// The D1 limits of both stores (their defaults), as the front applies them.
const D1Limits& limits() {
  static const D1Limits l;
  return l;
}

// What a store's executor does with each statement the front lets through, recorded as answers:
// step it (with a progress budget standing in for the statement timeout) and check every value it
// returns against the oracle. It notes the statements that may write; the victims are checked once
// the call has committed.
class Recorder : public sqlfront::Executor {
 public:
  Recorder(sqlite3* h, const Image& img, Run& out) : h_(h), img_(img), out_(out) {}
  sqlite3* schema() override { return h_; }

  bool run(size_t, std::string_view text, sqlite3_stmt* stmt, const SqlStatement&, bool changes_schema) override {
    ++n_;
    const bool writes = !sqlite3_stmt_readonly(stmt);
    out_.answers += "stmt " + std::to_string(n_) + (writes ? " rw" : " ro") + "\n";
    for (int i = 0; i < sqlite3_column_count(stmt); ++i) out_.answers += std::string(sqlite3_column_name(stmt, i)) + ",";
    out_.answers += "\n";
    int ticks = 0;
    sqlite3_progress_handler(h_, 1000, progress, &ticks);
    size_t bytes = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        add_value(row, stmt, i);
        inspect(stmt, i);
      }
      bytes += row.size();
      out_.answers += row + "\n";
      if (bytes > kMaxResultBytes) {
        sqlite3_progress_handler(h_, 0, nullptr, nullptr);
        throw ApiError(400, "result_too_large", "result too large");
      }
    }
    sqlite3_progress_handler(h_, 0, nullptr, nullptr);
    if (rc != SQLITE_DONE) {
      if (ticks > kMaxProgressTicks) throw ApiError(408, "statement_timeout", "interrupted");
      throw sqlfront::sql_error(h_, kNs);
    }
    out_.answers += "changes " + std::to_string(sqlite3_changes64(h_)) + " last " +
                    std::to_string(sqlite3_last_insert_rowid(h_)) + "\n";
    // A read-only statement cannot change them (SQLite's own verdict, from the prepared program).
    if (writes || changes_schema) wrote_ += "statement " + std::to_string(n_) + ": " + std::string(text.substr(0, 300)) + "\n";
    return true;
  }

  // The statements that may have written, for a finding's message.
  const std::string& wrote() const { return wrote_; }

  void check_victims(const std::string& after_what) {
    const std::string now = victim_state(h_, img_);
    if (now != img_.victim_state)
      out_.findings.push_back({"victim_changed", "after " + after_what + "\nbefore:\n" + img_.victim_state + "after:\n" + now});
  }

 private:
  void inspect(sqlite3_stmt* stmt, int i) {
    const int t = sqlite3_column_type(stmt, i);
    if (t != SQLITE_TEXT && t != SQLITE_BLOB) return;
    const void* vp = sqlite3_column_blob(stmt, i);
    const int vn = sqlite3_column_bytes(stmt, i);
    const std::string_view val(static_cast<const char*>(vp), vp ? static_cast<size_t>(vn) : 0);
    if (val.find("CANARY") != std::string_view::npos)
      out_.findings.push_back({"canary_returned", "statement " + std::to_string(n_) + " returned '" +
                                                      std::string(val.substr(0, 200)) + "'"});
    if (t == SQLITE_BLOB && vp && is_module_address(vp, vn))
      out_.findings.push_back({"address_returned", "statement " + std::to_string(n_) +
                                                       " returned an address inside a loaded module"});
  }

  sqlite3* h_;
  const Image& img_;
  Run& out_;
  int n_ = 0;
  std::string wrote_;
};

Run run_on(int v, const std::vector<sqlfront::Unit>& units) {
  const Image& img = image(v);
  Run out;
  sqlite3* raw = nullptr;
  must(sqlite3_open(":memory:", &raw), raw, "open");
  const sqlite::DbPtr db(raw);
  sqlite3* h = db.get();
  auto* buf = static_cast<unsigned char*>(sqlite3_malloc64(img.bytes.size()));
  std::memcpy(buf, img.bytes.data(), img.bytes.size());
  must(sqlite3_deserialize(h, "main", buf, static_cast<sqlite3_int64>(img.bytes.size()),
                           static_cast<sqlite3_int64>(img.bytes.size()),
                           SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE),
       h, "deserialize");
  sqlfront::configure_connection(h, limits());  // as both stores configure a connection for user SQL
  sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SEED, 12345, nullptr);

  sql::ObjectRegistry registry;
  registry.replace_all(img.objects);
  Recorder rec(h, img, out);
  // As the stores: one transaction per call, rolled back on the first error.
  must(sqlite3_exec(h, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), h, "begin");
  bool failed = false;
  try {
    sqlfront::Overlay overlay(registry);
    const sqlfront::Deadline deadline(limits());
    sqlfront::run_guarded(kNs, units, rec, overlay, deadline);
  } catch (const ApiError& e) {
    failed = true;
    out.answers += "error " + std::to_string(e.status()) + " " + e.code() + ": " + e.what() + "\n";
  }
  sqlite3_progress_handler(h, 0, nullptr, nullptr);
  sqlite3_exec(h, failed ? "ROLLBACK" : "COMMIT", nullptr, nullptr, nullptr);
  if (!failed) rec.check_victims("the commit of a call whose statements that may write were:\n" + rec.wrote());
  return out;
}

// The statement's shape for grouping survey findings: its first few keywords.
std::string shape(const std::string& sql_text) {
  std::string out;
  int words = 0;
  for (const auto& t : sql::tokenize(sql_text)) {
    if (t.kind != sql::Tok::Ident || !sql::is_keyword(t.text)) continue;
    out += (out.empty() ? "" : "_") + sql::ascii_lower(t.text);
    if (++words == 4) break;
  }
  return out.empty() ? "none" : out;
}

void report(const std::string& input, const Finding& f) {
  const char* dir = std::getenv("ERA_FUZZ_FINDINGS");
  if (!dir) {
    std::fprintf(stderr, "\n==== SQL guard oracle violation: %s\n%s\n==== input (namespace a):\n%s\n", f.kind.c_str(),
                 f.detail.c_str(), input.c_str());
    std::abort();
  }
  static std::set<std::string> seen;
  const std::string key = f.kind + "-" + shape(input);
  if (!seen.insert(key).second || seen.size() > 500) return;
  std::ofstream(std::string(dir) + "/" + key + ".sql", std::ios::binary) << input;
  std::ofstream(std::string(dir) + "/" + key + ".txt", std::ios::binary) << f.kind << "\n" << f.detail << "\n";
  std::fprintf(stderr, "finding %s (%zu kinds so far)\n", key.c_str(), seen.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > limits().max_sql_bytes) return -1;  // refused by the front's first rule: not worth fuzzing
  const SqlStatement st{std::string(reinterpret_cast<const char*>(data), size), {}};
  const std::string& input = st.sql;
  // The front's call rules and rewrite, exactly as a D1 exec call meets them: refused here (NUL
  // bytes, too many statements, empty SQL, a rewrite error), the input never reaches SQLite.
  std::vector<sqlfront::Unit> units;
  try {
    sql::ObjectRegistry owners;
    owners.replace_all(image(1).objects);
    units = sqlfront::check_and_rewrite(sqlfront::CallKind::exec, kNs, {&st}, limits(), owners);
  } catch (const ApiError&) {
    return 0;
  }

  const Run one = run_on(1, units);
  const Run two = run_on(2, units);
  std::vector<Finding> findings = one.findings;
  findings.insert(findings.end(), two.findings.begin(), two.findings.end());
  if (one.answers != two.answers) {
    const Run again = run_on(1, units);  // the same database again: is the statement deterministic?
    if (again.answers == one.answers)
      findings.push_back({"differs", "answers with the first victims' data:\n" + one.answers.substr(0, 2000) +
                                         "\nanswers with the second victims' data:\n" + two.answers.substr(0, 2000)});
  }
  if (findings.empty()) return 0;
  report(input, findings.front());
  return survey() ? -1 : 0;
}

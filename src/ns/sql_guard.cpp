#include "ns/sql_guard.h"

#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "ns/names.h"
#include "ns/sql_rewrite.h"
#include "ns/sql_tokenizer.h"
#include "util/sqlite_handle.h"

namespace era::sql {
namespace {

// SQLite's own bookkeeping tables. It reads and writes them on the user's behalf (CREATE writes
// sqlite_master, ALTER/DROP rewrite it and sqlite_sequence, json_each reads it on first use).
bool is_internal(std::string_view t) {
  return iequals(t, "sqlite_master") || iequals(t, "sqlite_temp_master") || iequals(t, "sqlite_schema") ||
         iequals(t, "sqlite_temp_schema") || iequals(t, "sqlite_sequence");
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// PRAGMAs a namespace may run: read-only introspection of its own tables (argument checked for
// ownership) and the foreign-key switches D1 documents. Everything else is connection-wide or
// database-wide state, or reads other namespaces' objects.
bool pragma_allowed(std::string_view p) {
  for (std::string_view k : {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
                             "foreign_key_list", "foreign_key_check", "foreign_keys", "defer_foreign_keys"})
    if (iequals(p, k)) return true;
  return false;
}
// Why a reserved name is refused. Worded without the reserved prefixes themselves, which user_message
// would take for the namespace's own prefix in namespace "json" or "pragma".
constexpr std::string_view kReservedWhy =
    "with the namespace prefix added it would shadow one of SQLite's own tables or table-valued functions "
    "(names that begin with sqlite, pragma, json or jsonb and an underscore, dbstat, generate_series and the "
    "like); choose another name or namespace";

bool pragma_needs_table(std::string_view p) { return !iequals(p, "foreign_keys") && !iequals(p, "defer_foreign_keys"); }

// Table-valued functions a namespace may call (D1 documents the JSON ones). Every other eponymous
// virtual table (pragma_*, dbstat, fts3tokenize, sqlite_dbpage, ...) reads the whole shared database
// or native state.
bool allowed_table_function(std::string_view t) { return iequals(t, "json_each") || iequals(t, "json_tree"); }

// The functions D1 documents (developers.cloudflare.com/d1/sql-api/sql-statements: SQLite's core
// scalar, aggregate, date/time, window, math and JSON functions, FTS5's auxiliary functions), as
// workerd, which runs D1, allows them. Left out: load_extension; fts3_tokenizer and FTS3/4's
// matchinfo/offsets/optimize; sqlite_compileoption_*, sqlite_source_id, sqlite_version, sqlite_offset
// (build details); total_changes (counts every namespace's writes on a shared connection); rtreecheck
// (R*Tree tables are not offered). The sqlite_rename_* / sqlite_drop_column functions are SQLite's own,
// used by ALTER TABLE (user SQL cannot call them).
const std::unordered_set<std::string>& allowed_functions() {
  static const std::unordered_set<std::string> set = {
      // https://www.sqlite.org/lang_corefunc.html
      "abs", "changes", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "ifnull", "iif",
      "instr", "last_insert_rowid", "length", "like", "likelihood", "likely", "lower", "ltrim", "max", "min",
      "nullif", "octet_length", "printf", "quote", "random", "randomblob", "replace", "round", "rtrim", "sign",
      "soundex", "substr", "substring", "trim", "typeof", "unhex", "unicode", "unlikely", "upper", "zeroblob",
      // https://www.sqlite.org/lang_datefunc.html
      "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff", "current_date",
      "current_time", "current_timestamp",
      // https://www.sqlite.org/lang_aggfunc.html
      "avg", "count", "group_concat", "string_agg", "sum", "total",
      // https://www.sqlite.org/windowfunctions.html#biwinfunc
      "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value",
      "last_value", "nth_value",
      // https://www.sqlite.org/lang_mathfunc.html
      "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos", "cosh", "degrees",
      "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow", "power", "radians", "sin", "sinh",
      "sqrt", "tan", "tanh", "trunc",
      // https://www.sqlite.org/json1.html
      "json", "jsonb", "json_array", "jsonb_array", "json_array_length", "json_extract", "jsonb_extract", "->",
      "->>", "json_insert", "jsonb_insert", "json_object", "jsonb_object", "json_patch", "jsonb_patch",
      "json_remove", "jsonb_remove", "json_replace", "jsonb_replace", "json_set", "jsonb_set", "json_type",
      "json_valid", "json_quote", "json_group_array", "jsonb_group_array", "json_group_object",
      "jsonb_group_object", "json_each", "json_tree",
      // https://www.sqlite.org/fts5.html
      "match", "highlight", "bm25", "snippet",
      // SQLite's ALTER TABLE machinery (alter.c)
      "sqlite_rename_column", "sqlite_rename_table", "sqlite_rename_test", "sqlite_drop_column",
      "sqlite_rename_quotefix",
  };
  return set;
}

using sqlite::StmtPtr;

StmtPtr prepare_raw(sqlite3* db, const std::string& sql, std::string* err) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &raw, nullptr);
  StmtPtr s(raw);
  if (rc != SQLITE_OK) {
    if (err) *err = sqlite3_errmsg(db);
    return nullptr;
  }
  return s;
}

std::string column_text(sqlite3_stmt* s, int i) {
  const unsigned char* p = sqlite3_column_text(s, i);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s, i))) : "";
}

// Rows of a query without the guard (our own bookkeeping reads), one string per column.
std::vector<std::vector<std::string>> rows(sqlite3* db, const std::string& sql, const std::string& arg = "") {
  std::string err;
  StmtPtr s = prepare_raw(db, sql, &err);
  if (!s) throw ApiError(500, "internal_error", "schema read failed: " + err);
  if (!arg.empty()) sqlite3_bind_text(s.get(), 1, arg.c_str(), static_cast<int>(arg.size()), SQLITE_TRANSIENT);
  std::vector<std::vector<std::string>> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW) {
    std::vector<std::string> r;
    for (int i = 0; i < sqlite3_column_count(s.get()); ++i) r.push_back(column_text(s.get(), i));
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

// The authorizer of one connection: the Guard that checks it now (null: none does).
struct Guard::Slot {
  sqlite3* db;
  Guard* active = nullptr;
};

namespace {
// Which connections carry the guard's authorizer. An entry lives exactly as long as its connection:
// it is removed by the destructor of a (never called) SQL function registered on the connection,
// which SQLite runs when the connection closes, so a later connection at the same address is never
// taken for one that has the authorizer.
std::mutex slots_mu;
std::unordered_map<sqlite3*, void*>& slots() {
  static auto* m = new std::unordered_map<sqlite3*, void*>;  // never destroyed: connections may close at exit
  return *m;
}
void never_called(sqlite3_context* c, int, sqlite3_value**) { sqlite3_result_null(c); }
}  // namespace

void Guard::drop_slot(void* p) {
  auto* slot = static_cast<Slot*>(p);
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    auto it = slots().find(slot->db);
    if (it != slots().end() && it->second == slot) slots().erase(it);
  }
  delete slot;
}

Guard::Slot& Guard::slot_of(sqlite3* db) {
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    if (auto it = slots().find(db); it != slots().end()) return *static_cast<Slot*>(it->second);
  }
  auto* slot = new Slot{db};
  {
    std::lock_guard<std::mutex> lock(slots_mu);
    slots()[db] = slot;
  }
  // The function's name is not on the allow-list: tenant SQL that calls it is refused like any other,
  // and DIRECTONLY keeps it out of views, triggers, defaults and generated columns as well. On failure
  // SQLite runs drop_slot itself.
  if (sqlite3_create_function_v2(db, "era_guard_slot", 0, SQLITE_UTF8 | SQLITE_DIRECTONLY, slot, &never_called,
                                 nullptr, nullptr, &Guard::drop_slot) != SQLITE_OK)
    throw ApiError(500, "internal_error", "cannot install the SQL guard on a connection");
  sqlite3_set_authorizer(db, &Guard::dispatch, slot);
  return *slot;
}

int Guard::dispatch(void* p, int action, const char* a, const char* b, const char* db, const char* trig) {
  Guard* g = static_cast<Slot*>(p)->active;
  return g ? callback(g, action, a, b, db, trig) : SQLITE_OK;
}

Guard::Guard(sqlite3* db, std::string ns, const ObjectOwners& owners, bool allow_schema_read)
    : slot_(slot_of(db)), previous_(slot_.active), ns_(std::move(ns)), owners_(owners),
      allow_schema_read_(allow_schema_read) {
  slot_.active = this;
}

Guard::~Guard() { slot_.active = previous_; }

void Guard::begin_statement() {
  created_.clear();
  internal_ddl_ = false;
  changes_schema_ = false;
  denial_.reset();
}

int Guard::callback(void* self, int action, const char* a, const char* b, const char* db, const char*) {
  return static_cast<Guard*>(self)->decide(action, a, b, db);
}

int Guard::deny(int status, const std::string& code, const std::string& message) {
  if (!denial_) denial_.emplace(status, code, user_message(message, ns_));
  return SQLITE_DENY;
}

int Guard::missing(std::string_view kind, std::string_view physical) {
  // Word for word what SQLite says about a name that does not exist (user_message normalises both the
  // same way), so a tenant cannot tell another namespace's object from no object at all.
  return deny(400, "sql_error", "no such " + std::string(kind) + ": " + std::string(physical));
}

bool Guard::mine(std::string_view physical) const {
  if (created_.count(ascii_lower(physical))) return true;
  auto owner = owners_.owner_of(physical);
  return owner && *owner == ns_;
}

int Guard::decide(int action, const char* a, const char* b, const char* db) {
  const std::string_view s1 = a ? a : "", s2 = b ? b : "";
  const bool main_db = db && iequals(db, "main");
  const std::string prefix = ns_ + "_";
  switch (action) {
    case SQLITE_SELECT:
    case SQLITE_RECURSIVE:
      return SQLITE_OK;
    case SQLITE_FUNCTION:
      if (is_allowed_function(s2)) return SQLITE_OK;
      return deny(403, "function_denied",
                  "function " + std::string(s2) +
                      "() is not allowed: D1 SQL may call SQLite's core, aggregate, window, date and time, math "
                      "and JSON functions (see docs/api.md)");
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
      return deny(400, "transaction_not_allowed",
                  "BEGIN, COMMIT, ROLLBACK and SAVEPOINT are not allowed: use batch, which runs its statements "
                  "in one transaction");
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
      return deny(403, "attach_denied", "ATTACH and DETACH are not allowed");
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TEMP_TRIGGER:
    case SQLITE_DROP_TEMP_VIEW:
      return deny(403, "temp_denied", "TEMP tables, views, indexes and triggers are not allowed");
    case SQLITE_CREATE_VTABLE:
    case SQLITE_DROP_VTABLE:
      return deny(403, "vtable_denied", "virtual tables are not allowed");
    case SQLITE_ANALYZE:
      // ANALYZE writes sqlite_stat1, one table shared by every namespace.
      return deny(403, "analyze_denied", "ANALYZE is not allowed");
    case SQLITE_PRAGMA:
      if (!pragma_allowed(s1)) return deny(403, "pragma_denied", "PRAGMA " + std::string(s1) + " is not allowed");
      if (!pragma_needs_table(s1) || mine(s2)) return SQLITE_OK;
      if (s2.empty())  // foreign_key_check with no table checks every namespace's tables
        return deny(403, "pragma_denied", "PRAGMA " + std::string(s1) + " needs the name of one of the namespace's tables");
      // About a name the namespace does not own, whether or not it exists (SQLite asks before it looks
      // the name up). Refused rather than ignored: in cloudflare mode the statement text is what is
      // sent, so only a refusal keeps it from running upstream.
      return missing(starts_with_nocase(s1, "index_") ? "index" : "table", s2);
    case SQLITE_READ:
      if (is_internal(s1)) {
        // ALTER/DROP make SQLite read its schema tables; CREATE ... AUTOINCREMENT and json_each's first
        // use read sqlite_master's ROWID only; the rewriter's filtered subquery reads sqlite_master.
        if (internal_ddl_ || iequals(s2, "ROWID") || (allow_schema_read_ && main_db && !iequals(s1, "sqlite_sequence")))
          return SQLITE_OK;
        return deny(403, "schema_access_denied", "the schema table may only be read in FROM");
      }
      if (db && !main_db) return missing("table", std::string(db) + "." + std::string(s1));
      if (mine(s1)) return SQLITE_OK;
      if (!owners_.owner_of(s1)) {
        // Owned by nobody: a table-valued function, or (reported without a database, none of its
        // columns used) a CTE, which the rewriter names with the namespace's prefix. Never a name that
        // a built-in answers to (pragma_*, dbstat, ...).
        if (allowed_table_function(s1)) return SQLITE_OK;
        if (!db && s2.empty() && s1.size() > prefix.size() && starts_with_nocase(s1, prefix) &&
            !ns::is_reserved_sql_name(s1))
          return SQLITE_OK;
      }
      return missing("table", s1);
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
      if (iequals(s1, "sqlite_master") || iequals(s1, "sqlite_temp_master")) return SQLITE_OK;  // SQLite's own edit
      if (iequals(s1, "sqlite_sequence"))
        return internal_ddl_ ? SQLITE_OK : deny(403, "schema_access_denied", "sqlite_sequence is not writable");
      if (db && !main_db) return missing("table", std::string(db) + "." + std::string(s1));
      return mine(s1) ? SQLITE_OK : missing("table", s1);
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_TRIGGER: {
      changes_schema_ = true;
      if (action == SQLITE_CREATE_TABLE && iequals(s1, "sqlite_sequence")) return SQLITE_OK;
      if (action == SQLITE_CREATE_INDEX && starts_with_nocase(s1, "sqlite_autoindex_"))
        return mine(s2) ? SQLITE_OK : missing("table", s2);
      if ((action == SQLITE_CREATE_INDEX || action == SQLITE_CREATE_TRIGGER) && !mine(s2))
        return missing("table", s2);
      if (s1.substr(0, prefix.size()) != prefix)
        return deny(403, "outside_namespace", "the name '" + std::string(s1) + "' is not in this namespace");
      if (ns::is_reserved_sql_name(s1))
        return deny(403, "reserved_name",
                    "the name '" + std::string(s1) +
                        "' is reserved: " + std::string(kReservedWhy));
      auto owner = owners_.owner_of(s1);
      if (owner && *owner != ns_)
        return deny(409, "name_conflict",
                    "the name '" + std::string(s1) +
                        "' is already used by another namespace (SQLite names compare case-insensitively)");
      created_.insert(ascii_lower(s1));
      return SQLITE_OK;
    }
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TRIGGER:
      changes_schema_ = true;
      internal_ddl_ = true;
      if (mine(s1)) return SQLITE_OK;
      return missing(action == SQLITE_DROP_TABLE  ? "table"
                     : action == SQLITE_DROP_INDEX ? "index"
                     : action == SQLITE_DROP_VIEW  ? "view"
                                                   : "trigger",
                     s1);
    case SQLITE_ALTER_TABLE:
      changes_schema_ = true;
      internal_ddl_ = true;
      return mine(s2) ? SQLITE_OK : missing("table", s2);
    case SQLITE_REINDEX:
      if (mine(s1)) return SQLITE_OK;
      return deny(400, "sql_error", "unable to identify the object to be reindexed");
    default:
      return deny(403, "not_authorized", "this statement is not allowed");
  }
}

bool is_allowed_function(std::string_view name) { return allowed_functions().count(ascii_lower(name)) > 0; }

void check_statement_text(std::string_view sql) {
  for (const auto& t : tokenize(sql)) {
    if (is_trivia(t)) continue;
    if (t.kind == Tok::Ident && iequals(t.text, "VACUUM"))
      throw ApiError(403, "vacuum_denied", "VACUUM is not allowed (the database is shared)");
    return;  // only the first word decides
  }
}

SchemaDiff diff_schema(sqlite3* db, std::string_view ns, const ObjectOwners& owners,
                       const std::vector<SchemaObject>& known) {
  SchemaDiff diff;
  const std::string prefix = std::string(ns) + "_";
  std::set<std::string> present;
  for (auto& r : rows(db, "SELECT type, name FROM main.sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                          "AND name NOT LIKE 'era:%'")) {
    const std::string& name = r[1];
    present.insert(ascii_lower(name));
    auto owner = owners.owner_of(name);
    if (owner) continue;
    // New, and carrying this namespace's prefix: this statement made it (the guard checked the prefix
    // of every CREATE; the rewriter prefixes RENAME TO, which the authorizer does not report). An
    // unowned name without the prefix is unreachable by anyone (the guard denies unowned names), so
    // it is left alone rather than claimed.
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    if (ns::is_reserved_sql_name(name))
      throw ApiError(403, "reserved_name",
                     user_message("the name '" + name +
                                      "' is reserved: " + std::string(kReservedWhy),
                                  ns));
    diff.added.push_back({name, std::string(ns), r[0]});
  }
  for (const auto& o : known)
    if (!present.count(ascii_lower(o.physical))) diff.removed.push_back(o.physical);
  return diff;
}

void check_dependents(sqlite3* db, std::string_view ns, const ObjectOwners& owners,
                      const std::vector<SchemaObject>& objects) {
  const std::string prefix = std::string(ns) + "_";
  auto user = [&](const std::string& physical) { return physical.substr(std::min(physical.size(), prefix.size())); };
  auto broken = [&](const SchemaObject& o, const std::string& why) {
    return ApiError(409, "broken_dependency", user_message(o.type + " " + user(o.physical) + " would be broken: " + why, ns));
  };
  // Prepares `sql` under the namespace's guard: a denial and a failure to compile read the same (a
  // denial is worded as SQLite words a missing name), so neither tells what another namespace holds.
  auto probe = [&](const std::string& sql, const SchemaObject& o, bool must_compile = true) {
    Guard guard(db, std::string(ns), owners, false);
    guard.begin_statement();
    std::string err;
    StmtPtr s = prepare_raw(db, sql, &err);
    if (guard.denial()) {
      if (guard.denial()->code() == "sql_error") throw broken(o, guard.denial()->what());
      throw *guard.denial();
    }
    if (!s && must_compile) throw broken(o, user_message(err, ns));
  };
  for (const auto& o : objects) {
    if (o.type == "view") {
      probe("SELECT * FROM " + quote_ident(o.physical), o);
    } else if (o.type == "table") {
      // PRAGMA statements, not pragma_*() functions: a tenant cannot create a name a statement resolves.
      for (auto& r : rows(db, "PRAGMA main.foreign_key_list(" + quote_ident(o.physical) + ")")) {
        const std::string& target = r.at(2);
        auto owner = owners.owner_of(target);
        if (!owner || *owner != ns)
          throw broken(o, "its foreign key references " + target +
                              ", which is not a table of this namespace (a foreign key may only reference a table "
                              "the namespace already has)");
      }
      // DEFAULT expressions are evaluated without the authorizer: prove their functions are allowed.
      for (auto& r : rows(db, "PRAGMA main.table_xinfo(" + quote_ident(o.physical) + ")")) {
        if (r.at(4).empty()) continue;
        probe("SELECT " + r[4], o, false);  // `DEFAULT abc` is the string 'abc', not a column: only denials count
      }
    } else if (o.type == "trigger") {
      auto info = rows(db, "SELECT tbl_name, sql FROM main.sqlite_master WHERE type = 'trigger' AND name = ?1",
                       o.physical);
      if (info.empty()) continue;
      const std::string& table = info[0][0];
      // The event is the first DELETE/INSERT/UPDATE word of the definition (after the trigger's name).
      auto toks = tokenize(info[0][1]);
      std::string event, column;
      int words = 0;
      for (size_t i = 0; i < toks.size() && event.empty(); ++i) {
        if (toks[i].kind != Tok::Ident && toks[i].kind != Tok::QuotedIdent) continue;
        if (++words <= 3) continue;  // CREATE TRIGGER name (IF NOT EXISTS names no event word)
        if (toks[i].kind != Tok::Ident) continue;
        for (const char* e : {"DELETE", "INSERT", "UPDATE"})
          if (iequals(toks[i].text, e)) event = e;
        if (event == "UPDATE") {
          size_t j = i + 1;
          while (j < toks.size() && is_trivia(toks[j])) ++j;
          if (j < toks.size() && iequals(toks[j].text, "OF")) {
            ++j;
            while (j < toks.size() && is_trivia(toks[j])) ++j;
            if (j < toks.size()) column = ident_value(toks[j]);
          }
        }
      }
      if (event == "UPDATE" && column.empty()) {
        auto cols = rows(db, "PRAGMA main.table_info(" + quote_ident(table) + ")");
        if (!cols.empty()) column = cols[0].at(1);
      }
      const std::string t = quote_ident(table);
      if (event == "INSERT") probe("INSERT INTO " + t + " DEFAULT VALUES", o);
      else if (event == "DELETE") probe("DELETE FROM " + t, o);
      else if (event == "UPDATE" && !column.empty())
        probe("UPDATE " + t + " SET " + quote_ident(column) + " = " + quote_ident(column), o);
    }
  }
}

void harden_connection(sqlite3* db) {
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
}

}  // namespace era::sql

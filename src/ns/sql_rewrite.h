// The namespace rewrite of SQL: every place a table, index, view or trigger name stands gets the
// namespace's physical name, so sandboxed code runs its SQL "as if the tables were its own database".
//
//   ns "myapp", `SELECT * FROM todos t JOIN tags ON tags.todo = t.id`
//     -> `SELECT * FROM "myapp_todos" t JOIN "myapp_tags" AS "tags" ON tags.todo = t.id`
//
// - Works on tokens (ns/sql_tokenizer.h), statement by statement; CREATE TRIGGER bodies are followed
//   to their END. Every name in a table position is prefixed: FROM and JOIN items (also after a join's
//   ON/USING), `x IN t`, INSERT/UPDATE/DELETE targets, DDL names, REFERENCES. CTE names are prefixed
//   too (their definitions and every reference), so the rewriter needs no scoping rules: SQLite's
//   resolve a reference to the CTE or to the namespace's own table, never to another's. Aliases,
//   columns, strings, comments and parameters are left alone.
// - Physical names are ns + "_" + the name as the user wrote it, always double-quoted (a namespace may
//   hold '-'). A table the user did not alias in FROM/JOIN, or as the target of INSERT/UPDATE/DELETE
//   (outside trigger bodies, where SQLite forbids it), gets `AS "<user's name>"`, so table-qualified
//   columns (posts.id) keep working.
// - sqlite_master / sqlite_schema in FROM becomes a subquery over the namespace's own objects, with the
//   user's names; named anywhere else it is refused.
// - This is a translation, not a proof: run the result through the guard (ns/sql_guard.h), which
//   denies whatever still reaches outside the namespace.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace era::sql {

struct Rewritten {
  std::string sql;        // the rewritten text (all statements)
  int statements = 0;     // statements that hold more than comments and whitespace
  bool reads_schema = false;  // a sqlite_master subquery was emitted (the guard must allow its read)
};

// Physical names of the objects (tables, views, indexes, triggers) the namespace owns; asked only
// when the statement reads sqlite_master.
using OwnedObjects = std::function<std::vector<std::string>()>;

// Rewrites `sql` for namespace `ns` (already validated). Throws ApiError 403 for a statement that
// names the schema table outside FROM.
Rewritten rewrite(std::string_view sql, std::string_view ns, const OwnedObjects& owned);

// ns + "_" + name.
std::string physical_name(std::string_view ns, std::string_view name);

// The user's view of a message from SQLite: every physical name of `ns` (ns_name, in any letter
// case, starting a word) loses its prefix, so "no such table: myapp_todos" reads "no such table: todos".
// "no such table/view/index/trigger: <name>" is given one form (no "main.", the name in lower case),
// the form the guard's denials of foreign names take too.
std::string user_message(std::string_view message, std::string_view ns);

}  // namespace era::sql

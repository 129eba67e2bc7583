#include "ns/sql_rewrite.h"

#include <cctype>
#include <set>

#include "ns/sql_tokenizer.h"
#include "util/error.h"

namespace era::sql {
namespace {

bool is_schema_table(std::string_view v) {
  return iequals(v, "sqlite_master") || iequals(v, "sqlite_schema") || iequals(v, "sqlite_temp_master") ||
         iequals(v, "sqlite_temp_schema");
}

bool name_like(const Token& t) { return t.kind == Tok::Ident || t.kind == Tok::QuotedIdent || t.kind == Tok::String; }

// Words after which a FROM list is over at its parenthesis depth. Not ON and USING: a join constraint
// is followed by more FROM items (`a JOIN b ON 1, c`); its own commas are inside parentheses.
bool ends_from_list(std::string_view w) {
  for (std::string_view k : {"WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "WINDOW", "UNION", "EXCEPT",
                             "INTERSECT", "RETURNING", "SET", "VALUES", "SELECT", "DO", "WITH"})
    if (iequals(w, k)) return true;
  return false;
}

// PRAGMAs whose argument names a table or an index.
bool pragma_takes_table(std::string_view p) {
  for (std::string_view k : {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
                             "foreign_key_list", "foreign_key_check"})
    if (iequals(p, k)) return true;
  return false;
}

std::string sql_string(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

// Read: a FROM/JOIN item (aliased); Target: INSERT/UPDATE/DELETE's table (aliased outside trigger
// bodies); Ddl: a name in a definition (never aliased); Operand: `x IN t`, a table as an operand
// (never aliased).
enum class Role { Read, Target, Ddl, Operand };

class Rewriter {
 public:
  Rewriter(const std::vector<Token>& toks, std::string_view ns, const OwnedObjects& owned)
      : t_(toks), ns_(ns), owned_(owned), repl_(toks.size()), replaced_(toks.size(), 0), after_(toks.size()) {}

  // One statement, given as the indices of its significant tokens.
  void statement(std::vector<size_t> sig) {
    s_ = std::move(sig);
    in_body_ = false;
    collect_ctes();
    scan();
  }

  std::string output(bool& reads_schema) const {
    std::string out;
    for (size_t i = 0; i < t_.size(); ++i) {
      out += replaced_[i] ? std::string_view(repl_[i]) : t_[i].text;
      out += after_[i];
    }
    reads_schema = reads_schema_;
    return out;
  }

 private:
  const Token& tok(size_t k) const {
    static const Token kEnd{Tok::Semi, "", 0};
    return k < s_.size() ? t_[s_[k]] : kEnd;
  }
  bool kw(size_t k, std::string_view w) const { return tok(k).kind == Tok::Ident && iequals(tok(k).text, w); }

  // Index of the RParen matching the LParen at k (or the end).
  size_t match(size_t k) const {
    int depth = 0;
    for (; k < s_.size(); ++k) {
      if (tok(k).kind == Tok::LParen) ++depth;
      if (tok(k).kind == Tok::RParen && --depth == 0) return k;
    }
    return s_.size();
  }

  size_t skip_if_exists(size_t k) const {
    if (kw(k, "IF") && kw(k + 1, "NOT") && kw(k + 2, "EXISTS")) return k + 3;
    if (kw(k, "IF") && kw(k + 1, "EXISTS")) return k + 2;
    return k;
  }

  void set(size_t k, std::string text) {
    repl_[s_[k]] = std::move(text);
    replaced_[s_[k]] = 1;
  }

  // WITH [RECURSIVE] name [(cols)] AS [NOT] [MATERIALIZED] (...) [, ...]: a CTE's name gets the
  // namespace's prefix like a table's, so every reference to it (also prefixed) finds it by SQLite's
  // own scoping rules, and a reference outside its scope finds the namespace's table, never another's.
  void collect_ctes() {
    for (size_t k = 0; k < s_.size(); ++k) {
      if (!kw(k, "WITH")) continue;
      size_t j = k + 1;
      if (kw(j, "RECURSIVE")) ++j;
      while (name_like(tok(j))) {
        set(j, quote_ident(physical_name(ns_, ident_value(tok(j)))));
        ++j;
        if (tok(j).kind == Tok::LParen) j = match(j) + 1;
        if (!kw(j, "AS")) break;
        ++j;
        if (kw(j, "NOT")) ++j;
        if (kw(j, "MATERIALIZED")) ++j;
        if (tok(j).kind != Tok::LParen) break;
        j = match(j) + 1;
        if (tok(j).kind != Tok::Comma) break;
        ++j;
      }
    }
  }

  bool has_alias(size_t k) const {
    const Token& t = tok(k);
    if (k >= s_.size()) return false;
    if (t.kind == Tok::QuotedIdent || t.kind == Tok::String) return true;
    return t.kind == Tok::Ident && (iequals(t.text, "AS") || !is_keyword(t.text));
  }

  std::string schema_subquery() {
    reads_schema_ = true;
    std::string list;
    for (const auto& name : owned_ ? owned_() : std::vector<std::string>{})
      list += (list.empty() ? "" : ",") + sql_string(name);
    const std::string from = std::to_string(ns_.size() + 2);
    return "(SELECT type, substr(name, " + from + ") AS name, substr(tbl_name, " + from +
           ") AS tbl_name, rootpage, sql FROM main.sqlite_master WHERE " +
           (list.empty() ? std::string("0") : "name IN (" + list + ")") + ")";
  }

  // A table reference [schema.]name at k; returns the index of its last token.
  size_t ref(size_t k, Role role) {
    size_t name_k = k;
    if (tok(k + 1).kind == Tok::Dot && name_like(tok(k + 2))) name_k = k + 2;
    const std::string value = ident_value(tok(name_k));
    if (role == Role::Read || role == Role::Operand) {
      if (tok(name_k + 1).kind == Tok::LParen) return name_k;  // a table-valued function
      if (is_schema_table(value)) {
        if (role == Role::Operand)
          throw ApiError(403, "schema_access_denied",
                         "the schema table may only be read in FROM (SELECT name FROM sqlite_master ...)");
        for (size_t j = k; j < name_k; ++j) set(j, "");
        set(name_k, schema_subquery());
        if (!has_alias(name_k + 1)) after_[s_[name_k]] = " AS " + quote_ident(value);
        return name_k;
      }
    }
    set(name_k, quote_ident(physical_name(ns_, value)));
    const bool alias_ok = role == Role::Read || (role == Role::Target && !in_body_);
    if (alias_ok && !has_alias(name_k + 1)) after_[s_[name_k]] = " AS " + quote_ident(value);
    return name_k;
  }

  // Optional name at k in a DDL position; returns the last index consumed (k - 1 if none).
  size_t ddl_name(size_t k) { return name_like(tok(k)) ? ref(k, Role::Ddl) : k - 1; }

  void scan() {
    const bool is_trigger =
        kw(0, "CREATE") && (kw(1, "TRIGGER") || ((kw(1, "TEMP") || kw(1, "TEMPORARY")) && kw(2, "TRIGGER")));
    std::vector<char> from_active{0};
    bool expect_ref = false;
    Role role = Role::Read;
    std::string prev;
    for (size_t k = 0; k < s_.size(); ++k) {
      const Token& t = tok(k);
      if (t.kind == Tok::LParen) {
        from_active.push_back(expect_ref);
        prev.clear();
        continue;
      }
      if (t.kind == Tok::RParen) {
        if (from_active.size() > 1) from_active.pop_back();
        expect_ref = false;
        prev.clear();
        continue;
      }
      if (expect_ref) {
        expect_ref = false;
        if (name_like(t) && !kw(k, "SELECT") && !kw(k, "VALUES") && !kw(k, "WITH")) {
          k = ref(k, role);
          prev.clear();
          continue;
        }
      }
      if (t.kind == Tok::Comma && from_active.back()) {
        expect_ref = true;
        role = Role::Read;
        continue;
      }
      if ((t.kind == Tok::Ident || t.kind == Tok::QuotedIdent) && is_schema_table(ident_value(t)) &&
          tok(k + 1).kind != Tok::Dot)
        throw ApiError(403, "schema_access_denied",
                       "the schema table may only be read in FROM (SELECT name FROM sqlite_master ...)");
      if (t.kind != Tok::Ident) {
        prev.clear();
        continue;
      }
      const std::string w = ascii_lower(t.text);
      if (ends_from_list(w)) from_active.back() = 0;
      if (w == "from" && prev != "distinct") {
        from_active.back() = 1;
        expect_ref = true;
        role = prev == "delete" ? Role::Target : Role::Read;
      } else if (w == "join") {
        from_active.back() = 1;
        expect_ref = true;
        role = Role::Read;
      } else if (w == "into" && name_like(tok(k + 1))) {
        k = ref(k + 1, Role::Target);
      } else if (w == "in" && name_like(tok(k + 1))) {
        k = ref(k + 1, Role::Operand);  // `x IN t`: a table
      } else if (w == "update" && prev != "on") {  // not a foreign key's ON UPDATE action
        size_t j = k + 1;
        if (kw(j, "OR")) j += 2;
        if (name_like(tok(j)) && !kw(j, "SET") && !kw(j, "OF") && !kw(j, "ON")) k = ref(j, Role::Target);
      } else if (w == "table" || w == "view") {
        k = ddl_name(skip_if_exists(k + 1));
      } else if (w == "index") {
        k = ddl_name(skip_if_exists(k + 1));
        if (kw(k + 1, "ON") && name_like(tok(k + 2))) k = ref(k + 2, Role::Ddl);
      } else if (w == "trigger") {
        k = ddl_name(skip_if_exists(k + 1));
        if (is_trigger) {
          size_t j = k + 1;
          while (j < s_.size() && !kw(j, "ON")) ++j;
          if (name_like(tok(j + 1))) k = ref(j + 1, Role::Ddl);
        }
      } else if (w == "references") {
        k = ddl_name(k + 1);
      } else if (w == "rename" && kw(k + 1, "TO")) {
        k = ddl_name(k + 2);
      } else if (w == "indexed" && kw(k + 1, "BY")) {
        k = ddl_name(k + 2);
      } else if ((w == "reindex" || w == "analyze") && name_like(tok(k + 1))) {
        const std::string v = ident_value(tok(k + 1));
        if (!iequals(v, "binary") && !iequals(v, "nocase") && !iequals(v, "rtrim")) k = ddl_name(k + 1);
      } else if (w == "pragma") {
        size_t j = k + 1;
        if (tok(j + 1).kind == Tok::Dot) j += 2;
        if (pragma_takes_table(ident_value(tok(j))) &&
            (tok(j + 1).kind == Tok::LParen || tok(j + 1).text == "=") && name_like(tok(j + 2)))
          set(j + 2, quote_ident(physical_name(ns_, ident_value(tok(j + 2)))));
        k = j;
      } else if (w == "begin" && is_trigger) {
        in_body_ = true;
      }
      prev = w;
    }
  }

  const std::vector<Token>& t_;
  std::string_view ns_;
  const OwnedObjects& owned_;
  std::vector<std::string> repl_;
  std::vector<char> replaced_;
  std::vector<std::string> after_;
  std::vector<size_t> s_;
  bool in_body_ = false;
  bool reads_schema_ = false;
};

// Splits the significant tokens into statements: a ';' ends one, except inside a CREATE TRIGGER body
// (BEGIN ... END, where CASE ... END nests).
std::vector<std::vector<size_t>> split(const std::vector<Token>& toks) {
  std::vector<std::vector<size_t>> out;
  std::vector<size_t> cur;
  bool trigger = false, body = false;
  int cases = 0;
  auto word = [&](size_t i, std::string_view w) { return toks[i].kind == Tok::Ident && iequals(toks[i].text, w); };
  for (size_t i = 0; i < toks.size(); ++i) {
    if (is_trivia(toks[i])) continue;
    cur.push_back(i);
    if (toks[i].kind == Tok::Semi && !body) {
      out.push_back(std::move(cur));
      cur.clear();
      trigger = false;
      cases = 0;
      continue;
    }
    if (!trigger && word(i, "TRIGGER") && (cur.size() == 2 || cur.size() == 3) && word(cur[0], "CREATE") &&
        (cur.size() == 2 || word(cur[1], "TEMP") || word(cur[1], "TEMPORARY")))
      trigger = true;
    else if (trigger && !body && word(i, "BEGIN"))
      body = true;
    else if (body && word(i, "CASE"))
      ++cases;
    else if (body && word(i, "END") && cases > 0)
      --cases;
    else if (body && word(i, "END"))
      body = false;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace

Rewritten rewrite(std::string_view sql, std::string_view ns, const OwnedObjects& owned) {
  const std::vector<Token> toks = tokenize(sql);
  Rewriter rw(toks, ns, owned);
  Rewritten out;
  for (auto& stmt : split(toks)) {
    if (!(stmt.size() == 1 && toks[stmt[0]].kind == Tok::Semi)) ++out.statements;
    rw.statement(std::move(stmt));
  }
  out.sql = rw.output(out.reads_schema);
  return out;
}

std::string physical_name(std::string_view ns, std::string_view name) {
  std::string out(ns);
  out += '_';
  out += name;
  return out;
}

namespace {
// SQLite says "no such table: main.X" for a qualified name and keeps the letter case the statement
// used; the guard reports a foreign name as the schema spells it. Both are brought to one form (no
// "main.", lower case) so the two answers cannot be told apart.
std::string normalise_missing(std::string msg) {
  for (std::string_view kind : {"no such table: ", "no such view: ", "no such index: ", "no such trigger: "}) {
    const size_t at = msg.find(kind);
    if (at == std::string::npos) continue;
    size_t name = at + kind.size();
    if (iequals(std::string_view(msg).substr(name, 5), "main.")) msg.erase(name, 5);
    for (size_t i = name; i < msg.size(); ++i)
      if (msg[i] >= 'A' && msg[i] <= 'Z') msg[i] = static_cast<char>(msg[i] - 'A' + 'a');
    break;
  }
  return msg;
}
}  // namespace

std::string user_message(std::string_view message, std::string_view ns) {
  const std::string prefix = std::string(ns) + "_";
  std::string out;
  for (size_t i = 0; i < message.size();) {
    const unsigned char before = i ? static_cast<unsigned char>(message[i - 1]) : ' ';
    const bool word_start = !(std::isalnum(before) || before == '_' || before == '$' || before >= 0x80);
    if (word_start && iequals(message.substr(i, prefix.size()), prefix)) {
      i += prefix.size();
      continue;
    }
    out += message[i++];
  }
  return normalise_missing(std::move(out));
}

}  // namespace era::sql

#include "ns/sql_tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace era::sql {
namespace {

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex(unsigned char c) { return std::isxdigit(c) != 0; }
// SQLite's IdChar: letters, digits, '_', '$' and every byte >= 0x80 (UTF-8 is taken as letters).
bool id_char(unsigned char c) { return std::isalnum(c) || c == '_' || c == '$' || c >= 0x80; }
bool id_start(unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; }

// Length of the token starting at s[0] and its kind.
std::pair<size_t, Tok> scan(std::string_view s) {
  const size_t n = s.size();
  auto at = [&](size_t i) -> unsigned char { return i < n ? static_cast<unsigned char>(s[i]) : 0; };
  const unsigned char c = at(0);
  if (is_space(c)) {
    size_t i = 1;
    while (i < n && is_space(at(i))) ++i;
    return {i, Tok::Space};
  }
  switch (c) {
    case '-':
      if (at(1) == '-') {
        size_t i = 2;
        while (i < n && s[i] != '\n') ++i;
        return {i, Tok::Comment};
      }
      if (at(1) == '>') return {at(2) == '>' ? 3 : 2, Tok::Punct};
      return {1, Tok::Punct};
    case '/':
      if (at(1) == '*') {
        size_t end = s.find("*/", 2);
        return {end == std::string_view::npos ? n : end + 2, Tok::Comment};
      }
      return {1, Tok::Punct};
    case '(': return {1, Tok::LParen};
    case ')': return {1, Tok::RParen};
    case ';': return {1, Tok::Semi};
    case ',': return {1, Tok::Comma};
    case '+': case '*': case '%': case '&': case '~': return {1, Tok::Punct};
    case '=': return {at(1) == '=' ? 2 : 1, Tok::Punct};
    case '<': return {(at(1) == '=' || at(1) == '>' || at(1) == '<') ? 2 : 1, Tok::Punct};
    case '>': return {(at(1) == '=' || at(1) == '>') ? 2 : 1, Tok::Punct};
    case '!': return at(1) == '=' ? std::pair<size_t, Tok>{2, Tok::Punct} : std::pair<size_t, Tok>{1, Tok::Illegal};
    case '|': return {at(1) == '|' ? 2 : 1, Tok::Punct};
    case '\'': case '"': case '`': {
      // A doubled delimiter stands for itself; the first single one ends the token.
      for (size_t i = 1; i < n; ++i) {
        if (at(i) != c) continue;
        if (at(i + 1) == c) {
          ++i;
          continue;
        }
        return {i + 1, c == '\'' ? Tok::String : Tok::QuotedIdent};
      }
      return {n, Tok::Illegal};
    }
    case '[': {
      size_t end = s.find(']', 1);
      if (end == std::string_view::npos) return {n, Tok::Illegal};
      return {end + 1, Tok::QuotedIdent};
    }
    case '.':
      if (!is_digit(at(1))) return {1, Tok::Dot};
      break;  // a number such as .5
    case '?': {
      size_t i = 1;
      while (is_digit(at(i))) ++i;
      return {i, Tok::Param};
    }
    case ':': case '@': case '$': case '#': {
      size_t i = 1, len = 0;
      for (; i < n; ++i) {
        unsigned char d = at(i);
        if (id_char(d)) {
          ++len;
        } else if (d == '(' && len > 0) {
          do ++i;
          while (i < n && !is_space(at(i)) && at(i) != ')');
          if (at(i) != ')') return {i, Tok::Illegal};
          ++i;
          break;
        } else if (d == ':' && at(i + 1) == ':') {
          ++i;
        } else {
          break;
        }
      }
      return {i, len == 0 ? Tok::Illegal : Tok::Param};
    }
    default: break;
  }
  if (is_digit(c) || c == '.') {
    size_t i = 0;
    if (c == '0' && (at(1) == 'x' || at(1) == 'X') && is_hex(at(2))) {
      i = 2;
      while (is_hex(at(i))) ++i;
    } else {
      while (is_digit(at(i))) ++i;
      if (at(i) == '.') {
        ++i;
        while (is_digit(at(i))) ++i;
      }
      if ((at(i) == 'e' || at(i) == 'E') &&
          (is_digit(at(i + 1)) || ((at(i + 1) == '+' || at(i + 1) == '-') && is_digit(at(i + 2))))) {
        i += 2;
        while (is_digit(at(i))) ++i;
      }
    }
    // SQLite refuses a number run straight into a name ("12abc"): so do we.
    if (id_char(at(i))) {
      while (id_char(at(i))) ++i;
      return {i, Tok::Illegal};
    }
    return {i, Tok::Number};
  }
  if ((c == 'x' || c == 'X') && at(1) == '\'') {
    size_t i = 2;
    while (is_hex(at(i))) ++i;
    if (at(i) != '\'' || (i - 2) % 2 != 0) {
      while (i < n && at(i) != '\'') ++i;
      return {std::min(n, i + 1), Tok::Illegal};
    }
    return {i + 1, Tok::Blob};
  }
  if (id_start(c)) {
    size_t i = 1;
    while (id_char(at(i))) ++i;
    return {i, Tok::Ident};
  }
  return {1, Tok::Illegal};
}

constexpr std::array<std::string_view, 147> kKeywords = {
    "ABORT", "ACTION", "ADD", "AFTER", "ALL", "ALTER", "ALWAYS", "ANALYZE", "AND", "AS", "ASC", "ATTACH",
    "AUTOINCREMENT", "BEFORE", "BEGIN", "BETWEEN", "BY", "CASCADE", "CASE", "CAST", "CHECK", "COLLATE",
    "COLUMN", "COMMIT", "CONFLICT", "CONSTRAINT", "CREATE", "CROSS", "CURRENT", "CURRENT_DATE",
    "CURRENT_TIME", "CURRENT_TIMESTAMP", "DATABASE", "DEFAULT", "DEFERRABLE", "DEFERRED", "DELETE", "DESC",
    "DETACH", "DISTINCT", "DO", "DROP", "EACH", "ELSE", "END", "ESCAPE", "EXCEPT", "EXCLUDE", "EXCLUSIVE",
    "EXISTS", "EXPLAIN", "FAIL", "FILTER", "FIRST", "FOLLOWING", "FOR", "FOREIGN", "FROM", "FULL",
    "GENERATED", "GLOB", "GROUP", "GROUPS", "HAVING", "IF", "IGNORE", "IMMEDIATE", "IN", "INDEX", "INDEXED",
    "INITIALLY", "INNER", "INSERT", "INSTEAD", "INTERSECT", "INTO", "IS", "ISNULL", "JOIN", "KEY", "LAST",
    "LEFT", "LIKE", "LIMIT", "MATCH", "MATERIALIZED", "NATURAL", "NO", "NOT", "NOTHING", "NOTNULL", "NULL",
    "NULLS", "OF", "OFFSET", "ON", "OR", "ORDER", "OTHERS", "OUTER", "OVER", "PARTITION", "PLAN", "PRAGMA",
    "PRECEDING", "PRIMARY", "QUERY", "RAISE", "RANGE", "RECURSIVE", "REFERENCES", "REGEXP", "REINDEX",
    "RELEASE", "RENAME", "REPLACE", "RESTRICT", "RETURNING", "RIGHT", "ROLLBACK", "ROW", "ROWS",
    "SAVEPOINT", "SELECT", "SET", "TABLE", "TEMP", "TEMPORARY", "THEN", "TIES", "TO", "TRANSACTION",
    "TRIGGER", "UNBOUNDED", "UNION", "UNIQUE", "UPDATE", "USING", "VACUUM", "VALUES", "VIEW", "VIRTUAL",
    "WHEN", "WHERE", "WINDOW", "WITH", "WITHOUT"};

}  // namespace

std::vector<Token> tokenize(std::string_view sql) {
  std::vector<Token> out;
  size_t pos = 0;
  while (pos < sql.size()) {
    auto [len, kind] = scan(sql.substr(pos));
    out.push_back({kind, sql.substr(pos, len), pos});
    pos += len;
  }
  return out;
}

std::string ident_value(const Token& t) {
  std::string_view s = t.text;
  if (t.kind == Tok::QuotedIdent && s.front() == '[') return std::string(s.substr(1, s.size() - 2));
  if ((t.kind == Tok::QuotedIdent || t.kind == Tok::String) && s.size() >= 2) {
    const char q = s.front();
    std::string out;
    for (size_t i = 1; i + 1 < s.size(); ++i) {
      out += s[i];
      if (s[i] == q) ++i;  // the second of a doubled quote
    }
    return out;
  }
  return std::string(s);
}

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    out += c;
    if (c == '"') out += '"';
  }
  return out + "\"";
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool is_keyword(std::string_view word) {
  for (auto k : kKeywords)
    if (iequals(k, word)) return true;
  return false;
}

}  // namespace era::sql

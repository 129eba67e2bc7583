// SQL tokenizer following SQLite's own rules (tokenize.c): the rewriter works on these tokens, never on
// regular expressions, so a name inside a string, a comment or a quoted identifier is always seen for
// what it is.
//
// Rules (as SQLite applies them):
// - Identifiers: bare ([A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*) or quoted in four styles: "x" (""
//   escapes "), `x` (`` escapes `), [x] (no escape; ends at the first ]) and, where SQLite accepts it, a
//   'string' in an identifier position (the rewriter handles that case, not the tokenizer).
// - Strings 'x' ('' escapes '); blobs x'hex' / X'hex'.
// - Comments: -- to end of line, /* to */ (an unterminated /* runs to the end of the input).
// - Parameters: ?, ?NNN, :name, @name, $name (with SQLite's Tcl-style :: segments and a (...) suffix).
// - An unterminated string or quoted identifier, and any byte SQLite does not accept, is Illegal: the
//   caller refuses the statement (SQLite would).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/text.h"

namespace era::sql {

enum class Tok {
  Space,
  Comment,
  Ident,        // bare identifier or keyword
  QuotedIdent,  // "x", `x` or [x]
  String,       // 'x'
  Blob,         // x'..'
  Number,
  Param,        // ?, ?NNN, :a, @a, $a
  Punct,        // operators and punctuation other than ; ( ) , .
  LParen,
  RParen,
  Comma,
  Dot,
  Semi,
  Illegal,
};

struct Token {
  Tok kind;
  std::string_view text;  // a view into the tokenized input
  size_t offset;          // byte offset in the input
};

// Splits `sql` into tokens covering every byte, in order.
std::vector<Token> tokenize(std::string_view sql);

// True for tokens that carry no meaning (whitespace and comments).
inline bool is_trivia(const Token& t) { return t.kind == Tok::Space || t.kind == Tok::Comment; }

// The name an identifier-like token stands for: a bare word as written, a quoted identifier without
// its quotes and with doubled quotes undone, a 'string' likewise.
std::string ident_value(const Token& t);

// `name` as a double-quoted identifier ("a""b" for a"b): always safe, whatever the bytes.
std::string quote_ident(std::string_view name);

// ASCII case-insensitive comparison (SQLite compares names this way).
bool iequals(std::string_view a, std::string_view b);
inline std::string ascii_lower(std::string_view s) { return text::lower(s); }  // the one lower (util/text.h)

// True if the bare word is one of SQLite's keywords.
bool is_keyword(std::string_view word);

}  // namespace era::sql

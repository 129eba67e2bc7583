#include <doctest/doctest.h>

#include "ns/sql_tokenizer.h"

using namespace era::sql;

namespace {
std::vector<Tok> kinds(std::string_view sql, bool skip_space = true) {
  std::vector<Tok> out;
  for (auto& t : tokenize(sql))
    if (!skip_space || t.kind != Tok::Space) out.push_back(t.kind);
  return out;
}
std::string joined(std::string_view sql) {
  std::string out;
  for (auto& t : tokenize(sql)) out += t.text;
  return out;
}
}  // namespace

TEST_CASE("tokens cover every byte, in order") {
  for (std::string_view s : {"SELECT * FROM t WHERE a = 'x''y' -- c\n;", "/* unterminated", "'open",
                             "x'0A' X'' [a]]", "\"a\"\"b\" `c``d` ?12 :a @b $c::d(e) #f", "\xff\xfe bytes",
                             "1.5e3 .5 0x1F 12abc", "a->b->>c || d <> e != f <= g >= h << i >> j == k"}) {
    CHECK(joined(s) == s);
  }
}

TEST_CASE("the four identifier quoting styles and their escapes") {
  auto t = tokenize("\"a\"\"b\"");
  REQUIRE(t.size() == 1);
  CHECK(t[0].kind == Tok::QuotedIdent);
  CHECK(ident_value(t[0]) == "a\"b");
  t = tokenize("`c``d`");
  REQUIRE(t.size() == 1);
  CHECK(ident_value(t[0]) == "c`d");
  t = tokenize("[we]ird]");
  REQUIRE(t.size() == 3);  // [we], the bare word ird, a stray ] (no escape inside brackets)
  CHECK(ident_value(t[0]) == "we");
  t = tokenize("'it''s'");
  REQUIRE(t.size() == 1);
  CHECK(t[0].kind == Tok::String);
  CHECK(ident_value(t[0]) == "it's");
  t = tokenize("plain_1$x");
  REQUIRE(t.size() == 1);
  CHECK(t[0].kind == Tok::Ident);
  CHECK(tokenize("caf\xc3\xa9").size() == 1);  // UTF-8 bytes are identifier characters
}

TEST_CASE("strings and comments hide what looks like SQL") {
  CHECK(kinds("'; DROP TABLE x; --'") == std::vector<Tok>{Tok::String});
  CHECK(kinds("-- FROM other\nx") == std::vector<Tok>{Tok::Comment, Tok::Ident});
  CHECK(kinds("/* FROM 'a */ x") == std::vector<Tok>{Tok::Comment, Tok::Ident});
  CHECK(kinds("/* never closed FROM t") == std::vector<Tok>{Tok::Comment});
  CHECK(kinds("\"FROM x\" [FROM y] `FROM z`") ==
        std::vector<Tok>{Tok::QuotedIdent, Tok::QuotedIdent, Tok::QuotedIdent});
  CHECK(kinds("a-b") == std::vector<Tok>{Tok::Ident, Tok::Punct, Tok::Ident});
  CHECK(kinds("a/b") == std::vector<Tok>{Tok::Ident, Tok::Punct, Tok::Ident});
}

TEST_CASE("blobs") {
  CHECK(kinds("x'00ff'") == std::vector<Tok>{Tok::Blob});
  CHECK(kinds("X''") == std::vector<Tok>{Tok::Blob});
  CHECK(kinds("x'0'") == std::vector<Tok>{Tok::Illegal});   // odd digit count
  CHECK(kinds("x'zz'") == std::vector<Tok>{Tok::Illegal});  // not hex
  CHECK(kinds("x 'a'") == std::vector<Tok>{Tok::Ident, Tok::String});
}

TEST_CASE("every parameter form") {
  for (std::string_view p : {"?", "?1", "?100", ":name", "@name", "$name", "$a::b", "$a(x)", ":1"}) {
    auto t = tokenize(p);
    REQUIRE(t.size() == 1);
    CHECK(t[0].kind == Tok::Param);
  }
  CHECK(kinds(":") == std::vector<Tok>{Tok::Illegal});
  CHECK(kinds("$a(x") == std::vector<Tok>{Tok::Illegal});
}

TEST_CASE("numbers, punctuation, illegal input") {
  CHECK(kinds("1 1.5 .5 1e10 1E+3 0x1f") == std::vector<Tok>(6, Tok::Number));
  CHECK(kinds("12abc") == std::vector<Tok>{Tok::Illegal});
  CHECK(kinds("(a, b.c);") ==
        std::vector<Tok>{Tok::LParen, Tok::Ident, Tok::Comma, Tok::Ident, Tok::Dot, Tok::Ident, Tok::RParen, Tok::Semi});
  CHECK(kinds("'unterminated") == std::vector<Tok>{Tok::Illegal});
  CHECK(kinds("\"unterminated") == std::vector<Tok>{Tok::Illegal});
  CHECK(kinds("[unterminated") == std::vector<Tok>{Tok::Illegal});
  CHECK(kinds("!") == std::vector<Tok>{Tok::Illegal});
}

TEST_CASE("quote_ident round-trips through the tokenizer") {
  for (std::string_view name : {"plain", "with space", "q\"uote", "a-b", "\"\"", "x]y", "caf\xc3\xa9"}) {
    const std::string quoted = quote_ident(name);  // tokens are views into it
    auto t = tokenize(quoted);
    REQUIRE(t.size() == 1);
    CHECK(ident_value(t[0]) == name);
  }
}

TEST_CASE("keywords and case-insensitive names") {
  CHECK(is_keyword("select"));
  CHECK(is_keyword("WITHOUT"));
  CHECK_FALSE(is_keyword("todos"));
  CHECK(iequals("App_T", "app_t"));
  CHECK_FALSE(iequals("app", "apps"));
}

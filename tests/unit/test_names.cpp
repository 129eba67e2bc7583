#include <doctest/doctest.h>

#include "ns/names.h"
#include "util/error.h"

using namespace era;

TEST_CASE("namespace rule: 1-64 of [A-Za-z0-9_-]") {
  CHECK(ns::is_valid_namespace("myapp"));
  CHECK(ns::is_valid_namespace("A-b_9"));
  CHECK(ns::is_valid_namespace(std::string(64, 'a')));
  CHECK_FALSE(ns::is_valid_namespace(""));
  CHECK_FALSE(ns::is_valid_namespace(std::string(65, 'a')));
  for (const char* bad : {"a:b", "a/b", "a.b", "a b", "ü", "..", "a%2F"})
    CHECK_FALSE(ns::is_valid_namespace(bad));
  CHECK_FALSE(ns::is_valid_namespace(std::string("a\0b", 3)));
  try {
    ns::check_namespace("bad:ns");
    FAIL("no throw");
  } catch (const ApiError& e) {
    CHECK(e.status() == 400);
    CHECK(e.code() == "invalid_namespace");
    CHECK(std::string(e.what()).find("1 to 64") != std::string::npos);
  }
}

TEST_CASE("UTF-8 validation rejects overlongs, surrogates and truncation") {
  CHECK(ns::is_valid_utf8("plain"));
  CHECK(ns::is_valid_utf8("\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80"));
  CHECK_FALSE(ns::is_valid_utf8("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(ns::is_valid_utf8("\xE0\x80\xAF"));      // overlong
  CHECK_FALSE(ns::is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(ns::is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(ns::is_valid_utf8("\xE2\x9C"));          // truncated
  CHECK_FALSE(ns::is_valid_utf8("\xFF"));
}

TEST_CASE("KV key rules") {
  CHECK_NOTHROW(ns::check_kv_key("a/b c?#%"));
  CHECK_NOTHROW(ns::check_kv_key(std::string(512, 'k')));
  CHECK_THROWS_AS(ns::check_kv_key(std::string(513, 'k')), ApiError);
  CHECK_THROWS_AS(ns::check_kv_key(""), ApiError);
  CHECK_THROWS_AS(ns::check_kv_key("."), ApiError);
  CHECK_THROWS_AS(ns::check_kv_key(".."), ApiError);
  CHECK_THROWS_AS(ns::check_kv_key(std::string("a\0b", 3)), ApiError);
  CHECK_THROWS_AS(ns::check_kv_key("\xFF"), ApiError);
}

TEST_CASE("kv_name and prefix bounds") {
  CHECK(ns::kv_name("users_app", "user:123") == "users_app:user:123");
  CHECK(ns::prefix_upper_bound("ns:ab") == "ns:ac");
  CHECK(ns::prefix_upper_bound(std::string("a\xFF\xFF")) == "b");
  CHECK(ns::prefix_upper_bound(std::string("\xFF")) == "");
  CHECK(ns::prefix_upper_bound("") == "");
}

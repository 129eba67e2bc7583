#include <doctest/doctest.h>

#include "util/encoding.h"

using namespace era;

TEST_CASE("base64 round-trips every byte value and length") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  for (size_t n = 0; n <= all.size(); n += 7) {
    for (bool url : {false, true}) {
      auto s = all.substr(0, n);
      auto dec = enc::base64_decode(enc::base64_encode(s, url), url);
      REQUIRE(dec);
      CHECK(*dec == s);
    }
  }
  CHECK(enc::base64_encode("hello") == "aGVsbG8=");
  CHECK(enc::base64_encode("\xfb\xff", true) == "-_8");
}

TEST_CASE("base64 decoding is strict") {
  CHECK_FALSE(enc::base64_decode("aGVsbG8"));  // standard needs padding
  CHECK_FALSE(enc::base64_decode("aGV$bG8="));
  CHECK_FALSE(enc::base64_decode("aGVsbG9="));  // non-zero leftover bits
  CHECK_FALSE(enc::base64_decode("a==="));
  CHECK(enc::base64_decode("") == std::string());
  CHECK(enc::base64_decode("aGVsbG8", true) == std::string("hello"));
}

TEST_CASE("percent encoding") {
  CHECK(enc::percent_encode("a b/c~") == "a%20b%2Fc~");
  CHECK(enc::percent_encode("a b/c", "/") == "a%20b/c");
  CHECK(enc::percent_decode("a%20b%2fc") == std::string("a b/c"));
  CHECK(enc::percent_decode("100%25") == std::string("100%"));
  CHECK(enc::percent_decode("%00") == std::string("\0", 1));
  CHECK_FALSE(enc::percent_decode("%"));
  CHECK_FALSE(enc::percent_decode("%2"));
  CHECK_FALSE(enc::percent_decode("%zz"));
  CHECK(enc::hex("\x01\xab") == "01ab");
}

#include <doctest/doctest.h>

#include <functional>

#include "http/headers.h"
#include "util/error.h"
#include "util/md5.h"
#include "support.h"

using era::test::status_of;

using namespace era;


TEST_CASE("etag lists: quoted, weak, bare, star") {
  using V = std::vector<std::string>;
  CHECK(http::parse_etag_list("\"abc\"") == V{"abc"});
  CHECK(http::parse_etag_list(" \"a\" , W/\"b\",c ") == V{"a", "b", "c"});
  CHECK(http::parse_etag_list("*") == V{"*"});
  CHECK(status_of([] { http::parse_etag_list(""); }) == 400);
  CHECK(status_of([] { http::parse_etag_list("\"abc"); }) == 400);
  CHECK(status_of([] { http::parse_etag_list("a\"b"); }) == 400);
}

TEST_CASE("byte ranges") {
  auto r = http::parse_range("bytes=0-9");
  CHECK(r.offset == 0u);
  CHECK(r.length == 10u);
  CHECK_FALSE(r.suffix);
  r = http::parse_range("bytes=100-");
  CHECK(r.offset == 100u);
  CHECK_FALSE(r.length);
  r = http::parse_range("Bytes=-5");
  CHECK(r.suffix == 5u);
  CHECK_FALSE(r.offset);
  for (const char* bad : {"bytes=", "bytes=a-b", "bytes=5-1", "items=0-1", "bytes=0-1,3-4", "bytes=-",
                          "bytes=99999999999999999999-", "0-1"})
    CHECK_MESSAGE(status_of([&] { http::parse_range(bad); }) == 416, bad);
}

TEST_CASE("media types and Accept") {
  CHECK(http::media_type("Application/JSON; charset=utf-8") == "application/json");
  CHECK(http::media_type("") == "");
  CHECK(http::accepts("text/html, application/octet-stream;q=0.9", "application/octet-stream"));
  CHECK_FALSE(http::accepts("*/*", "application/octet-stream"));
  CHECK_FALSE(http::accepts("", "application/octet-stream"));
}

TEST_CASE("dates") {
  CHECK(http::http_date(784111777000) == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(http::iso8601(1704164645678) == "2024-01-02T03:04:05.678Z");
}

TEST_CASE("streaming MD5 matches the one-shot digest across chunk boundaries") {
  CHECK(Md5::hex_of("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(Md5::hex_of("hello") == "5d41402abc4b2a76b9719d911017c592");
  Md5 m;
  m.update("hel");
  m.update("lo");
  CHECK(m.hex_digest() == "5d41402abc4b2a76b9719d911017c592");
}

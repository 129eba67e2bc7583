// The one time/date module and the one SHA-256/HMAC helper.
#include <doctest/doctest.h>

#include "util/crypto.h"
#include "util/encoding.h"
#include "util/text.h"
#include "util/time.h"

using namespace era;

TEST_CASE("dates: HTTP dates, ISO 8601 and SigV4 dates, formatted and parsed") {
  CHECK(dates::http_date(784111777000) == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(dates::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
  CHECK(dates::http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(dates::iso8601(1704164645678) == "2024-01-02T03:04:05.678Z");
  CHECK(dates::iso8601(-1) == "1969-12-31T23:59:59.999Z");  // floor, not truncation toward zero
  CHECK(dates::parse_iso8601("2024-01-02T03:04:05.678Z") == 1704164645678);
  CHECK(dates::parse_iso8601("2024-01-02T03:04:05Z") == 1704164645000);
  CHECK(dates::parse_iso8601("2024-01-02T03:04:05.6789Z") == 1704164645678);
  CHECK(dates::parse_iso8601("2024-01-02T03:04:05.6Z") == 1704164645600);
  CHECK(dates::amz_date(1705320000) == "20240115T120000Z");
  for (int64_t ms : {int64_t(0), int64_t(1), int64_t(999), int64_t(1704164645678), int64_t(4102444800123)})
    CHECK(dates::parse_iso8601(dates::iso8601(ms)) == ms);
  for (int64_t s : {int64_t(0), int64_t(784111777), int64_t(4102444800)})
    CHECK(dates::parse_http_date(dates::http_date(s * 1000)) == s);
  for (const char* bad : {"", "yesterday", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 GMT trailing",
                          "06 Nov 1994 08:49:37 GMT"})
    CHECK_MESSAGE(!dates::parse_http_date(bad), bad);
  for (const char* bad : {"", "2024-01-02", "2024-01-02T03:04:05", "2024-01-02T03:04:05.Z", "2024-01-02T03:04:05.1x"})
    CHECK_MESSAGE(!dates::parse_iso8601(bad), bad);
}

TEST_CASE("crypto: SHA-256 and HMAC-SHA256 known answers, constant-time equality") {
  CHECK(crypto::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(crypto::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(crypto::sha256("abc").size() == 32);
  // RFC 4231 test case 2.
  CHECK(enc::hex(crypto::hmac_sha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // RFC 4231 test case 6: a key longer than the block.
  CHECK(enc::hex(crypto::hmac_sha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")) ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  CHECK(crypto::constant_time_equal("a", "a"));
  CHECK_FALSE(crypto::constant_time_equal("a", "b"));
  CHECK_FALSE(crypto::constant_time_equal("a", "aa"));
  // Against a digest: the same answers; a digest of the wrong size matches nothing.
  CHECK(crypto::constant_time_equal_sha256("admin-1", crypto::sha256("admin-1")));
  CHECK_FALSE(crypto::constant_time_equal_sha256("admin-1", crypto::sha256("admin-2")));
  CHECK_FALSE(crypto::constant_time_equal_sha256("admin-1", crypto::sha256("admin-1").substr(0, 31)));
  CHECK_FALSE(crypto::constant_time_equal_sha256("", ""));
}

TEST_CASE("text: lower and trim are ASCII-only") {
  CHECK(text::lower("Content-TYPE") == "content-type");
  CHECK(text::lower("\xC3\x89") == "\xC3\x89");  // bytes >= 0x80 untouched
  CHECK(text::trim(" \t v a \r\n") == "v a");
  CHECK(text::trim("   ").empty());
}

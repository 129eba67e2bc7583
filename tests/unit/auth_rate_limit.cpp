#include <doctest/doctest.h>

#include "auth/rate_limit.h"

using namespace era::auth;

TEST_CASE("request bucket: burst, then one per 1/rate seconds, Retry-After rounds up") {
  double now = 100;
  RateLimiter l({2, 3, 0, 0}, [&] { return now; });
  CHECK(l.enabled());
  CHECK(l.admit("s") == 0);
  CHECK(l.admit("s") == 0);
  CHECK(l.admit("s") == 0);
  CHECK(l.admit("s") == 1);  // empty: 0.5 s to the next token, reported as 1
  CHECK(l.admit("other") == 0);  // per session
  now += 0.5;
  CHECK(l.admit("s") == 0);
  CHECK(l.admit("s") == 1);
}

TEST_CASE("byte bucket goes into debt and refuses until it is paid") {
  double now = 0;
  RateLimiter l({0, 0, 100, 100}, [&] { return now; });
  CHECK(l.admit("s") == 0);
  l.charge_bytes("s", 1000);  // one big write is allowed...
  CHECK(l.admit("s") == 9);   // ...then 900 bytes of debt at 100/s
  now += 9;
  CHECK(l.admit("s") == 0);
}

TEST_CASE("no limits: always admitted; idle sessions are forgotten") {
  double now = 0;
  RateLimiter off({0, 0, 0, 0}, [&] { return now; });
  CHECK_FALSE(off.enabled());
  for (int i = 0; i < 1000; ++i) CHECK(off.admit("s") == 0);
  RateLimiter l({1, 1, 0, 0}, [&] { return now; });
  CHECK(l.admit("s") == 0);
  CHECK(l.admit("s") == 1);
  now += 10;
  l.forget_idle();
  CHECK(l.admit("s") == 0);
}

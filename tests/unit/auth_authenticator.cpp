// The authenticator over the real local session store (SQLite in a temporary directory).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>
#include <unistd.h>

#include <filesystem>

#include "auth/authenticator.h"
#include "store/local/local_sessions.h"
#include "util/error.h"
#include "support.h"

using namespace era;
using namespace era::auth;

namespace {

struct Fixture {
  era::test::TempDir tmp;
  std::string dir;
  sqlite::Writer writer;
  sqlite::ReaderPool readers;
  LocalSessions store;
  std::atomic<int64_t> now{1000};

  explicit Fixture(const std::string& name)
      : tmp("auth-" + name), dir(tmp.str()), writer(dir + "/meta.sqlite3"), readers(dir + "/meta.sqlite3", 2), store(writer, readers) {}
  ~Fixture() { writer.stop(); }

  AuthSettings settings(bool required = true) {
    AuthSettings s;
    s.required = required;
    s.secret = "unit-test-secret-unit-test-secret-0123";
    s.admin_token = "the-admin-credential";
    s.max_ttl = 3600;
    return s;
  }
};

SessionRecord record(const std::string& id, int64_t expires_at) {
  SessionRecord r;
  r.id = id;
  r.language = "python";
  r.namespaces = {"a", "b"};
  r.permissions = "read";
  r.created_at = 1000;
  r.expires_at = expires_at;
  return r;
}

int status_of(const Authenticator& a, const std::optional<std::string>& header, std::string* code = nullptr) {
  try {
    a.authenticate(header);
    return 200;
  } catch (const ApiError& e) {
    if (code) *code = e.code();
    return e.status();
  }
}

}  // namespace

TEST_CASE("authenticate: admin, session, and every kind of refusal") {
  Fixture f("authn");
  Authenticator a(f.settings(), f.store, [&] { return f.now.load(); });
  a.start();
  const std::string token = a.mint(claims_for(record("s1", 2000)));

  Principal admin = a.authenticate(std::string("Bearer the-admin-credential"));
  CHECK(admin.admin);
  CHECK(admin.may_access("anything"));

  Principal p = a.authenticate("bearer " + token);  // the scheme is case-insensitive
  CHECK_FALSE(p.admin);
  CHECK(p.session_id == "s1");
  CHECK(p.may_access("a"));
  CHECK_FALSE(p.may_access("c"));
  CHECK_FALSE(p.may_write());

  std::string code;
  CHECK(status_of(a, std::nullopt, &code) == 401);
  CHECK(code == "missing_token");
  CHECK(status_of(a, std::string("Basic abc"), &code) == 401);
  CHECK(code == "invalid_token");
  CHECK(status_of(a, std::string("Bearer the-admin-credentiaL"), &code) == 401);
  CHECK(code == "invalid_token");
  CHECK(status_of(a, "Bearer " + token + "x", &code) == 401);
  CHECK(code == "invalid_token");
  f.now = 2000;
  CHECK(status_of(a, "Bearer " + token, &code) == 401);
  CHECK(code == "token_expired");
}

TEST_CASE("revocation is immediate, durable, and survives a reload of the set") {
  Fixture f("revoke");
  f.store.create(record("s1", 5000));
  std::string token;
  {
    Authenticator a(f.settings(), f.store, [&] { return f.now.load(); });
    a.start();
    token = a.mint(claims_for(record("s1", 5000)));
    CHECK(status_of(a, "Bearer " + token) == 200);
    CHECK(a.revoke("s1"));
    std::string code;
    CHECK(status_of(a, "Bearer " + token, &code) == 401);
    CHECK(code == "token_revoked");
    CHECK_FALSE(f.store.get("s1", f.now).has_value());
    // An id never stored (a token minted offline) can be revoked too.
    CHECK_FALSE(a.revoke("offline"));
  }
  // A new authenticator (a restart, or another replica) loads the revocations from the store.
  Authenticator b(f.settings(), f.store, [&] { return f.now.load(); });
  b.start();
  CHECK(status_of(b, "Bearer " + token) == 401);
  CHECK(b.is_revoked("offline"));
  CHECK_FALSE(b.is_revoked("s2"));
}

TEST_CASE("auth off: no token is the admin, but a presented token is still checked") {
  Fixture f("off");
  Authenticator a(f.settings(false), f.store, [&] { return f.now.load(); });
  a.start();
  CHECK(a.authenticate(std::nullopt).admin);
  CHECK(status_of(a, std::string("Bearer garbage")) == 401);
  Principal p = a.authenticate("Bearer " + a.mint(claims_for(record("s1", 2000))));
  CHECK_FALSE(p.admin);
  CHECK_FALSE(p.may_access("c"));
}

TEST_CASE("local session store: create, get, list, ids never reused, sweep") {
  Fixture f("store");
  SessionRecord r = record("s1", 2000);
  r.metadata = R"({"k":"v"})";
  f.store.create(r);
  SessionRecord all = record("s2", 3000);
  all.all_namespaces = true;
  all.namespaces.clear();
  all.permissions = "read_write";
  f.store.create(all);

  auto got = f.store.get("s1", 1000);
  REQUIRE(got);
  CHECK(got->namespaces == std::vector<std::string>{"a", "b"});
  CHECK(got->metadata == R"({"k":"v"})");
  CHECK(f.store.get("s2", 1000)->all_namespaces);

  CHECK_THROWS_AS(f.store.create(r), ApiError);  // 409: in use
  auto page = f.store.list(1000, "", 1);
  REQUIRE(page.size() == 1);
  CHECK(page[0].id == "s1");
  CHECK(f.store.list(1000, "s1", 10).size() == 1);
  CHECK(f.store.list(2500, "", 10).size() == 1);  // s1 expired
  CHECK_FALSE(f.store.get("s1", 2000).has_value());

  CHECK(f.store.revoke("s2", 1000, 1500));
  CHECK(f.store.revoked(1000) == std::vector<std::string>{"s2"});
  try {
    f.store.create(all);  // a revoked id is never handed out again while its tokens could live
    FAIL("expected 409");
  } catch (const ApiError& e) {
    CHECK(e.status() == 409);
  }
  // The revocation is kept until the session's own expiry (3000), not just `until` (1500).
  CHECK(f.store.revoked(2999) == std::vector<std::string>{"s2"});
  CHECK(f.store.sweep(3000) >= 2);
  CHECK(f.store.revoked(3000).empty());
  f.store.create(all);  // past every expiry, the id may be used again
}

namespace {

// 1,000 namespaces of the longest name (64 bytes), the most a session may name.
std::vector<std::string> widest_scope(char tag) {
  std::vector<std::string> out;
  for (int i = 0; i < 1000; ++i) {
    std::string n = std::to_string(i) + "-";
    n += std::string(64 - n.size(), tag);
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("a session with 1,000 namespaces of 64 bytes gets a token that fits one 8 KiB header line") {
  Fixture f("widest");
  Authenticator a(f.settings(), f.store, [&] { return f.now.load(); });
  a.start();
  SessionRecord r = record("wide", 5000);
  r.namespaces = widest_scope('x');
  r.permissions = "read_write";
  f.store.create(r);
  const std::string token = a.mint(claims_for(r));
  CHECK(("Authorization: Bearer " + token + "\r\n").size() < 8192);
  CHECK(token.size() < kMaxInlineScopeBytes + 512);
  Principal p = a.authenticate("Bearer " + token);
  CHECK(p.scope.namespaces.size() == 1000);
  for (const auto& n : r.namespaces) CHECK(p.may_access(n));
  CHECK_FALSE(p.may_access("other"));
  CHECK(p.may_write());
  // Again, from the cache.
  CHECK(a.authenticate("Bearer " + token).scope.namespaces == p.scope.namespaces);
}

TEST_CASE("a digest token whose session record is gone or differs is refused") {
  Fixture f("widest-bad");
  Authenticator a(f.settings(), f.store, [&] { return f.now.load(); });
  a.start();
  SessionRecord r = record("wide2", 5000);
  r.namespaces = widest_scope('y');
  // Not stored: an offline-minted token could not name its scope.
  const std::string token = a.mint(claims_for(r));
  std::string code;
  CHECK(status_of(a, "Bearer " + token, &code) == 401);
  CHECK(code == "token_revoked");
  // Stored with another scope under the same id: the digest does not match.
  SessionRecord other = r;
  other.namespaces = widest_scope('z');
  f.store.create(other);
  CHECK(status_of(a, "Bearer " + token, &code) == 401);
  CHECK(code == "invalid_token");
  // Revoked: refused before the scope is looked at.
  const std::string good = a.mint(claims_for(other));
  CHECK(status_of(a, "Bearer " + good) == 200);
  a.revoke("wide2");
  CHECK(status_of(a, "Bearer " + good, &code) == 401);
  CHECK(code == "token_revoked");
}

TEST_CASE("small scopes stay inside the token: no store lookup") {
  Claims c;
  c.session_id = "small";
  c.scope.namespaces = {"a", "b"};
  c.expires_at = 100;
  CHECK(scope_fits_in_token(c.scope));
  Verified v = verify_token(sign_token(c, "k"), "k", 0);
  CHECK(v.status == TokenStatus::ok);
  CHECK(v.claims.scope_digest.empty());
  CHECK(v.claims.scope.namespaces == c.scope.namespaces);
  for (const auto& n : widest_scope('q')) c.scope.namespaces.insert(n);
  CHECK_FALSE(scope_fits_in_token(c.scope));
}

// The verified-token cache (auth/authenticator.h): a token served from it is refused exactly when a
// freshly verified one would be.
TEST_CASE("token cache: a cached token still expires, is revoked at once, and keeps its scope") {
  Fixture f("cache");
  Authenticator a(f.settings(), f.store, [&] { return f.now.load(); });
  a.start();
  const std::string token = a.mint(claims_for(record("c1", 2000)));
  CHECK(a.cached_tokens() == 0);
  Principal first = a.authenticate("Bearer " + token);
  CHECK(a.cached_tokens() == 1);
  Principal again = a.authenticate("Bearer " + token);  // from the cache
  CHECK(a.cached_tokens() == 1);
  CHECK(again.session_id == first.session_id);
  CHECK(again.scope.namespaces == std::set<std::string>{"a", "b"});
  CHECK_FALSE(again.scope.all);
  CHECK_FALSE(again.may_access("c"));
  CHECK_FALSE(again.may_write());
  CHECK(again.expires_at == 2000);

  // A token one byte away from the cached one (same length, last MAC character changed) is not it.
  std::string forged = token;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  std::string code;
  CHECK(status_of(a, "Bearer " + forged, &code) == 401);
  CHECK(code == "invalid_token");
  // Nor is a longer or shorter one, nor one whose payload names another scope under the same MAC.
  CHECK(status_of(a, "Bearer " + token.substr(0, token.size() - 1), &code) == 401);
  CHECK(code == "invalid_token");
  const std::string wider = a.mint(claims_for([] {
    SessionRecord r = record("c1", 2000);
    r.all_namespaces = true;
    return r;
  }()));
  const std::string spliced = wider.substr(0, wider.rfind('.')) + token.substr(token.rfind('.'));
  CHECK(status_of(a, "Bearer " + spliced, &code) == 401);
  CHECK(code == "invalid_token");

  // Expiry is checked on every hit, to the second.
  f.now = 1999;
  CHECK(status_of(a, "Bearer " + token) == 200);
  f.now = 2000;
  CHECK(status_of(a, "Bearer " + token, &code) == 401);
  CHECK(code == "token_expired");
  CHECK(a.cached_tokens() == 0);  // an expired token leaves the cache
  CHECK(status_of(a, "Bearer " + token, &code) == 401);
  CHECK(code == "token_expired");

  // Revocation: a cached token is refused from the revoke() on.
  f.now = 1000;
  const std::string t2 = a.mint(claims_for(record("c2", 5000)));
  CHECK(status_of(a, "Bearer " + t2) == 200);
  CHECK(status_of(a, "Bearer " + t2) == 200);
  a.revoke("c2");
  CHECK(status_of(a, "Bearer " + t2, &code) == 401);
  CHECK(code == "token_revoked");
}

TEST_CASE("token cache: a revocation made by another replica reaches a cached token on the next refresh") {
  Fixture f("cache-replica");
  f.store.create(record("r1", 5000));
  AuthSettings s = f.settings();
  s.refresh_seconds = 1;
  Authenticator a(s, f.store, [&] { return f.now.load(); });
  a.start();
  Authenticator other(s, f.store, [&] { return f.now.load(); });
  const std::string token = a.mint(claims_for(record("r1", 5000)));
  CHECK(status_of(a, "Bearer " + token) == 200);
  CHECK(status_of(a, "Bearer " + token) == 200);  // cached now
  CHECK(a.cached_tokens() == 1);
  other.revoke("r1");  // only the store and `other` know yet
  // `a` learns it on its refresh (every second here); wait for that, bounded.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (status_of(a, "Bearer " + token) == 200 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::string code;
  CHECK(status_of(a, "Bearer " + token, &code) == 401);
  CHECK(code == "token_revoked");
}

TEST_CASE("token cache: bounded, and the admin credential never enters it") {
  Fixture f("cache-bound");
  Authenticator a(f.settings(), f.store, [&] { return f.now.load(); });
  a.start();
  CHECK(a.authenticate(std::string("Bearer the-admin-credential")).admin);
  CHECK(a.cached_tokens() == 0);
  {
    // Even an admin credential that is also a valid session token (an operator's odd choice) stays
    // the admin on every use: it is compared before the token is verified, so it is never cached.
    AuthSettings s = f.settings();
    s.admin_token = a.mint(claims_for(record("both", 5000)));
    Authenticator both(s, f.store, [&] { return f.now.load(); });
    for (int i = 0; i < 3; ++i) CHECK(both.authenticate("Bearer " + *s.admin_token).admin);
    CHECK(both.cached_tokens() == 0);
  }
  std::string first;
  for (size_t i = 0; i < Authenticator::kMaxCachedTokens + 10; ++i) {
    const std::string t = a.mint(claims_for(record("b" + std::to_string(i), 5000)));
    if (i == 0) first = t;
    CHECK(a.authenticate("Bearer " + t).session_id == "b" + std::to_string(i));
    CHECK(a.cached_tokens() <= Authenticator::kMaxCachedTokens);
  }
  // The first one was dropped when the cache started over: it verifies again, with the same result.
  Principal p = a.authenticate("Bearer " + first);
  CHECK(p.session_id == "b0");
  CHECK(p.may_access("a"));
  CHECK_FALSE(p.may_access("c"));
}

TEST_CASE("token cache: threads sharing it see the same answers, and a revocation among them") {
  Fixture f("cache-threads");
  Authenticator a(f.settings(), f.store, [&] { return f.now.load(); });
  a.start();
  std::vector<std::string> tokens;
  for (int i = 0; i < 8; ++i) tokens.push_back(a.mint(claims_for(record("t" + std::to_string(i), 5000))));
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int n = 0; n < 400; ++n) {
        const size_t i = static_cast<size_t>(n + t) % tokens.size();
        std::string code;
        const int status = status_of(a, "Bearer " + tokens[i], &code);
        // t7 may be revoked at any moment; every other token stays good throughout.
        if (!(status == 200 || (i == 7 && code == "token_revoked"))) ++wrong;
      }
    });
  a.revoke("t7");
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
  std::string code;
  CHECK(status_of(a, "Bearer " + tokens[7], &code) == 401);
  CHECK(code == "token_revoked");
  CHECK(status_of(a, "Bearer " + tokens[0]) == 200);
}

TEST_CASE("authenticate_in_memory: the same answers as authenticate, but never reads the session store") {
  Fixture f("in-memory");
  Authenticator a(f.settings(), f.store, [&] { return f.now.load(); });
  a.start();
  // A small scope rides in the token: answered from memory, as authenticate() answers it.
  SessionRecord small = record("small-mem", 5000);
  const std::string st = a.mint(claims_for(small));
  auto p = a.authenticate_in_memory("Bearer " + st);
  REQUIRE(p);
  CHECK(p->session_id == "small-mem");
  CHECK(p->may_access("a"));
  CHECK_FALSE(p->may_access("c"));
  CHECK(a.authenticate_in_memory("Bearer the-admin-credential")->admin);
  // Refusals are the same ApiErrors.
  auto code_of = [&](const std::optional<std::string>& h) {
    try {
      (void)a.authenticate_in_memory(h);
    } catch (const ApiError& e) {
      return e.code();
    }
    return std::string("none");
  };
  CHECK(code_of(std::nullopt) == "missing_token");
  CHECK(code_of(std::string("Bearer nonsense")) == "invalid_token");
  a.revoke("small-mem");
  CHECK(code_of("Bearer " + st) == "token_revoked");
  // A scope kept by digest needs the store the first time: nullopt (the caller goes to a worker),
  // and the store is not read (its record, created after, is still unknown to the authenticator).
  SessionRecord wide = record("wide-mem", 5000);
  wide.namespaces = widest_scope('m');
  const std::string wt = a.mint(claims_for(wide));
  CHECK_FALSE(a.authenticate_in_memory("Bearer " + wt));
  f.store.create(wide);
  CHECK_FALSE(a.authenticate_in_memory("Bearer " + wt));
  // Once authenticate() has read it, the scope is in memory.
  CHECK(a.authenticate("Bearer " + wt).scope.namespaces.size() == 1000);
  auto w = a.authenticate_in_memory("Bearer " + wt);
  REQUIRE(w);
  CHECK(w->scope.namespaces.size() == 1000);
  f.now += 5000;  // and it still expires
  CHECK(code_of("Bearer " + wt) == "token_expired");
}

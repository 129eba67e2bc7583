// The call budget (store/cloudflare/call_budget.h) on a fake clock: the sliding window, the bounded
// queue and its 503 with Retry-After, the pause after a 429, clients before background work, and
// Cloudflare's Ratelimit / Ratelimit-Policy headers. No sleeps: time moves only when a test moves it.
#include <doctest/doctest.h>

#include <string>

#include "obs/metrics.h"
#include "store/cloudflare/call_budget.h"
#include "util/error.h"

using era::ApiError;
using era::CallPriority;
using era::cf::BudgetOptions;
using era::cf::CallBudget;
using era::cf::parse_ratelimit_header;

namespace {

struct Fixture {
  int64_t now = 1'000'000;
  BudgetOptions o;
  Fixture() {
    o.calls = 3;
    o.window_ms = 10'000;
    o.max_wait_ms = 2'000;
    o.max_queue = 4;
    o.default_pause_ms = 7'000;
  }
  CallBudget make() { return CallBudget(o, [this] { return now; }); }
};

// The 503 an enter() or try_start() throws, or nullopt when it did not throw.
template <class F>
std::optional<ApiError> refusal(F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  return std::nullopt;
}

void start_now(CallBudget& b, CallPriority p = CallPriority::client) {
  auto t = b.enter(p);
  REQUIRE(b.try_start(t).started);
}

}  // namespace

TEST_CASE("call budget: Ratelimit and Ratelimit-Policy headers as Cloudflare documents them") {
  auto items = parse_ratelimit_header(R"("default";r=50;t=30)");
  REQUIRE(items.size() == 1);
  CHECK(items[0].name == "default");
  CHECK(items[0].r == 50);
  CHECK(items[0].t == 30);
  CHECK_FALSE(items[0].q.has_value());

  items = parse_ratelimit_header(R"("burst";q=100;w=60, "default" ; q=1200 ; w=300)");
  REQUIRE(items.size() == 2);
  CHECK(items[0].name == "burst");
  CHECK((items[0].q == 100 && items[0].w == 60));
  CHECK(items[1].name == "default");
  CHECK((items[1].q == 1200 && items[1].w == 300));

  // Hostile or broken: items whose numbers do not read are dropped, others are kept; never a throw.
  items = parse_ratelimit_header(R"("a";r=-1;t=5, "b";r=99999999999999999999;t=1, c;r=3;t=4;x="y,z", ;r=1, "d";flag)");
  REQUIRE(items.size() == 2);
  CHECK(items[0].name == "c");
  CHECK((items[0].r == 3 && items[0].t == 4));
  CHECK(items[1].name == "d");
  CHECK(parse_ratelimit_header("").empty());
  CHECK(parse_ratelimit_header(std::string(5000, 'a')).empty());
  CHECK(parse_ratelimit_header(R"(",,,";r=1)").size() == 1);
}

TEST_CASE("call budget: a sliding window; a call that would wait too long gets 503 with Retry-After") {
  Fixture f;
  CallBudget b = f.make();
  for (int i = 0; i < 3; ++i) {
    start_now(b);
    f.now += 1000;  // calls at +0, +1 s, +2 s
  }
  // Window full until the first call leaves it at +10 s: 7 s away, more than the 2 s bound.
  auto e = refusal([&] { b.enter(CallPriority::client); });
  REQUIRE(e);
  CHECK(e->status() == 503);
  CHECK(e->code() == "call_budget_exhausted");
  CHECK(e->retry_after_s == 7);
  CHECK(b.snapshot().refused == 1);
  CHECK(b.snapshot().queued_client == 0);  // a refused call leaves nothing behind

  // 1.5 s before the slot frees, the call queues and starts exactly when the first call leaves.
  f.now = 1'000'000 + 8'500;
  auto t = b.enter(CallPriority::client);
  auto turn = b.try_start(t);
  CHECK_FALSE(turn.started);
  CHECK(turn.wait_ms == 1500);
  f.now += 1499;
  CHECK_FALSE(b.try_start(t).started);
  f.now += 1;
  CHECK(b.try_start(t).started);
  auto s = b.snapshot();
  CHECK(s.used == 3);
  CHECK(s.started == 4);
  CHECK(s.waited == 1);
  // Never more than `calls` in any window: the next one waits for the +1 s call.
  auto e2 = refusal([&] { b.enter(CallPriority::client); });
  REQUIRE_FALSE(e2);  // +11 s is 1 s away: within the bound
}

TEST_CASE("call budget: the queue is FIFO and bounded; each waiter's Retry-After counts those ahead") {
  Fixture f;
  f.o.max_wait_ms = 60'000;
  f.o.max_queue = 2;
  CallBudget b = f.make();
  for (int i = 0; i < 3; ++i) start_now(b);
  f.now += 1;
  auto a = b.enter(CallPriority::client);
  auto c = b.enter(CallPriority::client);
  auto full = refusal([&] { b.enter(CallPriority::client); });
  REQUIRE(full);
  CHECK(full->status() == 503);
  CHECK(full->retry_after_s >= 1);
  f.now = 1'000'000 + 10'000;  // all three leave the window: two slots for two waiters, in order
  CHECK_FALSE(b.try_start(c).started);  // not its turn while `a` waits
  CHECK(b.try_start(a).started);
  CHECK(b.try_start(c).started);
  // A waiter that gives up leaves no trace.
  f.now += 1;
  auto d = b.enter(CallPriority::client);
  b.leave(d);
  CHECK(b.snapshot().queued_client == 0);
}

TEST_CASE("call budget: a waiter refused once its turn cannot come within the bound") {
  Fixture f;
  CallBudget b = f.make();
  for (int i = 0; i < 3; ++i) start_now(b);
  f.now += 8'500;  // a slot in 1.5 s
  auto t = b.enter(CallPriority::client);
  b.observe(429, std::nullopt, std::nullopt, 30'000L);  // meanwhile Cloudflare says: 30 s
  auto e = refusal([&] { b.try_start(t); });
  REQUIRE(e);
  CHECK(e->status() == 503);
  CHECK(e->retry_after_s == 30);
  CHECK(b.snapshot().queued_client == 0);
}

TEST_CASE("call budget: a 429 pauses every call until its Retry-After, then they resume") {
  Fixture f;
  f.o.calls = 100;
  CallBudget b = f.make();
  start_now(b);
  b.observe(429, std::nullopt, std::nullopt, 1'500L);
  CHECK(b.snapshot().throttled == 1);
  CHECK(b.snapshot().paused_ms == 1500);
  auto t = b.enter(CallPriority::client);  // 1.5 s: within the 2 s bound, so it waits
  auto turn = b.try_start(t);
  CHECK_FALSE(turn.started);
  CHECK(turn.wait_ms == 1500);
  f.now += 1500;
  CHECK(b.try_start(t).started);

  // Without Retry-After: the default pause (7 s here), longer than the bound: refused at once.
  b.observe(429, std::nullopt, std::nullopt, std::nullopt);
  auto e = refusal([&] { b.enter(CallPriority::client); });
  REQUIRE(e);
  CHECK(e->retry_after_s == 7);
  CHECK(e->code() == "upstream_rate_limited");  // the client learns why
  f.now += 7000;
  start_now(b);
  // Background work pauses too.
  b.observe(429, std::nullopt, std::nullopt, 60'000L);
  CHECK(refusal([&] { b.enter(CallPriority::background); }));
}

TEST_CASE("call budget: clients go before background work, which keeps to its share") {
  Fixture f;
  f.o.calls = 20;
  f.o.background_percent = 10;  // 2 of 20
  f.o.max_wait_ms = 60'000;
  CallBudget b = f.make();
  start_now(b, CallPriority::background);
  start_now(b, CallPriority::background);
  // The share is spent: more background work waits for the window (or is refused past the bound)...
  auto bg = b.enter(CallPriority::background);
  auto turn = b.try_start(bg);
  CHECK_FALSE(turn.started);
  CHECK(turn.wait_ms == 10'000);
  // ...while clients still have the rest of the window.
  for (int i = 0; i < 18; ++i) start_now(b);
  CHECK(b.snapshot().used == 20);
  CHECK(b.snapshot().background_used == 2);

  // With the window full, a client queued after a background call still starts first.
  f.now += 10'000;  // everything leaves the window
  auto client = b.enter(CallPriority::client);
  CHECK_FALSE(b.try_start(bg).started);  // a client waits: background yields
  CHECK(b.try_start(client).started);
  CHECK(b.try_start(bg).started);
}

TEST_CASE("call budget: Cloudflare's Ratelimit header bounds the calls until its reset; a policy lowers the limit") {
  Fixture f;
  f.o.calls = 1100;
  f.o.window_ms = 300'000;
  f.o.max_wait_ms = 60'000;
  SUBCASE("remaining") {
    CallBudget b = f.make();
    b.observe(200, std::string(R"("default";r=2;t=30)"), std::nullopt, std::nullopt);
    CHECK(b.snapshot().upstream_remaining == 2);
    start_now(b);
    start_now(b);
    auto t = b.enter(CallPriority::client);
    auto turn = b.try_start(t);
    CHECK_FALSE(turn.started);
    CHECK(turn.wait_ms == 30'000);
    f.now += 30'000;  // Cloudflare's window reset: our own budget applies again
    CHECK(b.try_start(t).started);
  }
  SUBCASE("remaining, shared by replicas") {
    f.o.replicas = 2;
    CallBudget b = f.make();
    CHECK(b.snapshot().limit == 550);
    b.observe(200, std::string(R"("default";r=3;t=100, "other";r=500;t=10)"), std::nullopt, std::nullopt);
    CHECK(b.snapshot().upstream_remaining == 1);  // the tightest item, halved
  }
  SUBCASE("policy") {
    CallBudget b = f.make();
    b.observe(200, std::nullopt, std::string(R"("burst";q=100;w=60, "default";q=600;w=300)"), std::nullopt);
    CHECK(b.snapshot().limit == 600);  // the policy over our window; the 60 s one is not ours
  }
}

TEST_CASE("call budget: acquire() starts at once with room and throws the 503 without waiting when full") {
  Fixture f;
  f.o.max_wait_ms = 0;
  CallBudget b = f.make();
  for (int i = 0; i < 3; ++i) b.acquire(CallPriority::client);
  auto e = refusal([&] { b.acquire(CallPriority::client); });
  REQUIRE(e);
  CHECK(e->retry_after_s == 10);
  f.now += 10'000;
  b.acquire(CallPriority::client);
  CHECK(b.snapshot().started == 4);
  // calls = 0: no budget at all.
  f.o.calls = 0;
  CallBudget off = f.make();
  for (int i = 0; i < 100; ++i) off.acquire(CallPriority::client);
}

TEST_CASE("call budget: its gauges for /metrics") {
  Fixture f;
  CallBudget b = f.make();
  start_now(b);
  start_now(b, CallPriority::background);
  era::obs::Exposition out;
  era::cf::write_budget_metrics(b, out);
  const std::string& text = out.text();
  CHECK(text.find("era_cf_budget_limit 3") != std::string::npos);
  CHECK(text.find("era_cf_budget_used{priority=\"client\"} 1") != std::string::npos);
  CHECK(text.find("era_cf_budget_used{priority=\"background\"} 1") != std::string::npos);
  CHECK(text.find("era_cf_budget_remaining 1") != std::string::npos);
  CHECK(text.find("era_cf_budget_calls_total 2") != std::string::npos);
}

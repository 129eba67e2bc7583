#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "obs/metrics.h"

using namespace era::obs;

TEST_CASE("histogram: a value goes in the first bucket whose bound it does not exceed; cumulative output") {
  static const Bounds bounds = {0.1, 0.5, 1};
  Histogram h(bounds);
  h.observe(0.05);
  h.observe(0.1);  // equal to a bound: that bucket (le)
  h.observe(0.3);
  h.observe(2);    // past every bound: +Inf only
  h.observe(-1);   // a clock step backwards: counted as 0
  auto s = h.snapshot();
  REQUIRE(s.cumulative.size() == 4);
  CHECK(s.cumulative[0] == 3);
  CHECK(s.cumulative[1] == 4);
  CHECK(s.cumulative[2] == 4);
  CHECK(s.cumulative[3] == 5);
  CHECK(s.count == 5);
  CHECK(s.sum == doctest::Approx(2.45));
}

TEST_CASE("histogram: concurrent observations are all counted (lock-free, no lost updates)") {
  Histogram h(http_latency_bounds());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 20000; ++i) h.observe(0.001 * ((i + t) % 50));
    });
  for (auto& t : threads) t.join();
  auto s = h.snapshot();
  CHECK(s.count == 80000);
  CHECK(s.cumulative.back() == 80000);
  for (size_t i = 1; i < s.cumulative.size(); ++i) CHECK(s.cumulative[i] >= s.cumulative[i - 1]);
}

TEST_CASE("histogram refuses more bounds than it has buckets for") {
  static const Bounds many(30, 1.0);
  CHECK_THROWS_AS(Histogram{many}, std::logic_error);
}

TEST_CASE("exposition: label values escape backslash, double quote and newline; HELP escapes backslash and newline") {
  CHECK(Exposition::escape_label_value("plain") == "plain");
  CHECK(Exposition::escape_label_value("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  CHECK(Exposition::escape_label_value("tab\tstays") == "tab\tstays");
  CHECK(Exposition::escape_help("x\\y\nz \"q\"") == "x\\\\y\\nz \"q\"");
  Exposition e;
  e.family("m_total", "Help with \\ and\nnewline.", "counter");
  e.sample("m_total", {{"reason", "bad\"one\\\n"}, {"b", ""}}, uint64_t(3));
  CHECK(e.text() ==
        "# HELP m_total Help with \\\\ and\\nnewline.\n"
        "# TYPE m_total counter\n"
        "m_total{reason=\"bad\\\"one\\\\\\n\",b=\"\"} 3\n");
}

TEST_CASE("exposition: values in Go's float syntax, shortest round trip") {
  CHECK(Exposition::format_value(0) == "0");
  CHECK(Exposition::format_value(42) == "42");
  CHECK(Exposition::format_value(-3) == "-3");
  CHECK(Exposition::format_value(0.1) == "0.1");
  CHECK(Exposition::format_value(0.00025) == "0.00025");
  CHECK(Exposition::format_value(1.5e300) == "1.5e+300");
  CHECK(Exposition::format_value(1.0 / 0.0) == "+Inf");
  CHECK(Exposition::format_value(-1.0 / 0.0) == "-Inf");
  CHECK(Exposition::format_value(0.0 / 0.0) == "NaN");
}

TEST_CASE("exposition: a histogram has every bucket with le, +Inf, _sum and _count") {
  static const Bounds bounds = {0.5, 1};
  Histogram h(bounds);
  h.observe(0.25);
  h.observe(0.75);
  Exposition e;
  e.histogram("d_seconds", {{"surface", "kv"}}, h);
  CHECK(e.text() ==
        "d_seconds_bucket{surface=\"kv\",le=\"0.5\"} 1\n"
        "d_seconds_bucket{surface=\"kv\",le=\"1\"} 2\n"
        "d_seconds_bucket{surface=\"kv\",le=\"+Inf\"} 2\n"
        "d_seconds_sum{surface=\"kv\"} 1\n"
        "d_seconds_count{surface=\"kv\"} 2\n");
}

TEST_CASE("labeled counter: bounded cardinality, the rest under _overflow") {
  LabeledCounter c(1, 4);  // 3 label sets, then the overflow
  c.inc({"a"});
  c.inc({"b"}, 2);
  c.inc({"a"});
  c.inc({"c"});
  c.inc({"d"});  // no room: overflow
  c.inc({"e"}, 5);
  CHECK(c.value({"a"}) == 2);
  CHECK(c.value({"b"}) == 2);
  CHECK(c.value({"c"}) == 1);
  CHECK(c.value({"d"}) == 0);
  auto snap = c.snapshot();
  REQUIRE(snap.size() == 4);
  CHECK(snap.back().first == std::vector<std::string>{"_overflow"});
  CHECK(snap.back().second == 6);
  CHECK_THROWS_AS(c.inc({"a", "b"}), std::logic_error);
}

TEST_CASE("labeled counter: concurrent first sightings make one series each") {
  LabeledCounter c(2, 64);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&c] {
      for (int i = 0; i < 5000; ++i) c.inc({"kv", i % 2 ? "ok" : "throttled"});
    });
  for (auto& t : threads) t.join();
  CHECK(c.snapshot().size() == 2);
  CHECK(c.value({"kv", "ok"}) == 10000);
  CHECK(c.value({"kv", "throttled"}) == 10000);
}

TEST_CASE("surfaces, methods and upstream APIs from routes and descriptions") {
  CHECK(surface_of_route("/api/storage/kv/{ns}/{key...}") == Surface::kv);
  CHECK(surface_of_route("/api/storage/kv/{ns}") == Surface::kv);
  CHECK(surface_of_route("/api/storage/d1/{ns}/query") == Surface::d1);
  CHECK(surface_of_route("/api/storage/r2/{ns}/{key...}") == Surface::r2);
  CHECK(surface_of_route("/api/storage/kvx/{ns}") == Surface::other);
  CHECK(surface_of_route("/api/resources/stats") == Surface::resources);
  CHECK(surface_of_route("/api/sessions") == Surface::sessions);
  CHECK(surface_of_route("/api/sessions/{id}") == Surface::sessions);
  CHECK(surface_of_route("/api/sessions/{id}/run") == Surface::run);
  CHECK(surface_of_route("/metrics") == Surface::other);
  CHECK(surface_of_route("-") == Surface::other);
  CHECK(method_of("DELETE") == Method::del);
  CHECK(method_of("BREW") == Method::other);
  CHECK(api_of("KV get") == Api::kv);
  CHECK(api_of("D1 resources stats") == Api::d1);
  CHECK(api_of("R2 upload part") == Api::r2);
  CHECK(api_of("KVget") == Api::other);
  CHECK(std::string(Metrics::upstream_outcome(-7)) == "transport_error");
  CHECK(std::string(Metrics::upstream_outcome(200)) == "ok");
  CHECK(std::string(Metrics::upstream_outcome(404)) == "not_found");
  CHECK(std::string(Metrics::upstream_outcome(429)) == "throttled");
  CHECK(std::string(Metrics::upstream_outcome(400)) == "client_error");
  CHECK(std::string(Metrics::upstream_outcome(503)) == "server_error");
}

TEST_CASE("metrics: a request is counted by surface, method and class; in flight goes up and down") {
  Metrics m;
  m.request_started();
  CHECK(m.in_flight() == 1);
  m.request_finished(Surface::kv, Method::get, 200, 0.001, 0, 10);
  m.request_started();
  m.request_finished(Surface::kv, Method::get, 404, 0.001, 0, 10);
  m.request_started();
  m.request_finished(Surface::r2, Method::put, 0, 0.001, 5, 0);  // no status: a 5xx
  CHECK(m.in_flight() == 0);
  CHECK(m.requests(Surface::kv, Method::get, 2) == 1);
  CHECK(m.requests(Surface::kv, Method::get, 4) == 1);
  CHECK(m.requests(Surface::r2, Method::put, 5) == 1);
  m.upstream_call(Api::kv, 429, 0.01, 0);
  m.upstream_call(Api::kv, 200, 0.01, 1);
  CHECK(m.upstream_calls().value({"kv", "throttled"}) == 1);
  CHECK(m.upstream_calls().value({"kv", "ok"}) == 1);
  const std::string page = m.render();
  CHECK(page.find("era_http_requests_total{surface=\"kv\",method=\"GET\",status_class=\"2xx\"} 1\n") != std::string::npos);
  CHECK(page.find("era_upstream_retries_total{api=\"kv\"} 1\n") != std::string::npos);
  CHECK(page.find("era_upstream_throttled_total{api=\"kv\"} 1\n") != std::string::npos);
  CHECK(page.find("# TYPE process_resident_memory_bytes gauge\n") != std::string::npos);
  CHECK(page.find("process_open_fds ") != std::string::npos);
}

TEST_CASE("metrics: collectors add families at scrape time (how the cloudflare budget's gauges plug in)") {
  Metrics m;
  int calls = 0;
  m.add_collector([&calls](Exposition& out) {
    ++calls;
    out.family("era_test_budget_remaining", "A gauge added later.", "gauge");
    out.sample("era_test_budget_remaining", {}, int64_t(1150));
  });
  const std::string page = m.render();
  CHECK(calls == 1);
  CHECK(page.find("# TYPE era_test_budget_remaining gauge\nera_test_budget_remaining 1150\n") != std::string::npos);
}

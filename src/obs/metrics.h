// Metrics: the counters, gauges and histograms behind GET /metrics, and the writer of Prometheus's
// text exposition format (version 0.0.4).
//
// - Everything on a request's path is lock-free: counters are relaxed atomics, histograms have fixed
//   bucket bounds and one atomic counter per bucket (plus an atomic sum in nanoseconds), so recording
//   never waits for a scrape and a scrape never stops a request. A scrape reads each atomic once; the
//   figures of one histogram may be a few observations apart from each other, never torn.
// - Label values are bounded: the hot families are indexed by small enums (surface, method, status
//   class, API); the others (an error code as a reason, a run's outcome) live in a LabeledCounter of
//   fixed capacity, whose label sets past the capacity are counted under the value "_overflow". No
//   label ever holds a session id, a key or anything else a tenant chooses.
// - Families that other parts add later (the cloudflare call budget's gauges: budget remaining,
//   queue depth, cache hit ratio, coalesced batch sizes) are collectors: a function that writes its
//   families at scrape time (Metrics::add_collector), so this file needs no change for them.
//
// metrics() is the process's one registry, the way log:: is the one logger: a sink every layer may
// write to (the router, the server's connection pool, the upstream transport, the runner) without
// threading a pointer through every constructor. Tests make their own Metrics objects.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace era::obs {

// Upper bounds (seconds) of a histogram's buckets, ascending; +Inf is implicit.
using Bounds = std::vector<double>;
const Bounds& http_latency_bounds();      // 100 µs .. 60 s
const Bounds& upstream_latency_bounds();  // 1 ms .. 60 s
const Bounds& run_duration_bounds();      // 10 ms .. 600 s

// A histogram of durations in seconds: fixed buckets, one atomic counter each.
class Histogram {
 public:
  static constexpr size_t kMaxBuckets = 24;  // bounds, +Inf included
  explicit Histogram(const Bounds& bounds);

  void observe(double seconds);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;
  const Bounds& bounds() const { return *bounds_; }

 private:
  const Bounds* bounds_;
  std::array<std::atomic<uint64_t>, kMaxBuckets> buckets_{};  // not cumulative: one per bucket
  std::atomic<uint64_t> sum_ns_{0};
};

// Counters keyed by label values, at most `capacity` label sets (past it: all values "_overflow").
// Incrementing a label set already seen is lock-free; only the first sight of one takes a lock.
class LabeledCounter {
 public:
  LabeledCounter(size_t labels, size_t capacity);
  void inc(std::initializer_list<std::string_view> values, uint64_t n = 1);
  std::vector<std::pair<std::vector<std::string>, uint64_t>> snapshot() const;
  // The value for one label set (0 if never seen); for tests.
  uint64_t value(std::initializer_list<std::string_view> values) const;

 private:
  struct Slot {
    std::vector<std::string> labels;
    std::atomic<uint64_t> value{0};
  };
  Slot* find(std::initializer_list<std::string_view> values, size_t from, size_t to) const;

  size_t labels_;
  size_t capacity_;
  std::unique_ptr<Slot[]> slots_;  // [0, used_) published; the last one is the overflow slot
  std::atomic<size_t> used_{0};
  std::mutex add_mu_;
};

// Writes the text exposition format. Families must be written whole, one after another.
class Exposition {
 public:
  using Labels = std::vector<std::pair<std::string_view, std::string>>;

  // "# HELP" and "# TYPE" lines; type is counter, gauge, histogram or untyped.
  void family(std::string_view name, std::string_view help, std::string_view type);
  void sample(std::string_view name, const Labels& labels, double value);
  void sample(std::string_view name, const Labels& labels, uint64_t value);
  void sample(std::string_view name, const Labels& labels, int64_t value);
  // name_bucket{...,le="..."} for every bound and +Inf, then name_sum and name_count.
  void histogram(std::string_view name, const Labels& labels, const Histogram& h);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

  // Escaping as the format wants it: label values escape \ " and newline; HELP text \ and newline.
  static std::string escape_label_value(std::string_view v);
  static std::string escape_help(std::string_view v);
  static std::string format_value(double v);

 private:
  void series(std::string_view name, const Labels& labels);
  std::string out_;
};

// Where a request went, by its route: the label "surface".
enum class Surface { kv, d1, r2, resources, sessions, run, other, count_ };
const char* to_string(Surface s);
Surface surface_of_route(std::string_view route_pattern);

enum class Method { get, head, put, post, patch, del, options, other, count_ };
const char* to_string(Method m);
Method method_of(std::string_view method);

// Upstream APIs (the cloudflare backend): by the call's description, "KV get", "D1 query", "R2 put".
enum class Api { kv, d1, r2, other, count_ };
const char* to_string(Api a);
Api api_of(std::string_view what);

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // --- the HTTP server
  void connection_opened() { open_connections_.fetch_add(1, std::memory_order_relaxed), connections_.fetch_add(1, std::memory_order_relaxed); }
  void connection_closed() { open_connections_.fetch_sub(1, std::memory_order_relaxed); }
  void request_started() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  // A finished request: counted, timed, its body bytes added; in flight again one fewer.
  void request_finished(Surface s, Method m, int status, double seconds, uint64_t bytes_in, uint64_t bytes_out);
  // A request the server answered itself before any handler (400, 417, 431, 503): counted in
  // era_http_requests_total only (never in flight, not timed).
  void request_refused(Surface s, Method m, int status);
  // A refusal: 401/403 (reason: the error code) or a throttle (429 and upstream throttling).
  void auth_failure(std::string_view reason) { auth_failures_.inc({reason}); }
  void throttled(Surface s, std::string_view reason) { throttled_.inc({to_string(s), reason}); }

  // --- upstream calls (one per attempt, retries included). `status`: the HTTP status, or <= 0 for a
  // transport failure (no answer). `attempt`: 0 for the first try.
  void upstream_call(Api api, int status, double seconds, int attempt);
  static const char* upstream_outcome(int status);

  // --- the runner
  void run_finished(std::string_view outcome, double seconds);
  // A run refused before it started (its error code: runner_busy, sandbox_unavailable, ...): counted, not timed.
  void run_refused(std::string_view code) { runs_.inc({code}); }

  // A function that writes more families at scrape time (see the top of this file).
  void add_collector(std::function<void(Exposition&)> collector);

  // The whole page.
  std::string render() const;
  // Parts, for tests.
  uint64_t requests(Surface s, Method m, int status_class) const;
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  int64_t open_connections() const { return open_connections_.load(std::memory_order_relaxed); }
  const LabeledCounter& upstream_calls() const { return upstream_calls_; }

 private:
  void count(Surface s, Method m, int status);  // era_http_requests_total, by status class

  static constexpr size_t kS = size_t(Surface::count_), kM = size_t(Method::count_), kA = size_t(Api::count_);

  std::atomic<int64_t> open_connections_{0};
  std::atomic<uint64_t> connections_{0};
  std::atomic<int64_t> in_flight_{0};
  std::array<std::array<std::array<std::atomic<uint64_t>, 5>, kM>, kS> requests_{};
  std::vector<std::unique_ptr<Histogram>> latency_;  // kS * kM
  std::array<std::atomic<uint64_t>, kS> bytes_in_{};
  std::array<std::atomic<uint64_t>, kS> bytes_out_{};
  LabeledCounter auth_failures_{1, 64};
  LabeledCounter throttled_{2, 64};

  LabeledCounter upstream_calls_{2, 64};
  std::vector<std::unique_ptr<Histogram>> upstream_latency_;  // kA
  std::array<std::atomic<uint64_t>, kA> upstream_retries_{};
  std::array<std::atomic<uint64_t>, kA> upstream_429_{};

  LabeledCounter runs_{1, 32};
  Histogram run_duration_;

  mutable std::mutex collectors_mu_;
  std::vector<std::function<void(Exposition&)>> collectors_;
};

// The process's registry.
Metrics& metrics();

// One upstream attempt finished: what the transport calls in the one place each attempt ends.
// `what`: the call's description ("KV get"); `status`: the HTTP status, or <= 0 when no answer came
// (then `error` says why); `cf_ray`: the answer's cf-ray header (Cloudflare's request id), "" if none.
// Counted and timed in metrics(); a failure (no answer, 401, 403, 429, 5xx) is also logged, at warn,
// with the cf-ray, so it can be matched with Cloudflare's side.
void upstream_attempt(std::string_view what, int status, std::string_view cf_ray, double seconds, int attempt,
                      std::string_view error = {});

// Process metrics (process_* families: RSS, CPU seconds, open fds, threads, start time) from /proc.
void write_process_metrics(Exposition& out);

}  // namespace era::obs

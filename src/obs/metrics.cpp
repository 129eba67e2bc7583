#include "obs/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "util/log.h"

namespace era::obs {

const Bounds& http_latency_bounds() {
  static const Bounds b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                           0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
  return b;
}
const Bounds& upstream_latency_bounds() {
  static const Bounds b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return b;
}
const Bounds& run_duration_bounds() {
  static const Bounds b = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
  return b;
}

// ---------------------------------------------------------------- Histogram

Histogram::Histogram(const Bounds& bounds) : bounds_(&bounds) {
  if (bounds.size() + 1 > kMaxBuckets) throw std::logic_error("a histogram has at most 23 bounds");
}

void Histogram::observe(double seconds) {
  if (!(seconds >= 0)) seconds = 0;  // NaN or negative: a clock step; count it in the first bucket
  const Bounds& b = *bounds_;
  size_t i = 0;
  while (i < b.size() && seconds > b[i]) ++i;  // le: a value equal to a bound belongs to it
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  const double ns = seconds * 1e9;
  sum_ns_.fetch_add(ns >= 1.8e19 ? uint64_t(1.8e19) : uint64_t(std::llround(ns)), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  const size_t n = bounds_->size() + 1;
  s.cumulative.resize(n);
  uint64_t acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = acc;
  }
  s.count = acc;  // _count is the +Inf bucket by definition: read once, they cannot disagree
  s.sum = double(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

// ---------------------------------------------------------------- LabeledCounter

LabeledCounter::LabeledCounter(size_t labels, size_t capacity)
    : labels_(labels), capacity_(capacity < 2 ? 2 : capacity), slots_(new Slot[capacity_]) {
  // The last slot is the overflow's, published from the start (snapshot() skips it while it is zero).
  slots_[capacity_ - 1].labels.assign(labels_, "_overflow");
}

LabeledCounter::Slot* LabeledCounter::find(std::initializer_list<std::string_view> values, size_t from,
                                           size_t to) const {
  for (size_t i = from; i < to; ++i) {
    const auto& l = slots_[i].labels;
    size_t j = 0;
    for (std::string_view v : values) {
      if (l[j] != v) break;
      ++j;
    }
    if (j == labels_) return &slots_[i];
  }
  return nullptr;
}

void LabeledCounter::inc(std::initializer_list<std::string_view> values, uint64_t n) {
  if (values.size() != labels_) throw std::logic_error("LabeledCounter::inc: wrong number of label values");
  size_t used = used_.load(std::memory_order_acquire);
  if (Slot* s = find(values, 0, used)) {
    s->value.fetch_add(n, std::memory_order_relaxed);
    return;
  }
  std::lock_guard<std::mutex> lock(add_mu_);
  const size_t now = used_.load(std::memory_order_relaxed);
  Slot* s = find(values, used, now);
  if (!s) {
    if (now + 1 < capacity_) {
      s = &slots_[now];
      s->labels.assign(values.begin(), values.end());
      used_.store(now + 1, std::memory_order_release);  // publishes the labels written above
    } else {
      s = &slots_[capacity_ - 1];
    }
  }
  s->value.fetch_add(n, std::memory_order_relaxed);
}

std::vector<std::pair<std::vector<std::string>, uint64_t>> LabeledCounter::snapshot() const {
  std::vector<std::pair<std::vector<std::string>, uint64_t>> out;
  const size_t used = used_.load(std::memory_order_acquire);
  for (size_t i = 0; i < used; ++i) out.emplace_back(slots_[i].labels, slots_[i].value.load(std::memory_order_relaxed));
  const Slot& o = slots_[capacity_ - 1];
  if (uint64_t v = o.value.load(std::memory_order_relaxed)) out.emplace_back(o.labels, v);
  return out;
}

uint64_t LabeledCounter::value(std::initializer_list<std::string_view> values) const {
  const Slot* s = find(values, 0, used_.load(std::memory_order_acquire));
  return s ? s->value.load(std::memory_order_relaxed) : 0;
}

// ---------------------------------------------------------------- Exposition

std::string Exposition::escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string Exposition::escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string Exposition::format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // The shortest form that reads back the same value (e.g. 0.1, not 0.10000000000000001).
  for (int p = 1; p <= 17; ++p) {
    char tryb[40];
    std::snprintf(tryb, sizeof tryb, "%.*g", p, v);
    if (std::strtod(tryb, nullptr) == v) return tryb;
  }
  return buf;
}

void Exposition::family(std::string_view name, std::string_view help, std::string_view type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void Exposition::series(std::string_view name, const Labels& labels) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out_ += ',';
      first = false;
      out_ += k;
      out_ += "=\"";
      out_ += escape_label_value(v);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
}

void Exposition::sample(std::string_view name, const Labels& labels, double value) {
  series(name, labels);
  out_ += format_value(value);
  out_ += '\n';
}
void Exposition::sample(std::string_view name, const Labels& labels, uint64_t value) {
  series(name, labels);
  out_ += std::to_string(value);
  out_ += '\n';
}
void Exposition::sample(std::string_view name, const Labels& labels, int64_t value) {
  series(name, labels);
  out_ += std::to_string(value);
  out_ += '\n';
}

void Exposition::histogram(std::string_view name, const Labels& labels, const Histogram& h) {
  const Histogram::Snapshot s = h.snapshot();
  const std::string base(name);
  Labels with_le = labels;
  with_le.emplace_back("le", "");
  const Bounds& b = h.bounds();
  for (size_t i = 0; i <= b.size(); ++i) {
    with_le.back().second = i < b.size() ? format_value(b[i]) : "+Inf";
    sample(base + "_bucket", with_le, s.cumulative[i]);
  }
  sample(base + "_sum", labels, s.sum);
  sample(base + "_count", labels, s.count);
}

// ---------------------------------------------------------------- label enums

const char* to_string(Surface s) {
  switch (s) {
    case Surface::kv: return "kv";
    case Surface::d1: return "d1";
    case Surface::r2: return "r2";
    case Surface::resources: return "resources";
    case Surface::sessions: return "sessions";
    case Surface::run: return "run";
    default: return "other";
  }
}

namespace {
bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) { return s.size() >= p.size() && s.substr(s.size() - p.size()) == p; }
}  // namespace

Surface surface_of_route(std::string_view r) {
  if (starts_with(r, "/api/storage/")) {
    std::string_view t = r.substr(13);
    if (starts_with(t, "kv/") || t == "kv") return Surface::kv;
    if (starts_with(t, "d1/") || t == "d1") return Surface::d1;
    if (starts_with(t, "r2/") || t == "r2") return Surface::r2;
    return Surface::other;
  }
  if (starts_with(r, "/api/resources")) return Surface::resources;
  if (starts_with(r, "/api/sessions")) return ends_with(r, "/run") ? Surface::run : Surface::sessions;
  return Surface::other;
}

const char* to_string(Method m) {
  switch (m) {
    case Method::get: return "GET";
    case Method::head: return "HEAD";
    case Method::put: return "PUT";
    case Method::post: return "POST";
    case Method::patch: return "PATCH";
    case Method::del: return "DELETE";
    case Method::options: return "OPTIONS";
    default: return "other";
  }
}

Method method_of(std::string_view m) {
  if (m == "GET") return Method::get;
  if (m == "PUT") return Method::put;
  if (m == "POST") return Method::post;
  if (m == "DELETE") return Method::del;
  if (m == "HEAD") return Method::head;
  if (m == "PATCH") return Method::patch;
  if (m == "OPTIONS") return Method::options;
  return Method::other;
}

const char* to_string(Api a) {
  switch (a) {
    case Api::kv: return "kv";
    case Api::d1: return "d1";
    case Api::r2: return "r2";
    default: return "other";
  }
}

Api api_of(std::string_view what) {
  if (starts_with(what, "KV ")) return Api::kv;
  if (starts_with(what, "D1 ")) return Api::d1;
  if (starts_with(what, "R2 ")) return Api::r2;
  return Api::other;
}

// ---------------------------------------------------------------- Metrics

Metrics::Metrics() : run_duration_(run_duration_bounds()) {
  for (size_t i = 0; i < kS * kM; ++i) latency_.push_back(std::make_unique<Histogram>(http_latency_bounds()));
  for (size_t i = 0; i < kA; ++i) upstream_latency_.push_back(std::make_unique<Histogram>(upstream_latency_bounds()));
}

void Metrics::request_finished(Surface s, Method m, int status, double seconds, uint64_t bytes_in,
                               uint64_t bytes_out) {
  const size_t si = size_t(s), mi = size_t(m);
  count(s, m, status);
  latency_[si * kM + mi]->observe(seconds);
  if (bytes_in) bytes_in_[si].fetch_add(bytes_in, std::memory_order_relaxed);
  if (bytes_out) bytes_out_[si].fetch_add(bytes_out, std::memory_order_relaxed);
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
}

void Metrics::request_refused(Surface s, Method m, int status) { count(s, m, status); }

void Metrics::count(Surface s, Method m, int status) {
  int cls = status / 100;
  if (cls < 1 || cls > 5) cls = 5;  // no status at all is the server's failure
  requests_[size_t(s)][size_t(m)][size_t(cls - 1)].fetch_add(1, std::memory_order_relaxed);
}

uint64_t Metrics::requests(Surface s, Method m, int status_class) const {
  return requests_[size_t(s)][size_t(m)][size_t(status_class - 1)].load(std::memory_order_relaxed);
}

const char* Metrics::upstream_outcome(int status) {
  if (status <= 0) return "transport_error";
  if (status == 429) return "throttled";
  if (status == 404) return "not_found";
  if (status < 400) return "ok";
  if (status < 500) return "client_error";
  return "server_error";
}

void Metrics::upstream_call(Api api, int status, double seconds, int attempt) {
  const size_t a = size_t(api);
  upstream_calls_.inc({to_string(api), upstream_outcome(status)});
  upstream_latency_[a]->observe(seconds);
  if (attempt > 0) upstream_retries_[a].fetch_add(1, std::memory_order_relaxed);
  if (status == 429) upstream_429_[a].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::run_finished(std::string_view outcome, double seconds) {
  runs_.inc({outcome});
  run_duration_.observe(seconds);
}

void Metrics::add_collector(std::function<void(Exposition&)> collector) {
  std::lock_guard<std::mutex> lock(collectors_mu_);
  collectors_.push_back(std::move(collector));
}

namespace {
const char* const kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

void labeled(Exposition& out, const char* name, const LabeledCounter& c, std::initializer_list<std::string_view> keys) {
  for (const auto& [values, v] : c.snapshot()) {
    Exposition::Labels l;
    size_t i = 0;
    for (std::string_view k : keys) l.emplace_back(k, values[i++]);
    out.sample(name, l, v);
  }
}
}  // namespace

std::string Metrics::render() const {
  Exposition out;
  auto load = [](const auto& a) { return a.load(std::memory_order_relaxed); };

  out.family("era_build_info", "The proxy's version, as a label; always 1.", "gauge");
  out.sample("era_build_info", {{"version", ERA_VERSION}}, uint64_t(1));

  out.family("era_http_requests_total",
             "HTTP requests answered, by surface (kv, d1, r2, resources, sessions, run, other), method and "
             "status class.",
             "counter");
  for (size_t s = 0; s < kS; ++s)
    for (size_t m = 0; m < kM; ++m)
      for (size_t c = 0; c < 5; ++c)
        if (uint64_t v = load(requests_[s][m][c]))
          out.sample("era_http_requests_total",
                     {{"surface", to_string(Surface(s))}, {"method", to_string(Method(m))}, {"status_class", kClasses[c]}},
                     v);
  out.family("era_http_request_duration_seconds",
             "Time from a request's routing to its response being ready (a streamed body's transfer "
             "excluded), by surface and method.",
             "histogram");
  for (size_t s = 0; s < kS; ++s)
    for (size_t m = 0; m < kM; ++m)
      if (latency_[s * kM + m]->snapshot().count)
        out.histogram("era_http_request_duration_seconds",
                      {{"surface", to_string(Surface(s))}, {"method", to_string(Method(m))}}, *latency_[s * kM + m]);
  out.family("era_http_request_body_bytes_total", "Request body bytes read, by surface.", "counter");
  for (size_t s = 0; s < kS; ++s)
    out.sample("era_http_request_body_bytes_total", {{"surface", to_string(Surface(s))}}, load(bytes_in_[s]));
  out.family("era_http_response_body_bytes_total",
             "Response body bytes sent (or announced, for a streamed body), by surface; HEAD counts none.",
             "counter");
  for (size_t s = 0; s < kS; ++s)
    out.sample("era_http_response_body_bytes_total", {{"surface", to_string(Surface(s))}}, load(bytes_out_[s]));
  out.family("era_http_open_connections",
             "Client connections accepted and not yet closed (those waiting for a worker thread included), "
             "TCP and the runner's Unix socket.",
             "gauge");
  out.sample("era_http_open_connections", {}, load(open_connections_));
  out.family("era_http_connections_total", "Client connections accepted.", "counter");
  out.sample("era_http_connections_total", {}, load(connections_));
  out.family("era_http_requests_in_flight", "Requests being handled now (this scrape included).", "gauge");
  out.sample("era_http_requests_in_flight", {}, load(in_flight_));
  out.family("era_auth_failures_total",
             "Requests refused with 401 or 403, by reason (the error code: missing_token, invalid_token, "
             "expired_token, namespace_forbidden, read_only_token, admin_required, ...).",
             "counter");
  labeled(out, "era_auth_failures_total", auth_failures_, {"reason"});
  out.family("era_throttled_total",
             "Requests refused for a rate, by surface and reason (rate_limited: a session over its limits, "
             "429; upstream_rate_limited: Cloudflare's, 503). Session ids are in the audit trail, not here.",
             "counter");
  labeled(out, "era_throttled_total", throttled_, {"surface", "reason"});

  out.family("era_upstream_requests_total",
             "Calls to Cloudflare (every attempt, retries included), by API (kv, d1, r2) and outcome (ok, "
             "not_found, client_error, throttled, server_error, transport_error).",
             "counter");
  labeled(out, "era_upstream_requests_total", upstream_calls_, {"api", "outcome"});
  out.family("era_upstream_request_duration_seconds",
             "Duration of one upstream attempt up to its answer (a streamed body's transfer excluded), by API.",
             "histogram");
  for (size_t a = 0; a < kA; ++a)
    if (upstream_latency_[a]->snapshot().count)
      out.histogram("era_upstream_request_duration_seconds", {{"api", to_string(Api(a))}}, *upstream_latency_[a]);
  out.family("era_upstream_retries_total", "Upstream attempts that were retries of a failed one, by API.", "counter");
  for (size_t a = 0; a < kA; ++a)
    out.sample("era_upstream_retries_total", {{"api", to_string(Api(a))}}, load(upstream_retries_[a]));
  out.family("era_upstream_throttled_total", "Upstream answers with HTTP 429, by API.", "counter");
  for (size_t a = 0; a < kA; ++a)
    out.sample("era_upstream_throttled_total", {{"api", to_string(Api(a))}}, load(upstream_429_[a]));

  out.family("era_runner_runs_total",
             "Runs of sessions' code, by outcome (exit_zero, exit_nonzero, timeout, memory, processes, output; "
             "or the error code of a run that did not start: runner_busy, sandbox_unavailable, ...).",
             "counter");
  labeled(out, "era_runner_runs_total", runs_, {"outcome"});
  out.family("era_runner_run_duration_seconds", "Wall-clock duration of the runs that ran.", "histogram");
  out.histogram("era_runner_run_duration_seconds", {}, run_duration_);

  write_process_metrics(out);
  std::vector<std::function<void(Exposition&)>> collectors;
  {
    std::lock_guard<std::mutex> lock(collectors_mu_);
    collectors = collectors_;
  }
  for (const auto& c : collectors) c(out);
  return out.take();
}

void upstream_attempt(std::string_view what, int status, std::string_view cf_ray, double seconds, int attempt,
                      std::string_view error) {
  metrics().upstream_call(api_of(what), status, seconds, attempt);
  const bool failed = status <= 0 || status == 401 || status == 403 || status == 429 || status >= 500;
  if (!failed || log::level() > log::Level::warn) return;
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.3f", seconds * 1000);
  std::vector<log::Field> f = {{"upstream", what.empty() ? "-" : std::string(what)},
                               {"status", std::to_string(status > 0 ? status : 0), true},
                               {"outcome", Metrics::upstream_outcome(status)},
                               {"attempt", std::to_string(attempt + 1), true},
                               {"duration_ms", ms, true},
                               {"cf_ray", cf_ray.empty() ? "-" : std::string(cf_ray)}};
  if (!error.empty()) f.push_back({"error", std::string(error)});
  log::write(log::Level::warn, "upstream call failed", f);
}

Metrics& metrics() {
  static Metrics m;
  return m;
}

// ---------------------------------------------------------------- process metrics

void write_process_metrics(Exposition& out) {
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces and parentheses): from the last ')'.
  std::vector<std::string> f;
  const auto close = stat.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(stat.substr(close + 2));
    std::string x;
    while (rest >> x) f.push_back(x);
  }
  // f[0] is field 3 (state): field N is f[N - 3].
  auto field = [&](size_t n) { return n - 3 < f.size() ? std::strtod(f[n - 3].c_str(), nullptr) : 0.0; };
  double boot = 0;
  {
    std::ifstream s("/proc/stat");
    std::string line;
    while (std::getline(s, line))
      if (line.rfind("btime ", 0) == 0) boot = std::strtod(line.c_str() + 6, nullptr);
  }
  int64_t fds = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++fds;
    closedir(d);
    --fds;  // the directory's own descriptor
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);

  out.family("process_cpu_seconds_total", "User and system CPU time of the proxy, in seconds.", "counter");
  out.sample("process_cpu_seconds_total", {}, (field(14) + field(15)) / double(ticks));
  out.family("process_resident_memory_bytes", "Resident memory of the proxy, in bytes.", "gauge");
  out.sample("process_resident_memory_bytes", {}, field(24) * double(page));
  out.family("process_virtual_memory_bytes", "Virtual memory of the proxy, in bytes.", "gauge");
  out.sample("process_virtual_memory_bytes", {}, field(23));
  out.family("process_open_fds", "Open file descriptors.", "gauge");
  out.sample("process_open_fds", {}, fds);
  out.family("process_max_fds", "The limit on open file descriptors (RLIMIT_NOFILE).", "gauge");
  out.sample("process_max_fds", {}, rl.rlim_cur == RLIM_INFINITY ? -1.0 : double(rl.rlim_cur));
  out.family("process_threads", "Threads of the proxy.", "gauge");
  out.sample("process_threads", {}, field(20));
  out.family("process_start_time_seconds", "When the proxy started, in seconds since the Unix epoch.", "gauge");
  out.sample("process_start_time_seconds", {}, boot + field(22) / double(ticks));
}

}  // namespace era::obs

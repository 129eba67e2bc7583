#include "store/cloudflare/http_client.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <random>
#include <thread>

#include "obs/metrics.h"
#include "store/call_priority.h"
#include "store/cloudflare/call_budget.h"
#include "store/cloudflare/xml.h"
#include "util/log.h"
#include "util/text.h"
#include "util/time.h"

namespace era::cf {
namespace {

constexpr size_t kMaxPending = 1 << 20;     // a pulled body pauses when this much waits to be read
constexpr size_t kMaxErrorBody = 64 * 1024;  // error bodies are read for their code and message only

std::string clip(std::string s, size_t n = 300) {
  if (s.size() > n) s = s.substr(0, n) + "...";
  // Upstream text goes into our JSON message and logs: no control characters.
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  return s;
}

double jitter_draw() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// Curl failures where the request provably never left this process for the upstream.
bool never_sent(CURLcode rc) {
  return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY;
}

}  // namespace

const char* user_agent() { return "era-storage-proxy/" ERA_VERSION; }

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return std::nullopt;
}

std::string upstream_detail(const HttpResponse& r) {
  const std::string& b = r.body;
  if (!b.empty() && b[0] == '{') {
    auto j = nlohmann::json::parse(b, nullptr, false);
    if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
      const auto& e = j["errors"][0];
      std::string out;
      if (e.contains("code") && e["code"].is_number_integer()) out = "code " + std::to_string(e["code"].get<long long>());
      if (e.contains("message") && e["message"].is_string())
        out += (out.empty() ? "" : ": ") + e["message"].get<std::string>();
      return clip(out);
    }
  }
  const xml::Element doc = xml::parse(b);
  const std::string code = doc.first("Code");
  if (!code.empty()) {
    const std::string msg = doc.first("Message");
    return clip(code + (msg.empty() ? "" : ": " + msg));
  }
  return "";
}

ApiError upstream_error(const std::string& what, const HttpResponse& r) {
  const std::string d = upstream_detail(r);
  return ApiError(502, "upstream_error",
                  "Cloudflare " + what + " failed: upstream answered HTTP " + std::to_string(r.status) +
                      (d.empty() ? "" : " (" + d + ")"));
}

std::optional<long> parse_retry_after(const std::string& value) {
  const std::string v(text::trim(value));
  if (v.empty()) return std::nullopt;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (v.size() > 7) return long(1e9);  // absurdly long: the caller treats it as "too long to wait"
    return std::stol(v) * 1000;
  }
  const auto at = dates::parse_http_date(v);
  if (!at) return std::nullopt;
  const int64_t now = unix_now();
  return *at <= now ? 0L : long(*at - now) * 1000;
}

bool is_transient_status(int s) { return s == 429 || (s >= 500 && s <= 599); }

long backoff_ms(int retry, long base, long max, double unit) {
  long ceiling = base;
  for (int i = 0; i < retry && ceiling < max; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, max);
  return ceiling / 2 + long((ceiling - ceiling / 2) * unit);
}

// ---- One attempt of one request: option setup, headers, body, on a multi handle ----
//
// Where the body goes: `collect` into HttpResponse::body (capped), `push` to the request's sink (after
// on_headers), `pull` into a buffer that HttpStream::read drains (the transfer pauses when it is full).
// Error answers (non-2xx) are always collected, capped at kMaxErrorBody.
class HttpClient::Transfer {
 public:
  enum class Mode { collect, push, pull };

  // `attempt`: 0 for the first try of the request, 1 for its first retry, ...
  Transfer(HttpClient& client, HttpRequest& req, Mode mode, int attempt)
      : client_(client), req_(req), mode_(mode), attempt_(attempt) {
    Pooled leased = client_.lease();
    easy_ = std::move(leased.easy);
    multi_ = std::move(leased.multi);
    CURL* c = easy_.get();
    curl_easy_reset(c);  // options only: live connections and caches stay

    std::vector<std::pair<std::string, std::string>> extra;
    if (req_.sign) req_.sign(req_, extra);
    // "Name:" would make curl drop the header; "Name;" sends it with an empty value.
    for (const auto& [k, v] : req_.headers) add_header(v.empty() ? k + ";" : k + ": " + v);
    for (const auto& [k, v] : extra) add_header(v.empty() ? k + ";" : k + ": " + v);
    add_header("Expect:");  // no 100-continue round trip

    const HttpOptions& o = client_.options_;
    curl_easy_setopt(c, CURLOPT_SHARE, client_.share_.get());
    curl_easy_setopt(c, CURLOPT_URL, req_.url.c_str());
    curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);  // a key like "a/../b" is data: never normalise it
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o.connect_timeout_ms);
    if (req_.stream || mode_ == Mode::pull) {
      // A large object may take long; a transfer that stalls (under 1 byte/s) for the timeout fails.
      curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, std::max(1L, o.timeout_ms / 1000));
    } else {
      curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o.timeout_ms);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers_.get());
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Transfer::on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, this);
    const bool has_body = req_.reader || !req_.body.empty() || req_.method == "PUT" || req_.method == "POST";
    if (req_.method == "HEAD") {
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (has_body) {
      curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(c, CURLOPT_READFUNCTION, &Transfer::on_read);
      curl_easy_setopt(c, CURLOPT_READDATA, this);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, curl_off_t(req_.reader ? req_.body_size : req_.body.size()));
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req_.method.c_str());
    } else if (req_.method != "GET") {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req_.method.c_str());
    }
    curl_multi_add_handle(multi_.get(), c);
    started_ = std::chrono::steady_clock::now();
  }

  ~Transfer() {
    if (!recorded_) {  // abandoned before its end (a streamed answer its reader stopped reading)
      try {
        record();
      } catch (...) {  // a destructor must not throw; the metric is lost, nothing else
      }
    }
    curl_multi_remove_handle(multi_.get(), easy_.get());
    curl_easy_setopt(easy_.get(), CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(easy_.get(), CURLOPT_SHARE, nullptr);  // detach before the handle rests in the pool
    // A transfer cut short leaves its connection mid-answer: such a handle is not pooled.
    if (done_ && rc_ == CURLE_OK) client_.give_back(Pooled{std::move(easy_), std::move(multi_)});
  }

  // Runs until the header block is in (or the transfer ended).
  void run_to_headers() {
    while (!headers_done_ && pump()) {
    }
  }
  // Runs until the transfer ended.
  void run_to_end() {
    while (pump()) {
    }
  }

  // Moves the transfer on; false once it has ended. Exceptions thrown by the request's reader or sink
  // come out here.
  bool pump() {
    if (done_) return false;
    if (paused_ && pending_.size() - pending_off_ < kMaxPending) {
      paused_ = false;
      curl_easy_pause(easy_.get(), CURLPAUSE_CONT);
    }
    int running = 0;
    curl_multi_perform(multi_.get(), &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_.get(), &left))
      if (m->msg == CURLMSG_DONE) finish(m->data.result);
    if (error_) std::rethrow_exception(error_);
    if (!done_ && running && !paused_) curl_multi_poll(multi_.get(), nullptr, 0, 200, nullptr);
    return !done_;
  }

  // For send(): an empty 2xx body still gives a pushing caller its headers.
  void deliver_headers() {
    if (mode_ != Mode::push || headers_delivered_ || !ok_status()) return;
    headers_delivered_ = true;
    if (req_.on_headers) req_.on_headers(resp_);
  }

  // Up to `cap` pulled body bytes; 0 at the end.
  size_t read(char* buf, size_t cap) {
    while (pending_off_ == pending_.size()) {
      if (done_) {
        if (rc_ != CURLE_OK) throw broken();
        return 0;
      }
      pump();
    }
    const size_t n = std::min(cap, pending_.size() - pending_off_);
    std::memcpy(buf, pending_.data() + pending_off_, n);
    pending_off_ += n;
    return n;
  }

  ApiError broken() const {
    return ApiError(rc_ == CURLE_OPERATION_TIMEDOUT ? 504 : 502, "upstream_stream_broken",
                    "Cloudflare " + req_.what + " failed mid-transfer: " + curl_easy_strerror(rc_));
  }

  bool ok_status() const { return resp_.status >= 200 && resp_.status < 300; }
  // The caller already holds part of the answer (headers or body bytes): no retry can take it back.
  bool committed() const { return headers_delivered_ || sink_bytes_ > 0; }
  // A transport failure before a complete answer (status 0 when no header block arrived).
  bool transport_failed() const { return done_ ? rc_ != CURLE_OK : !headers_done_; }

  HttpResponse& response() { return resp_; }
  const HttpResponse& response() const { return resp_; }
  CURLcode result() const { return rc_; }
  bool headers_done() const { return headers_done_; }
  bool body_consumed() const { return req_.reader && body_sent_ > 0; }
  bool too_large() const { return too_large_; }

 private:
  void add_header(const std::string& line) {
    curl_slist* l = curl_slist_append(headers_.get(), line.c_str());
    if (!l) throw std::bad_alloc();
    headers_.release();
    headers_.reset(l);
  }

  // Every attempt ends here, once: the one place an upstream call completes.
  void finish(CURLcode rc) {
    done_ = true;
    rc_ = too_large_ ? CURLE_WRITE_ERROR : rc;
    if (!headers_done_ && rc == CURLE_OK) collect_headers();  // e.g. an answer without a body
    const long ms = long(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                              started_).count());
    log::debug("Cloudflare " + req_.what + ": " +
               (rc_ == CURLE_OK ? "HTTP " + std::to_string(resp_.status) : std::string(curl_easy_strerror(rc_))) +
               " in " + std::to_string(ms) + " ms");
    record();
  }

  // The attempt's metrics (era_upstream_*) and, when it failed, its warn line with Cloudflare's cf-ray;
  // once per attempt. Timed up to the answer's header block: a streamed body's transfer is excluded.
  // A transport failure (no answer, or an answer cut short) counts as the negated curl code.
  void record() {
    recorded_ = true;
    const auto end = headers_done_ ? headers_at_ : std::chrono::steady_clock::now();
    const bool answered = done_ ? rc_ == CURLE_OK || error_ || too_large_ : headers_done_;
    const CURLcode rc = done_ ? rc_ : CURLE_ABORTED_BY_CALLBACK;
    obs::upstream_attempt(req_.what, answered ? resp_.status : -int(rc), resp_.header("cf-ray").value_or(""),
                          std::chrono::duration<double>(end - started_).count(), attempt_,
                          answered ? "" : curl_easy_strerror(rc));
  }

  // The final answer's status and headers, from curl's own header store (names lowercased, values
  // trimmed, in the order received).
  void collect_headers() {
    long status = 0;
    curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &status);
    resp_.status = int(status);
    resp_.headers.clear();
    curl_header* prev = nullptr;
    // Trimmed here too: libcurl 7.88 gives an empty value as "\r" (its own trimming misses that case).
    while ((prev = curl_easy_nextheader(easy_.get(), CURLH_HEADER, -1, prev)))
      resp_.headers.emplace_back(text::lower(prev->name), std::string(text::trim(prev->value)));
    headers_done_ = true;
    headers_at_ = std::chrono::steady_clock::now();
  }

  static size_t on_header(char* data, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    const std::string_view line(data, size * n);
    if (line == "\r\n" || line == "\n") {  // the end of a header block
      long status = 0;
      curl_easy_getinfo(t->easy_.get(), CURLINFO_RESPONSE_CODE, &status);
      if (status >= 200) t->collect_headers();  // 1xx answers are followed by the real one
    }
    return size * n;
  }

  static size_t on_body(char* data, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    const size_t len = size * n;
    if (!t->headers_done_) t->collect_headers();
    try {
      if (t->ok_status() && t->mode_ == Mode::push && t->req_.sink) {
        t->deliver_headers();
        t->sink_bytes_ += len;
        return t->req_.sink(std::string_view(data, len)) ? len : 0;
      }
      if (t->ok_status() && t->mode_ == Mode::pull) {
        if (t->pending_.size() - t->pending_off_ >= kMaxPending) {
          t->paused_ = true;
          return CURL_WRITEFUNC_PAUSE;  // curl keeps these bytes and offers them again after unpausing
        }
        if (t->pending_off_ == t->pending_.size()) {
          t->pending_.clear();
          t->pending_off_ = 0;
        }
        t->pending_.append(data, len);
        return len;
      }
      const size_t cap = t->ok_status() ? t->client_.options_.max_body_bytes : kMaxErrorBody;
      if (t->resp_.body.size() + len > cap) {
        if (t->ok_status()) {
          t->too_large_ = true;
          return 0;
        }
        t->resp_.body.append(data, cap - std::min(cap, t->resp_.body.size()));
        return len;
      }
      t->resp_.body.append(data, len);
      return len;
    } catch (...) {
      t->error_ = std::current_exception();
      return 0;
    }
  }

  static size_t on_read(char* buf, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    const size_t max = size * n;
    try {
      size_t got;
      if (t->req_.reader) {
        if (t->body_sent_ >= t->req_.body_size) return 0;
        got = t->req_.reader(buf, size_t(std::min<uint64_t>(max, t->req_.body_size - t->body_sent_)));
        if (got == 0) throw ApiError(400, "body_truncated", "the request body ended before its Content-Length");
      } else {
        got = size_t(std::min<uint64_t>(max, t->req_.body.size() - t->body_sent_));
        std::memcpy(buf, t->req_.body.data() + t->body_sent_, got);
      }
      t->body_sent_ += got;
      return got;
    } catch (...) {
      t->error_ = std::current_exception();
      return CURL_READFUNC_ABORT;
    }
  }

  struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
  };

  HttpClient& client_;
  HttpRequest& req_;
  const Mode mode_;
  const int attempt_;
  Handle easy_;
  std::unique_ptr<curl_slist, SlistDeleter> headers_;
  std::unique_ptr<CURLM, MultiDeleter> multi_;  // after easy_: removed from it before the handle goes
  HttpResponse resp_;
  std::chrono::steady_clock::time_point started_, headers_at_;
  bool recorded_ = false;  // record() ran
  bool headers_done_ = false, headers_delivered_ = false, done_ = false, paused_ = false, too_large_ = false;
  CURLcode rc_ = CURLE_OK;
  uint64_t body_sent_ = 0;   // bytes pulled from the request body (string or reader)
  uint64_t sink_bytes_ = 0;  // bytes handed to the sink
  std::string pending_;      // pulled body bytes not read yet, from pending_off_
  size_t pending_off_ = 0;
  std::exception_ptr error_;  // thrown by the reader or the sink; rethrown by pump()
};

void HttpClient::lock_cb(CURL*, curl_lock_data data, curl_lock_access, void* self) {
  static_cast<HttpClient*>(self)->share_locks_[size_t(data)].lock();
}
void HttpClient::unlock_cb(CURL*, curl_lock_data data, void* self) {
  static_cast<HttpClient*>(self)->share_locks_[size_t(data)].unlock();
}

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
  curl_global_init(CURL_GLOBAL_DEFAULT);  // thread-safe and reference-counted since curl 7.84
  share_.reset(curl_share_init());
  if (!share_) throw std::runtime_error("curl_share_init failed");
  curl_share_setopt(share_.get(), CURLSHOPT_LOCKFUNC, &HttpClient::lock_cb);
  curl_share_setopt(share_.get(), CURLSHOPT_UNLOCKFUNC, &HttpClient::unlock_cb);
  curl_share_setopt(share_.get(), CURLSHOPT_USERDATA, this);
  curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  // Not CURL_LOCK_DATA_CONNECT: "It is not supported to share connections between multiple
  // concurrent threads" (libcurl, CURLSHOPT_SHARE); each pooled handle keeps its own connections.
}

HttpClient::~HttpClient() {
  pool_.clear();  // handles before the share they use
  share_.reset();
  curl_global_cleanup();
}

HttpClient::Pooled HttpClient::lease() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!pool_.empty()) {
      Pooled p = std::move(pool_.back());
      pool_.pop_back();
      return p;
    }
  }
  Pooled p{Handle(curl_easy_init()), std::unique_ptr<CURLM, MultiDeleter>(curl_multi_init())};
  if (!p.easy || !p.multi) throw ApiError(503, "upstream_unavailable", "cannot create an HTTP client handle");
  return p;
}

void HttpClient::give_back(Pooled p) {
  std::lock_guard<std::mutex> lock(pool_mu_);
  if (pool_.size() < 256) pool_.push_back(std::move(p));
}

// ---- The one retry policy ----

void HttpClient::after_failure(const HttpRequest& req, int attempt, const Transfer& t) {
  const std::string what = req.what.empty() ? req.method : req.what;
  const bool transport = t.transport_failed();
  const CURLcode rc = t.result();
  const int s = t.response().status;
  const bool retryable = req.retry == Retry::idempotent ? !t.body_consumed() : transport ? never_sent(rc) : s == 429;
  std::optional<long> retry_after;
  if (!transport)
    if (auto h = t.response().header("retry-after")) retry_after = parse_retry_after(*h);
  const bool last = attempt + 1 >= options_.max_attempts;
  // A budgeted 429 paused the whole budget (note_answer): the retry waits for it there, or is refused
  // with the budget's own 503 and Retry-After when the pause is longer than a client may wait.
  const bool budget_waits = req.budget && !transport && s == 429;
  const bool wait_too_long = !budget_waits && retry_after && *retry_after > options_.max_retry_after_ms;

  if (retryable && !last && !wait_too_long) {
    long delay = budget_waits ? 0 : backoff_ms(attempt, options_.backoff_base_ms, options_.backoff_max_ms, jitter_draw());
    if (retry_after && !budget_waits) delay = std::max(delay, *retry_after);
    log::warn("Cloudflare " + what + ": " +
              (transport ? std::string(curl_easy_strerror(rc)) : "HTTP " + std::to_string(s)) + ", retry " +
              std::to_string(attempt + 1) + " in " + std::to_string(delay) + " ms");
    if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    return;
  }

  // Final: throw what it means.
  const std::string tries = attempt ? " after " + std::to_string(attempt + 1) + " attempts" : "";
  const std::string unknown = req.retry == Retry::unsent_only && !retryable
                                  ? "; the write may or may not have been applied, so it was not retried"
                                  : "";
  if (transport) {
    const bool timeout = rc == CURLE_OPERATION_TIMEDOUT;
    throw ApiError(timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_unreachable",
                   "Cloudflare " + what + " failed" + tries + ": " + curl_easy_strerror(rc) + unknown);
  }
  const std::string d = upstream_detail(t.response());
  const std::string msg = "Cloudflare " + what + " failed" + tries + ": upstream answered HTTP " +
                          std::to_string(s) + (d.empty() ? "" : " (" + d + ")") + unknown;
  if (s == 429 || s == 503) {
    ApiError e(503, s == 429 ? "upstream_rate_limited" : "upstream_unavailable", msg);
    if (retry_after) e.retry_after_s = (*retry_after + 999) / 1000;  // meaning; http/ writes the header
    throw e;
  }
  if (s == 504 || s == 522 || s == 524) throw ApiError(504, "upstream_timeout", msg);  // 522/524: edge timeouts
  throw ApiError(502, "upstream_error", msg);
}

void HttpClient::spend(const HttpRequest& req) {
  if (req.budget) req.budget->acquire(current_call_priority());
}

void HttpClient::note_answer(const HttpRequest& req, const Transfer& t) {
  if (!req.budget || !t.headers_done()) return;
  const HttpResponse& r = t.response();
  std::optional<long> retry_after;
  if (auto h = r.header("retry-after")) retry_after = parse_retry_after(*h);
  req.budget->observe(r.status, r.header("ratelimit"), r.header("ratelimit-policy"), retry_after);
}

HttpResponse HttpClient::send(HttpRequest& req) {
  const Transfer::Mode mode = req.sink ? Transfer::Mode::push : Transfer::Mode::collect;
  for (int attempt = 0;; ++attempt) {
    spend(req);
    Transfer t(*this, req, mode, attempt);
    t.run_to_end();
    note_answer(req, t);
    if (t.too_large())  // another try would get the same answer
      throw ApiError(502, "upstream_error",
                     "Cloudflare " + (req.what.empty() ? req.method : req.what) + " failed: the answer is larger than expected");
    if (t.committed()) {
      // A started stream cannot be retried: the client already has bytes. A break is an error.
      if (t.result() != CURLE_OK) throw t.broken();
      return std::move(t.response());
    }
    if (!t.transport_failed() && !is_transient_status(t.response().status)) {
      t.deliver_headers();
      return std::move(t.response());
    }
    after_failure(req, attempt, t);
  }
}

std::unique_ptr<HttpStream> HttpClient::open(HttpRequest req) {
  std::unique_ptr<HttpStream> s(new HttpStream(std::move(req)));
  for (int attempt = 0;; ++attempt) {
    s->transfer_.reset();  // the previous attempt's handle first (its connection may be mid-answer)
    spend(s->req_);
    s->transfer_ = std::make_unique<Transfer>(*this, s->req_, Transfer::Mode::pull, attempt);
    Transfer& t = *s->transfer_;
    t.run_to_headers();
    note_answer(s->req_, t);
    if (!t.transport_failed() && !t.ok_status()) t.run_to_end();  // an error answer: its small body whole
    if (!t.transport_failed() && !is_transient_status(t.response().status)) return s;
    after_failure(s->req_, attempt, t);
  }
}

HttpStream::HttpStream(HttpRequest req) : req_(std::move(req)) {}
HttpStream::~HttpStream() = default;
const HttpResponse& HttpStream::response() const { return transfer_->response(); }
size_t HttpStream::read(char* buf, size_t cap) { return transfer_->read(buf, cap); }

}  // namespace era::cf

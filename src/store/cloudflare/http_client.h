// HttpClient: the one way the cloudflare backend talks to Cloudflare, on libcurl. One transport for
// whole answers (send) and pulled bodies (open): the same options, the same response headers (read
// through curl_easy_header once the header block is complete), the same retry policy.
//
// - Connections are kept alive and reused: easy handles are pooled (each keeps its own connections),
//   and every handle shares one DNS cache and TLS session cache (a CURLSH), so a request pays no full
//   handshake once the pool is warm. The connection cache is not shared: libcurl does not support
//   sharing it between concurrent threads (CURLSHOPT_SHARE), and concurrent upstream calls are the
//   normal case here.
// - Every attempt has a connect timeout and a total timeout (or, for streams, a stall timeout).
// - Retries, with exponential backoff and full jitter and honouring Retry-After, only where a retry
//   cannot change the outcome:
//     Retry::idempotent   on network errors, timeouts, 429 and 5xx (reads, KV puts and deletes, S3);
//     Retry::unsent_only  only when the request provably never reached the upstream (connect failed)
//                         or the upstream refused it unexecuted (429): a D1 write is never sent twice
//                         after its fate became unknown.
//   A request whose streamed body was partly consumed, or whose response was partly handed to the
//   sink, is never retried. Every 5xx counts as transient, Cloudflare's edge codes 520-527 included.
// - A request that carries a CallBudget (every REST call: KV and D1; never S3) spends one call of it per
//   attempt, waiting in the budget's queue first (or getting its 503), and feeds each answer's
//   Ratelimit headers back to it. A 429 pauses the whole budget until its Retry-After; the retry then
//   waits for the budget like any call, instead of sleeping on its own.
// - Every attempt carries User-Agent: era-storage-proxy/<version>.
// - A final failure is an ApiError: 502 (bad or no answer), 503 (throttled or unavailable; with
//   Retry-After when the upstream gave one), 504 (timed out), whose message keeps the upstream's error
//   code and message and never a header, token or signature. 4xx answers are returned to the caller,
//   which knows what they mean for its call.
#pragma once

#include <curl/curl.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/error.h"

namespace era::cf {

class CallBudget;

// The User-Agent every upstream call carries: "era-storage-proxy/<version>".
const char* user_agent();

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, in order received
  std::string body;  // the body, unless a sink took it (or a stream pulls it)

  std::optional<std::string> header(std::string_view lowercase_name) const;
};

enum class Retry { idempotent, unsent_only };

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  // The body: `body`, or when `reader` is set, `body_size` bytes pulled from it. reader(buf, max)
  // returns the bytes it wrote (0 only at the end) and may throw to abort.
  std::string body;
  std::function<size_t(char*, size_t)> reader;
  uint64_t body_size = 0;
  // Called before each attempt to add per-attempt headers (a SigV4 signature carries the time).
  std::function<void(HttpRequest&, std::vector<std::pair<std::string, std::string>>&)> sign;
  // For a 2xx answer: on_headers(resp) sees status and headers before the first body byte, then the
  // body goes to sink (return false to abort) instead of into HttpResponse::body.
  std::function<void(const HttpResponse&)> on_headers;
  std::function<bool(std::string_view)> sink;
  Retry retry = Retry::idempotent;
  CallBudget* budget = nullptr;  // the API token's budget each attempt spends (REST calls), or none (S3)
  bool stream = false;  // long transfer: no total timeout, only a stall timeout
  std::string what;     // "KV put", for error messages and logs
};

struct HttpOptions {
  long connect_timeout_ms = 5000;
  long timeout_ms = 30000;       // total, per attempt (stream: the stall timeout instead)
  int max_attempts = 4;          // first try included
  long backoff_base_ms = 100;
  long backoff_max_ms = 4000;
  long max_retry_after_ms = 10000;  // a longer Retry-After is passed to the client instead of waited
  size_t max_body_bytes = 64u << 20;  // an unsinked answer larger than this is an upstream error
};

class HttpStream;

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs `req`, retrying as described above. Returns a 2xx..4xx answer; throws ApiError otherwise.
  HttpResponse send(HttpRequest& req);

  // Performs `req` up to its headers, retrying like send() while no body byte has been handed out; the
  // body is then pulled with HttpStream::read on the caller's thread (objects larger than memory). A
  // non-2xx answer comes back with its (small) body read whole.
  std::unique_ptr<HttpStream> open(HttpRequest req);

  const HttpOptions& options() const { return options_; }

 private:
  friend class HttpStream;
  class Transfer;
  struct CurlDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
  };
  using Handle = std::unique_ptr<CURL, CurlDeleter>;
  struct ShareDeleter {
    void operator()(CURLSH* s) const { curl_share_cleanup(s); }
  };
  struct MultiDeleter {
    void operator()(CURLM* m) const { curl_multi_cleanup(m); }
  };
  // An easy handle with the multi handle it runs on. Connections live in the multi handle's cache
  // (libcurl does not support sharing a connection cache between threads), so the pair is pooled
  // together: the next transfer on it reuses the kept-alive connection, and one pair is only ever
  // used by one transfer at a time.
  struct Pooled {
    Handle easy;
    std::unique_ptr<CURLM, MultiDeleter> multi;
  };

  Pooled lease();
  void give_back(Pooled p);
  // The one retry policy: after attempt number `attempt` (0-based) of `req` failed, sleeps and returns
  // if it may be tried again; otherwise throws the final ApiError.
  void after_failure(const HttpRequest& req, int attempt, const Transfer& t);
  // Before each attempt of a budgeted request: waits for its call (or throws the budget's 503).
  static void spend(const HttpRequest& req);
  // After an attempt got an answer: what it says about the rate limit, to the request's budget.
  static void note_answer(const HttpRequest& req, const Transfer& t);
  static void lock_cb(CURL*, curl_lock_data data, curl_lock_access, void* self);
  static void unlock_cb(CURL*, curl_lock_data data, void* self);

  HttpOptions options_;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> share_locks_;
  std::unique_ptr<CURLSH, ShareDeleter> share_;
  std::mutex pool_mu_;
  std::vector<Pooled> pool_;
};

// A response body pulled on demand (HttpClient::open). A break mid-body is an ApiError
// (upstream_stream_broken): bytes already handed out cannot be taken back, so it is never retried.
class HttpStream {
 public:
  ~HttpStream();
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;

  const HttpResponse& response() const;
  // Up to `cap` body bytes; 0 at the end. Throws ApiError if the transfer breaks.
  size_t read(char* buf, size_t cap);

 private:
  friend class HttpClient;
  explicit HttpStream(HttpRequest req);
  HttpRequest req_;  // the transfer's callbacks point into it
  std::unique_ptr<HttpClient::Transfer> transfer_;
};

// The upstream's own error, as "code N: message" from a Cloudflare JSON envelope or an S3 XML error
// body, truncated; "" if the body carries none. Never includes request headers.
std::string upstream_detail(const HttpResponse& r);

// ApiError for an answer the caller cannot map (e.g. 401/403 from a bad token): 502 with the detail.
ApiError upstream_error(const std::string& what, const HttpResponse& r);

// Milliseconds from a Retry-After value (delta seconds or HTTP date); nullopt if unparseable.
std::optional<long> parse_retry_after(const std::string& value);

// Whether a status means "try again later": 429 and every 5xx (Cloudflare's 520-527 included).
bool is_transient_status(int status);

// The delay before retry number `retry` (0-based): full jitter over [base*2^retry / 2, base*2^retry],
// capped at `max`; `unit` in [0,1) is the random draw (passed in so tests can pin it).
long backoff_ms(int retry, long base, long max, double unit);

}  // namespace era::cf

#include "store/cloudflare/http_client.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <exception>
#include <random>
#include <thread>

#include "obs/metrics.h"
#include "util/log.h"

namespace era::cf {
namespace {

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return std::string(s.substr(b, e - b));
}

std::string xml_tag(const std::string& body, const std::string& tag) {
  const auto b = body.find("<" + tag + ">");
  if (b == std::string::npos) return "";
  const auto s = b + tag.size() + 2;
  const auto e = body.find("</" + tag + ">", s);
  return e == std::string::npos ? "" : body.substr(s, e - s);
}

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

bool is_transient_status(int s) { return s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

// Curl failures where the request provably never left this process for the upstream.
bool never_sent(CURLcode rc) {
  return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY;
}

}  // namespace

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
  const std::string code = xml_tag(b, "Code");
  if (!code.empty()) {
    const std::string msg = xml_tag(b, "Message");
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
  const std::string v = trim(value);
  if (v.empty()) return std::nullopt;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (v.size() > 7) return long(1e9);  // absurdly long: the caller treats it as "too long to wait"
    return std::stol(v) * 1000;
  }
  std::tm tm{};
  if (!strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm)) return std::nullopt;
  const std::time_t at = timegm(&tm);
  const std::time_t now = std::time(nullptr);
  return at <= now ? 0L : long(at - now) * 1000;
}

long backoff_ms(int retry, long base, long max, double unit) {
  long ceiling = base;
  for (int i = 0; i < retry && ceiling < max; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, max);
  return ceiling / 2 + long((ceiling - ceiling / 2) * unit);
}

// The state of one attempt, shared with curl's C callbacks.
struct HttpClient::Attempt {
  HttpRequest* req = nullptr;
  int number = 0;  // 0: the first attempt
  HttpResponse resp;
  CURL* curl = nullptr;
  size_t max_body = 0;
  uint64_t body_sent = 0;       // bytes pulled from the request body (string or reader)
  uint64_t sink_bytes = 0;      // bytes handed to the sink
  bool headers_delivered = false;
  bool too_large = false;
  std::exception_ptr error;     // thrown by the reader or the sink; rethrown after perform

  static size_t on_header(char* data, size_t size, size_t n, void* self) {
    auto* a = static_cast<Attempt*>(self);
    std::string_view line(data, size * n);
    if (line.rfind("HTTP/", 0) == 0) {
      a->resp.headers.clear();  // a new status line (after 100 Continue): start over
      return size * n;
    }
    const auto colon = line.find(':');
    if (colon != std::string_view::npos)
      a->resp.headers.emplace_back(lower(std::string(line.substr(0, colon))), trim(line.substr(colon + 1)));
    return size * n;
  }

  static size_t on_body(char* data, size_t size, size_t n, void* self) {
    auto* a = static_cast<Attempt*>(self);
    const size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
    a->resp.status = int(status);
    try {
      if (status >= 200 && status < 300 && a->req->sink) {
        if (!a->headers_delivered) {
          a->headers_delivered = true;
          if (a->req->on_headers) a->req->on_headers(a->resp);
        }
        a->sink_bytes += len;
        if (!a->req->sink(std::string_view(data, len))) return 0;
        return len;
      }
      // Error bodies are only read for their code and message: keep the first bytes.
      const size_t cap = (status >= 200 && status < 300) ? a->max_body : 64 * 1024;
      if (a->resp.body.size() + len > cap) {
        if (status >= 200 && status < 300) {
          a->too_large = true;
          return 0;
        }
        a->resp.body.append(data, cap - std::min(cap, a->resp.body.size()));
        return len;
      }
      a->resp.body.append(data, len);
      return len;
    } catch (...) {
      a->error = std::current_exception();
      return 0;
    }
  }

  static size_t on_read(char* buf, size_t size, size_t n, void* self) {
    auto* a = static_cast<Attempt*>(self);
    const size_t max = size * n;
    try {
      size_t got;
      if (a->req->reader) {
        if (a->body_sent >= a->req->body_size) return 0;
        got = a->req->reader(buf, size_t(std::min<uint64_t>(max, a->req->body_size - a->body_sent)));
        if (got == 0) throw ApiError(400, "body_truncated", "the request body ended before its Content-Length");
      } else {
        got = size_t(std::min<uint64_t>(max, a->req->body.size() - a->body_sent));
        std::memcpy(buf, a->req->body.data() + a->body_sent, got);
      }
      a->body_sent += got;
      return got;
    } catch (...) {
      a->error = std::current_exception();
      return CURL_READFUNC_ABORT;
    }
  }
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
  curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
}

HttpClient::~HttpClient() {
  pool_.clear();  // handles before the share they use
  share_.reset();
  curl_global_cleanup();
}

HttpClient::Handle HttpClient::lease() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!pool_.empty()) {
      Handle h = std::move(pool_.back());
      pool_.pop_back();
      return h;
    }
  }
  Handle h(curl_easy_init());
  if (!h) throw ApiError(503, "upstream_unavailable", "cannot create an HTTP client handle");
  return h;
}

void HttpClient::give_back(Handle h) {
  std::lock_guard<std::mutex> lock(pool_mu_);
  if (pool_.size() < 256) pool_.push_back(std::move(h));
}

void HttpClient::perform(HttpRequest& req, Attempt& a) {
  const auto started = std::chrono::steady_clock::now();
  Handle h = lease();
  CURL* c = h.get();
  curl_easy_reset(c);  // options only: live connections and caches stay
  a.curl = c;
  a.req = &req;
  a.max_body = options_.max_body_bytes;

  std::vector<std::pair<std::string, std::string>> extra;
  if (req.sign) req.sign(req, extra);
  struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
  };
  std::unique_ptr<curl_slist, SlistDeleter> list;
  auto add = [&](const std::string& line) {
    curl_slist* l = curl_slist_append(list.get(), line.c_str());
    if (!l) throw std::bad_alloc();
    list.release();
    list.reset(l);
  };
  // "Name:" would make curl drop the header; "Name;" sends it with an empty value.
  for (const auto& [k, v] : req.headers) add(v.empty() ? k + ";" : k + ": " + v);
  for (const auto& [k, v] : extra) add(v.empty() ? k + ";" : k + ": " + v);
  add("Expect:");  // no 100-continue round trip

  curl_easy_setopt(c, CURLOPT_SHARE, share_.get());
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);  // a key like "a/../b" is data: never normalise it
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  if (req.stream) {
    // A large object may take long; a transfer that stalls (under 1 byte/s) for the timeout fails.
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, std::max(1L, options_.timeout_ms / 1000));
  } else {
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, options_.timeout_ms);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &Attempt::on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Attempt::on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
  const bool has_body = req.reader || !req.body.empty() || req.method == "PUT" || req.method == "POST";
  if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (has_body) {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, &Attempt::on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &a);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, curl_off_t(req.reader ? req.body_size : req.body.size()));
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  } else if (req.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  const CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  a.resp.status = int(status);
  obs::upstream_attempt(req.what, rc == CURLE_OK || a.error || a.too_large ? int(status) : -int(rc),
                        a.resp.header("cf-ray").value_or(""),
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), a.number,
                        rc == CURLE_OK ? "" : curl_easy_strerror(rc));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(c, CURLOPT_SHARE, nullptr);  // detach before the handle rests in the pool
  give_back(std::move(h));
  if (a.error) std::rethrow_exception(a.error);
  if (a.too_large)
    throw ApiError(502, "upstream_error", "Cloudflare " + req.what + " failed: the answer is larger than expected");
  if (rc == CURLE_OK && status >= 200 && status < 300 && req.sink && !a.headers_delivered) {
    a.headers_delivered = true;  // an empty 2xx body: the caller still gets the headers
    if (req.on_headers) req.on_headers(a.resp);
  }
  if (a.headers_delivered || a.sink_bytes) {
    // A started stream cannot be retried: the client already has bytes. A break is an error.
    if (rc != CURLE_OK)
      throw ApiError(rc == CURLE_OPERATION_TIMEDOUT ? 504 : 502, "upstream_stream_broken",
                     "Cloudflare " + req.what + " failed mid-transfer: " + curl_easy_strerror(rc));
    return;
  }
  if (rc != CURLE_OK) a.resp.status = -int(rc);     // transport failure, see send()
}

HttpResponse HttpClient::send(HttpRequest& req) {
  const std::string what = req.what.empty() ? req.method : req.what;
  for (int attempt = 0;; ++attempt) {
    Attempt a;
    a.number = attempt;
    perform(req, a);
    const int s = a.resp.status;
    const bool transport = s <= 0;
    const CURLcode rc = transport ? CURLcode(-s) : CURLE_OK;
    if (!transport && a.headers_delivered) return std::move(a.resp);  // a complete stream
    if (!transport && !is_transient_status(s)) return std::move(a.resp);

    // A failure: may we try again?
    const bool body_consumed = req.reader && a.body_sent > 0;
    bool retryable;
    if (req.retry == Retry::idempotent) retryable = !body_consumed;
    else retryable = transport ? never_sent(rc) : s == 429;
    std::optional<long> retry_after;
    if (!transport)
      if (auto h = a.resp.header("retry-after")) retry_after = parse_retry_after(*h);
    const bool last = attempt + 1 >= options_.max_attempts;
    const bool wait_too_long = retry_after && *retry_after > options_.max_retry_after_ms;

    if (retryable && !last && !wait_too_long) {
      long delay = backoff_ms(attempt, options_.backoff_base_ms, options_.backoff_max_ms, jitter_draw());
      if (retry_after) delay = std::max(delay, *retry_after);
      log::warn("Cloudflare " + what + ": " +
                (transport ? std::string(curl_easy_strerror(rc)) : "HTTP " + std::to_string(s)) + ", retry " +
                std::to_string(attempt + 1) + " in " + std::to_string(delay) + " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      continue;
    }

    // Final: map it.
    const std::string tries = attempt ? " after " + std::to_string(attempt + 1) + " attempts" : "";
    const std::string unknown = req.retry == Retry::unsent_only && !retryable
                                    ? "; the write may or may not have been applied, so it was not retried"
                                    : "";
    if (transport) {
      const bool timeout = rc == CURLE_OPERATION_TIMEDOUT;
      throw ApiError(timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_unreachable",
                     "Cloudflare " + what + " failed" + tries + ": " + curl_easy_strerror(rc) + unknown);
    }
    const std::string d = upstream_detail(a.resp);
    const std::string msg = "Cloudflare " + what + " failed" + tries + ": upstream answered HTTP " +
                            std::to_string(s) + (d.empty() ? "" : " (" + d + ")") + unknown;
    if (s == 429 || s == 503) {
      ApiError e(503, s == 429 ? "upstream_rate_limited" : "upstream_unavailable", msg);
      if (auto h = a.resp.header("retry-after")) e.header = {"Retry-After", *h};
      throw e;
    }
    if (s == 504) throw ApiError(504, "upstream_timeout", msg);
    throw ApiError(502, "upstream_error", msg);
  }
}

}  // namespace era::cf

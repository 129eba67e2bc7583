#include "store/cloudflare/http_stream.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "obs/metrics.h"
#include "util/log.h"

namespace era::cf {
namespace {

constexpr size_t kMaxPending = 1 << 20;  // pause the transfer when this much is waiting to be read

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

bool transient(int s) { return s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

}  // namespace

HttpStream::HttpStream(HttpClient& client, HttpRequest req) : client_(client), req_(std::move(req)) {}

HttpStream::~HttpStream() {
  if (multi_ && easy_) curl_multi_remove_handle(multi_.get(), easy_.get());
  if (easy_) {
    curl_easy_setopt(easy_.get(), CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(easy_.get(), CURLOPT_SHARE, nullptr);
    // A transfer cut short leaves its connection unusable: such a handle is not pooled.
    if (done_ && result_ == CURLE_OK) client_.give_back(std::move(easy_));
  }
}

size_t HttpStream::on_header(char* data, size_t size, size_t n, void* self) {
  auto* s = static_cast<HttpStream*>(self);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    s->resp_.headers.clear();
    long code = 0;
    const auto sp = line.find(' ');
    if (sp != std::string_view::npos) code = std::strtol(std::string(line.substr(sp + 1, 3)).c_str(), nullptr, 10);
    s->resp_.status = int(code);
  } else if (line == "\r\n" || line == "\n") {
    if (s->resp_.status >= 200) s->headers_done_ = true;  // 1xx answers are followed by the real one
  } else {
    const auto colon = line.find(':');
    if (colon != std::string_view::npos)
      s->resp_.headers.emplace_back(lower(std::string(line.substr(0, colon))), trim(line.substr(colon + 1)));
  }
  return size * n;
}

size_t HttpStream::on_body(char* data, size_t size, size_t n, void* self) {
  auto* s = static_cast<HttpStream*>(self);
  const size_t len = size * n;
  if (s->resp_.status < 200 || s->resp_.status >= 300) {
    if (s->resp_.body.size() < 64 * 1024) s->resp_.body.append(data, std::min(len, 64 * 1024 - s->resp_.body.size()));
    return len;
  }
  if (s->pending_.size() - s->pending_off_ >= kMaxPending) {
    s->paused_ = true;
    return CURL_WRITEFUNC_PAUSE;  // curl keeps these bytes and offers them again after unpausing
  }
  if (s->pending_off_ == s->pending_.size()) {
    s->pending_.clear();
    s->pending_off_ = 0;
  }
  s->pending_.append(data, len);
  return len;
}

bool HttpStream::pump() {
  if (done_) return false;
  if (paused_ && pending_.size() - pending_off_ < kMaxPending) {
    paused_ = false;
    curl_easy_pause(easy_.get(), CURLPAUSE_CONT);
  }
  int running = 0;
  curl_multi_perform(multi_.get(), &running);
  int left = 0;
  while (CURLMsg* m = curl_multi_info_read(multi_.get(), &left))
    if (m->msg == CURLMSG_DONE) {
      done_ = true;
      result_ = m->data.result;
    }
  if (!done_ && running && !paused_) curl_multi_poll(multi_.get(), nullptr, 0, 200, nullptr);
  return !done_;
}

bool HttpStream::start() {
  easy_ = client_.lease();
  CURL* c = easy_.get();
  curl_easy_reset(c);
  resp_ = HttpResponse{};
  headers_done_ = done_ = paused_ = false;
  result_ = CURLE_OK;
  pending_.clear();
  pending_off_ = 0;

  std::vector<std::pair<std::string, std::string>> extra;
  if (req_.sign) req_.sign(req_, extra);
  headers_.reset();
  auto add = [&](const std::string& line) {
    curl_slist* l = curl_slist_append(headers_.get(), line.c_str());
    if (!l) throw std::bad_alloc();
    headers_.release();
    headers_.reset(l);
  };
  for (const auto& [k, v] : req_.headers) add(k + ": " + v);
  for (const auto& [k, v] : extra) add(k + ": " + v);
  const HttpOptions& o = client_.options();
  curl_easy_setopt(c, CURLOPT_SHARE, client_.share_.get());
  curl_easy_setopt(c, CURLOPT_URL, req_.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);  // a key like "a/../b" is data: never normalise it
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, std::max(1L, o.timeout_ms / 1000));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers_.get());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &HttpStream::on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &HttpStream::on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, this);
  multi_.reset(curl_multi_init());
  if (!multi_) throw ApiError(503, "upstream_unavailable", "cannot create an HTTP transfer");
  curl_multi_add_handle(multi_.get(), c);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.timeout_ms);
  while (!headers_done_ && pump()) {
    if (std::chrono::steady_clock::now() > deadline) {
      result_ = CURLE_OPERATION_TIMEDOUT;
      done_ = true;
      break;
    }
  }
  if (headers_done_ && (resp_.status < 200 || resp_.status >= 300))
    while (pump()) {  // an error answer: read its small body whole
    }
  return headers_done_;
}

std::unique_ptr<HttpStream> HttpStream::open(HttpClient& client, HttpRequest req) {
  std::unique_ptr<HttpStream> s(new HttpStream(client, std::move(req)));
  const HttpOptions& o = client.options();
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int attempt = 0;; ++attempt) {
    const auto started = std::chrono::steady_clock::now();
    const bool got_headers = s->start();
    obs::upstream_attempt(s->req_.what, got_headers ? s->resp_.status : -int(s->result_),
                          s->resp_.header("cf-ray").value_or(""),
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), attempt,
                          got_headers ? "" : curl_easy_strerror(s->result_));
    const bool failed = !got_headers || transient(s->resp_.status);
    if (!failed) return s;
    const bool last = attempt + 1 >= o.max_attempts;
    std::optional<long> retry_after;
    if (got_headers)
      if (auto h = s->resp_.header("retry-after")) retry_after = parse_retry_after(*h);
    if (last || (retry_after && *retry_after > o.max_retry_after_ms)) {
      if (got_headers) return s;  // the caller maps the final answer
      const bool timeout = s->result_ == CURLE_OPERATION_TIMEDOUT;
      throw ApiError(timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_unreachable",
                     "Cloudflare " + s->req_.what + " failed after " + std::to_string(attempt + 1) +
                         " attempts: " + curl_easy_strerror(s->result_));
    }
    long delay = backoff_ms(attempt, o.backoff_base_ms, o.backoff_max_ms,
                            std::uniform_real_distribution<double>(0.0, 1.0)(rng));
    if (retry_after) delay = std::max(delay, *retry_after);
    log::warn("Cloudflare " + s->req_.what + ": " +
              (got_headers ? "HTTP " + std::to_string(s->resp_.status) : std::string(curl_easy_strerror(s->result_))) +
              ", retry " + std::to_string(attempt + 1) + " in " + std::to_string(delay) + " ms");
    // Drop this attempt's handle (its connection may be mid-answer) and start afresh.
    curl_multi_remove_handle(s->multi_.get(), s->easy_.get());
    s->easy_.reset();
    s->multi_.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
}

void HttpStream::finish_error() {
  if (result_ == CURLE_OK) return;
  throw ApiError(result_ == CURLE_OPERATION_TIMEDOUT ? 504 : 502, "upstream_stream_broken",
                 "Cloudflare " + req_.what + " failed mid-transfer: " + curl_easy_strerror(result_));
}

size_t HttpStream::read(char* buf, size_t cap) {
  while (pending_off_ == pending_.size()) {
    if (done_) {
      finish_error();
      return 0;
    }
    pump();
  }
  const size_t n = std::min(cap, pending_.size() - pending_off_);
  std::memcpy(buf, pending_.data() + pending_off_, n);
  pending_off_ += n;
  return n;
}

}  // namespace era::cf

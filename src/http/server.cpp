#include "http/server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include "http/worker_pool.h"
#include "obs/metrics.h"
#include "util/log.h"

namespace era::http {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using Socket = asio::generic::stream_protocol::socket;
using Parser = bhttp::request_parser<bhttp::buffer_body>;

constexpr size_t kReadChunk = 16 * 1024;   // bytes asked of the socket per read while a head arrives
constexpr size_t kBodyChunk = 64 * 1024;   // bytes per body read and per chunk handed to the handler

struct Limits {
  std::chrono::milliseconds head_timeout;
  std::chrono::milliseconds keep_alive;
  int gap_ms;  // body read and response write: the longest pause of the peer
  size_t max_head_bytes;
  size_t max_headers;
  size_t max_connections;
  size_t max_per_peer;  // 0: no cap
  uint64_t max_requests;
};

// The JSON error envelope as a whole response, for the refusals the I/O side makes itself.
std::string refusal(int status, const std::string& code, const std::string& message, bool retry_after) {
  const std::string body = std::string("{\"success\":false,\"error\":\"") + message + "\",\"code\":\"" + code + "\"}";
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
                    "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n";
  if (retry_after) out += "Retry-After: 1\r\n";
  return out + "\r\n" + body;
}

// Waits until `fd` can be read (POLLIN) or written (POLLOUT), at most `ms`; false on timeout or error.
bool wait_fd(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int r = ::poll(&p, 1, ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

enum class Sent { all, blocked, gone };

// Sends what the socket takes of [data + sent, data + n) without waiting, advancing `sent`: all of
// it, or blocked (the socket buffer is full), or gone (the peer closed or failed).
Sent send_from(int fd, const char* data, size_t n, size_t& sent) {
  while (sent < n) {
    ssize_t w = ::send(fd, data + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      sent += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Sent::blocked;
    return Sent::gone;
  }
  return Sent::all;
}

// Blocking send of all of [data, data+n) on a (possibly non-blocking) socket, waiting at most `ms`
// for each bit of room. False when the peer is gone or stalled past the limit.
bool send_all(int fd, const char* data, size_t n, int ms) {
  size_t sent = 0;
  for (;;) {
    const Sent r = send_from(fd, data, n, sent);
    if (r == Sent::all) return true;
    if (r == Sent::gone || !wait_fd(fd, POLLOUT, ms)) return false;
  }
}

class Conn;
using Clock = std::chrono::steady_clock;

std::vector<std::unique_ptr<asio::io_context>> make_loops(int n) {
  // 0: one loop per 4 cores, at least one. A loop's share of a request (a read and a parse) is small;
  // on 2 cores one loop cost less CPU per request than two (fewer threads to switch between).
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency() / 4));
  log::info("serving connections on " + std::to_string(n) + " I/O thread(s)");
  std::vector<std::unique_ptr<asio::io_context>> loops;
  // Each loop is run by one thread only (concurrency hint 1): its handlers need no strand and its
  // scheduler never wakes a second thread.
  for (int i = 0; i < std::max(1, n); ++i) loops.push_back(std::make_unique<asio::io_context>(1));
  return loops;
}

}  // namespace

class Server::Impl {
 public:
  Impl(const Config& config, Router& router);

  asio::io_context& next_loop() { return *loops[next.fetch_add(1, std::memory_order_relaxed) % loops.size()]; }
  void accept_tcp();
  void accept_unix();
  void admit(asio::io_context& loop, Socket socket, std::string peer, std::string local_addr, int local_port,
             int peer_port, bool unix_socket);
  void closed(Conn* c, const std::string& peer, bool unix_socket, asio::io_context& loop);
  void stop();
  void run();
  bool stopping() const { return stopping_flag.load(std::memory_order_acquire); }

  const Config config;  // a copy: the caller's may be a temporary
  Router& router;
  Limits limits;
  // One io_context per I/O thread; a connection lives on one of them (round robin at accept) for
  // its whole life. The acceptors are on the first.
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::atomic<size_t> next{0};
  asio::ip::tcp::acceptor tcp;
  std::optional<asio::local::stream_protocol::acceptor> unix_acceptor;
  WorkerPool workers;
  std::atomic<bool> stopping_flag{false};
  std::mutex mu;  // guards guards, conns, per_peer
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::list<std::shared_ptr<Conn>> conns;
  std::unordered_map<std::string, size_t> per_peer;
};

namespace {

// One connection, on one loop. At any time either the loop or a worker owns it:
// - the loop while it waits for (or reads) a request head, writes a refusal, or waits for a slow
//   reader to make room for the rest of a response;
// - a worker from the moment a head is complete until the response is sent (or blocked).
// The owner alone touches the socket, the buffer and the request. m_ guards the hand-overs and
// what both sides read (ownership, deadline, timer, closed): the loop's handlers hold it while they
// run, a worker while it hands the connection back (and starts the loop's next wait itself, from
// its own thread: an edge-triggered read costs no system call to arm, and no wake-up of the loop).
//
// Timeouts are lazy: one timer per connection, armed for the connection's deadline only when that
// deadline comes sooner than the timer; a timer that fires early re-arms for the deadline. So a
// request on a kept-alive connection costs no timer operation (the deadline only moves later).
class Conn : public std::enable_shared_from_this<Conn>, public BodyReader {
 public:
  Conn(Server::Impl& server, asio::io_context& loop, Socket socket, bool unix_socket)
      : srv_(server), loop_(loop), sock_(std::move(socket)), timer_(loop), unix_(unix_socket) {}

  std::string peer, local_addr;
  int peer_port = -1, local_port = -1;
  std::list<std::shared_ptr<Conn>>::iterator self_it;

  void start() {
    asio::post(loop_, [self = shared_from_this()] {
      std::lock_guard<std::mutex> lock(self->m_);
      if (self->closed_) return;
      boost::system::error_code ec;
      self->sock_.non_blocking(true, ec);  // reads never block (a readable socket may still have nothing)
      self->new_request();
      self->deadline_ = Clock::now() + self->srv_.limits.head_timeout;  // the first head, from accept
      self->ensure_timer();
      self->read_head(kFirstRead);
    });
  }

  // Graceful drain: an idle connection (waiting for, or in the middle of, a head) ends now; one
  // with a request in flight ends after its response.
  void drain() {
    asio::post(loop_, [self = shared_from_this()] {
      std::lock_guard<std::mutex> lock(self->m_);
      if (!self->in_flight_) self->close();
    });
  }

  // BodyReader, on the worker.
  bool read(const std::function<bool(const char*, size_t)>& sink) override;
  bool awaiting_continue() const override { return expect_continue_ && !continue_sent_; }

 private:
  // Bytes asked of the socket by the read that waits for a request: what an idle connection holds
  // (with no send buffer: 3 KiB a connection in all, measured at 10,000). An SDK request's head
  // fits; a longer one takes more reads.
  static constexpr size_t kFirstRead = 1024;
  // Bodies up to this size (by Content-Length) are read on the loop before a worker takes the request.
  static constexpr size_t kSmallBody = 64 * 1024;

  // On the loop, under m_ (the functions below that do not say "worker").
  void new_request();  // a fresh parser and per-request state
  void read_head(size_t chunk);
  void on_read(const boost::system::error_code& ec, size_t n);
  void parse_head();
  void on_head();
  // Reads the rest of a small body (`length` bytes in all) into buf_, then submit()s it.
  void read_body(size_t length);
  // Hands the request to a worker, or answers 503 when none can take it; or, for a request without a
  // body when the router has routes that may answer on the loop, sets run_inline_: the caller then
  // calls serve_inline() once it has released m_.
  void dispatch();
  void submit();
  // 400 incomplete_body for a small body that stopped (as the handler answers for a larger one).
  void refuse_incomplete();
  void refuse(int status, const std::string& code, const std::string& message, bool retry_after = false);
  void on_timer(const boost::system::error_code& ec, uint64_t gen);
  // Arms the timer for deadline_ if it would fire later than that (or not at all).
  void ensure_timer();
  void close();  // under m_, on either side

  // On the loop, not under m_: answers the request here when the router can (Router::try_inline:
  // from memory, nothing that waits), else hands it to a worker.
  void serve_inline();

  // On a worker (or the loop, from serve_inline: the same steps, the loop then owning nothing).
  void serve();
  // The response to the request just handled: whether the connection goes on, then its bytes.
  void respond();
  // Starts the answer to the request just served: its head (and a small body) in out_.
  void begin_response(bool head_only);
  // Sends what out_ holds and asks the provider for more, for as long as the socket takes bytes.
  // When the peer stops reading, the connection waits on the loop for room (park) and the worker
  // goes back to the pool: a stalled reader holds a buffer of one provider call, no thread.
  void pump();
  void park();
  // The response is over (`ok`: all of it sent): the connection goes back to the loop to wait for
  // the next request, or ends.
  void finish(bool ok);
  int fd() { return sock_.native_handle(); }
  // Reads what the socket has into buf_ (at most `cap` bytes), waiting up to the gap limit; false on
  // EOF, error or timeout.
  bool fill(size_t cap);

  Server::Impl& srv_;
  asio::io_context& loop_;
  Socket sock_;
  asio::steady_timer timer_;
  const bool unix_;

  std::mutex m_;
  bool loop_owned_ = true;
  bool in_flight_ = false;  // a request admitted and its response not finished
  bool reading_body_ = false;  // the loop reads a small body before dispatching
  bool run_inline_ = false;    // dispatch() left the request to serve_inline()
  bool closed_ = false;
  Clock::time_point deadline_{};                     // while the loop owns it: close when passed
  Clock::time_point timer_at_ = Clock::time_point::max();  // when the armed timer fires (max: none)
  uint64_t timer_gen_ = 0;

  // The owner's (see above).
  boost::beast::flat_buffer buf_;
  std::optional<Parser> parser_;
  Request req_;
  uint64_t served_ = 0;
  bool head_deadline_ = false;  // the head timeout runs (a head that did not come in one read)
  bool keep_alive_ = true;
  bool expect_continue_ = false, continue_sent_ = false;
  bool body_broken_ = false;  // the body stopped midway (peer gone, timeout, bad chunk)
  std::vector<char> chunk_;
  // The response in progress (worker side while it runs, the loop's while parked).
  Response res_;
  std::string out_;       // bytes to send: the head, a small body, or what the provider's last call wrote
  size_t out_sent_ = 0;   // of out_
  uint64_t produced_ = 0; // body bytes the provider has written so far
  uint64_t size_ = 0;     // body bytes announced
  size_t body_len_ = 0;   // bytes of res_.body to send after out_ (a large plain body; else 0)
  size_t body_sent_ = 0;  // of them
  bool streaming_ = false, keep_ = false;
};

void Conn::close() {
  if (closed_) return;
  closed_ = true;
  ++timer_gen_;
  timer_.cancel();
  timer_at_ = Clock::time_point::max();
  boost::system::error_code ec;
  sock_.shutdown(asio::socket_base::shutdown_both, ec);
  sock_.close(ec);
  srv_.closed(this, peer, unix_, loop_);
}

void Conn::ensure_timer() {
  if (timer_at_ <= deadline_) return;  // it fires first, then re-arms for the rest
  timer_at_ = deadline_;
  const uint64_t gen = ++timer_gen_;
  timer_.expires_at(deadline_);
  timer_.async_wait(
      [self = shared_from_this(), gen](const boost::system::error_code& ec) { self->on_timer(ec, gen); });
}

void Conn::on_timer(const boost::system::error_code& ec, uint64_t gen) {
  std::lock_guard<std::mutex> lock(m_);
  if (ec || closed_ || gen != timer_gen_) return;
  timer_at_ = Clock::time_point::max();
  if (!loop_owned_) return;  // a worker has it: it re-arms when it hands the connection back
  // Too slow: an idle keep-alive ends quietly; a head that does not finish in time is cut too
  // (answering would only help a slow client hold the connection longer), and so is a peer that
  // does not take a response or a refusal.
  if (Clock::now() >= deadline_) return reading_body_ ? refuse_incomplete() : close();
  ensure_timer();
}

void Conn::new_request() {
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(std::min<size_t>(srv_.limits.max_head_bytes, UINT32_MAX)));
  parser_->body_limit(boost::none);  // bodies are limited per route, by the handler (Ctx::stream_body)
  expect_continue_ = continue_sent_ = body_broken_ = false;
  head_deadline_ = false;
}

void Conn::read_head(size_t chunk) {
  sock_.async_read_some(buf_.prepare(chunk), [self = shared_from_this()](const boost::system::error_code& ec,
                                                                           size_t n) { self->on_read(ec, n); });
}

void Conn::on_read(const boost::system::error_code& ec, size_t n) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_) return;
    if (ec) return close();  // EOF, reset, or cancelled
    buf_.commit(n);
    parse_head();
    if (!std::exchange(run_inline_, false)) return;
  }
  serve_inline();
}

void Conn::parse_head() {
  boost::system::error_code ec;
  while (buf_.size() > 0 && !parser_->is_header_done()) {
    size_t n = parser_->put(buf_.data(), ec);
    buf_.consume(n);
    if (ec == bhttp::error::need_more) {
      ec = {};
      break;
    }
    if (ec) break;
    if (n == 0) break;
  }
  if (ec == bhttp::error::header_limit)
    return refuse(431, "header_too_large",
                  "the request head is larger than " + std::to_string(srv_.limits.max_head_bytes) + " bytes");
  if (ec == bhttp::error::bad_transfer_encoding || ec == bhttp::error::bad_content_length ||
      ec == bhttp::error::multiple_content_length)
    return refuse(400, "bad_request", "invalid Content-Length or Transfer-Encoding (both, repeated or malformed)");
  if (ec) return refuse(400, "bad_request", "malformed HTTP request: " + ec.message());
  if (parser_->is_header_done()) return on_head();
  if (buf_.size() >= srv_.limits.max_head_bytes)
    return refuse(431, "header_too_large",
                  "the request head is larger than " + std::to_string(srv_.limits.max_head_bytes) + " bytes");
  if (!head_deadline_) {
    // From its first byte, the whole head must come in time (only a head that did not come in one
    // read gets this far: the usual request never touches the timer).
    head_deadline_ = true;
    deadline_ = Clock::now() + srv_.limits.head_timeout;
    ensure_timer();
  }
  read_head(kReadChunk);
}

void Conn::on_head() {
  auto& msg = parser_->get();
  size_t count = 0;
  for (auto it = msg.begin(); it != msg.end(); ++it) ++count;
  if (count > srv_.limits.max_headers)
    return refuse(431, "too_many_headers",
                  "the request has more than " + std::to_string(srv_.limits.max_headers) + " header fields");
  // A Transfer-Encoding other than a final "chunked" leaves the body's end unknown: refused, as
  // reading on would take the body for the next request.
  if (msg.count(bhttp::field::transfer_encoding) && !parser_->chunked())
    return refuse(400, "bad_request", "unsupported Transfer-Encoding: only chunked is accepted");
  if (msg.version() != 11 && msg.version() != 10)
    return refuse(400, "bad_request", "unsupported HTTP version");
  req_ = Request();
  req_.method = std::string(msg.method_string());
  req_.target = std::string(msg.target());
  req_.path = req_.target.substr(0, req_.target.find('?'));
  for (const auto& f : msg) req_.headers.emplace(std::string(f.name_string()), std::string(f.value()));
  req_.remote_addr = peer;
  req_.remote_port = peer_port;
  req_.local_addr = local_addr;
  req_.local_port = local_port;
  const auto expect = msg[bhttp::field::expect];
  if (!expect.empty() && !boost::beast::iequals(expect, "100-continue"))
    return refuse(417, "expectation_failed",
                  "unsupported Expect: '" + std::string(expect.substr(0, 64)) + "' (only 100-continue is understood)");
  expect_continue_ = !expect.empty() && !parser_->is_done();
  keep_alive_ = parser_->keep_alive();
  ++served_;
  in_flight_ = true;  // a drain lets it finish (its body included)
  // A small body that has not all come with the head is read here first, so a client that sends
  // it slowly holds no worker (each pause at most the read gap). Larger bodies, chunked ones and
  // ones the client holds back for 100 Continue are read by the handler, as it streams them.
  const auto length = parser_->content_length();
  if (!parser_->is_done() && !expect_continue_ && length && *length <= kSmallBody && buf_.size() < *length)
    return read_body(static_cast<size_t>(*length));
  dispatch();
}

void Conn::refuse_incomplete() {
  reading_body_ = false;
  refuse(400, "incomplete_body", "the request body ended before its declared length (or stopped arriving for " +
                                     std::to_string(srv_.limits.gap_ms / 1000) + " s)");
}

void Conn::read_body(size_t length) {
  reading_body_ = true;
  deadline_ = Clock::now() + std::chrono::milliseconds(srv_.limits.gap_ms);
  ensure_timer();
  sock_.async_read_some(buf_.prepare(length - buf_.size()),
                        [self = shared_from_this(), length](const boost::system::error_code& ec, size_t n) {
                          std::lock_guard<std::mutex> lock(self->m_);
                          if (self->closed_ || !self->reading_body_) return;  // closed, or refused on time
                          if (ec == asio::error::eof) return self->refuse_incomplete();  // half-closed
                          if (ec) return self->close();  // the client went away before its body was in
                          self->buf_.commit(n);
                          if (self->buf_.size() < length) return self->read_body(length);
                          self->submit();  // a body: never answered on the loop
                        });
}

void Conn::dispatch() {
  reading_body_ = false;
  loop_owned_ = false;
  // No body (nothing to read or drain): a route may answer it here, from memory.
  if (srv_.router.has_probes() && parser_->is_done() && !expect_continue_) {
    run_inline_ = true;
    return;
  }
  submit();
}

void Conn::serve_inline() {
  res_ = Response();
  bool answered = false;
  try {
    answered = srv_.router.try_inline(req_, res_, this, unix_);
  } catch (const std::exception& e) {
    // try_inline answers every error itself; should anything escape, the loop (which serves every
    // other connection too) must not end: the worker answers the request from the start.
    log::error(std::string("answering on the I/O thread failed: ") + e.what());
    res_ = Response();
  } catch (...) {
    log::error("answering on the I/O thread failed (an unknown exception)");
    res_ = Response();
  }
  if (answered) return respond();
  std::lock_guard<std::mutex> lock(m_);
  if (closed_) return;
  submit();
}

void Conn::submit() {
  reading_body_ = false;
  loop_owned_ = false;
  std::function<void()> task = [self = shared_from_this()] { self->serve(); };
  if (!srv_.workers.try_submit(task)) {
    loop_owned_ = true;
    log::warn("req=- " + req_.method + " " + req_.path + " 503 code=server_busy: every worker is busy and the queue is full");
    obs::metrics().throttled(obs::surface_of_route(req_.path), "server_busy");
    return refuse(503, "server_busy", "the proxy is busy: every worker is occupied; retry shortly", true);
  }
  // From here the worker owns the request: nothing of it is touched on the loop.
}

void Conn::refuse(int status, const std::string& code, const std::string& message, bool retry_after) {
  in_flight_ = true;  // a drain must not cut the answer short
  loop_owned_ = true;
  auto text = std::make_shared<std::string>(refusal(status, code, message, retry_after));
  if (status != 503) log::info("req=- - - " + std::to_string(status) + " code=" + code);
  // Counted like any answer (no handler ran: surface and method as far as the head told them).
  obs::Surface surface = obs::Surface::other;
  obs::Method method = obs::Method::other;
  if (parser_ && parser_->is_header_done()) {
    const auto& msg = parser_->get();
    const std::string_view target(msg.target().data(), msg.target().size());
    surface = obs::surface_of_route(target.substr(0, target.find('?')));
    method = obs::method_of(std::string_view(msg.method_string().data(), msg.method_string().size()));
  }
  obs::metrics().request_refused(surface, method, status);
  // The rest of what the client sends is never read: the answer is written, then the connection ends.
  deadline_ = Clock::now() + std::chrono::milliseconds(srv_.limits.gap_ms);
  ensure_timer();
  asio::async_write(sock_, asio::buffer(*text), [self = shared_from_this(), text](const boost::system::error_code&, size_t) {
    std::lock_guard<std::mutex> lock(self->m_);
    self->close();
  });
}

bool Conn::fill(size_t cap) {
  for (;;) {
    auto space = buf_.prepare(cap);
    ssize_t n = ::recv(fd(), space.data(), space.size(), MSG_DONTWAIT);
    if (n > 0) {
      buf_.commit(static_cast<size_t>(n));
      return true;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (!wait_fd(fd(), POLLIN, srv_.limits.gap_ms)) return false;
  }
}

bool Conn::read(const std::function<bool(const char*, size_t)>& sink) {
  if (body_broken_) return false;
  if (parser_->is_done()) return true;
  if (expect_continue_ && !continue_sent_) {
    continue_sent_ = true;
    static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (!send_all(fd(), kContinue, sizeof kContinue - 1, srv_.limits.gap_ms)) return !(body_broken_ = true);
  }
  // Chunks of up to 64 KiB, no larger than the body when its length is known (the buffer is freed
  // when the response is over: an idle connection holds none).
  size_t want = kBodyChunk;
  if (const auto length = parser_->content_length())
    want = static_cast<size_t>(std::min<uint64_t>(kBodyChunk, std::max<uint64_t>(*length, 1)));
  if (chunk_.size() < want) chunk_.resize(want);
  while (!parser_->is_done()) {
    if (buf_.size() == 0 && !fill(kBodyChunk)) return !(body_broken_ = true);
    auto& body = parser_->get().body();
    body.data = chunk_.data();
    body.size = chunk_.size();
    boost::system::error_code ec;
    size_t used = parser_->put(buf_.data(), ec);
    buf_.consume(used);
    if (ec == bhttp::error::need_buffer || ec == bhttp::error::need_more) ec = {};
    if (ec) return !(body_broken_ = true);  // a malformed chunked body
    const size_t produced = chunk_.size() - body.size;
    if (produced > 0 && !sink(chunk_.data(), produced)) return false;
    if (used == 0 && produced == 0 && !parser_->is_done() && !fill(kBodyChunk)) return !(body_broken_ = true);
  }
  return true;
}

void Conn::serve() {
  res_ = Response();
  srv_.router.handle(req_, res_, this, unix_);
  respond();
}

void Conn::respond() {
  // The connection goes on only when the request allows it, the handler did not end it, the body
  // was read to its end (else its rest would be taken for the next request) and no drain is on.
  keep_ = keep_alive_ && !srv_.stopping() && res_.get_header_value("Connection") != "close" && parser_->is_done() &&
          !body_broken_ && served_ < srv_.limits.max_requests;
  begin_response(req_.method == "HEAD");
  pump();
}
void Conn::begin_response(bool head_only) {
  Response& res = res_;
  if (res.status < 100) res.status = 500;
  const bool no_body = res.status < 200 || res.status == 204 || res.status == 304;
  std::string& head = out_;
  head.clear();
  out_sent_ = 0;
  head.reserve(256);
  head += "HTTP/1.1 ";
  head += std::to_string(res.status);
  head += ' ';
  head += reason_phrase(res.status);
  head += "\r\n";
  for (const auto& [name, value] : res.headers) {
    if (boost::beast::iequals(name, "Connection") || boost::beast::iequals(name, "Content-Length") ||
        boost::beast::iequals(name, "Transfer-Encoding"))
      continue;
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  const uint64_t size = res.body_size();
  if (!no_body) head += "Content-Length: " + std::to_string(size) + "\r\n";
  if (!keep_) {
    head += "Connection: close\r\n";
  } else {
    // How long the connection may idle and how many requests it has left: the SDKs reconnect
    // before reusing a connection idle that long.
    if (parser_->get().version() == 10) head += "Connection: keep-alive\r\n";
    head += "Keep-Alive: timeout=" + std::to_string(srv_.limits.keep_alive.count() / 1000) +
            ", max=" + std::to_string(srv_.limits.max_requests - served_) + "\r\n";
  }
  head += "\r\n";
  produced_ = 0;
  size_ = 0;
  body_len_ = body_sent_ = 0;
  streaming_ = false;
  if (head_only || no_body || size == 0) return;
  if (res.provider) {
    streaming_ = true;
    size_ = size;
  } else if (res.body.size() < 64 * 1024) {
    head += res.body;  // one send for a small answer
    res.body.clear();
  } else {
    body_len_ = res.body.size();  // sent from res_.body after the head, without a copy
  }
}

void Conn::pump() {
  for (;;) {
    // The head (or the provider's last piece) in out_, then a large plain body from res_.body.
    Sent r = send_from(fd(), out_.data(), out_.size(), out_sent_);
    if (r == Sent::all) r = send_from(fd(), res_.body.data(), body_len_, body_sent_);
    if (r == Sent::blocked) return park();
    if (r == Sent::gone) return finish(false);
    out_.clear();
    out_sent_ = 0;
    if (!streaming_ || produced_ >= size_) return finish(true);
    // The provider writes its next piece into out_ (one call: a chunk of the object).
    bool broken = false;
    DataSink sink;
    sink.write = [&](const char* d, size_t n) {
      if (broken || n > size_ - produced_) {  // more than announced would corrupt the stream
        broken = true;
        return false;
      }
      out_.append(d, n);
      produced_ += n;
      return true;
    };
    const uint64_t before = produced_;
    bool more = false;
    try {
      more = res_.provider(static_cast<size_t>(produced_), static_cast<size_t>(size_ - produced_), sink);
    } catch (const std::exception& e) {
      log::error(std::string("response body failed midway: ") + e.what());
    }
    // A provider that fails or makes no progress ends the response short, after what it wrote: the
    // connection is cut, which the client sees as a short body. One that says "no more" after the
    // last byte is done.
    if (broken || produced_ == before || (!more && produced_ < size_)) {
      streaming_ = false;
      size_ = produced_;  // what was written still goes out, then the cut
      keep_ = false;
      if (out_.empty()) return finish(false);
    }
  }
}

void Conn::park() {
  // The loop waits for room; the worker goes back to the pool. Nothing of the response is touched
  // here after the wait is started: the loop owns the connection until it resubmits pump().
  std::lock_guard<std::mutex> lock(m_);
  loop_owned_ = true;
  deadline_ = Clock::now() + std::chrono::milliseconds(srv_.limits.gap_ms);  // the peer's longest pause
  ensure_timer();
  sock_.async_wait(asio::socket_base::wait_write, [self = shared_from_this()](const boost::system::error_code& ec) {
    std::lock_guard<std::mutex> held(self->m_);
    if (self->closed_) return;
    if (ec) return self->close();
    self->loop_owned_ = false;
    self->srv_.workers.submit([self] { self->pump(); });
  });
}

void Conn::finish(bool ok) {
  const bool keep = keep_ && ok;
  res_ = Response();  // the provider (and what it holds: an open object) goes now, on the worker
  std::string().swap(out_);  // an idle connection keeps no send buffer (the next answer makes its own)
  out_sent_ = 0;
  body_len_ = body_sent_ = 0;
  req_ = Request();
  if (!chunk_.empty()) std::vector<char>().swap(chunk_);  // an idle connection holds no body buffer
  std::lock_guard<std::mutex> lock(m_);
  in_flight_ = false;
  loop_owned_ = true;
  // A drain that began during the response did not close this connection (it was in flight): the
  // check here does.
  if (!keep || srv_.stopping() || served_ >= srv_.limits.max_requests) return close();
  new_request();
  if (buf_.size() > 0) {
    // A pipelined request is already here: the loop parses it (and hands it to a worker in turn).
    asio::post(loop_, [self = shared_from_this()] {
      {
        std::lock_guard<std::mutex> held(self->m_);
        if (self->closed_) return;
        self->parse_head();
        if (!std::exchange(self->run_inline_, false)) return;
      }
      self->serve_inline();
    });
    return;
  }
  // Waiting for the next request: the keep-alive timeout. The read is started from here: on the
  // edge-triggered socket that costs no system call, and its completion runs on the loop.
  deadline_ = Clock::now() + srv_.limits.keep_alive;
  ensure_timer();
  if (buf_.capacity() > kFirstRead) buf_.shrink_to_fit();  // an idle connection holds a small buffer only
  read_head(kFirstRead);
}

}  // namespace

Server::Impl::Impl(const Config& c, Router& r)
    : config(c), router(r), loops(make_loops(c.io_threads)), tcp(*loops[0]),
      workers(static_cast<size_t>(c.workers), static_cast<size_t>(c.queue)) {
  limits.head_timeout = std::chrono::milliseconds(c.head_timeout_ms);
  limits.keep_alive = std::chrono::milliseconds(int64_t(c.keep_alive_timeout) * 1000);
  limits.gap_ms = c.read_timeout * 1000;
  limits.max_head_bytes = static_cast<size_t>(c.max_head_bytes);
  limits.max_headers = static_cast<size_t>(c.max_headers);
  limits.max_connections = static_cast<size_t>(c.max_connections);
  limits.max_per_peer = static_cast<size_t>(c.max_connections_per_peer);
  limits.max_requests = static_cast<uint64_t>(c.keep_alive_max_count);
  for (auto& l : loops) guards.emplace_back(l->get_executor());
  // Each connection is a descriptor: make room for the connection cap if the hard limit allows.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    const rlim_t want = static_cast<rlim_t>(c.max_connections) + 1024;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
      rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
      ::setrlimit(RLIMIT_NOFILE, &rl);
    }
  }
}

void Server::Impl::admit(asio::io_context& loop, Socket socket, std::string peer, std::string local, int local_port,
                         int peer_port, bool unix_socket) {
  obs::metrics().connection_opened();
  const char* refused = nullptr;
  std::shared_ptr<Conn> c;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping()) refused = "the proxy is shutting down";
    else if (conns.size() >= limits.max_connections) refused = "too many open connections";
    else if (!unix_socket && limits.max_per_peer && per_peer[peer] >= limits.max_per_peer)
      refused = "too many open connections from this address";
    if (!refused) {
      if (!unix_socket) ++per_peer[peer];
      c = std::make_shared<Conn>(*this, loop, std::move(socket), unix_socket);
      conns.push_front(c);
      c->self_it = conns.begin();
    }
  }
  if (refused) {
    // Answered at once, without waiting for a request: the socket's send buffer is empty, so this
    // does not block. The client reads it as the answer to whatever it sends.
    const std::string text = refusal(503, "too_many_connections", refused, true);
    (void)::send(socket.native_handle(), text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    boost::system::error_code ec;
    socket.shutdown(asio::socket_base::shutdown_send, ec);
    socket.close(ec);
    obs::metrics().connection_closed();
    obs::metrics().request_refused(obs::Surface::other, obs::Method::other, 503);
    obs::metrics().throttled(obs::Surface::other, "too_many_connections");
    return;
  }
  c->peer = std::move(peer);
  c->peer_port = peer_port;
  c->local_addr = std::move(local);
  c->local_port = local_port;
  c->start();
}

void Server::Impl::closed(Conn* c, const std::string& peer, bool unix_socket, asio::io_context& loop) {
  obs::metrics().connection_closed();
  std::shared_ptr<Conn> keep;  // destroyed after the lock is released
  std::lock_guard<std::mutex> lock(mu);
  keep = std::move(*c->self_it);
  conns.erase(c->self_it);
  if (!unix_socket) {
    auto it = per_peer.find(peer);
    if (it != per_peer.end() && --it->second == 0) per_peer.erase(it);
  }
  if (stopping() && conns.empty()) guards.clear();
  // The last reference goes on the connection's loop, after whatever handler closed it returned
  // (it may be a worker's or a loop handler's, which still runs on the object).
  asio::post(loop, [keep] {});
}

void Server::Impl::accept_tcp() {
  asio::io_context& loop = next_loop();
  tcp.async_accept(loop, [this, &loop](const boost::system::error_code& ec, asio::ip::tcp::socket s) {
    if (ec == asio::error::operation_aborted || !tcp.is_open()) return;
    if (!ec) {
      boost::system::error_code e2;
      s.set_option(asio::ip::tcp::no_delay(true), e2);
      auto remote = s.remote_endpoint(e2);
      auto local = s.local_endpoint(e2);
      std::string peer = remote.address().is_v6() && remote.address().to_v6().is_v4_mapped()
                             ? asio::ip::make_address_v4(asio::ip::v4_mapped, remote.address().to_v6()).to_string()
                             : remote.address().to_string();
      auto proto = s.local_endpoint(e2).protocol();
      Socket g(s.get_executor(), asio::generic::stream_protocol(proto), s.release(e2));
      admit(loop, std::move(g), std::move(peer), local.address().to_string(), local.port(), remote.port(), false);
    } else {
      log::warn("accept failed: " + ec.message());  // e.g. out of descriptors: go on, the next may succeed
    }
    accept_tcp();
  });
}

void Server::Impl::accept_unix() {
  asio::io_context& loop = next_loop();
  unix_acceptor->async_accept(loop, [this, &loop](const boost::system::error_code& ec,
                                                  asio::local::stream_protocol::socket s) {
    if (ec == asio::error::operation_aborted || !unix_acceptor->is_open()) return;
    if (!ec) {
      boost::system::error_code e2;
      Socket g(s.get_executor(), asio::generic::stream_protocol(AF_UNIX, 0), s.release(e2));
      admit(loop, std::move(g), "", "", -1, -1, true);
    } else {
      log::warn("accept on the Unix socket failed: " + ec.message());
    }
    accept_unix();
  });
}

void Server::Impl::stop() {
  asio::post(*loops[0], [this] {
    std::vector<std::shared_ptr<Conn>> all;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping()) return;
      stopping_flag.store(true, std::memory_order_release);
      all.assign(conns.begin(), conns.end());
      if (conns.empty()) guards.clear();
    }
    boost::system::error_code ec;
    tcp.close(ec);
    if (unix_acceptor) unix_acceptor->close(ec);
    for (auto& c : all) c->drain();
  });
}

void Server::Impl::run() {
  if (tcp.is_open()) accept_tcp();
  if (unix_acceptor) accept_unix();
  std::vector<std::thread> threads;
  for (size_t i = 1; i < loops.size(); ++i) threads.emplace_back([this, i] { loops[i]->run(); });
  loops[0]->run();
  for (auto& t : threads) t.join();
}

namespace {

// A listening AF_UNIX socket at `path`. sun_path holds 108 bytes, so the socket is bound through
// /proc/self/fd/N of its directory: any path length works.
int unix_listener(const std::string& path, int backlog) {
  namespace fs = std::filesystem;
  fs::path p(path);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  const std::string name = p.filename().string();
  if (name.empty()) throw std::runtime_error("Unix socket path " + path + " names no file");
  std::error_code ec;
  fs::create_directories(dir, ec);
  int dfd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) throw std::runtime_error("cannot open " + dir + ": " + std::strerror(errno));
  struct stat st;
  if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      ::close(dfd);
      throw std::runtime_error(path + " exists and is not a socket");
    }
    ::unlinkat(dfd, name.c_str(), 0);  // left by an earlier run of the proxy
  }
  const std::string via = "/proc/self/fd/" + std::to_string(dfd) + "/" + name;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (via.size() >= sizeof addr.sun_path) {
    ::close(dfd);
    throw std::runtime_error("Unix socket name too long: " + name);
  }
  std::memcpy(addr.sun_path, via.c_str(), via.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int err = 0;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::fchmodat(dfd, name.c_str(), 0666, 0) != 0 || ::listen(fd, backlog) != 0)
    err = errno;
  ::close(dfd);
  if (err) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot listen on " + path + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace

Server::Server(const Config& config) : impl_(std::make_unique<Impl>(config, router_)) {}

Server::~Server() {
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

void Server::listen_unix(const std::string& path) {
  const int fd = unix_listener(path, impl_->config.listen_backlog);
  impl_->unix_acceptor.emplace(*impl_->loops[0], asio::local::stream_protocol(), fd);
  unix_path_ = path;
}

int Server::bind() {
  router_.check_declared();
  const Config& c = impl_->config;
  boost::system::error_code ec;
  asio::ip::tcp::endpoint ep;
  auto addr = asio::ip::make_address(c.host, ec);
  if (!ec) {
    ep = asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(c.port));
  } else {
    asio::ip::tcp::resolver resolver(*impl_->loops[0]);
    auto results = resolver.resolve(c.host, std::to_string(c.port), ec);
    if (ec || results.empty()) throw std::runtime_error("cannot resolve " + c.host + ": " + ec.message());
    ep = results.begin()->endpoint();
  }
  auto& a = impl_->tcp;
  a.open(ep.protocol(), ec);
  // SO_REUSEADDR alone lets a restart bind past connections in TIME_WAIT while a live listener
  // makes bind() fail (SO_REUSEPORT would let a second proxy bind and split the connections).
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(c.listen_backlog, ec);
  if (ec) {
    if (c.port == 0) throw std::runtime_error("cannot bind " + c.host + " on any port: " + ec.message());
    throw std::runtime_error("cannot bind " + c.host + ":" + std::to_string(c.port) +
                             " (in use, or not an address of this machine): " + ec.message());
  }
  return a.local_endpoint().port();
}

void Server::run() { impl_->run(); }

void Server::stop() { impl_->stop(); }

}  // namespace era::http

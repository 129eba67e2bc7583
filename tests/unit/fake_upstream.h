// FakeUpstream: the one scripted stand-in for Cloudflare (or any HTTP upstream) in the unit tests.
// It serves on a free loopback port with the proxy's own server (http/server.h) from a background
// thread, records every request exactly as it arrived (method, target, headers, body: the tests pin
// the request shapes production sends to Cloudflare against it), and answers each by a script chosen
// by method and target. Destroying it releases held answers, stops the server and joins its thread.
//
//   FakeUpstream up;                                        // unscripted requests: 404
//   up.on("GET", "/client/v4/user/tokens/verify", [](const Captured& c, http::Response& res) {...});
//   up.otherwise([](const Captured& c, http::Response& res) { if (c.index == 0) res.status = 500; });
//   HttpClient client(fast_http());  ...  CHECK(up.requests()[0].header("Authorization") == "Bearer t");
//
// fast_http() is the one set of client options for tests against it: short backoff, timeouts far above
// any loopback answer on a loaded machine under a sanitizer (a test that wants a timeout sets its own).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "http/message.h"
#include "store/cloudflare/http_client.h"

namespace era {
struct Config;
namespace http {
class Server;
}
}  // namespace era

namespace era::test {

// One part of a multipart/form-data body (RFC 7578).
struct FormPart {
  std::string name;
  std::string filename;      // "" for a plain form field (no filename parameter)
  std::string content_type;  // the part's Content-Type, "" when it has none
  std::string content;
};

// The parts of a multipart/form-data `body` by name, in order, with the boundary from `content_type`.
// Strict, for a test: throws std::runtime_error on anything malformed (no boundary, a missing
// delimiter or closing delimiter, a part without `Content-Disposition: form-data; name=...`).
std::multimap<std::string, FormPart> parse_multipart(const std::string& content_type, const std::string& body);

// A request as the upstream received it.
struct Captured {
  int index = 0;       // 0-based, in order of arrival
  std::string method;  // as sent
  std::string target;  // path and query as sent, still percent-encoded
  std::string path;    // target up to '?'
  http::Headers headers;  // names as sent; looked up without regard to case
  std::string body;
  int remote_port = -1;  // the client's port: one per connection

  // The first value of header `name`, "" when absent.
  std::string header(const std::string& name) const;
  bool has_header(const std::string& name) const { return headers.count(name) > 0; }
  // The query after '?', as sent; "" when there is none.
  std::string query() const;
  // The body's multipart/form-data parts (parse_multipart with this request's Content-Type).
  std::multimap<std::string, FormPart> parts() const { return parse_multipart(header("Content-Type"), body); }
};

class FakeUpstream {
 public:
  // Fills the response to one request. Runs on one of the server's worker threads (several at once
  // when requests overlap), outside the fixture's lock: it may call the fixture, and must lock what
  // it shares with the test. An ApiError it throws becomes the proxy's JSON error answer.
  using Script = std::function<void(const Captured&, http::Response&)>;

  // `otherwise` answers every request that no on() script matches; without one, such a request is
  // answered 404 with a text body naming it.
  explicit FakeUpstream(Script otherwise = {});
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  // Answers `method` on exactly `target` (path and query as sent, percent-encoded: a target with a
  // query matches only that query, one without matches only requests without) by `script`,
  // replacing an earlier script for the same pair. May be called while requests are served.
  void on(const std::string& method, const std::string& target, Script script);
  // Replaces the answer to requests no on() script matches (empty: the 404).
  void otherwise(Script script);

  // From hold() until release(), every request is recorded and then waits before it is answered
  // (an event the test controls, not a sleep). The destructor releases too.
  void hold();
  void release();
  // Waits until `n` requests have been recorded.
  void wait_calls(size_t n);
  // Waits until every recorded request has been answered (its script returned).
  void wait_idle();

  std::vector<Captured> requests();
  size_t calls();
  // Client connections seen (distinct client ports).
  size_t connections();

  int port() const { return port_; }
  // "http://127.0.0.1:<port>" + path.
  std::string url(const std::string& path = "") const;

 private:
  class Quiet;
  void serve(const Captured& request, http::Response& res);

  std::unique_ptr<Quiet> quiet_;  // the router's observer: no access log line per request
  std::unique_ptr<Config> config_;  // the server keeps a reference to it: it must outlive the server
  std::unique_ptr<http::Server> server_;
  int port_ = 0;
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Captured> captured_;
  std::set<int> ports_;
  std::map<std::pair<std::string, std::string>, Script> scripts_;
  Script otherwise_;
  int active_ = 0;
  bool held_ = false;
};

// The client options for tests against a FakeUpstream: `attempts` tries (first included) with a few
// milliseconds of backoff; connect and total timeouts far above a loopback answer (2 s, 10 s).
cf::HttpOptions fast_http(int attempts = 3);

}  // namespace era::test

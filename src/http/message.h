// The proxy's own HTTP request and response, as handlers see them (http::Ctx's req and res). The
// server (http/server.cpp) fills a Request from the wire and writes a Response back; tests and
// tools build them by hand and pass them to Router::handle. Nothing here names the server's I/O
// library, so every api/*.cpp that includes router.h stays cheap to compile.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace era::http {

// Header names compare without regard to case (RFC 9110 §5.1).
struct CaseLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::multimap<std::string, std::string, CaseLess>;

// What a content provider writes through: `write` returns false when the response can take no more
// (the provider should then return false too). The server calls the provider again only once the
// peer has taken what the last call wrote, so a slow reader slows the provider down instead of growing
// a buffer; while it waits, the connection holds that one piece and no worker.
struct DataSink {
  std::function<bool(const char* data, size_t size)> write;
};
// Called until the announced length is written: `offset` bytes were written so far, `length` are
// left. Returning false ends the response there (a short body: the connection is closed).
using ContentProvider = std::function<bool(size_t offset, size_t length, DataSink& sink)>;

struct Request {
  std::string method;
  std::string target;  // as sent: path and query, still percent-encoded
  std::string path;    // target up to '?'
  Headers headers;
  std::string body;  // only for requests made in process (Router::handle without a BodyReader)
  std::string remote_addr, local_addr;  // "" on the Unix socket
  int remote_port = -1, local_port = -1;

  bool has_header(const std::string& name) const { return headers.find(name) != headers.end(); }
  // The first value of `name`, or "" when the request has none.
  std::string get_header_value(const std::string& name) const;
  void set_header(const std::string& name, const std::string& value) { headers.emplace(name, value); }
  // Query parameters, from the target: '+' and %XX decoded; the first of repeated names wins.
  bool has_param(const std::string& name) const;
  std::string get_param_value(const std::string& name) const;
};

struct Response {
  int status = -1;  // -1: not set yet (the router makes it 200)
  Headers headers;
  std::string body;
  // A streamed body: `content_length` bytes from `provider` (which runs after the handler returned,
  // on the same worker thread, and must own what it reads).
  ContentProvider provider;
  uint64_t content_length = 0;

  bool has_header(const std::string& name) const { return headers.find(name) != headers.end(); }
  std::string get_header_value(const std::string& name) const;
  // Adds a value of `name` (a second call adds a second field, as Set-Cookie needs).
  void set_header(const std::string& name, const std::string& value) { headers.emplace(name, value); }
  // Replaces every value of `name` with this one.
  void replace_header(const std::string& name, const std::string& value);
  // The body and its Content-Type (replacing any earlier one).
  void set_content(std::string content, const std::string& content_type);
  void set_content_provider(uint64_t length, const std::string& content_type, ContentProvider p);
  // Bytes the body has, streamed or not.
  uint64_t body_size() const { return provider ? content_length : body.size(); }
};

// A request body arriving from the connection, read in chunks on the handler's thread while the
// server feeds it. read() calls `sink` per chunk until the body ends (true) or `sink` returns false,
// the peer goes away or stops sending for too long (false).
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  virtual bool read(const std::function<bool(const char*, size_t)>& sink) = 0;
  // Whether the client sent `Expect: 100-continue` and has not been told to go on: it sends its body
  // only once read() is called (which answers 100 Continue first), so a request refused before its
  // body was read has no body to drain.
  virtual bool awaiting_continue() const = 0;
};

// The reason phrase for a status code ("OK", "Not Found"), "" for one it does not know.
const char* reason_phrase(int status);

}  // namespace era::http

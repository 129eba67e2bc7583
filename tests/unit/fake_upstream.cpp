#include "fake_upstream.h"

#include <stdexcept>
#include <string_view>
#include <utility>

#include "config/config.h"
#include "http/server.h"
#include "util/text.h"

namespace era::test {

namespace {

using text::lower;
using text::trim;

// `value; a=b; c="d"` -> the first item and the parameters by lowercased name (quotes removed).
std::pair<std::string, std::map<std::string, std::string>> split_params(std::string_view header) {
  std::pair<std::string, std::map<std::string, std::string>> out;
  size_t i = 0;
  bool first = true;
  while (i <= header.size()) {
    // A ';' inside a quoted value does not end it.
    size_t j = i;
    bool quoted = false;
    while (j < header.size() && (quoted || header[j] != ';')) {
      if (header[j] == '"') quoted = !quoted;
      ++j;
    }
    if (quoted) throw std::runtime_error("multipart: an unterminated quoted parameter in '" + std::string(header) + "'");
    std::string_view item = trim(header.substr(i, j - i));
    if (first) {
      out.first = lower(item);
      first = false;
    } else if (!item.empty()) {
      const size_t eq = item.find('=');
      if (eq == std::string_view::npos) throw std::runtime_error("multipart: a parameter without '=': " + std::string(item));
      std::string_view value = trim(item.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
      out.second[lower(trim(item.substr(0, eq)))] = std::string(value);
    }
    i = j + 1;
  }
  return out;
}

}  // namespace

std::multimap<std::string, FormPart> parse_multipart(const std::string& content_type, const std::string& body) {
  const auto [type, params] = split_params(content_type);
  if (type != "multipart/form-data") throw std::runtime_error("multipart: Content-Type is '" + content_type + "'");
  const auto b = params.find("boundary");
  if (b == params.end() || b->second.empty()) throw std::runtime_error("multipart: no boundary in '" + content_type + "'");
  const std::string delimiter = "--" + b->second;
  if (body.compare(0, delimiter.size(), delimiter) != 0) throw std::runtime_error("multipart: the body does not open with the boundary");
  std::multimap<std::string, FormPart> parts;
  size_t pos = delimiter.size();
  for (;;) {
    if (body.compare(pos, 2, "--") == 0) {  // the closing delimiter: only a line end may follow
      const std::string_view rest = std::string_view(body).substr(pos + 2);
      if (!rest.empty() && rest != "\r\n") throw std::runtime_error("multipart: data after the closing delimiter");
      return parts;
    }
    if (body.compare(pos, 2, "\r\n") != 0) throw std::runtime_error("multipart: no line end after a delimiter");
    pos += 2;
    const size_t head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) throw std::runtime_error("multipart: a part's headers do not end");
    FormPart part;
    bool disposition = false;
    for (size_t line = pos; line < head_end + 2;) {
      const size_t eol = body.find("\r\n", line);
      const std::string_view field = std::string_view(body).substr(line, eol - line);
      line = eol + 2;
      const size_t colon = field.find(':');
      if (colon == std::string_view::npos) throw std::runtime_error("multipart: a part header without ':'");
      const std::string name = lower(trim(field.substr(0, colon)));
      const std::string_view value = trim(field.substr(colon + 1));
      if (name == "content-type") {
        part.content_type = std::string(value);
      } else if (name == "content-disposition") {
        const auto [kind, p] = split_params(value);
        const auto n = p.find("name");
        if (kind != "form-data" || n == p.end()) throw std::runtime_error("multipart: Content-Disposition is '" + std::string(value) + "'");
        part.name = n->second;
        if (auto f = p.find("filename"); f != p.end()) part.filename = f->second;
        disposition = true;
      }
    }
    if (!disposition) throw std::runtime_error("multipart: a part without Content-Disposition");
    const size_t start = head_end + 4;
    const size_t end = body.find("\r\n" + delimiter, start);
    if (end == std::string::npos) throw std::runtime_error("multipart: a part is not followed by a delimiter");
    part.content = body.substr(start, end - start);
    parts.emplace(part.name, std::move(part));
    pos = end + 2 + delimiter.size();
  }
}

std::string Captured::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string Captured::query() const {
  const size_t q = target.find('?');
  return q == std::string::npos ? std::string() : target.substr(q + 1);
}

class FakeUpstream::Quiet : public http::Observer {
 public:
  void begin(http::Ctx&) override {}
  void end(http::Ctx&, const std::string&, double) override {}
};

FakeUpstream::FakeUpstream(Script otherwise)
    : quiet_(std::make_unique<Quiet>()), config_(std::make_unique<Config>()), otherwise_(std::move(otherwise)) {
  Config& config = *config_;
  config.host = "127.0.0.1";
  config.port = 0;
  // Enough workers that every request a test holds at once is recorded (a request past the workers
  // would wait in the queue, unseen); one I/O thread is plenty on loopback.
  config.workers = 16;
  config.io_threads = 1;
  // Cloudflare's own limits are the product's to enforce and the tests' to pin: the stand-in takes
  // any head a client sends (R2's metadata travels in headers, up to 8 KiB of them).
  config.max_head_bytes = 1 << 20;
  config.max_headers = 1000;
  server_ = std::make_unique<http::Server>(config);
  http::Router& router = server_->router();
  router.observe(quiet_.get());
  auto handler = [this](http::Ctx& ctx) {
    Captured c;
    c.method = ctx.req.method;
    c.target = ctx.req.target;
    c.path = ctx.req.path;
    c.headers = ctx.req.headers;
    c.body = ctx.body(size_t(256) << 20);
    c.remote_port = ctx.req.remote_port;
    serve(c, ctx.res);
  };
  // Every path, "/" included (a rest parameter needs a segment). The router percent-decodes the rest
  // parameter (unused here), so a target with malformed %-escapes is answered 400 unseen.
  for (const char* method : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
    for (const char* pattern : {"/", "/{path...}"}) router.add(method, pattern, http::Access::open(), handler);
  // bind() listens already: a client may connect before run() starts accepting.
  port_ = server_->bind();
  thread_ = std::thread([this] { server_->run(); });
}

FakeUpstream::~FakeUpstream() {
  release();
  server_->stop();  // run() returns once every answer is written and every connection closed
  thread_.join();
}

void FakeUpstream::serve(const Captured& request, http::Response& res) {
  Script script;
  Captured c = request;
  {
    std::unique_lock<std::mutex> lock(mu_);
    c.index = int(captured_.size());
    captured_.push_back(c);
    ports_.insert(c.remote_port);
    ++active_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !held_; });
    auto it = scripts_.find({c.method, c.target});
    script = it != scripts_.end() ? it->second : otherwise_;
  }
  struct Done {
    FakeUpstream* up;
    ~Done() {
      {
        std::lock_guard<std::mutex> lock(up->mu_);
        --up->active_;
      }
      up->cv_.notify_all();
    }
  } done{this};
  if (script) {
    script(c, res);
  } else {
    res.status = 404;
    res.set_content("FakeUpstream: no script for " + c.method + " " + c.target, "text/plain");
  }
}

void FakeUpstream::on(const std::string& method, const std::string& target, Script script) {
  std::lock_guard<std::mutex> lock(mu_);
  scripts_[{method, target}] = std::move(script);
}

void FakeUpstream::otherwise(Script script) {
  std::lock_guard<std::mutex> lock(mu_);
  otherwise_ = std::move(script);
}

void FakeUpstream::hold() {
  std::lock_guard<std::mutex> lock(mu_);
  held_ = true;
}

void FakeUpstream::release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = false;
  }
  cv_.notify_all();
}

void FakeUpstream::wait_calls(size_t n) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return captured_.size() >= n; });
}

void FakeUpstream::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return active_ == 0; });
}

std::vector<Captured> FakeUpstream::requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return captured_;
}

size_t FakeUpstream::calls() {
  std::lock_guard<std::mutex> lock(mu_);
  return captured_.size();
}

size_t FakeUpstream::connections() {
  std::lock_guard<std::mutex> lock(mu_);
  return ports_.size();
}

std::string FakeUpstream::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

cf::HttpOptions fast_http(int attempts) {
  cf::HttpOptions o;
  o.connect_timeout_ms = 2000;
  o.timeout_ms = 10000;
  o.max_attempts = attempts;
  o.backoff_base_ms = 5;
  o.backoff_max_ms = 20;
  return o;
}

}  // namespace era::test

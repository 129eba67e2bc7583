// The upstream client against a small misbehaving server on loopback: retries, backoff, Retry-After,
// timeouts, resets mid-body, error mapping, keep-alive, and never a second copy of a non-idempotent
// request whose fate is unknown.
#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "store/cloudflare/http_client.h"

using era::ApiError;
using era::cf::HttpClient;
using era::cf::HttpOptions;
using era::cf::HttpRequest;
using era::cf::Retry;

namespace {

// A loopback server whose one route answers by a script: call n (0-based) -> what to do.
class FakeUpstream {
 public:
  using Script = std::function<void(int n, const httplib::Request&, httplib::Response&)>;
  explicit FakeUpstream(Script s) : script_(std::move(s)) {
    server_.set_keep_alive_max_count(1000);
    auto h = [this](const httplib::Request& req, httplib::Response& res) {
      int n;
      {
        std::lock_guard<std::mutex> lock(mu_);
        n = calls_++;
        ports_.insert(req.remote_port);
      }
      script_(n, req, res);
    };
    server_.Get(".*", h);
    server_.Post(".*", h);
    server_.Put(".*", h);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ~FakeUpstream() {
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path = "/x") const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  size_t connections() {
    std::lock_guard<std::mutex> lock(mu_);
    return ports_.size();
  }

 private:
  Script script_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  int calls_ = 0;
  std::set<int> ports_;
};

HttpOptions fast() {
  HttpOptions o;
  o.connect_timeout_ms = 1000;
  o.timeout_ms = 2000;
  o.max_attempts = 3;
  o.backoff_base_ms = 10;
  o.backoff_max_ms = 40;
  return o;
}

const char* kEnvelope500 = R"({"success":false,"errors":[{"code":7500,"message":"internal trouble"}],"result":null})";

long ms_since(std::chrono::steady_clock::time_point t) {
  return long(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count());
}

}  // namespace

TEST_CASE("http client: backoff grows exponentially with jitter and is capped") {
  CHECK(era::cf::backoff_ms(0, 100, 4000, 0.0) == 50);
  CHECK(era::cf::backoff_ms(0, 100, 4000, 0.999) == 99);
  CHECK(era::cf::backoff_ms(3, 100, 4000, 0.0) == 400);
  CHECK(era::cf::backoff_ms(20, 100, 4000, 0.999) <= 4000);
  CHECK(era::cf::backoff_ms(20, 100, 4000, 0.0) == 2000);
}

TEST_CASE("http client: Retry-After in seconds and as an HTTP date") {
  CHECK(era::cf::parse_retry_after("2") == 2000);
  CHECK(era::cf::parse_retry_after(" 0 ") == 0);
  CHECK(era::cf::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0);  // in the past
  CHECK_FALSE(era::cf::parse_retry_after("soon").has_value());
  CHECK_FALSE(era::cf::parse_retry_after("").has_value());
}

TEST_CASE("http client: 429 with Retry-After is waited out and retried") {
  FakeUpstream up([](int n, const httplib::Request&, httplib::Response& res) {
    if (n == 0) {
      res.status = 429;
      res.set_header("Retry-After", "1");
      res.set_content(R"({"success":false,"errors":[{"code":971,"message":"Please wait"}]})", "application/json");
    } else {
      res.set_content("ok", "text/plain");
    }
  });
  HttpClient client(fast());
  HttpRequest req;
  req.url = up.url();
  auto t0 = std::chrono::steady_clock::now();
  auto r = client.send(req);
  CHECK(r.status == 200);
  CHECK(r.body == "ok");
  CHECK(up.calls() == 2);
  CHECK(ms_since(t0) >= 950);
}

TEST_CASE("http client: idempotent calls retry 500s; the final error keeps the upstream code and message") {
  SUBCASE("recovers") {
    FakeUpstream up([](int n, const httplib::Request&, httplib::Response& res) {
      if (n < 2) {
        res.status = 500;
        res.set_content(kEnvelope500, "application/json");
      } else {
        res.set_content("fine", "text/plain");
      }
    });
    HttpClient client(fast());
    HttpRequest req;
    req.url = up.url();
    CHECK(client.send(req).body == "fine");
    CHECK(up.calls() == 3);
  }
  SUBCASE("gives up with 502") {
    FakeUpstream up([](int, const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content(kEnvelope500, "application/json");
    });
    HttpClient client(fast());
    HttpRequest req;
    req.url = up.url();
    req.what = "KV get";
    req.headers.emplace_back("Authorization", "Bearer SECRET-TOKEN-123");
    try {
      client.send(req);
      FAIL("expected an error");
    } catch (const ApiError& e) {
      CHECK(e.status() == 502);
      CHECK(e.code() == "upstream_error");
      const std::string m = e.what();
      CHECK(m.find("code 7500: internal trouble") != std::string::npos);
      CHECK(m.find("3 attempts") != std::string::npos);
      CHECK(m.find("SECRET-TOKEN") == std::string::npos);
    }
    CHECK(up.calls() == 3);
  }
}

TEST_CASE("http client: a non-idempotent write is never sent twice once it may have run") {
  SUBCASE("500") {
    FakeUpstream up([](int, const httplib::Request&, httplib::Response& res) {
      res.status = 500;
      res.set_content(kEnvelope500, "application/json");
    });
    HttpClient client(fast());
    HttpRequest req;
    req.method = "POST";
    req.url = up.url();
    req.body = R"x({"sql":"INSERT INTO t VALUES (1)"})x";
    req.retry = Retry::unsent_only;
    try {
      client.send(req);
      FAIL("expected an error");
    } catch (const ApiError& e) {
      CHECK(e.status() == 502);
      CHECK(std::string(e.what()).find("not retried") != std::string::npos);
    }
    CHECK(up.calls() == 1);
  }
  SUBCASE("slow answer: timeout, one copy") {
    FakeUpstream up([](int, const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(700));
      res.set_content("late", "text/plain");
    });
    HttpOptions o = fast();
    o.timeout_ms = 200;
    HttpClient client(o);
    HttpRequest req;
    req.method = "POST";
    req.url = up.url();
    req.body = "x";
    req.retry = Retry::unsent_only;
    try {
      client.send(req);
      FAIL("expected an error");
    } catch (const ApiError& e) {
      CHECK(e.status() == 504);
      CHECK(e.code() == "upstream_timeout");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    CHECK(up.calls() == 1);
  }
  SUBCASE("429 means refused unexecuted: retried") {
    FakeUpstream up([](int n, const httplib::Request&, httplib::Response& res) {
      if (n == 0) {
        res.status = 429;
        res.set_header("Retry-After", "0");
      } else {
        res.set_content("done", "text/plain");
      }
    });
    HttpClient client(fast());
    HttpRequest req;
    req.method = "POST";
    req.url = up.url();
    req.body = "x";
    req.retry = Retry::unsent_only;
    CHECK(client.send(req).body == "done");
    CHECK(up.calls() == 2);
  }
}

TEST_CASE("http client: a slow idempotent call times out per attempt and is retried, then 504") {
  FakeUpstream up([](int, const httplib::Request&, httplib::Response& res) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    res.set_content("late", "text/plain");
  });
  HttpOptions o = fast();
  o.timeout_ms = 150;
  o.max_attempts = 2;
  HttpClient client(o);
  HttpRequest req;
  req.url = up.url();
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(client.send(req), ApiError);
  CHECK(ms_since(t0) < 1500);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  CHECK(up.calls() == 2);
}

TEST_CASE("http client: a connection reset mid-body is retried for a read") {
  FakeUpstream up([](int n, const httplib::Request&, httplib::Response& res) {
    res.set_content_provider(1000, "text/plain", [n](size_t offset, size_t, httplib::DataSink& sink) {
      if (n == 0 && offset >= 100) return false;  // drop the connection after 100 of 1000 bytes
      std::string chunk(100, char('a' + offset / 100));
      sink.write(chunk.data(), chunk.size());
      return true;
    });
  });
  HttpClient client(fast());
  HttpRequest req;
  req.url = up.url();
  auto r = client.send(req);
  CHECK(r.body.size() == 1000);
  CHECK(r.body.substr(900) == std::string(100, 'j'));
  CHECK(up.calls() == 2);
}

TEST_CASE("http client: a stream already handed to the client is not retried; the break is an error") {
  FakeUpstream up([](int, const httplib::Request&, httplib::Response& res) {
    res.set_content_provider(1000, "text/plain", [](size_t offset, size_t, httplib::DataSink& sink) {
      if (offset >= 100) return false;
      sink.write(std::string(100, 'x').data(), 100);
      return true;
    });
  });
  HttpClient client(fast());
  HttpRequest req;
  req.url = up.url();
  std::string got;
  req.sink = [&](std::string_view d) {
    got += d;
    return true;
  };
  try {
    client.send(req);
    FAIL("expected an error");
  } catch (const ApiError& e) {
    CHECK(e.code() == "upstream_stream_broken");
  }
  CHECK(got.size() == 100);
  CHECK(up.calls() == 1);
}

TEST_CASE("http client: a long Retry-After is passed on as 503 instead of waited") {
  FakeUpstream up([](int, const httplib::Request&, httplib::Response& res) {
    res.status = 429;
    res.set_header("Retry-After", "120");
  });
  HttpClient client(fast());
  HttpRequest req;
  req.url = up.url();
  try {
    client.send(req);
    FAIL("expected an error");
  } catch (const ApiError& e) {
    CHECK(e.status() == 503);
    CHECK(e.code() == "upstream_rate_limited");
    CHECK(e.header.first == "Retry-After");
    CHECK(e.header.second == "120");
  }
  CHECK(up.calls() == 1);
}

TEST_CASE("http client: unreachable upstream is retried (never sent) and reported as 502") {
  // A port the OS just gave out and that nobody listens on.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  HttpClient client(fast());
  HttpRequest req;
  req.method = "POST";
  req.body = "x";
  req.retry = Retry::unsent_only;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  try {
    client.send(req);
    FAIL("expected an error");
  } catch (const ApiError& e) {
    CHECK(e.status() == 502);
    CHECK(e.code() == "upstream_unreachable");
    CHECK(std::string(e.what()).find("3 attempts") != std::string::npos);
  }
}

TEST_CASE("http client: connections are kept alive and reused") {
  FakeUpstream up([](int, const httplib::Request&, httplib::Response& res) { res.set_content("k", "text/plain"); });
  HttpClient client(fast());
  for (int i = 0; i < 5; ++i) {
    HttpRequest req;
    req.url = up.url();
    CHECK(client.send(req).status == 200);
  }
  CHECK(up.calls() == 5);
  CHECK(up.connections() == 1);
}

TEST_CASE("http client: a streamed request body goes out whole; a partly read one is not retried") {
  std::string received;
  FakeUpstream up([&](int n, const httplib::Request& req, httplib::Response& res) {
    received = req.body;
    if (n == 0) res.status = 500;
  });
  HttpClient client(fast());
  HttpRequest req;
  req.method = "PUT";
  req.url = up.url();
  const std::string payload(300000, 'p');
  size_t off = 0;
  req.body_size = payload.size();
  req.reader = [&](char* buf, size_t max) {
    size_t n = std::min(max, payload.size() - off);
    std::copy(payload.data() + off, payload.data() + off + n, buf);
    off += n;
    return n;
  };
  CHECK_THROWS_AS(client.send(req), ApiError);
  CHECK(up.calls() == 1);
  CHECK(received == payload);
}

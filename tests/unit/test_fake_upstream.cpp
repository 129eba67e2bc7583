// The unit tests' fake upstream (fake_upstream.h) itself: what it records is what was sent, scripts are
// chosen by method and exact target, held answers wait for the test, it stops with requests in flight
// and connections open, and its multipart parser takes what Cloudflare takes and refuses the rest.
#include <doctest/doctest.h>

#include <iterator>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fake_upstream.h"
#include "store/cloudflare/http_client.h"

using era::cf::HttpClient;
using era::cf::HttpRequest;
using era::http::Response;
using era::test::Captured;
using era::test::FakeUpstream;
using era::test::fast_http;
using era::test::parse_multipart;

TEST_CASE("fake upstream: records method, target, headers and body exactly as sent") {
  FakeUpstream up([](const Captured&, Response& res) { res.set_content("ok", "text/plain"); });
  HttpClient client(fast_http());
  HttpRequest req;
  req.method = "PUT";
  req.url = up.url("/a%2Fb/c%20d?x=1&y=%3D");
  req.headers.emplace_back("X-Mixed-Case", "V a l");
  req.headers.emplace_back("Content-Type", "application/octet-stream");
  req.body = std::string("a\0b\xff\r\n", 6);
  CHECK(client.send(req).body == "ok");
  HttpRequest get;
  get.method = "DELETE";
  get.url = up.url("/");
  CHECK(client.send(get).status == 200);
  auto seen = up.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].index == 0);
  CHECK(seen[0].method == "PUT");
  CHECK(seen[0].target == "/a%2Fb/c%20d?x=1&y=%3D");  // still encoded
  CHECK(seen[0].path == "/a%2Fb/c%20d");
  CHECK(seen[0].query() == "x=1&y=%3D");
  CHECK(seen[0].body == std::string("a\0b\xff\r\n", 6));
  CHECK(seen[0].header("x-mixed-case") == "V a l");
  bool as_sent = false;
  for (const auto& [k, v] : seen[0].headers) as_sent |= k == "X-Mixed-Case";
  CHECK(as_sent);  // the name's case as it came
  CHECK_FALSE(seen[0].has_header("X-Absent"));
  CHECK(seen[0].header("X-Absent").empty());
  CHECK(seen[1].index == 1);
  CHECK(seen[1].method == "DELETE");
  CHECK(seen[1].target == "/");
  CHECK(seen[1].query().empty());
  CHECK(up.connections() == 1);  // kept alive
}

TEST_CASE("fake upstream: scripts by method and exact target; the rest goes to otherwise, or 404") {
  FakeUpstream up;
  HttpClient client(fast_http(1));
  auto call = [&](const std::string& method, const std::string& target) {
    HttpRequest req;
    req.method = method;
    req.url = up.url(target);
    auto r = client.send(req);
    return std::to_string(r.status) + " " + r.body;
  };
  CHECK(call("GET", "/x") == "404 FakeUpstream: no script for GET /x");
  up.on("GET", "/x", [](const Captured&, Response& res) { res.set_content("get x", "text/plain"); });
  up.on("POST", "/x", [](const Captured& c, Response& res) { res.set_content("post " + c.body, "text/plain"); });
  up.on("GET", "/x?q=1", [](const Captured&, Response& res) { res.set_content("get x q", "text/plain"); });
  CHECK(call("GET", "/x") == "200 get x");
  CHECK(call("GET", "/x?q=1") == "200 get x q");
  CHECK(call("GET", "/x?q=2") == "404 FakeUpstream: no script for GET /x?q=2");  // another query: no match
  CHECK(call("GET", "/x/") == "404 FakeUpstream: no script for GET /x/");
  CHECK(call("PUT", "/x") == "404 FakeUpstream: no script for PUT /x");
  up.otherwise([](const Captured& c, Response& res) {
    res.status = 418;
    res.set_content("other " + std::to_string(c.index), "text/plain");
  });
  CHECK(call("PUT", "/x") == "418 other 6");
  CHECK(call("GET", "/x") == "200 get x");  // on() wins over otherwise
  up.on("GET", "/x", [](const Captured&, Response& res) { res.set_content("again", "text/plain"); });
  CHECK(call("GET", "/x") == "200 again");  // replaced
  up.otherwise({});
  CHECK(call("PATCH", "/y") == "404 FakeUpstream: no script for PATCH /y");
  CHECK(up.calls() == 10);
}

TEST_CASE("fake upstream: held requests are recorded, then answered on release") {
  FakeUpstream up([](const Captured& c, Response& res) { res.set_content("n" + std::to_string(c.index), "text/plain"); });
  up.hold();
  HttpClient client(fast_http(1));
  std::string got[3];
  std::thread callers[3];
  for (int i = 0; i < 3; ++i)
    callers[i] = std::thread([&, i] {
      HttpRequest req;
      req.url = up.url("/h");
      got[i] = client.send(req).body;
    });
  up.wait_calls(3);  // all three in, none answered
  for (const auto& g : got) CHECK(g.empty());
  up.release();
  for (auto& t : callers) t.join();
  up.wait_idle();
  std::set<std::string> answers(std::begin(got), std::end(got));
  CHECK(answers == std::set<std::string>{"n0", "n1", "n2"});
}

TEST_CASE("fake upstream: stops with an answer held and another client's connection idle") {
  // Both clients outlive the upstream: their pooled connections are still open when it stops.
  HttpClient idle(fast_http(1));
  HttpClient client(fast_http(1));
  std::thread caller;
  int status = 0;
  {
    FakeUpstream up;
    up.on("GET", "/first", [](const Captured&, Response& res) { res.set_content("1", "text/plain"); });
    HttpRequest first;
    first.url = up.url("/first");
    CHECK(idle.send(first).status == 200);  // its connection now waits, kept alive
    up.hold();
    caller = std::thread([&, url = up.url("/held")] {
      HttpRequest req;
      req.url = url;
      try {
        status = client.send(req).status;
      } catch (const era::ApiError& e) {
        status = e.status();
      }
    });
    up.wait_calls(2);
  }  // released, stopped and joined here: the held request is answered, the idle connection closed
  caller.join();
  CHECK(status == 404);
}

TEST_CASE("fake upstream: multipart/form-data parts, plain fields and files") {
  static const char kBody[] =
      "--XyZ\r\nContent-Disposition: form-data; name=\"value\"; filename=\"v.bin\"\r\n"
      "Content-Type: application/octet-stream\r\n\r\n\xff\0--XyZ\r\nx\r\n"
      "--XyZ\r\ncontent-disposition: form-data; name=\"metadata\"\r\n\r\n{\"a\":1}\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n\r\n--XyZ--\r\n";
  auto parts = parse_multipart("multipart/form-data; boundary=XyZ", std::string(kBody, sizeof kBody - 1));
  REQUIRE(parts.size() == 3);
  REQUIRE(parts.count("value") == 1);
  const auto& value = parts.find("value")->second;
  CHECK(value.filename == "v.bin");
  CHECK(value.content_type == "application/octet-stream");
  CHECK(value.content == std::string("\xff\0--XyZ\r\nx", 10));  // the boundary counts only after a line end
  auto range = parts.equal_range("metadata");
  REQUIRE(std::distance(range.first, range.second) == 2);
  CHECK(range.first->second.content == "{\"a\":1}");
  CHECK(range.first->second.filename.empty());
  CHECK(std::next(range.first)->second.content.empty());
  // A quoted boundary, Content-Type parameters in any case and order, no line end after the close.
  auto q = parse_multipart("Multipart/Form-Data; charset=utf-8; BOUNDARY=\"a;b\"",
                           "--a;b\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\nv\r\n--a;b--");
  REQUIRE(q.count("k") == 1);
  CHECK(q.find("k")->second.content == "v");
  // Through the upstream: the parts of what a client sent.
  FakeUpstream up([](const Captured&, Response& res) { res.set_content("ok", "text/plain"); });
  HttpClient client(fast_http(1));
  HttpRequest req;
  req.method = "PUT";
  req.url = up.url("/m");
  req.headers.emplace_back("Content-Type", "multipart/form-data; boundary=B");
  req.body = "--B\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nhi\r\n--B--\r\n";
  client.send(req);
  auto seen = up.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].parts().find("value")->second.content == "hi");
}

TEST_CASE("fake upstream: a malformed multipart body is an error, never a guess") {
  const std::string ok_part = "--B\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nx\r\n";
  const std::string ct = "multipart/form-data; boundary=B";
  CHECK_NOTHROW(parse_multipart(ct, ok_part + "--B--"));
  for (const auto& [type, body] : std::vector<std::pair<std::string, std::string>>{
           {"application/json", ok_part + "--B--"},                       // not multipart
           {"multipart/form-data", ok_part + "--B--"},                    // no boundary
           {"multipart/form-data; boundary=", ok_part + "--B--"},         // an empty one
           {"multipart/form-data; boundary=\"B", ok_part + "--B--"},      // an unterminated quote
           {ct, ""},                                                      // no body
           {ct, "preamble\r\n" + ok_part + "--B--"},                      // not opening with the boundary
           {ct, ok_part},                                                 // no closing delimiter
           {ct, ok_part + "--B--trailing"},                               // data after it
           {ct, ok_part + "--Bx\r\n"},                                    // a delimiter run on
           {ct, "--B\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nx"},       // a part never ends
           {ct, "--B\r\nContent-Disposition: form-data; name=\"v\"\r\nx\r\n--B--"},  // headers never end
           {ct, "--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--"},                // no disposition
           {ct, "--B\r\nContent-Disposition: attachment; name=\"v\"\r\n\r\nx\r\n--B--"},  // not form-data
           {ct, "--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--"},          // no name
           {ct, "--B\r\nContent-Disposition: form-data; name\r\n\r\nx\r\n--B--"},    // a bare parameter
           {ct, "--B\r\nno colon here\r\n\r\nx\r\n--B--"},                           // a broken header line
       }) {
    CAPTURE(type);
    CAPTURE(body);
    CHECK_THROWS_AS(parse_multipart(type, body), std::runtime_error);
  }
}

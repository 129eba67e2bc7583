// Bounded JSON parsing of request bodies (http/json_limits.h).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "http/json_limits.h"
#include "util/error.h"

using namespace era;
using namespace era::http;
using nlohmann::json;

namespace {

// Status and code of the ApiError `f` throws; {0, ""} if none.
std::pair<int, std::string> refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return {e.status(), e.code()};
  }
  return {0, ""};
}

}  // namespace

TEST_CASE("a body within the limits parses to the same tree as json::parse") {
  const std::string text =
      R"j({"sql":"SELECT ?","params":[1,-2,3.5,"x\u00e9",null,true,[0,255]],"o":{"a":{"b":[]}},"dup":1,"dup":2})j";
  JsonParseStats stats;
  json j = parse_json_body(text, JsonLimits{}, &stats);
  CHECK(j == json::parse(text));
  CHECK(j["dup"] == 2);  // a repeated key: the last wins, as json::parse does
  CHECK(stats.max_depth_seen == 4);
}

TEST_CASE("the hostile D1 body: the parse stops at the first value past the limit, before the tree grows") {
  // {"sql":"SELECT length(?)","params":[[0,0,0,...]]} with a million zeros.
  std::string text = R"j({"sql":"SELECT length(?)","params":[[0)j";
  for (int i = 1; i < 1000000; ++i) text += ",0";
  text += "]]}";
  JsonLimits limits;
  limits.max_bytes = text.size();
  limits.max_values = 1000;
  JsonParseStats stats;
  auto r = refusal([&] { parse_json_body(text, limits, &stats); });
  CHECK(r.first == 413);
  CHECK(r.second == "json_too_large");
  CHECK(stats.values == 1001);  // not a million: nothing past the limit was built
}

TEST_CASE("nesting past max_depth is refused with 400 json_too_deep, without recursion on the stack") {
  JsonLimits limits;
  limits.max_depth = 8;
  std::string ok = R"j({"a":)j" + std::string(7, '[') + std::string(7, ']') + "}";  // depth 8
  CHECK_NOTHROW(parse_json_body(ok, limits));
  std::string deep = R"j({"a":)j" + std::string(8, '[') + std::string(8, ']') + "}";
  CHECK(refusal([&] { parse_json_body(deep, limits); }) == std::pair<int, std::string>{400, "json_too_deep"});
  // A million brackets: refused at level 9, whatever follows.
  std::string hostile = "{\"a\":" + std::string(1000000, '[');
  JsonParseStats stats;
  CHECK(refusal([&] { parse_json_body(hostile, limits, &stats); }).second == "json_too_deep");
  CHECK(stats.values <= 10);
}

TEST_CASE("a string or key past max_string is refused with 413") {
  JsonLimits limits;
  limits.max_string = 10;
  CHECK_NOTHROW(parse_json_body(R"j({"k":"0123456789"})j", limits));
  CHECK(refusal([&] { parse_json_body(R"j({"k":"0123456789a"})j", limits); }).first == 413);
  CHECK(refusal([&] { parse_json_body(R"j({"0123456789a":1})j", limits); }).first == 413);
  // The limit is on the unescaped bytes: ten escapes are ten bytes.
  CHECK_NOTHROW(parse_json_body(R"j({"k":"\n\n\n\n\n\n\n\n\n\n"})j", limits));
}

TEST_CASE("not JSON, trailing bytes and non-objects are 400 invalid_json") {
  const std::pair<int, std::string> invalid{400, "invalid_json"};
  for (std::string text : {"", "{", "{\"a\":1} x", "[1,2]", "\"s\"", "1", "null", "{\"a\":01}", "{'a':1}"})
    CHECK_MESSAGE(refusal([&] { parse_json_body(text, JsonLimits{}); }) == invalid, text);
}

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "util/log.h"

using namespace era;

namespace {
struct FormatGuard {
  ~FormatGuard() {
    log::set_format(log::Format::text);
    log::set_request_id(nullptr);
  }
};
}  // namespace

TEST_CASE("log: json lines carry time, level, msg, the request id and typed fields") {
  FormatGuard guard;
  log::Format f;
  REQUIRE(log::parse_format("json", f));
  CHECK_FALSE(log::parse_format("xml", f));
  log::set_format(f);
  const std::string rid = "abcd0001-7";
  log::set_request_id(&rid);
  const std::string line = log::render(log::Level::warn, "upstream call failed",
                                       {{"status", "503", true},
                                        {"cf_ray", "8f00-SJC"},
                                        {"duration_ms", "1.5", true},
                                        {"bad_number", "12abc", true},
                                        {"key", "a\"b\n\xff"}});
  CHECK(line.find('\n') == std::string::npos);
  const auto j = nlohmann::json::parse(line);
  CHECK(j["level"] == "warn");
  CHECK(j["msg"] == "upstream call failed");
  CHECK(j["request_id"] == rid);
  CHECK(j["status"] == 503);
  CHECK(j["duration_ms"] == 1.5);
  CHECK(j["bad_number"] == "12abc");  // not a number: kept as a string, the line stays valid JSON
  CHECK(j["cf_ray"] == "8f00-SJC");
  CHECK(j["key"] == "a\"b\n\xef\xbf\xbd");
  CHECK(j["time"].get<std::string>().size() == 24);  // 2026-11-29T22:00:00.123Z
  log::set_request_id(nullptr);
  CHECK_FALSE(nlohmann::json::parse(log::render(log::Level::info, "x", {})).contains("request_id"));
}

TEST_CASE("log: text lines are the readable form, fields as key=value") {
  FormatGuard guard;
  log::set_format(log::Format::text);
  const std::string line = log::render(log::Level::info, "hello", {{"a", "1", true}, {"b", "two"}});
  CHECK(line.size() > 30);
  CHECK(line.substr(24) == " info  hello a=1 b=two");
}

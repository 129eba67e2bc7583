// Bounded JSON parsing for request bodies. A JSON tree costs far more memory than its text (a
// 64 MiB array of zeros became a 1.1 GiB tree), so every body is parsed through a SAX handler that
// builds the tree itself and stops at the first value past a limit: the tree never grows beyond
// the limits, whatever the text holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace era::http {

struct JsonLimits {
  size_t max_bytes = 256 * 1024;  // the body's length (checked before and while reading it)
  size_t max_depth = 16;          // nesting of arrays and objects; the top-level object is depth 1
  size_t max_values = 10000;      // values of every kind (object members, array elements, scalars)
  size_t max_string = 256 * 1024; // bytes of one string (or object key) after unescaping
};

// What a parse saw, for tests and logs: how many values it built before it finished or stopped.
struct JsonParseStats {
  size_t values = 0;
  size_t max_depth_seen = 0;
};

// Parses `text` as one JSON object within `limits`. Throws ApiError:
//   400 invalid_json      not JSON, or not an object
//   400 json_too_deep     nesting past max_depth
//   413 json_too_large    more than max_values values, or a string past max_string bytes
// The parse stops at the first value past a limit, so no more than max_values values are built.
nlohmann::json parse_json_body(std::string_view text, const JsonLimits& limits, JsonParseStats* stats = nullptr);

}  // namespace era::http

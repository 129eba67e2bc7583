// Parsing and formatting of the HTTP header values the object surface uses (RFC 9110): entity-tag
// lists, byte ranges, media types and dates. Pure functions, so each rule is unit-tested on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/time.h"

namespace era::http {

// An If-Match / If-None-Match value as a list of unquoted etags: `"a", W/"b"` -> {a, b}; `*` -> {"*"}.
// Unquoted tokens are taken as they are (lenient: some clients send the bare hex). Throws ApiError
// 400 "invalid_etag" on an empty list or an unterminated quote.
std::vector<std::string> parse_etag_list(std::string_view value);

// One byte range as a Range header states it: `offset` (then `length` bytes, or to the end), or the
// last `suffix` bytes. (The API turns it into the store's ByteRange: http/ knows no store type.)
struct Range {
  std::optional<uint64_t> offset;
  std::optional<uint64_t> length;
  std::optional<uint64_t> suffix;
};

// A Range value with one byte range: "bytes=a-b", "bytes=a-", "bytes=-n". Throws ApiError 416
// "invalid_range" on another unit, a malformed range or more than one range.
Range parse_range(std::string_view value);

// The media type of a Content-Type / Accept entry, lowercased, without parameters or spaces.
std::string media_type(std::string_view value);
// Whether an Accept value lists `type` (exactly, not through a wildcard).
bool accepts(std::string_view accept, std::string_view type);

// Dates come from the one time module (util/time.h): IMF-fixdate for Last-Modified, ISO 8601 with
// milliseconds as R2 gives `uploaded`.
using dates::http_date;
using dates::iso8601;

}  // namespace era::http

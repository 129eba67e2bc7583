// Parsing and formatting of the HTTP header values the object surface uses (RFC 9110): entity-tag
// lists, byte ranges, media types and dates. Pure functions, so each rule is unit-tested on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/object_store.h"

namespace era::http {

// An If-Match / If-None-Match value as a list of unquoted etags: `"a", W/"b"` -> {a, b}; `*` -> {"*"}.
// Unquoted tokens are taken as they are (lenient: some clients send the bare hex). Throws ApiError
// 400 "invalid_etag" on an empty list or an unterminated quote.
std::vector<std::string> parse_etag_list(std::string_view value);

// A Range value with one byte range: "bytes=a-b", "bytes=a-", "bytes=-n". Throws ApiError 416
// "invalid_range" on another unit, a malformed range or more than one range.
ByteRange parse_range(std::string_view value);

// The media type of a Content-Type / Accept entry, lowercased, without parameters or spaces.
std::string media_type(std::string_view value);
// Whether an Accept value lists `type` (exactly, not through a wildcard).
bool accepts(std::string_view accept, std::string_view type);

// Unix milliseconds as an IMF-fixdate for Last-Modified ("Sun, 06 Nov 1994 08:49:37 GMT").
std::string http_date(int64_t unix_ms);
// Unix milliseconds as ISO 8601 in UTC with milliseconds ("2024-01-02T03:04:05.678Z"), as R2 gives
// `uploaded`.
std::string iso8601(int64_t unix_ms);

}  // namespace era::http

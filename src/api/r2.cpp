// R2 over HTTP, in two forms on the same paths (/api/storage/r2/{ns}/{key}):
// - the guide's JSON form: a PUT with Content-Type application/json carries {"content": base64,
//   "metadata": {...}}; a GET without a raw request answers {"content": base64, "size", ...}.
// - raw bytes, for the SDKs and for large objects: any other PUT stores its body as it is (its
//   Content-Type becomes the object's), and a GET with `Accept: application/octet-stream` or `?raw=1`
//   answers the bytes, with Range, conditional requests and the metadata in headers.
// Both stream: a raw body goes from the socket to the store and back in chunks, and even the JSON
// form's GET is encoded chunk by chunk, so memory does not grow with the object. Only the JSON form's
// PUT holds its body (hence its lower limit). docs/api.md has the full description.
#include <cstdlib>
#include <memory>

#include "api/api.h"
#include "api/bodies.h"
#include "http/headers.h"
#include "ns/names.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/log.h"

namespace era::api {
namespace {

using http::json;

constexpr uint64_t kMaxJsonFormObject = 25u << 20;  // the JSON form is decoded in memory: 25 MiB
constexpr size_t kMaxJsonFormBody = (kMaxJsonFormObject + 2) / 3 * 4 + 64 * 1024;
constexpr size_t kMaxContentType = 256;
// The JSON form: {content, metadata (8 KiB of strings), httpMetadata}.
const http::JsonLimits kJsonFormLimits{kMaxJsonFormBody, 8, 8192, kMaxJsonFormBody};
constexpr size_t kChunk = 48 * 1024;  // a multiple of 3, so each chunk base64-encodes on its own
const char* const kMetadataHeader = "X-Era-Metadata";

Precondition precondition_from(const http::Ctx& c) {
  Precondition p;
  if (c.req.has_header("If-Match")) p.if_match = http::parse_etag_list(c.req.get_header_value("If-Match"));
  if (c.req.has_header("If-None-Match"))
    p.if_none_match = http::parse_etag_list(c.req.get_header_value("If-None-Match"));
  return p;
}

json info_json(const ObjectInfo& info) {
  return {{"key", info.key},
          {"size", info.size},
          {"etag", info.etag},
          {"uploaded", http::iso8601(info.uploaded_ms)},
          {"customMetadata", info.custom_metadata},
          {"httpMetadata", {{"contentType", info.content_type}}}};
}

// Headers describing the object on a raw GET or HEAD (and a 304): what S3 and R2 send.
void set_object_headers(http::Response& res, const ObjectInfo& info) {
  res.set_header("ETag", "\"" + info.etag + "\"");
  res.set_header("Last-Modified", http::http_date(info.uploaded_ms));
  res.set_header("X-Era-Uploaded", http::iso8601(info.uploaded_ms));  // Last-Modified has only seconds
  res.set_header("Accept-Ranges", "bytes");
  // ASCII only (non-ASCII escaped as \uXXXX), so any name or value survives as a header.
  res.set_header(kMetadataHeader, json(info.custom_metadata).dump(-1, ' ', true));
}

// Evaluates If-Match / If-None-Match for a GET or HEAD; true if the response is already made (412/304).
bool answer_condition(http::Ctx& c, const Precondition& cond, const ObjectInfo& info) {
  Precondition match_only{cond.if_match, std::nullopt};
  if (!match_only.holds(info.etag))
    throw ApiError(412, "precondition_failed", "precondition failed: If-Match does not list the object's etag");
  if (!cond.holds(info.etag)) {
    c.res.status = 304;
    set_object_headers(c.res, info);
    return true;
  }
  return false;
}

bool wants_raw(const http::Ctx& c) {
  auto raw = c.query("raw");
  if (raw && (*raw == "1" || *raw == "true")) return true;
  return http::accepts(c.req.get_header_value("Accept"), "application/octet-stream");
}

// The whole of a reader, in up to `cap` bytes per call: fills `buf` unless the object ends first.
size_t read_full(ObjectReader& r, char* buf, size_t cap) {
  size_t got = 0;
  while (got < cap) {
    size_t n = r.read(buf + got, cap - got);
    if (n == 0) break;
    got += n;
  }
  return got;
}

// Streams `reader` as the raw body. The provider runs after the handler returned, so it owns the
// reader. A read failure mid-body can no longer change the status: the connection is cut instead,
// which the client sees as a short body.
void send_raw(http::Response& res, std::shared_ptr<ObjectReader> reader) {
  const uint64_t length = reader->length();
  const std::string type = reader->info().content_type;
  if (length == 0) {
    res.set_content("", type);
    return;
  }
  auto buf = std::make_shared<std::vector<char>>(kChunk);
  res.set_content_provider(length, type,
                           [reader, buf](size_t, size_t, http::DataSink& sink) {
                             try {
                               size_t n = reader->read(buf->data(), buf->size());
                               return n > 0 && sink.write(buf->data(), n);
                             } catch (const std::exception& e) {
                               log::error(std::string("object read failed mid-response: ") + e.what());
                               return false;
                             }
                           });
}

// Streams the guide's JSON form: {"content": "<base64>", "size": ..., ...}, encoded chunk by chunk.
void send_json_form(http::Response& res, std::shared_ptr<ObjectReader> reader) {
  const ObjectInfo& info = reader->info();
  json rest = info_json(info);
  rest.erase("key");
  std::string tail = rest.dump(-1, ' ', false, json::error_handler_t::replace);  // {"customMetadata":...}
  auto head = std::make_shared<const std::string>("{\"content\":\"");
  auto tail_text = std::make_shared<const std::string>("\"," + tail.substr(1));
  const uint64_t b64 = (info.size + 2) / 3 * 4;
  const uint64_t total = head->size() + b64 + tail_text->size();
  auto buf = std::make_shared<std::vector<char>>(kChunk);
  res.set_content_provider(
      total, "application/json",
      [reader, buf, head, tail_text, b64](size_t offset, size_t, http::DataSink& sink) {
        try {
          if (offset < head->size()) return sink.write(head->data() + offset, head->size() - offset);
          const uint64_t in_b64 = offset - head->size();
          if (in_b64 < b64) {
            size_t n = read_full(*reader, buf->data(), buf->size());
            if (n == 0) return false;
            std::string text = enc::base64_encode(std::string_view(buf->data(), n));
            return sink.write(text.data(), text.size());
          }
          const size_t t = static_cast<size_t>(in_b64 - b64);
          return sink.write(tail_text->data() + t, tail_text->size() - t);
        } catch (const std::exception& e) {
          log::error(std::string("object read failed mid-response: ") + e.what());
          return false;
        }
      });
}

int parse_list_limit(const std::optional<std::string>& s) {
  if (!s) return 1000;
  char* end = nullptr;
  long n = std::strtol(s->c_str(), &end, 10);
  if (s->empty() || *end || n < 1 || n > 1000)
    throw bad_request("invalid_limit", "limit must be an integer from 1 to 1000");
  return static_cast<int>(n);
}

void check_list_text(const std::string& v, const char* what) {
  if (v.size() > ns::kMaxR2KeyBytes || !ns::is_valid_utf8(v))
    throw bad_request(std::string("invalid_") + what, std::string(what) + " must be valid UTF-8 of at most 1024 bytes");
}

}  // namespace

void register_r2(http::Router& router, Services& services) {
  ObjectStore& r2 = services.backend.r2();
  const uint64_t max_object = services.config.r2_max_object_size;

  router.add("PUT", "/api/storage/r2/{ns}/{key...}", http::Access::in_namespace(http::Access::Op::write), [&r2, max_object](http::Ctx& c) {
    const std::string& ns = c.param(0);
    const std::string& key = c.param(1);
    ns::check_namespace(ns);
    ns::check_r2_key(key);
    const Precondition cond = precondition_from(c);
    const bool json_form = http::media_type(c.req.get_header_value("Content-Type")) == "application/json" &&
                           !wants_raw(c);
    ObjectInfo info;
    if (json_form) {
      R2JsonPut p = r2_json_put(c.json_body(kJsonFormLimits), max_object);
      p.options.precondition = cond;
      info = r2.put(ns, key, p.options, [&](const ChunkSink& sink) {
        if (!p.bytes.empty()) sink(p.bytes.data(), p.bytes.size());
      });
    } else {
      PutOptions options;
      options.precondition = cond;
      if (c.req.has_header("Content-Type"))
        options.content_type = r2_content_type(c.req.get_header_value("Content-Type"));
      if (c.req.has_header(kMetadataHeader)) {
        json m = json::parse(c.req.get_header_value(kMetadataHeader), nullptr, false);
        if (m.is_discarded()) throw bad_request("invalid_metadata", std::string(kMetadataHeader) + " is not valid JSON");
        options.custom_metadata = r2_metadata(m, kMetadataHeader);
      }
      if (c.req.has_header("Content-Length")) {
        const std::string cl = c.req.get_header_value("Content-Length");
        char* end = nullptr;
        options.size = std::strtoull(cl.c_str(), &end, 10);
        if (cl.empty() || *end) throw bad_request("bad_request", "invalid Content-Length header");
        if (*options.size > max_object) throw r2_object_too_large(max_object);  // the router closes
      }
      try {
        info = r2.put(ns, key, options, [&](const ChunkSink& sink) { c.stream_body(max_object, sink); });
      } catch (const ApiError& e) {
        if (e.code() == "payload_too_large") throw r2_object_too_large(max_object);
        throw;
      }
    }
    c.res.set_header("ETag", "\"" + info.etag + "\"");
    json out = info_json(info);
    out["success"] = true;
    c.ok(out);
  });

  router.add("HEAD", "/api/storage/r2/{ns}/{key...}", http::Access::in_namespace(http::Access::Op::read), [&r2](http::Ctx& c) {
    const std::string& ns = c.param(0);
    const std::string& key = c.param(1);
    ns::check_namespace(ns);
    ns::check_r2_key(key);
    auto info = r2.head(ns, key);
    if (!info) throw not_found("object_not_found", "object not found");
    if (answer_condition(c, precondition_from(c), *info)) return;
    set_object_headers(c.res, *info);
    // No body is sent for HEAD; the provider only gives the server the length to announce.
    c.res.set_content_provider(info->size, info->content_type, [](size_t, size_t, http::DataSink&) { return false; });
  });

  router.add("GET", "/api/storage/r2/{ns}/{key...}", http::Access::in_namespace(http::Access::Op::read), [&r2](http::Ctx& c) {
    const std::string& ns = c.param(0);
    const std::string& key = c.param(1);
    ns::check_namespace(ns);
    ns::check_r2_key(key);
    const bool raw = wants_raw(c);
    GetOptions options;
    options.only_if = precondition_from(c);
    if (raw && c.req.has_header("Range")) {
      const http::Range r = http::parse_range(c.req.get_header_value("Range"));
      options.range = ByteRange{r.offset, r.length, r.suffix};
    }
    std::shared_ptr<ObjectReader> reader = r2.get(ns, key, options);
    if (!reader) throw not_found("object_not_found", "object not found");
    if (answer_condition(c, options.only_if, reader->info())) return;
    if (!raw) return send_json_form(c.res, std::move(reader));
    set_object_headers(c.res, reader->info());
    if (options.range) {
      c.res.status = 206;
      c.res.set_header("Content-Range", "bytes " + std::to_string(reader->offset()) + "-" +
                                            std::to_string(reader->offset() + reader->length() - 1) + "/" +
                                            std::to_string(reader->info().size));
    }
    send_raw(c.res, std::move(reader));
  });

  router.add("DELETE", "/api/storage/r2/{ns}/{key...}", http::Access::in_namespace(http::Access::Op::write), [&r2](http::Ctx& c) {
    const std::string& ns = c.param(0);
    const std::string& key = c.param(1);
    ns::check_namespace(ns);
    ns::check_r2_key(key);
    r2.remove(ns, key);
    c.ok({{"success", true}});
  });

  router.add("GET", "/api/storage/r2/{ns}", http::Access::in_namespace(http::Access::Op::read), [&r2](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    ListOptions options;
    options.prefix = c.query("prefix").value_or("");
    options.delimiter = c.query("delimiter").value_or("");
    options.cursor = c.query("cursor").value_or("");
    options.limit = parse_list_limit(c.query("limit"));
    check_list_text(options.prefix, "prefix");
    check_list_text(options.delimiter, "delimiter");
    ObjectPage page = r2.list(ns, options);
    json objects = json::array();
    for (const auto& o : page.objects) objects.push_back(info_json(o));
    c.ok({{"objects", std::move(objects)},
          {"truncated", page.truncated},
          {"cursor", page.truncated ? json(page.cursor) : json(nullptr)},
          {"delimitedPrefixes", page.delimited_prefixes}});
  });
}

}  // namespace era::api

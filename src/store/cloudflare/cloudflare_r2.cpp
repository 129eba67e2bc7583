#include "store/cloudflare/cloudflare_r2.h"

#include <algorithm>
#include <cstdio>
#include <exception>

#include "ns/names.h"
#include "store/cloudflare/xml.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/time.h"

namespace era::cf {
namespace {

constexpr size_t kMaxR2NameBytes = 1024;  // R2's key limit, on the stored name "ns/key"
constexpr uint64_t kMiB = 1u << 20;
constexpr uint64_t kMaxPartBytes = 5ull << 30;  // R2: a part is at most 5 GiB
constexpr const char* kMetaPrefix = "x-amz-meta-";

std::string stored_name(const std::string& ns, const std::string& key) {
  std::string name = ns::r2_name(ns, key);
  if (name.size() > kMaxR2NameBytes)
    throw ApiError(400, "key_too_long",
                   "key too long: with the cloudflare backend the stored name \"<namespace>/<key>\" is at most "
                   "1024 bytes, so this key may be at most " +
                       std::to_string(kMaxR2NameBytes - ns.size() - 1) + " bytes in namespace " + ns);
  // URL parsers on the way (the emulator's, Cloudflare's edge) resolve "." and ".." path segments,
  // even percent-encoded, so such a key would address another object or fail its signature.
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    const std::string_view seg(key.data() + start, end - start);
    if (seg == "." || seg == "..")
      throw ApiError(400, "invalid_key",
                     "invalid key: with the cloudflare backend a key cannot have a \".\" or \"..\" path segment "
                     "(URLs resolve them, so it would name another object)");
    start = end + 1;
  }
  return name;
}

std::string unquote(std::string e) {
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

std::string etag_list(const std::vector<std::string>& tags) {
  std::string out;
  for (const auto& t : tags) out += (out.empty() ? "" : ", ") + (t == "*" ? t : "\"" + t + "\"");
  return out;
}

void add_conditions(HttpRequest& req, const Precondition& p) {
  if (p.if_match) req.headers.emplace_back("If-Match", etag_list(*p.if_match));
  if (p.if_none_match) req.headers.emplace_back("If-None-Match", etag_list(*p.if_none_match));
}

uint64_t to_u64(const std::string& s) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end) throw ApiError(502, "upstream_error", "R2 answered a malformed number '" + s + "'");
  return v;
}

// Keys in a list answer with encoding-type=url are percent-encoded ('+' would be a space).
std::string url_decoded(const std::string& s) {
  std::string t = s;
  std::replace(t.begin(), t.end(), '+', ' ');
  auto d = enc::percent_decode(t);
  if (!d) throw ApiError(502, "upstream_error", "R2 answered a malformed key in a list");
  return *d;
}

std::string range_header(const ByteRange& r) {
  if (r.suffix) return "bytes=-" + std::to_string(*r.suffix);
  const uint64_t from = r.offset.value_or(0);
  if (r.length) {
    if (*r.length == 0) throw ApiError(416, "range_not_satisfiable", "the range is empty");
    return "bytes=" + std::to_string(from) + "-" + std::to_string(from + *r.length - 1);
  }
  return "bytes=" + std::to_string(from) + "-";
}

[[noreturn]] void throw_s3(const std::string& what, const HttpResponse& r) {
  const std::string code = xml::parse(r.body).first("Code");
  if (r.status == 412 || code == "PreconditionFailed")
    throw ApiError(412, "precondition_failed", "precondition failed: the object's current etag does not match");
  if (r.status == 416 || code == "InvalidRange")
    throw ApiError(416, "range_not_satisfiable", "range not satisfiable for this object");
  if (code == "MetadataTooLarge" || code == "EntityTooLarge")
    throw ApiError(413, code == "MetadataTooLarge" ? "metadata_too_large" : "object_too_large",
                   "Cloudflare " + what + " refused: " + upstream_detail(r));
  throw upstream_error(what, r);
}

// A 2xx answer's XML document; a body that is not well-formed XML is the upstream's error.
xml::Element parse_answer(const HttpResponse& r, const std::string& what) {
  xml::Element doc = xml::parse(r.body);
  if (!doc) throw ApiError(502, "upstream_error", "Cloudflare " + what + " failed: the answer is not well-formed XML");
  return doc;
}

class R2Reader : public ObjectReader {
 public:
  R2Reader(ObjectInfo info, uint64_t offset, uint64_t length, std::unique_ptr<HttpStream> stream)
      : info_(std::move(info)), offset_(offset), length_(length), stream_(std::move(stream)) {}
  const ObjectInfo& info() const override { return info_; }
  uint64_t offset() const override { return offset_; }
  uint64_t length() const override { return length_; }
  bool has_body() const override { return stream_ != nullptr; }
  size_t read(char* buf, size_t cap) override {
    if (!stream_ || read_ >= length_) return 0;
    size_t n = stream_->read(buf, size_t(std::min<uint64_t>(cap, length_ - read_)));
    if (n == 0)
      throw ApiError(502, "upstream_stream_broken", "R2 ended the object body early (" + std::to_string(read_) +
                                                        " of " + std::to_string(length_) + " bytes)");
    read_ += n;
    return n;
  }

 private:
  ObjectInfo info_;
  uint64_t offset_, length_;
  uint64_t read_ = 0;
  std::unique_ptr<HttpStream> stream_;
};

}  // namespace

std::string CloudflareR2::encode_meta_name(const std::string& name) {
  // Lowercase token characters pass; everything else (uppercase included, so case survives the
  // case-insensitive header) becomes %XX.
  static const char d[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~' ||
                    c == '!' || c == '#' || c == '$' || c == '&' || c == '\'' || c == '*' || c == '+' || c == '^' ||
                    c == '`' || c == '|';
    if (ok) out += char(c);
    else out += {'%', d[c >> 4], d[c & 15]};
  }
  return out;
}

uint64_t CloudflareR2::part_size_for(std::optional<uint64_t> size, uint64_t configured, uint64_t max_object_size) {
  const uint64_t biggest = size.value_or(max_object_size);
  uint64_t part = configured;
  if (biggest > part * kMaxParts) {
    part = (biggest + kMaxParts - 1) / kMaxParts;  // the smallest that fits in kMaxParts parts
    part = (part + kMiB - 1) / kMiB * kMiB;        // a whole MiB
  }
  return std::min(part, kMaxPartBytes);
}

size_t CloudflareR2::encoded_metadata_bytes(const std::map<std::string, std::string>& metadata) {
  size_t n = 0;
  for (const auto& [k, v] : metadata) n += encode_meta_name(k).size() + encode_meta_value(v).size();
  return n;
}

std::string CloudflareR2::encode_meta_value(const std::string& v) {
  static const char d[] = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    const unsigned char c = v[i];
    const bool edge_space = c == ' ' && (i == 0 || i + 1 == v.size());
    if (c == '%' || c < 0x20 || c >= 0x7f || edge_space) out += {'%', d[c >> 4], d[c & 15]};
    else out += char(c);
  }
  return out;
}

std::string CloudflareR2::decode_meta(const std::string& text) {
  auto d = enc::percent_decode(text);
  return d ? *d : text;
}

ObjectInfo object_info_from(const HttpResponse& r, const std::string& key) {
  ObjectInfo info;
  info.key = key;
  if (auto cr = r.header("content-range")) {
    const auto slash = cr->rfind('/');
    if (slash != std::string::npos && cr->substr(slash + 1) != "*") info.size = to_u64(cr->substr(slash + 1));
  } else if (auto cl = r.header("content-length")) {
    info.size = to_u64(*cl);
  }
  info.etag = unquote(r.header("etag").value_or(""));
  info.uploaded_ms = dates::parse_http_date(r.header("last-modified").value_or("")).value_or(0) * 1000;
  info.content_type = r.header("content-type").value_or("application/octet-stream");
  const std::string prefix = kMetaPrefix;
  for (const auto& [k, v] : r.headers)
    if (k.compare(0, prefix.size(), prefix) == 0)
      info.custom_metadata[CloudflareR2::decode_meta(k.substr(prefix.size()))] = CloudflareR2::decode_meta(v);
  return info;
}

void CloudflareR2::add_put_headers(HttpRequest& req, const PutOptions& o) const {
  req.headers.emplace_back("Content-Type", o.content_type);
  for (const auto& [k, v] : o.custom_metadata)
    req.headers.emplace_back(kMetaPrefix + encode_meta_name(k), encode_meta_value(v));
}

ObjectInfo CloudflareR2::put(const std::string& ns, const std::string& key, const PutOptions& o,
                             const ChunkSource& source) {
  stored_name(ns, key);  // a name R2 refuses is refused before anything is sent or recorded
  if (const size_t n = encoded_metadata_bytes(o.custom_metadata); n > kMaxMetadataBytes)
    throw ApiError(413, "metadata_too_large",
                   "metadata too large: R2 takes at most " + std::to_string(kMaxMetadataBytes) +
                       " bytes of custom metadata as sent, and this is " + std::to_string(n) +
                       " once encoded for its headers (uppercase letters in names, '%', control, non-ASCII bytes "
                       "and edge spaces take 3 bytes each)");
  if (!recorder_) return upload(ns, key, o, source);
  // Registry change queued first (the size announced, if any), corrected once the upload says what it
  // stored; neither waits on D1 (cloudflare_registry.h gives the crash rule).
  const std::string meta = nlohmann::json(o.custom_metadata).dump();
  auto in_order = recorder_->order("r2", ns, key);  // in order with every other write of this key
  recorder_->record_put("r2", ns, key, int64_t(o.size.value_or(0)), meta, std::nullopt);
  ObjectInfo info;
  try {
    info = upload(ns, key, o, source);
  } catch (...) {
    resync(ns, key);
    throw;
  }
  if (!o.size || *o.size != info.size) recorder_->record_put("r2", ns, key, int64_t(info.size), meta, std::nullopt);
  return info;
}

void CloudflareR2::resync(const std::string& ns, const std::string& key) noexcept {
  try {
    if (auto now = head(ns, key))
      recorder_->record_put("r2", ns, key, int64_t(now->size), nlohmann::json(now->custom_metadata).dump(),
                            std::nullopt);
    else
      recorder_->record_remove("r2", ns, key);
  } catch (...) {
    // The row may stay showing an object that is not there; reindex repairs it.
  }
}

void CloudflareR2::walk(const std::function<void(StoredEntry)>& fn) {
  std::string token;
  for (;;) {
    sigv4::Pairs q = {{"list-type", "2"}, {"encoding-type", "url"}, {"max-keys", "1000"}};
    if (!token.empty()) q.emplace_back("continuation-token", token);
    HttpRequest req = s3_.request("GET", "", q, "R2 list (reindex)");
    HttpResponse r = s3_.send(req);
    if (r.status != 200) throw_s3(req.what, r);
    const xml::Element doc = parse_answer(r, req.what);
    for (const auto& block : doc.all("Contents")) {
      const std::string name = url_decoded(block.first("Key"));
      const auto at = name.find('/');
      if (at == std::string::npos || !ns::is_valid_namespace(name.substr(0, at))) continue;  // not ours
      fn(StoredEntry{name.substr(0, at), name.substr(at + 1), int64_t(to_u64(block.first("Size"))),
                     std::nullopt, std::nullopt});
    }
    if (doc.first("IsTruncated") != "true") return;
    token = doc.first("NextContinuationToken");
    if (token.empty()) throw ApiError(502, "upstream_error", "R2 answered a truncated list without a token");
  }
}

ObjectInfo CloudflareR2::upload(const std::string& ns, const std::string& key, const PutOptions& o,
                                const ChunkSource& source) {
  const std::string name = stored_name(ns, key);
  std::string buf;
  uint64_t total = 0;
  std::string upload_id;
  std::vector<std::string> part_etags;
  std::exception_ptr failure;

  const uint64_t part_size = part_size_for(o.size, part_size_, max_object_size_);
  auto upload_part = [&]() {
    if (part_etags.size() + 1 > kMaxParts)
      throw ApiError(413, "object_too_large", "object too large for " + std::to_string(kMaxParts) + " parts of " +
                                                  std::to_string(part_size) + " bytes");
    if (upload_id.empty()) {
      HttpRequest c = s3_.request("POST", name, {{"uploads", ""}}, "R2 create multipart upload");
      add_put_headers(c, o);
      add_conditions(c, o.precondition);  // an early refusal; Complete checks again, atomically
      HttpResponse r = s3_.send(c);
      if (r.status != 200) throw_s3(c.what, r);
      upload_id = parse_answer(r, c.what).first("UploadId");
      if (upload_id.empty()) throw ApiError(502, "upstream_error", "R2 started a multipart upload without an id");
    }
    HttpRequest p = s3_.request(
        "PUT", name, {{"partNumber", std::to_string(part_etags.size() + 1)}, {"uploadId", upload_id}}, "R2 upload part");
    p.body = std::move(buf);  // an in-memory part: retried on its own if the upstream stumbles
    HttpResponse r = s3_.send(p);
    buf.clear();
    if (r.status != 200) throw_s3(p.what, r);
    part_etags.push_back(r.header("etag").value_or(""));
  };

  try {
    source([&](const char* data, size_t n) {
      try {
        total += n;
        if (o.size && total > *o.size)
          throw ApiError(400, "size_mismatch", "the body is longer than its announced size");
        while (n > 0) {
          if (buf.size() == part_size) upload_part();  // more bytes follow a full part: send it
          const size_t take = size_t(std::min<uint64_t>(n, part_size - buf.size()));
          buf.append(data, take);
          data += take;
          n -= take;
        }
        return true;
      } catch (...) {
        failure = std::current_exception();
        return false;
      }
    });
    if (failure) std::rethrow_exception(failure);
    if (o.size && total != *o.size)
      throw ApiError(400, "size_mismatch", "the body is " + std::to_string(total) + " bytes, not the announced " +
                                               std::to_string(*o.size));

    ObjectInfo info;
    info.key = key;
    info.size = total;
    info.content_type = o.content_type;
    info.custom_metadata = o.custom_metadata;
    if (upload_id.empty()) {
      HttpRequest req = s3_.request("PUT", name, {}, "R2 put");
      add_put_headers(req, o);
      add_conditions(req, o.precondition);
      // A conditional write that may have landed is not repeated: the retry would be judged against the
      // object the first try stored (412 for If-None-Match: *, or for an If-Match on the old etag).
      if (o.precondition.if_match || o.precondition.if_none_match) req.retry = Retry::unsent_only;
      req.body = std::move(buf);
      HttpResponse r = s3_.send(req);
      if (r.status != 200) throw_s3(req.what, r);
      info.etag = unquote(r.header("etag").value_or(""));
    } else {
      upload_part();  // the last part (1 byte to a full part)
      std::string xml_body = "<CompleteMultipartUpload>";
      for (size_t i = 0; i < part_etags.size(); ++i)
        xml_body += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" + xml::escape(part_etags[i]) +
                    "</ETag></Part>";
      xml_body += "</CompleteMultipartUpload>";
      HttpRequest req = s3_.request("POST", name, {{"uploadId", upload_id}}, "R2 complete multipart upload");
      req.headers.emplace_back("Content-Type", "application/xml");
      add_conditions(req, o.precondition);
      req.body = std::move(xml_body);
      // Completing is not repeatable once it may have happened (a second try finds no upload).
      req.retry = Retry::unsent_only;
      HttpResponse r = s3_.send(req);
      // S3 may answer 200 and still report an error in the body.
      const xml::Element doc = xml::parse(r.body);
      if (r.status != 200 || !doc.first("Code").empty()) throw_s3(req.what, r);
      if (!doc) parse_answer(r, req.what);  // throws: a 200 that is not the documented XML
      info.etag = unquote(doc.first("ETag"));
      upload_id.clear();
    }
    info.uploaded_ms = unix_now_ms();
    return info;
  } catch (...) {
    if (!upload_id.empty()) {
      try {
        HttpRequest a = s3_.request("DELETE", name, {{"uploadId", upload_id}}, "R2 abort multipart upload");
        s3_.send(a);
      } catch (...) {
        // R2 aborts unfinished uploads after 7 days; the object was never made visible.
      }
    }
    throw;
  }
}

std::unique_ptr<ObjectReader> CloudflareR2::get(const std::string& ns, const std::string& key, const GetOptions& o) {
  const std::string name = stored_name(ns, key);
  HttpRequest req = s3_.request("GET", name, {}, "R2 get");
  if (o.range) req.headers.emplace_back("Range", range_header(*o.range));
  add_conditions(req, o.only_if);
  req.stream = true;
  auto stream = http_.open(std::move(req));
  const HttpResponse& r = stream->response();
  if (r.status == 404 && xml::parse(r.body).first("Code") != "NoSuchBucket") return nullptr;
  if (r.status == 304 || r.status == 412) {
    auto info = head(ns, key);  // the condition failed: the object's info, without its body
    if (!info) return nullptr;
    return std::make_unique<R2Reader>(*info, 0, 0, nullptr);
  }
  if (r.status == 416 || (r.status >= 400 && xml::parse(r.body).first("Code") == "InvalidRange")) {
    // R2 does not say the size with its 416; the answer must (Content-Range: bytes */size).
    auto now = head(ns, key);
    if (!now) return nullptr;
    ApiError e(416, "range_not_satisfiable",
               "range not satisfiable: the object is " + std::to_string(now->size) + " bytes");
    e.unsatisfiable_size = now->size;
    throw e;
  }
  if (r.status != 200 && r.status != 206) throw_s3("R2 get", r);
  ObjectInfo info = object_info_from(r, key);
  uint64_t offset = 0, length = info.size;
  if (r.status == 206) {
    // "bytes a-b/total"
    const std::string cr = r.header("content-range").value_or("");
    unsigned long long a = 0, b = 0;
    if (std::sscanf(cr.c_str(), "bytes %llu-%llu/", &a, &b) != 2 || b < a)
      throw ApiError(502, "upstream_error", "R2 answered a malformed Content-Range");
    offset = a;
    length = b - a + 1;
  } else if (o.range && info.size == 0) {
    ApiError e(416, "range_not_satisfiable", "range not satisfiable: the object is 0 bytes");
    e.unsatisfiable_size = 0;
    throw e;
  }
  return std::make_unique<R2Reader>(std::move(info), offset, length, std::move(stream));
}

std::optional<ObjectInfo> CloudflareR2::head(const std::string& ns, const std::string& key) {
  HttpRequest req = s3_.request("HEAD", stored_name(ns, key), {}, "R2 head");
  HttpResponse r = s3_.send(req);
  if (r.status == 404) return std::nullopt;
  if (r.status != 200) throw_s3(req.what, r);
  return object_info_from(r, key);
}

bool CloudflareR2::remove(const std::string& ns, const std::string& key) {
  std::optional<KeyLocks::Guard> in_order;  // in order with every other write of this key
  if (recorder_) in_order.emplace(recorder_->order("r2", ns, key));
  const bool existed = head(ns, key).has_value();
  HttpRequest req = s3_.request("DELETE", stored_name(ns, key), {}, "R2 delete");
  HttpResponse r = s3_.send(req);
  if (r.status != 204 && r.status != 200 && r.status != 404) throw_s3(req.what, r);
  // The registry forgets it only now that the store has.
  if (recorder_) recorder_->record_remove("r2", ns, key);
  return existed;
}

ObjectPage CloudflareR2::list(const std::string& ns, const ListOptions& o) {
  const std::string full = ns::r2_name(ns, o.prefix);
  sigv4::Pairs q = {{"list-type", "2"}, {"encoding-type", "url"}, {"prefix", full},
                    {"max-keys", std::to_string(o.limit)}};
  if (!o.delimiter.empty()) q.emplace_back("delimiter", o.delimiter);
  if (!o.cursor.empty()) {
    // Our cursor is R2's continuation token, base64url-wrapped so a garbled one is refused here.
    auto token = enc::base64_decode(o.cursor, true);
    if (!token || token->empty())
      throw ApiError(400, "invalid_cursor", "invalid cursor: pass the cursor of a previous page as is");
    q.emplace_back("continuation-token", *token);
  }
  HttpRequest req = s3_.request("GET", "", q, "R2 list");
  HttpResponse r = s3_.send(req);
  if (r.status == 400 && !o.cursor.empty())
    throw ApiError(400, "invalid_cursor", "invalid cursor: pass the cursor of a previous page as is");
  if (r.status != 200) throw_s3(req.what, r);
  ObjectPage page;
  const size_t skip = ns.size() + 1;
  const xml::Element doc = parse_answer(r, req.what);
  for (const auto& block : doc.all("Contents")) {
    const std::string name = url_decoded(block.first("Key"));
    if (name.compare(0, full.size(), full) != 0) continue;  // never another namespace's object
    ObjectInfo info;
    info.key = name.substr(skip);
    info.size = to_u64(block.first("Size"));
    info.etag = unquote(block.first("ETag"));
    // Whole seconds, as HEAD and GET give it (Last-Modified has no milliseconds): one object, one time.
    info.uploaded_ms = dates::parse_iso8601(block.first("LastModified")).value_or(0) / 1000 * 1000;
    page.objects.push_back(std::move(info));
  }
  if (recorder_ && !page.objects.empty()) {
    // S3 lists carry no custom metadata: the registry recorded it with each put (in order with the
    // upload, ResourceRecorder::order), so one D1 read fills the page.
    std::vector<std::string> keys;
    for (const auto& info : page.objects) keys.push_back(info.key);
    const auto meta = recorder_->metadata_of("r2", ns, keys);
    for (auto& info : page.objects) {
      auto it = meta.find(info.key);
      if (it == meta.end()) continue;
      auto j = nlohmann::json::parse(it->second, nullptr, false);
      if (!j.is_object()) continue;
      for (const auto& [k, v] : j.items())
        if (v.is_string()) info.custom_metadata[k] = v.get<std::string>();
    }
  }
  for (const auto& block : doc.all("CommonPrefixes")) {
    const std::string p = url_decoded(block.first("Prefix"));
    if (p.compare(0, full.size(), full) == 0) page.delimited_prefixes.push_back(p.substr(skip));
  }
  page.truncated = doc.first("IsTruncated") == "true";
  if (page.truncated) {
    const std::string token = doc.first("NextContinuationToken");
    if (token.empty()) throw ApiError(502, "upstream_error", "R2 answered a truncated list without a token");
    page.cursor = enc::base64_encode(token, true);
  }
  return page;
}

}  // namespace era::cf

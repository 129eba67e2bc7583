// ObjectStore: the object capability, in the shape of Cloudflare R2 (S3 underneath it).
//
// Objects can be far larger than memory, so bytes are streamed both ways: put() pulls nothing into
// memory as a whole (the caller pushes chunks through a ChunkSource), and get() hands back an
// ObjectReader that yields the bytes in pieces. The interface names no file, socket or HTTP type, so
// it can be implemented over local files or over R2's S3 API (PutObject with the body streamed when
// its length is known, multipart otherwise; GetObject with Range).
//
// Contract, for every implementation:
// - Namespaces and keys arrive already validated (ns/names.h: a key is 1..1024 bytes of UTF-8, NUL
//   included); metadata arrives validated too (api/r2.cpp). A store maps (ns, key) onto its one
//   shared space as "ns/key" and never lets one namespace see another's objects. A key is only ever
//   data: never a file path, never part of one.
// - put() stores the bytes the source pushes, with the options' content type and custom metadata,
//   replacing any object under that key, and returns the new object's info only once the object is
//   durable: after a crash, every acknowledged put is still there, whole. Until then the previous
//   object (or none) stays visible: a reader sees the old object or the new one, never a mix.
//   If the source throws, the store returns false to the sink (`abort`), the precondition fails, or
//   the length differs from options.size, nothing is stored and the previous object stays.
// - A precondition is checked atomically with the write (compare-and-swap): a failed one throws
//   ApiError 412 "precondition_failed". put() may also check it before reading the source, and then
//   throws without having read it.
// - get() returns a reader over one version of the object: once it is returned, later puts and
//   deletes do not change the bytes it yields. Its condition (`only_if`) is evaluated first: when it
//   does not hold, the reader has the object's info and no body (has_body() false), as R2's get()
//   returns an R2Object without body. Then the range: one that starts at or past the end (or any
//   range of an empty object) throws ApiError 416 "range_not_satisfiable".
// - The etag is the hex MD5 of the bytes for an object written in one piece (what R2 and S3 give
//   for a single PutObject); callers treat it as an opaque string and compare it exactly.
// - list() returns keys without the namespace, in byte order, at most `limit` entries (objects and
//   delimited prefixes together), starting after `cursor` (opaque, from a previous page; "" first).
//   With a delimiter, keys that contain it after the prefix are rolled up into one entry of
//   `delimited_prefixes` (the key up to and including the delimiter), as S3 and R2 do.
// - Errors are thrown as era::ApiError with the status and code the client should see.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace era {

constexpr uint64_t kDefaultMaxObjectBytes = 5ull << 30;  // 5 GiB: R2's single-upload limit

// Receives the next chunk of a body; returns false to ask the producer to stop.
using ChunkSink = std::function<bool(const char* data, size_t size)>;
// Produces a body: pushes every chunk, in order, into the sink, and returns when the body is
// complete. Throws to abort (the store then stores nothing). If the sink returns false, it stops.
using ChunkSource = std::function<void(const ChunkSink& sink)>;

struct ObjectInfo {
  std::string key;  // without the namespace
  uint64_t size = 0;
  std::string etag;         // unquoted
  int64_t uploaded_ms = 0;  // unix milliseconds of the put that made this version
  std::string content_type;
  std::map<std::string, std::string> custom_metadata;
};

// Conditions on the current object, as HTTP's If-Match / If-None-Match carry them. Each list holds
// unquoted etags, or the single entry "*" (any object at all). An absent list is no condition.
struct Precondition {
  std::optional<std::vector<std::string>> if_match;       // the current etag must be listed ("*": must exist)
  std::optional<std::vector<std::string>> if_none_match;  // the current etag must not be listed ("*": must not exist)

  // Whether the condition holds for the current object's etag (nullopt: there is no object).
  bool holds(const std::optional<std::string>& current_etag) const;
};

struct PutOptions {
  std::string content_type = "application/octet-stream";
  std::map<std::string, std::string> custom_metadata;
  // The exact byte count, when known before the first byte (e.g. from Content-Length). A backend may
  // use it to stream a single upload; a body of another length is refused (400 "size_mismatch").
  std::optional<uint64_t> size;
  Precondition precondition;
};

// A byte range in R2's terms: `offset` (then `length` bytes, or to the end), or the last `suffix`
// bytes. A length that runs past the end is cut at the end, as HTTP ranges are.
struct ByteRange {
  std::optional<uint64_t> offset;
  std::optional<uint64_t> length;
  std::optional<uint64_t> suffix;
};

// One version of one object, open for reading. Not thread-safe.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  virtual const ObjectInfo& info() const = 0;
  // The part of the object this reader yields: `length` bytes from `offset` (the whole object when
  // no range was asked for).
  virtual uint64_t offset() const = 0;
  virtual uint64_t length() const = 0;
  // False when get()'s `only_if` did not hold: then there are no bytes to read.
  virtual bool has_body() const = 0;
  // Reads up to `cap` bytes into `buf`; returns how many. 0 only once all `length` bytes were read
  // (at once without a body). Throws on an I/O failure.
  virtual size_t read(char* buf, size_t cap) = 0;
};

struct GetOptions {
  std::optional<ByteRange> range;
  Precondition only_if;
};

struct ListOptions {
  std::string prefix;
  int limit = 1000;  // 1..1000
  std::string cursor;
  std::string delimiter;  // "" for none
};

struct ObjectPage {
  std::vector<ObjectInfo> objects;
  std::vector<std::string> delimited_prefixes;
  bool truncated = false;
  std::string cursor;  // empty unless truncated
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  virtual ObjectInfo put(const std::string& ns, const std::string& key, const PutOptions& options,
                         const ChunkSource& source) = 0;
  // The object, or nullptr if there is none.
  virtual std::unique_ptr<ObjectReader> get(const std::string& ns, const std::string& key,
                                            const GetOptions& options = {}) = 0;
  virtual std::optional<ObjectInfo> head(const std::string& ns, const std::string& key) = 0;
  // Returns whether there was an object. Deleting a missing key is not an error.
  virtual bool remove(const std::string& ns, const std::string& key) = 0;
  virtual ObjectPage list(const std::string& ns, const ListOptions& options) = 0;
};

}  // namespace era

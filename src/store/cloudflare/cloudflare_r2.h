// CloudflareR2: the ObjectStore contract on R2's S3 API, in the one shared bucket, under the internal
// names "ns/key" the guide documents.
//
// - put: the source's chunks fill a buffer of at most one part (part_size_for: the configured
//   cloudflare.r2_part_size_mib, grown when the object is large enough that R2's 10,000 parts would
//   not hold it). A body that ends within it goes up as one PutObject; a larger one as a multipart
//   upload of equal parts (R2 requires every part but the last to be the same size), each part sent as
//   it fills, so memory per upload is one part, and each part can be retried on its own. A failed or
//   aborted upload is aborted upstream: nothing is stored, the previous object stays.
//   Preconditions go up as If-Match / If-None-Match on the write that makes the object visible
//   (PutObject, CompleteMultipartUpload), which R2 checks atomically: a failure is 412. Such a write is
//   never retried once it may have landed (Retry::unsent_only): a second try could answer 412 for the
//   object the first one stored.
// - Custom metadata is checked against R2's 8,192-byte limit on what is sent (names and values after
//   the encoding below), before anything is sent or recorded: 413 metadata_too_large.
// - get: GetObject with Range and the conditions, body pulled on demand (HttpStream).
// - Custom metadata travels as x-amz-meta-* headers. Header names are case-insensitive and carry only
//   some bytes, so names and values are percent-encoded where they must be (an uppercase letter in a
//   name, '%', control and non-ASCII bytes, edge spaces) and decoded on the way back: exact round trips.
// - list: ListObjectsV2 with encoding-type=url (any byte in a key survives the XML), its continuation
//   token as our cursor. S3 lists carry no content type or custom metadata: the content type comes back
//   empty; custom metadata from the registry (its queued changes, else one D1 read per non-empty page).
// - The stored name "ns/key" must fit R2's 1024-byte key limit; checked before any call.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "store/cloudflare/cloudflare_registry.h"
#include "store/cloudflare/s3_client.h"
#include "store/object_store.h"

namespace era::cf {

class CloudflareR2 : public ObjectStore {
 public:
  // `recorder` (may be null) learns of every put and delete, in the order cloudflare_registry.h gives.
  CloudflareR2(S3Client& s3, HttpClient& http, uint64_t part_size, uint64_t max_object_size,
               ResourceRecorder* recorder = nullptr)
      : s3_(s3), http_(http), part_size_(part_size), max_object_size_(max_object_size), recorder_(recorder) {}

  ObjectInfo put(const std::string& ns, const std::string& key, const PutOptions& options,
                 const ChunkSource& source) override;
  std::unique_ptr<ObjectReader> get(const std::string& ns, const std::string& key,
                                    const GetOptions& options = {}) override;
  std::optional<ObjectInfo> head(const std::string& ns, const std::string& key) override;
  bool remove(const std::string& ns, const std::string& key) override;
  ObjectPage list(const std::string& ns, const ListOptions& options) override;

  // Every stored object of every namespace (names shaped "ns/key"), with sizes: for reindex.
  void walk(const std::function<void(StoredEntry)>& fn);

  // The part size of an upload: `configured`, grown (to a whole MiB) so that the object fits in R2's
  // 10,000 parts: for its size when known, else for `max_object_size`. Capped at R2's 5 GiB part.
  static uint64_t part_size_for(std::optional<uint64_t> size, uint64_t configured, uint64_t max_object_size);
  // Bytes of custom metadata as sent (encoded names and values), which R2 limits to kMaxMetadataBytes.
  static size_t encoded_metadata_bytes(const std::map<std::string, std::string>& metadata);
  static constexpr size_t kMaxMetadataBytes = 8192;
  static constexpr uint64_t kMaxParts = 10000;

  // The metadata encodings (exposed for unit tests).
  static std::string encode_meta_name(const std::string& name);
  static std::string encode_meta_value(const std::string& value);
  static std::string decode_meta(const std::string& text);

 private:
  void add_put_headers(HttpRequest& req, const PutOptions& o) const;

  ObjectInfo upload(const std::string& ns, const std::string& key, const PutOptions& options,
                    const ChunkSource& source);
  // After a put that failed (it may or may not have happened): the registry row follows the store.
  void resync(const std::string& ns, const std::string& key) noexcept;

  S3Client& s3_;
  HttpClient& http_;
  uint64_t part_size_;
  uint64_t max_object_size_;
  ResourceRecorder* recorder_;
};

// ObjectInfo from a GetObject / HeadObject answer (for `key`, the name without the namespace).
ObjectInfo object_info_from(const HttpResponse& r, const std::string& key);

}  // namespace era::cf

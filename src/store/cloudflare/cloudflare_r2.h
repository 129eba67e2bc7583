// CloudflareR2: the ObjectStore contract on R2's S3 API, in the one shared bucket, under the internal
// names "ns/key" the guide documents.
//
// - put: the source's chunks fill a buffer of at most one part (cloudflare.r2_part_size_mib). A body
//   that ends within it goes up as one PutObject; a larger one as a multipart upload of equal parts
//   (R2 requires every part but the last to be the same size), each part sent as it fills, so memory
//   per upload is one part whatever the object's size, and each part can be retried on its own. A
//   failed or aborted upload is aborted upstream: nothing is stored, the previous object stays.
//   Preconditions go up as If-Match / If-None-Match on the write that makes the object visible
//   (PutObject, CompleteMultipartUpload), which R2 checks atomically: a failure is 412.
// - get: GetObject with Range and the conditions, body pulled on demand (HttpStream).
// - Custom metadata travels as x-amz-meta-* headers. Header names are case-insensitive and carry only
//   some bytes, so names and values are percent-encoded where they must be (an uppercase letter in a
//   name, '%', control and non-ASCII bytes, edge spaces) and decoded on the way back: exact round trips.
// - list: ListObjectsV2 with encoding-type=url (any byte in a key survives the XML), its continuation
//   token as our cursor. S3 lists carry no content type or custom metadata: those come back empty.
// - The stored name "ns/key" must fit R2's 1024-byte key limit; checked before any call.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "store/cloudflare/cloudflare_registry.h"
#include "store/cloudflare/s3_client.h"
#include "store/object_store.h"

namespace era::cf {

class CloudflareR2 : public ObjectStore {
 public:
  // `recorder` (may be null) learns of every put and delete, in the order cloudflare_registry.h gives.
  CloudflareR2(S3Client& s3, HttpClient& http, uint64_t part_size, ResourceRecorder* recorder = nullptr)
      : s3_(s3), http_(http), part_size_(part_size), recorder_(recorder) {}

  ObjectInfo put(const std::string& ns, const std::string& key, const PutOptions& options,
                 const ChunkSource& source) override;
  std::unique_ptr<ObjectReader> get(const std::string& ns, const std::string& key,
                                    const GetOptions& options = {}) override;
  std::optional<ObjectInfo> head(const std::string& ns, const std::string& key) override;
  bool remove(const std::string& ns, const std::string& key) override;
  ObjectPage list(const std::string& ns, const ListOptions& options) override;

  // Every stored object of every namespace (names shaped "ns/key"), with sizes: for reindex.
  void walk(const std::function<void(StoredEntry)>& fn);

  // The metadata encodings (exposed for unit tests).
  static std::string encode_meta_name(const std::string& name);
  static std::string encode_meta_value(const std::string& value);
  static std::string decode_meta(const std::string& text);

 private:
  void add_put_headers(HttpRequest& req, const PutOptions& o) const;
  std::string multipart(const std::string& name, const PutOptions& o, std::string& buffer, uint64_t& total,
                        bool& ended, const ChunkSource& source);

  ObjectInfo upload(const std::string& ns, const std::string& key, const PutOptions& options,
                    const ChunkSource& source);
  // After a put that failed (it may or may not have happened): the registry row follows the store.
  void resync(const std::string& ns, const std::string& key) noexcept;

  S3Client& s3_;
  HttpClient& http_;
  uint64_t part_size_;
  ResourceRecorder* recorder_;
};

// ObjectInfo from a GetObject / HeadObject answer (for `key`, the name without the namespace).
ObjectInfo object_info_from(const HttpResponse& r, const std::string& key);

}  // namespace era::cf

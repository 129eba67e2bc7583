// LocalR2: ObjectStore on the local file system, with the objects' metadata in the meta database.
//
//   objects/tmp/<random>.tmp   an upload in progress (removed at start-up: left only by a crash)
//   objects/xx/<blob id>       one version of one object; the id is 32 random hex digits, xx its
//                              first two (so no directory grows past 1/256 of the objects)
//
// File names come from random ids, never from keys: a key is only a value in the r2_objects table.
// A put writes a temp file, fsyncs it, renames it to a fresh blob id, then commits the row that points
// the key at that blob (one writer job), and only then removes the blob it replaced. So a reader that
// opened the old blob keeps reading it whole, a new reader sees the new one, and a crash at any point
// leaves the old object or the new one plus, at worst, files no row points at, which start-up removes.
#pragma once

#include <functional>
#include <string>

#include "store/sql/sqlite.h"
#include "store/object_store.h"

namespace era {

class LocalR2 : public ObjectStore {
 public:
  // `objects_dir` is created if needed, and cleaned of what a crash left (see above). `now_ms` gives
  // unix milliseconds (tests pass their own clock).
  LocalR2(sqlite::Writer& writer, sqlite::ReaderPool& readers, std::string objects_dir,
          std::function<int64_t()> now_ms);

  ObjectInfo put(const std::string& ns, const std::string& key, const PutOptions& options,
                 const ChunkSource& source) override;
  std::unique_ptr<ObjectReader> get(const std::string& ns, const std::string& key,
                                    const GetOptions& options) override;
  std::optional<ObjectInfo> head(const std::string& ns, const std::string& key) override;
  bool remove(const std::string& ns, const std::string& key) override;
  ObjectPage list(const std::string& ns, const ListOptions& options) override;

  static void create_schema(sqlite::Db& db);

  // What start-up removed: temp files and blobs no row points at.
  struct Cleanup {
    size_t temp_files = 0;
    size_t orphan_blobs = 0;
  };
  const Cleanup& startup_cleanup() const { return cleanup_; }

 private:
  std::string blob_path(const std::string& blob) const;
  void clean_up();

  sqlite::Writer& writer_;
  sqlite::ReaderPool& readers_;
  std::string dir_;
  std::function<int64_t()> now_ms_;
  Cleanup cleanup_;
};

}  // namespace era

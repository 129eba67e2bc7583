#include "store/local/local_backend.h"

#include <chrono>
#include <filesystem>
#include <stdexcept>

#include "util/time.h"
#include "util/log.h"

namespace era {

LocalBackend::LocalBackend(const LocalOptions& options) : dir_(options.data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("cannot create data dir " + dir_ + ": " + ec.message());
  lock_ = std::make_unique<DirLock>(dir_);
  const std::string meta = dir_ + "/meta.sqlite3";
  meta_writer_ = std::make_unique<sqlite::Writer>(meta);
  meta_readers_ = std::make_unique<sqlite::ReaderPool>(meta, 8);
  kv_ = std::make_unique<LocalKv>(*meta_writer_, *meta_readers_, unix_now_ms, options.kv_cache_bytes);
  r2_ = std::make_unique<LocalR2>(*meta_writer_, *meta_readers_, dir_ + "/objects", unix_now_ms);
  sessions_ = std::make_unique<LocalSessions>(*meta_writer_, *meta_readers_);
  // D1: a file per namespace in d1/. A data dir from before (one d1.sqlite3 for every namespace) is
  // moved into that layout first; the old file is kept as d1.sqlite3.migrated.
  const std::string single = dir_ + "/d1.sqlite3";
  if (std::filesystem::exists(single)) LocalD1::migrate_single_file(single, dir_ + "/d1");
  d1_ = std::make_unique<LocalD1>(dir_ + "/d1", options.d1, options.d1_files);
  // Sources in type order: d1, kv, r2.
  std::vector<std::unique_ptr<ResourceSource>> sources;
  sources.push_back(make_sql_table_source(*d1_));
  sources.push_back(make_table_source({"kv", "kv", ':', "metadata", "created_at", "updated_at", true},
                                      *meta_writer_, *meta_readers_, unix_now));
  sources.push_back(make_table_source({"r2", "r2_objects", '/', "custom_metadata", "created_ms", "uploaded_ms", false},
                                      *meta_writer_, *meta_readers_, unix_now));
  registry_ = std::make_unique<ResourceWalk>(std::move(sources));
  sweeper_ = std::thread([this] { sweeper(); });
}

LocalBackend::~LocalBackend() { close(); }

void LocalBackend::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return;
    closing_ = true;
  }
  cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  if (meta_writer_) meta_writer_->stop();
  if (d1_) d1_->close();
}

void LocalBackend::sweeper() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return closing_; })) {
    lock.unlock();
    try {
      int64_t n = kv_->sweep_expired();
      if (n) log::debug("swept " + std::to_string(n) + " expired KV entries");
    } catch (const std::exception& e) {
      log::warn(std::string("expiry sweep failed: ") + e.what());
    }
    lock.lock();
  }
}

}  // namespace era

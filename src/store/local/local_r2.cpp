#include "store/local/local_r2.h"

#include <dirent.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <vector>

#include "ns/names.h"
#include "store/local/counters.h"
#include "store/local/files.h"
#include "store/object_range.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/log.h"
#include "util/md5.h"

namespace era {
namespace {

constexpr size_t kWriteBuffer = 256 * 1024;  // bytes gathered before one write(2)
constexpr size_t kBlobIdBytes = 16;          // 128 random bits: ids never collide nor repeat
constexpr int kOpenAttempts = 8;             // lookups retried when a put replaced the blob meanwhile

const char* const kColumns = "name, size, etag, uploaded_ms, content_type, custom_metadata, blob";

struct Row {
  ObjectInfo info;
  std::string blob;
};

std::string metadata_text(const std::map<std::string, std::string>& m) { return nlohmann::json(m).dump(); }

std::map<std::string, std::string> metadata_map(const std::string& text) {
  return nlohmann::json::parse(text).get<std::map<std::string, std::string>>();
}

// A row of the SELECT kColumns, with the "ns/" of the name cut off.
Row read_row(const sqlite::Stmt& st, size_t ns_len) {
  Row r;
  r.info.key = st.text(0).substr(ns_len + 1);
  r.info.size = static_cast<uint64_t>(st.int64(1));
  r.info.etag = st.text(2);
  r.info.uploaded_ms = st.int64(3);
  r.info.content_type = st.text(4);
  r.info.custom_metadata = metadata_map(st.text(5));
  r.blob = st.text(6);
  return r;
}

std::optional<Row> lookup(sqlite::Db& db, const std::string& ns, const std::string& key) {
  static const std::string sql = std::string("SELECT ") + kColumns + " FROM r2_objects WHERE name = ?1";
  sqlite::StmtUse st(db.cached(sql.c_str()));
  st->bind_blob(1, ns::r2_name(ns, key));
  if (!st->step()) return std::nullopt;
  return read_row(*st, ns.size());
}

ApiError precondition_failed() {
  return ApiError(412, "precondition_failed",
                  "precondition failed: the object's current etag does not satisfy If-Match / If-None-Match");
}

class LocalReader : public ObjectReader {
 public:
  // A reader with a body; `fd` is open on the blob at `path`.
  LocalReader(files::Fd fd, ObjectInfo info, uint64_t offset, uint64_t length, std::string path)
      : fd_(std::move(fd)), info_(std::move(info)), offset_(offset), length_(length), path_(std::move(path)) {}
  // A reader without a body: the condition did not hold.
  explicit LocalReader(ObjectInfo info) : info_(std::move(info)), offset_(0), length_(0) {}

  const ObjectInfo& info() const override { return info_; }
  uint64_t offset() const override { return offset_; }
  uint64_t length() const override { return length_; }
  bool has_body() const override { return static_cast<bool>(fd_); }

  size_t read(char* buf, size_t cap) override {
    const uint64_t left = length_ - done_;
    if (left == 0 || cap == 0) return 0;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(left, cap));
    for (;;) {
      ssize_t n = ::pread(fd_.get(), buf, want, static_cast<off_t>(offset_ + done_));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) files::throw_errno("read", path_);
      // Blobs are never written after their rename, so a short file means it was damaged.
      if (n == 0) throw ApiError(500, "storage_error", "an object file is shorter than its recorded size");
      done_ += static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    }
  }

 private:
  files::Fd fd_;
  ObjectInfo info_;
  uint64_t offset_, length_, done_ = 0;
  std::string path_;
};

}  // namespace

void LocalR2::create_schema(sqlite::Db& db) {
  db.exec(R"sql(
    CREATE TABLE IF NOT EXISTS r2_objects (
      name            BLOB NOT NULL UNIQUE,  -- "ns/key", the internal name the guide documents
      ns              TEXT NOT NULL,
      blob            TEXT NOT NULL UNIQUE,  -- file id under objects/ (random, never from the key)
      size            INTEGER NOT NULL,
      etag            TEXT NOT NULL,         -- hex MD5 of the bytes
      uploaded_ms     INTEGER NOT NULL,      -- unix ms of the put that made this version
      created_ms      INTEGER NOT NULL,      -- unix ms of the first put under this key (the registry's)
      content_type    TEXT NOT NULL,
      custom_metadata TEXT NOT NULL          -- JSON object of strings
    );
  )sql");
  counters::create_schema(db);
}

LocalR2::LocalR2(sqlite::Writer& writer, sqlite::ReaderPool& readers, std::string objects_dir,
                 std::function<int64_t()> now_ms)
    : writer_(writer), readers_(readers), dir_(std::move(objects_dir)), now_ms_(std::move(now_ms)) {
  writer_.submit([](sqlite::Db& db) { create_schema(db); });
  files::make_dir(dir_);
  files::make_dir(dir_ + "/tmp");
  // Every fan-out directory exists from the start, so a put never creates (and must fsync) one.
  for (int i = 0; i < 256; ++i) files::make_dir(dir_ + "/" + enc::hex(std::string(1, char(i))));
  files::sync_dir(dir_);
  clean_up();
}

std::string LocalR2::blob_path(const std::string& blob) const { return dir_ + "/" + blob.substr(0, 2) + "/" + blob; }

// Runs before the store serves anything, so no upload is in progress: every temp file is a crashed
// upload's, and a blob no row points at was renamed but never committed (or replaced but not yet
// removed) when the process died.
void LocalR2::clean_up() {
  auto each_file = [](const std::string& dir, const std::function<void(const std::string&)>& fn) {
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) files::throw_errno("open", dir);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d.get()))
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    for (const auto& n : names) fn(n);
  };
  each_file(dir_ + "/tmp", [&](const std::string& name) {
    if (files::remove_file(dir_ + "/tmp/" + name)) ++cleanup_.temp_files;
  });
  auto db = readers_.lease();
  for (int i = 0; i < 256; ++i) {
    const std::string sub = dir_ + "/" + enc::hex(std::string(1, char(i)));
    each_file(sub, [&](const std::string& name) {
      sqlite::StmtUse st(db->cached("SELECT 1 FROM r2_objects WHERE blob = ?1"));
      st->bind_text(1, name);
      if (!st->step() && files::remove_file(sub + "/" + name)) ++cleanup_.orphan_blobs;
    });
  }
  if (cleanup_.temp_files || cleanup_.orphan_blobs)
    log::info("object store start-up: removed " + std::to_string(cleanup_.temp_files) + " temp files and " +
              std::to_string(cleanup_.orphan_blobs) + " unreferenced blobs left by an interrupted run");
}

ObjectInfo LocalR2::put(const std::string& ns, const std::string& key, const PutOptions& options,
                        const ChunkSource& source) {
  const Precondition& cond = options.precondition;
  const bool conditional = cond.if_match || cond.if_none_match;
  // Refuse early, before the body is read, when the condition already fails; it is checked again
  // at commit, where it counts.
  if (conditional) {
    auto cur = head(ns, key);
    if (!cond.holds(cur ? std::optional<std::string>(cur->etag) : std::nullopt)) throw precondition_failed();
  }

  const std::string tmp_path = dir_ + "/tmp/" + files::random_hex(kBlobIdBytes) + ".tmp";
  files::RemoveGuard tmp_guard(tmp_path);
  files::Fd fd = files::create_exclusive(tmp_path);
  Md5 md5;
  uint64_t total = 0;
  std::vector<char> buf;
  buf.reserve(kWriteBuffer);
  source([&](const char* data, size_t n) {
    md5.update(data, n);
    total += n;
    while (n) {
      const size_t take = std::min(n, kWriteBuffer - buf.size());
      buf.insert(buf.end(), data, data + take);
      data += take;
      n -= take;
      if (buf.size() == kWriteBuffer) {
        files::write_all(fd, buf.data(), buf.size(), tmp_path);
        buf.clear();
      }
    }
    return true;
  });
  files::write_all(fd, buf.data(), buf.size(), tmp_path);
  if (options.size && *options.size != total)
    throw ApiError(400, "size_mismatch",
                   "the body is " + std::to_string(total) + " bytes, not the " + std::to_string(*options.size) +
                       " announced");
  files::sync(fd, tmp_path);
  fd.reset();

  const std::string blob = files::random_hex(kBlobIdBytes);
  const std::string path = blob_path(blob);
  files::rename_file(tmp_path, path);
  tmp_guard.keep();
  files::RemoveGuard blob_guard(path);
  files::sync_dir(dir_ + "/" + blob.substr(0, 2));

  ObjectInfo info;
  info.key = key;
  info.size = total;
  info.etag = md5.hex_digest();
  info.uploaded_ms = now_ms_();
  info.content_type = options.content_type;
  info.custom_metadata = options.custom_metadata;
  const std::string name = ns::r2_name(ns, key);
  const std::string meta = metadata_text(info.custom_metadata);

  // One writer job: the condition, the row and the registry's counters commit together.
  auto replaced = writer_.submit([&](sqlite::Db& db) -> std::optional<std::string> {
    std::optional<std::string> old_blob, old_etag;
    int64_t old_size = 0;
    {
      sqlite::StmtUse st(db.cached("SELECT blob, etag, size FROM r2_objects WHERE name = ?1"));
      st->bind_blob(1, name);
      if (st->step()) old_blob = st->text(0), old_etag = st->text(1), old_size = st->int64(2);
    }
    if (conditional && !cond.holds(old_etag)) throw precondition_failed();
    sqlite::StmtUse st(db.cached(R"sql(
      INSERT INTO r2_objects (name, ns, blob, size, etag, uploaded_ms, created_ms, content_type, custom_metadata)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)
      ON CONFLICT(name) DO UPDATE SET
        blob = excluded.blob, size = excluded.size, etag = excluded.etag, uploaded_ms = excluded.uploaded_ms,
        content_type = excluded.content_type, custom_metadata = excluded.custom_metadata)sql"));
    st->bind_blob(1, name).bind_text(2, ns).bind_text(3, blob).bind(4, static_cast<int64_t>(total));
    st->bind_text(5, info.etag).bind(6, info.uploaded_ms).bind_text(7, info.content_type).bind_text(8, meta);
    st->run();
    counters::bump(db, "r2", ns, old_blob ? 0 : 1, static_cast<int64_t>(total) - old_size);
    return old_blob;
  });
  blob_guard.keep();
  // Readers that opened the old blob keep their descriptor; new readers find the new row.
  if (replaced) files::remove_file(blob_path(*replaced));
  return info;
}

std::unique_ptr<ObjectReader> LocalR2::get(const std::string& ns, const std::string& key,
                                           const GetOptions& options) {
  for (int attempt = 0; attempt < kOpenAttempts; ++attempt) {
    std::optional<Row> row;
    {
      auto db = readers_.lease();
      row = lookup(*db, ns, key);
    }
    if (!row) return nullptr;
    if (!options.only_if.holds(row->info.etag)) return std::make_unique<LocalReader>(std::move(row->info));
    const auto [offset, length] = resolve_range(options.range, row->info.size);
    const std::string path = blob_path(row->blob);
    files::Fd fd = files::open_read(path);
    // Gone between the lookup and the open: a put or delete replaced it. Look again.
    if (!fd) continue;
    return std::make_unique<LocalReader>(std::move(fd), std::move(row->info), offset, length, path);
  }
  log::error("object " + ns::r2_name(ns, key) + " has a row but its blob cannot be opened");
  throw ApiError(500, "storage_error", "the object's data is missing from the store");
}

std::optional<ObjectInfo> LocalR2::head(const std::string& ns, const std::string& key) {
  auto db = readers_.lease();
  auto row = lookup(*db, ns, key);
  if (!row) return std::nullopt;
  return std::move(row->info);
}

bool LocalR2::remove(const std::string& ns, const std::string& key) {
  const std::string name = ns::r2_name(ns, key);
  auto removed = writer_.submit([&](sqlite::Db& db) -> std::optional<std::string> {
    std::optional<std::string> blob;
    sqlite::StmtUse st(db.cached("DELETE FROM r2_objects WHERE name = ?1 RETURNING blob, size"));
    st->bind_blob(1, name);
    if (st->step()) {
      blob = st->text(0);
      const int64_t size = st->int64(1);
      st->run();  // finish the statement before the next one on this connection
      counters::bump(db, "r2", ns, -1, -size);
    }
    return blob;
  });
  if (removed) files::remove_file(blob_path(*removed));
  return removed.has_value();
}

// Cursor: base64url of one tag byte and a key. 'k': resume after that key; 'p': resume after every
// key that starts with that (delimited) prefix.
ObjectPage LocalR2::list(const std::string& ns, const ListOptions& options) {
  const std::string lo = ns::r2_name(ns, options.prefix);
  const std::string hi = ns::prefix_upper_bound(lo);  // never empty: "ns/" holds a byte below 0xFF
  std::string from = lo;                              // the first name to consider
  if (!options.cursor.empty()) {
    auto raw = enc::base64_decode(options.cursor, true);
    if (!raw || raw->empty() || ((*raw)[0] != 'k' && (*raw)[0] != 'p'))
      throw ApiError(400, "invalid_cursor", "invalid cursor: pass the cursor of a previous page as is");
    const std::string name = ns::r2_name(ns, raw->substr(1));
    // After key k comes k + NUL: nothing sorts between them.
    from = (*raw)[0] == 'k' ? name + std::string(1, '\0') : ns::prefix_upper_bound(name);
    if (from < lo) from = lo;
  }

  ObjectPage page;
  const size_t limit = static_cast<size_t>(options.limit);
  const size_t skip = ns.size() + 1;
  std::string last_cursor;
  auto db = readers_.lease();
  static const std::string sql = std::string("SELECT ") + kColumns +
                                 " FROM r2_objects WHERE name >= ?1 AND name < ?2 ORDER BY name LIMIT ?3";
  // Each query runs until the page is full or a delimited prefix is found; after a prefix the walk
  // jumps past every key under it, so a page costs at most limit + 1 queries.
  for (bool more = true; more;) {
    more = false;
    sqlite::StmtUse st(db->cached(sql.c_str()));
    st->bind_blob(1, from).bind_blob(2, hi).bind(3, static_cast<int64_t>(limit + 1));
    while (st->step()) {
      const std::string name = st->text(0);
      const std::string key = name.substr(skip);
      const size_t entries = page.objects.size() + page.delimited_prefixes.size();
      if (entries == limit) {
        page.truncated = true;
        page.cursor = enc::base64_encode(last_cursor, true);
        return page;
      }
      size_t cut = std::string::npos;
      if (!options.delimiter.empty()) cut = key.find(options.delimiter, options.prefix.size());
      if (cut != std::string::npos) {
        std::string common = key.substr(0, cut + options.delimiter.size());
        last_cursor = "p" + common;
        page.delimited_prefixes.push_back(std::move(common));
        from = ns::prefix_upper_bound(ns::r2_name(ns, page.delimited_prefixes.back()));
        more = from < hi;
        break;
      }
      last_cursor = "k" + key;
      page.objects.push_back(read_row(*st, ns.size()).info);
    }
  }
  return page;
}

}  // namespace era

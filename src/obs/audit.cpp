#include "obs/audit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "http/headers.h"
#include "util/log.h"

namespace era::obs {
namespace {

std::string parent_dir(const std::string& path) {
  std::filesystem::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : ".";
}

void fsync_dir(const std::string& path) {
  int d = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    ::fsync(d);
    ::close(d);
  }
}

// The seq of the last complete line of `path`, if it has one.
std::optional<uint64_t> last_seq(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size <= 0) return std::nullopt;
  const std::streamoff from = size > 65536 ? size - 65536 : 0;
  in.seekg(from);
  std::string tail(static_cast<size_t>(size - from), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  size_t end = tail.size();
  while (end > 0) {
    size_t nl = tail.rfind('\n', end - 1);
    const size_t begin = nl == std::string::npos ? 0 : nl + 1;
    auto j = nlohmann::json::parse(tail.substr(begin, end - begin), nullptr, false);
    if (j.is_object() && j.contains("seq") && j["seq"].is_number_unsigned()) return j["seq"].get<uint64_t>();
    if (nl == std::string::npos) break;
    end = nl;
  }
  return std::nullopt;
}

}  // namespace

std::string AuditLog::iso_time(int64_t ms) { return http::iso8601(ms); }

std::string AuditLog::format(const AuditEvent& e, uint64_t seq) {
  auto opt = [](const std::string& s) { return s.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s); };
  nlohmann::ordered_json j;
  j["seq"] = seq;
  j["time"] = iso_time(e.time_ms);
  j["request_id"] = e.request_id;
  j["session_id"] = opt(e.session_id);
  j["principal"] = e.principal;
  j["namespace"] = opt(e.ns);
  j["surface"] = e.surface;
  j["operation"] = e.operation;
  j["object"] = opt(e.object);
  j["bytes"] = e.bytes;
  j["status"] = e.status;
  j["outcome"] = e.outcome;
  j["code"] = opt(e.code);
  // A key is any UTF-8 the store accepted; anything else is replaced, never allowed to break the line.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

AuditLog::AuditLog(AuditOptions options) : options_(std::move(options)) {
  if (options_.keep < 1) options_.keep = 1;
  if (options_.queue_capacity < 1) options_.queue_capacity = 1;
  if (options_.path == "-") {
    fd_ = STDOUT_FILENO;
  } else {
    std::error_code ec;
    std::filesystem::create_directories(parent_dir(options_.path), ec);
    // The last seq: from the newest file holding a line.
    std::optional<uint64_t> last = last_seq(options_.path);
    for (int i = 1; !last && i <= options_.keep; ++i) last = last_seq(rotated(i));
    next_seq_ = last ? *last + 1 : 1;
    done_seq_ = next_seq_ - 1;
    open_current();
    if (size_ > 0) {
      // A line cut short by a crash would swallow the next one: end it first.
      char c = 0;
      if (::pread(fd_, &c, 1, static_cast<off_t>(size_ - 1)) == 1 && c != '\n' && ::write(fd_, "\n", 1) == 1) ++size_;
    }
  }
  writer_ = std::thread([this] { writer_loop(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  has_work_.notify_all();
  writer_.join();
  if (fd_ >= 0 && fd_ != STDOUT_FILENO) ::close(fd_);
}

void AuditLog::open_current() {
  fd_ = ::open(options_.path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);  // read: the last byte at start
  if (fd_ < 0) throw std::runtime_error("cannot open the audit file " + options_.path + ": " + std::strerror(errno));
  struct stat st{};
  size_ = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

void AuditLog::record(const AuditEvent& e) {
  std::unique_lock<std::mutex> lock(mu_);
  if (queue_.size() >= options_.queue_capacity) {
    waits_.fetch_add(1, std::memory_order_relaxed);
    has_room_.wait(lock, [&] { return queue_.size() < options_.queue_capacity; });
  }
  const uint64_t seq = next_seq_++;
  queue_.emplace_back(seq, format(e, seq));
  events_.fetch_add(1, std::memory_order_relaxed);
  lock.unlock();
  has_work_.notify_one();
}

void AuditLog::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = next_seq_ - 1;
  written_.wait(lock, [&] { return done_seq_ >= target; });
}

void AuditLog::rotate() {
  std::lock_guard<std::mutex> files(files_mu_);
  ::close(fd_);
  fd_ = -1;
  std::error_code ec;
  std::filesystem::remove(rotated(options_.keep), ec);
  for (int i = options_.keep - 1; i >= 1; --i) {
    if (std::filesystem::exists(rotated(i), ec)) std::filesystem::rename(rotated(i), rotated(i + 1), ec);
  }
  std::filesystem::rename(options_.path, rotated(1), ec);
  if (ec) log::error("audit: cannot rotate " + options_.path + ": " + ec.message());
  open_current();
  fsync_dir(options_.path);
  rotations_.fetch_add(1, std::memory_order_relaxed);
}

void AuditLog::write_group(const std::string& data) {
  const bool file = fd_ != STDOUT_FILENO;
  if (file && size_ > 0 && size_ + data.size() > options_.max_bytes) rotate();
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      log::error("audit: cannot write " + options_.path + ": " + std::strerror(errno) + "; " +
                 std::to_string(data.size() - off) + " bytes of audit lines lost");
      break;
    }
    off += static_cast<size_t>(n);
  }
  size_ += off;
  if (file && (options_.sync ? options_.sync(fd_) : ::fdatasync(fd_)) != 0) {
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    log::error("audit: cannot fsync " + options_.path + ": " + std::strerror(errno));
  }
  groups_.fetch_add(1, std::memory_order_relaxed);
}

void AuditLog::writer_loop() {
  std::deque<std::pair<uint64_t, std::string>> group;
  std::string data;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      has_work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      group.swap(queue_);
    }
    has_room_.notify_all();
    data.clear();
    for (const auto& [seq, line] : group) {
      data += line;
      data += '\n';
    }
    const uint64_t last = group.back().first;
    const size_t n = group.size();
    group.clear();
    write_group(data);
    written_count_.fetch_add(n, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_seq_ = last;
    }
    written_.notify_all();
  }
}

AuditLog::Stats AuditLog::stats() const {
  Stats s;
  s.events = events_.load(std::memory_order_relaxed);
  s.written = written_count_.load(std::memory_order_relaxed);
  s.groups = groups_.load(std::memory_order_relaxed);
  s.rotations = rotations_.load(std::memory_order_relaxed);
  s.write_errors = write_errors_.load(std::memory_order_relaxed);
  s.waits = waits_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  s.queued = queue_.size();
  return s;
}

AuditPage AuditLog::read(const AuditQuery& q) const {
  AuditPage page;
  if (!readable()) return page;
  // Open every file first, under the rotation lock: an open file stays the same file whatever is
  // renamed while it is read.
  std::vector<std::unique_ptr<std::ifstream>> files;
  {
    std::lock_guard<std::mutex> lock(files_mu_);
    for (int i = options_.keep; i >= 0; --i) {
      auto f = std::make_unique<std::ifstream>(i ? rotated(i) : options_.path, std::ios::binary);
      if (*f) files.push_back(std::move(f));
    }
  }
  const size_t want = q.limit + 1;  // one more tells whether there is a next page
  std::vector<std::pair<uint64_t, std::string>> found;
  std::string line;
  for (auto& f : files) {
    while (found.size() < want && std::getline(*f, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned()) continue;  // a torn line
      const uint64_t seq = j["seq"].get<uint64_t>();
      if (seq <= q.after) continue;
      if (!q.since.empty() && (!j["time"].is_string() || j["time"].get<std::string>() < q.since)) continue;
      if (q.session && !(j["session_id"].is_string() && j["session_id"].get<std::string>() == *q.session)) continue;
      if (q.ns && !(j["namespace"].is_string() && j["namespace"].get<std::string>() == *q.ns)) continue;
      found.emplace_back(seq, line);
    }
    if (f->bad()) throw std::runtime_error("cannot read the audit trail");
    if (found.size() >= want) break;
  }
  if (found.size() > q.limit) {
    found.pop_back();
    page.cursor = found.back().first;
  }
  for (auto& [seq, l] : found) page.lines.push_back(std::move(l));
  return page;
}

}  // namespace era::obs

// AuditLog: the audit trail, one JSON line per state change and per denial (obs/http_observer.h
// decides which requests those are), and the reader behind GET /api/audit.
//
// Writing: record() formats the line on the caller's thread and puts it on a bounded queue; one
// background writer takes everything queued at once, appends it with one write() and fdatasync()s the
// group (group commit: under load one fsync covers many events, idle it is one per event). When the
// queue is full, record() waits for the writer to make room: an acknowledged write's audit line is
// never dropped, and a disk slower than the request rate slows the writes down instead (each wait is
// counted). A failed write() or fsync is logged and counted, and the writer goes on with the next group.
//
// Rotation by size: before a group would take the file past max_bytes, the file is renamed to
// <path>.1 (the older ones shift up to <path>.<keep>, the oldest is deleted) and a new one is started.
// The trail is per process: each replica writes its own file.
//
// Each event carries a sequence number ("seq"), increasing across rotations and restarts (the last
// one is read back from the newest file at start); a page of the reader ends with the seq to resume
// after (the cursor), so paging neither repeats nor skips lines while the files rotate.
//
// path "-" writes to stdout (no fsync, no rotation; the reader then has nothing to read).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace era::obs {

struct AuditEvent {
  int64_t time_ms = 0;        // unix milliseconds
  std::string request_id;
  std::string session_id;     // "" for the admin or an unauthenticated caller
  std::string principal;      // "admin", "session" or "anonymous"
  std::string ns;             // "" when the request names none
  std::string surface;        // kv, d1, r2, resources, sessions, run, other
  std::string operation;      // put, delete, query, exec, batch, create, revoke, run, read, ...
  std::string object;         // the key, object key or session id; "" when none
  uint64_t bytes = 0;         // request body bytes
  int status = 0;
  std::string outcome;        // "ok", "denied" or "error" (a 5xx: the state is unknown)
  std::string code;           // the error code, "" on success
};

struct AuditOptions {
  std::string path;              // file, or "-" for stdout
  uint64_t max_bytes = 64u << 20;
  int keep = 5;                  // rotated files kept
  size_t queue_capacity = 10000; // events waiting for the writer
  // How a group is made durable: fdatasync unless set (tests hold the writer here).
  std::function<int(int fd)> sync;
};

struct AuditQuery {
  std::optional<std::string> session;
  std::optional<std::string> ns;
  std::string since;  // ISO 8601 UTC with milliseconds ("" for no bound): events at or after it
  size_t limit = 100;
  uint64_t after = 0;  // the cursor: events with a greater seq
};

struct AuditPage {
  std::vector<std::string> lines;  // JSON lines, oldest first
  std::optional<uint64_t> cursor;  // resume after this seq; nullopt when there is no more
};

class AuditLog {
 public:
  explicit AuditLog(AuditOptions options);  // opens the file (throws std::runtime_error), starts the writer
  ~AuditLog();                              // writes what is queued, stops the writer
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  void record(const AuditEvent& event);
  // Returns once every event recorded before the call is written and fsynced (or failed to be).
  void flush();

  bool readable() const { return options_.path != "-"; }
  // Reads the rotated files and the current one, oldest first. Throws std::runtime_error on a read error.
  AuditPage read(const AuditQuery& query) const;

  struct Stats {
    uint64_t events = 0;        // recorded
    uint64_t written = 0;       // written and fsynced
    uint64_t groups = 0;        // fsyncs (groups written)
    uint64_t rotations = 0;
    uint64_t write_errors = 0;
    uint64_t waits = 0;         // times record() waited for a full queue
    uint64_t queued = 0;        // waiting now
  };
  Stats stats() const;
  const AuditOptions& options() const { return options_; }

  // The line for an event (without the newline); for tests.
  static std::string format(const AuditEvent& event, uint64_t seq);
  // "2026-11-29T22:00:00.123Z" for unix milliseconds.
  static std::string iso_time(int64_t ms);

 private:
  void writer_loop();
  void write_group(const std::string& data);
  void rotate();
  void open_current();
  std::string rotated(int i) const { return options_.path + "." + std::to_string(i); }

  AuditOptions options_;
  int fd_ = -1;
  uint64_t size_ = 0;

  mutable std::mutex mu_;
  std::condition_variable has_work_, has_room_, written_;
  std::deque<std::pair<uint64_t, std::string>> queue_;  // (seq, line)
  uint64_t next_seq_ = 1;      // under mu_
  uint64_t done_seq_ = 0;      // last seq written (under mu_)
  bool stopping_ = false;
  mutable std::mutex files_mu_;  // held while renaming, and while a reader opens the files

  std::atomic<uint64_t> events_{0}, written_count_{0}, groups_{0}, rotations_{0}, write_errors_{0}, waits_{0};
  std::thread writer_;
};

}  // namespace era::obs

#include <doctest/doctest.h>

#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "obs/audit.h"

using namespace era::obs;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/era-audit-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
};

AuditEvent event(const std::string& session, const std::string& ns, const std::string& key, int64_t ms = 1764453600000) {
  AuditEvent e;
  e.time_ms = ms;
  e.request_id = "abcd1234-1";
  e.session_id = session;
  e.principal = session.empty() ? "admin" : "session";
  e.ns = ns;
  e.surface = "kv";
  e.operation = "put";
  e.object = key;
  e.bytes = 64;
  e.status = 200;
  e.outcome = "ok";
  return e;
}

std::vector<uint64_t> seqs(const AuditPage& p) {
  std::vector<uint64_t> out;
  for (const auto& l : p.lines) out.push_back(nlohmann::json::parse(l)["seq"].get<uint64_t>());
  return out;
}

std::vector<uint64_t> all_seqs(const AuditLog& log, size_t page_size) {
  std::vector<uint64_t> out;
  AuditQuery q;
  q.limit = page_size;
  for (;;) {
    AuditPage p = log.read(q);
    for (auto s : seqs(p)) out.push_back(s);
    if (!p.cursor) break;
    q.after = *p.cursor;
  }
  return out;
}

}  // namespace

TEST_CASE("audit line: every field, nulls for absent ones, a hostile key escaped") {
  AuditEvent e = event("", "", "k\"\n\xff");
  e.code = "";
  const auto j = nlohmann::json::parse(AuditLog::format(e, 7));
  CHECK(j["seq"] == 7);
  CHECK(j["time"] == "2025-11-29T22:00:00.000Z");
  CHECK(j["session_id"].is_null());
  CHECK(j["namespace"].is_null());
  CHECK(j["principal"] == "admin");
  CHECK(j["object"] == "k\"\n\xef\xbf\xbd");  // invalid UTF-8 replaced, the line stays one line
  CHECK(j["code"].is_null());
  CHECK(AuditLog::format(e, 7).find('\n') == std::string::npos);
}

TEST_CASE("audit: rotation by size keeps `keep` files, drops the oldest, and paging reads across them in order") {
  TempDir dir;
  const std::string path = (dir.path / "audit.log").string();
  {
    AuditLog log({path, 1000, 2, 100, nullptr});
    for (int i = 0; i < 20; ++i) {
      log.record(event("ses_a", "ns1", "key" + std::to_string(i)));
      log.flush();  // one group per event: deterministic file contents
    }
    CHECK(fs::exists(path + ".1"));
    CHECK(fs::exists(path + ".2"));
    CHECK_FALSE(fs::exists(path + ".3"));
    CHECK(fs::file_size(path) <= 1000);
    CHECK(fs::file_size(path + ".1") <= 1000);
    CHECK(log.stats().rotations >= 3);
    auto got = all_seqs(log, 1000);
    REQUIRE_FALSE(got.empty());
    CHECK(got.back() == 20);
    CHECK(got.front() > 1);  // the oldest file is gone
    for (size_t i = 1; i < got.size(); ++i) CHECK(got[i] == got[i - 1] + 1);
    CHECK(all_seqs(log, 2) == got);  // pages of 2 see the same lines, none twice
  }
  // A restart continues the sequence (from the newest file).
  AuditLog again({path, 1000, 2, 100, nullptr});
  again.record(event("ses_a", "ns1", "after"));
  again.flush();
  CHECK(all_seqs(again, 1000).back() == 21);
}

TEST_CASE("audit: a line cut short by a crash is skipped and does not swallow the next one") {
  TempDir dir;
  const std::string path = (dir.path / "audit.log").string();
  {
    AuditLog log({path, 1 << 20, 2, 100, nullptr});
    log.record(event("ses_a", "ns1", "one"));
  }
  std::ofstream(path, std::ios::app) << "{\"seq\":2,\"time\":\"20";  // torn
  AuditLog log({path, 1 << 20, 2, 100, nullptr});
  log.record(event("ses_a", "ns1", "two"));
  log.flush();
  CHECK(all_seqs(log, 10) == std::vector<uint64_t>{1, 2});
}

TEST_CASE("audit: events queued while a group is being synced go out together in the next group") {
  TempDir dir;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  int syncs = 0;
  AuditOptions o{(dir.path / "audit.log").string(), 1 << 20, 2, 1000, nullptr};
  o.sync = [&](int fd) {
    std::unique_lock<std::mutex> lock(mu);
    if (++syncs == 1) {
      cv.notify_all();
      cv.wait(lock, [&] { return release; });  // the writer is held in its first fsync
    }
    return ::fdatasync(fd);
  };
  AuditLog log(o);
  log.record(event("ses_a", "ns1", "first"));
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return syncs == 1; });
  }
  for (int i = 0; i < 50; ++i) log.record(event("ses_a", "ns1", "k" + std::to_string(i)));
  CHECK(log.stats().queued == 50);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  log.flush();
  const auto s = log.stats();
  CHECK(s.written == 51);
  CHECK(s.groups == 2);  // 1, then the 50 with one fsync
  CHECK(syncs == 2);
  CHECK(all_seqs(log, 1000).size() == 51);
}

TEST_CASE("audit: a full queue makes record() wait for the writer; nothing is dropped") {
  TempDir dir;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  bool held = false;
  AuditOptions o{(dir.path / "audit.log").string(), 1 << 20, 2, 3, nullptr};
  o.sync = [&](int fd) {
    std::unique_lock<std::mutex> lock(mu);
    if (!held) {
      held = true;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });
    }
    return ::fdatasync(fd);
  };
  AuditLog log(o);
  log.record(event("ses_a", "ns1", "first"));
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return held; });
  }
  for (int i = 0; i < 3; ++i) log.record(event("ses_a", "ns1", "q" + std::to_string(i)));  // fills the queue
  std::thread producer([&] { log.record(event("ses_a", "ns1", "waits")); });
  while (log.stats().waits == 0) std::this_thread::yield();  // the producer is blocked on the full queue
  CHECK(log.stats().events == 4);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  producer.join();
  log.flush();
  CHECK(log.stats().written == 5);
  CHECK(log.stats().waits == 1);
  CHECK(all_seqs(log, 100) == std::vector<uint64_t>{1, 2, 3, 4, 5});
}

TEST_CASE("audit: filters by session, namespace and time") {
  TempDir dir;
  AuditLog log({(dir.path / "audit.log").string(), 1 << 20, 2, 100, nullptr});
  log.record(event("ses_a", "ns1", "a", 1000));
  log.record(event("ses_b", "ns1", "b", 2000));
  log.record(event("ses_a", "ns2", "c", 3000));
  log.record(event("", "ns2", "d", 4000));
  log.flush();
  AuditQuery q;
  q.session = "ses_a";
  CHECK(seqs(log.read(q)) == std::vector<uint64_t>{1, 3});
  q = {};
  q.ns = "ns2";
  CHECK(seqs(log.read(q)) == std::vector<uint64_t>{3, 4});
  q = {};
  q.since = AuditLog::iso_time(2000);
  CHECK(seqs(log.read(q)) == std::vector<uint64_t>{2, 3, 4});
  q.session = "ses_a";
  q.ns = "ns2";
  CHECK(seqs(log.read(q)) == std::vector<uint64_t>{3});
  q = {};
  q.limit = 3;
  auto p = log.read(q);
  CHECK(seqs(p) == std::vector<uint64_t>{1, 2, 3});
  REQUIRE(p.cursor);
  q.after = *p.cursor;
  p = log.read(q);
  CHECK(seqs(p) == std::vector<uint64_t>{4});
  CHECK_FALSE(p.cursor);
}

#include <doctest/doctest.h>

#include <dirent.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "store/local/local_r2.h"
#include "util/error.h"
#include "util/md5.h"
#include "support.h"

using era::test::status_of;

using namespace era;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  era::test::TempDir tmp{"r2"};
  std::string dir;
  std::atomic<int64_t> now{1'700'000'000'123};
  std::unique_ptr<sqlite::Writer> writer;
  std::unique_ptr<sqlite::ReaderPool> readers;
  std::unique_ptr<LocalR2> local;
  ObjectStore* r2 = nullptr;  // the tests go through the interface

  Fixture() {
    dir = tmp.str();
    open();
  }
  void open() {
    writer = std::make_unique<sqlite::Writer>(dir + "/meta.sqlite3");
    readers = std::make_unique<sqlite::ReaderPool>(dir + "/meta.sqlite3", 4);
    local = std::make_unique<LocalR2>(*writer, *readers, dir + "/objects", [this] { return now.load(); });
    r2 = local.get();
  }
  void close() {
    r2 = nullptr;
    local.reset();
    readers.reset();
    writer.reset();
  }
  ~Fixture() {
    close();
  }

  // Every regular file under objects/, as paths relative to it.
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (auto& e : fs::recursive_directory_iterator(dir + "/objects"))
      if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir + "/objects").string());
    return out;
  }
};

// A source that pushes `data` in chunks of `chunk` bytes.
ChunkSource chunks(const std::string& data, size_t chunk = 7) {
  return [data, chunk](const ChunkSink& sink) {
    for (size_t i = 0; i < data.size(); i += chunk)
      if (!sink(data.data() + i, std::min(chunk, data.size() - i))) return;
  };
}

ObjectInfo put(ObjectStore& r2, const std::string& ns, const std::string& key, const std::string& data,
               PutOptions options = {}) {
  return r2.put(ns, key, options, chunks(data));
}

std::string read_all(ObjectReader& r, size_t step = 1000) {
  std::string out, buf(step, '\0');
  while (size_t n = r.read(buf.data(), buf.size())) out.append(buf.data(), n);
  return out;
}

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

}  // namespace

TEST_CASE("put/get round-trips every byte value, with etag, metadata and content type") {
  Fixture f;
  std::string data;
  for (int rep = 0; rep < 300; ++rep) data += all_bytes();
  PutOptions o;
  o.content_type = "image/jpeg";
  o.custom_metadata = {{"user_id", "123"}, {"ünï", "cödé"}};
  ObjectInfo info = put(*f.r2, "ns", "avatars/a.jpg", data, o);
  CHECK(info.size == data.size());
  CHECK(info.etag == Md5::hex_of(data));
  CHECK(info.uploaded_ms == f.now);

  auto r = f.r2->get("ns", "avatars/a.jpg");
  REQUIRE(r);
  CHECK(r->has_body());
  CHECK(r->offset() == 0);
  CHECK(r->length() == data.size());
  CHECK(read_all(*r) == data);
  CHECK(r->info().etag == info.etag);
  CHECK(r->info().content_type == "image/jpeg");
  CHECK(r->info().custom_metadata == o.custom_metadata);
  CHECK(r->info().key == "avatars/a.jpg");

  auto h = f.r2->head("ns", "avatars/a.jpg");
  REQUIRE(h);
  CHECK(h->size == data.size());
  CHECK(h->custom_metadata == o.custom_metadata);
}

TEST_CASE("empty objects and single-chunk objects") {
  Fixture f;
  ObjectInfo info = put(*f.r2, "ns", "empty", "");
  CHECK(info.size == 0);
  CHECK(info.etag == "d41d8cd98f00b204e9800998ecf8427e");  // MD5 of nothing
  auto r = f.r2->get("ns", "empty");
  REQUIRE(r);
  CHECK(r->length() == 0);
  CHECK(read_all(*r).empty());
  CHECK(f.r2->put("ns", "one", {}, [](const ChunkSink& s) { s("x", 1); }).size == 1);
}

TEST_CASE("missing objects: get, head and remove") {
  Fixture f;
  CHECK_FALSE(f.r2->get("ns", "nope"));
  CHECK_FALSE(f.r2->head("ns", "nope"));
  CHECK_FALSE(f.r2->remove("ns", "nope"));
  put(*f.r2, "ns", "k", "v");
  CHECK(f.r2->remove("ns", "k"));
  CHECK_FALSE(f.r2->get("ns", "k"));
  CHECK(f.files().empty());  // the blob went with the row
}

TEST_CASE("namespaces never see each other's objects") {
  Fixture f;
  put(*f.r2, "a", "b/x", "1");
  put(*f.r2, "ab", "x", "2");
  put(*f.r2, "a_b", "x", "3");
  CHECK_FALSE(f.r2->get("a", "x"));
  CHECK_FALSE(f.r2->get("ab", "b/x"));
  auto page = f.r2->list("a", {});
  REQUIRE(page.objects.size() == 1);
  CHECK(page.objects[0].key == "b/x");
  CHECK(f.r2->list("ab", {}).objects.size() == 1);
  CHECK(f.r2->list("a_b", {}).objects.size() == 1);
}

TEST_CASE("hostile keys are only data: file names come from random ids") {
  Fixture f;
  const std::vector<std::string> keys = {"../../etc/passwd", "/etc/passwd", "..", ".", std::string("a\0b", 3),
                                         std::string(1024, 'k'), "dir/", "a//b", "\xe2\x82\xac/\xf0\x9f\x98\x80"};
  for (const auto& k : keys) put(*f.r2, "ns", k, "data:" + k);
  for (const auto& k : keys) {
    auto r = f.r2->get("ns", k);
    REQUIRE(r);
    CHECK(read_all(*r) == "data:" + k);
  }
  auto names = f.files();
  CHECK(names.size() == keys.size());
  for (const auto& n : names) {
    // xx/<32 hex>: nothing of any key in any path.
    REQUIRE(n.size() == 35);
    CHECK(n.substr(0, 2) == n.substr(3, 2));
    CHECK(n.find_first_not_of("0123456789abcdef/") == std::string::npos);
  }
  CHECK_FALSE(fs::exists(f.dir + "/etc"));
  CHECK(f.r2->list("ns", {}).objects.size() == keys.size());
}

TEST_CASE("overwrite replaces the object; an open reader keeps reading the version it opened") {
  Fixture f;
  const std::string v1(100000, 'a'), v2(5000, 'b');
  put(*f.r2, "ns", "k", v1);
  auto old_reader = f.r2->get("ns", "k");
  REQUIRE(old_reader);
  char first[10];
  REQUIRE(old_reader->read(first, sizeof first) == 10);
  put(*f.r2, "ns", "k", v2);
  auto new_reader = f.r2->get("ns", "k");
  CHECK(read_all(*new_reader) == v2);
  f.r2->remove("ns", "k");
  CHECK(std::string(first, 10) + read_all(*old_reader) == v1);  // whole, not torn
  CHECK(f.files().empty());  // both blobs are gone (the open one once its reader closes)
}

TEST_CASE("a failed upload stores nothing and keeps the previous object") {
  Fixture f;
  put(*f.r2, "ns", "k", "old");
  ChunkSource failing = [](const ChunkSink& sink) {
    sink("new bytes", 9);
    throw ApiError(400, "incomplete_body", "the client went away");
  };
  CHECK(status_of([&] { f.r2->put("ns", "k", {}, failing); }) == 400);
  CHECK(status_of([&] { f.r2->put("ns", "fresh", {}, failing); }) == 400);
  CHECK(read_all(*f.r2->get("ns", "k")) == "old");
  CHECK_FALSE(f.r2->head("ns", "fresh"));
  CHECK(f.files().size() == 1);  // no temp file, no blob of the failed uploads

  PutOptions o;
  o.size = 10;  // announced 10, sent 3
  CHECK(status_of([&] { put(*f.r2, "ns", "k", "abc", o); }) == 400);
  CHECK(read_all(*f.r2->get("ns", "k")) == "old");
  CHECK(f.files().size() == 1);
}

TEST_CASE("preconditions: compare-and-swap on the etag") {
  Fixture f;
  const ObjectInfo v1 = put(*f.r2, "ns", "k", "one");
  PutOptions o;

  o.precondition.if_match = std::vector<std::string>{"0123"};
  bool read_body = false;
  ChunkSource src = [&](const ChunkSink& sink) {
    read_body = true;
    sink("two", 3);
  };
  CHECK(status_of([&] { f.r2->put("ns", "k", o, src); }) == 412);
  CHECK_FALSE(read_body);  // refused before the body was read
  CHECK(read_all(*f.r2->get("ns", "k")) == "one");

  o.precondition.if_match = std::vector<std::string>{"0123", v1.etag};
  const ObjectInfo v2 = f.r2->put("ns", "k", o, src);
  CHECK(read_all(*f.r2->get("ns", "k")) == "two");
  // The same If-Match again is stale now.
  CHECK(status_of([&] { put(*f.r2, "ns", "k", "three", o); }) == 412);

  o.precondition.if_match = std::vector<std::string>{"*"};
  CHECK(status_of([&] { put(*f.r2, "ns", "absent", "x", o); }) == 412);
  CHECK_FALSE(f.r2->head("ns", "absent"));

  o.precondition = {};
  o.precondition.if_none_match = std::vector<std::string>{"*"};  // create only
  CHECK(status_of([&] { put(*f.r2, "ns", "k", "three", o); }) == 412);
  CHECK(put(*f.r2, "ns", "created", "x", o).size == 1);
  CHECK(f.r2->head("ns", "k")->etag == v2.etag);
  CHECK(f.files().size() == 2);
}

TEST_CASE("the commit-time check wins a race the early check cannot see") {
  Fixture f;
  const ObjectInfo v1 = put(*f.r2, "ns", "k", "one");
  PutOptions o;
  o.precondition.if_match = std::vector<std::string>{v1.etag};
  // While this upload streams (after the early check passed), another writer replaces the object.
  ChunkSource src = [&](const ChunkSink& sink) {
    put(*f.r2, "ns", "k", "intruder");
    sink("mine", 4);
  };
  CHECK(status_of([&] { f.r2->put("ns", "k", o, src); }) == 412);
  CHECK(read_all(*f.r2->get("ns", "k")) == "intruder");
  CHECK(f.files().size() == 1);
}

TEST_CASE("ranges: offset, offset+length, suffix, clamping and 416") {
  Fixture f;
  std::string data = all_bytes();
  put(*f.r2, "ns", "k", data);
  auto get_range = [&](ByteRange r) {
    GetOptions o;
    o.range = r;
    return f.r2->get("ns", "k", o);
  };
  auto r = get_range({10, 5, std::nullopt});
  CHECK(r->offset() == 10);
  CHECK(r->length() == 5);
  CHECK(read_all(*r, 2) == data.substr(10, 5));
  CHECK(read_all(*get_range({250, std::nullopt, std::nullopt})) == data.substr(250));
  CHECK(read_all(*get_range({250, 100, std::nullopt})) == data.substr(250));  // cut at the end
  CHECK(read_all(*get_range({std::nullopt, std::nullopt, 3})) == data.substr(253));
  CHECK(read_all(*get_range({std::nullopt, std::nullopt, 1000})) == data);
  CHECK(status_of([&] { get_range({256, std::nullopt, std::nullopt}); }) == 416);
  CHECK(status_of([&] { get_range({std::nullopt, std::nullopt, 0}); }) == 416);
  put(*f.r2, "ns", "empty", "");
  GetOptions o;
  o.range = ByteRange{0, std::nullopt, std::nullopt};
  CHECK(status_of([&] { f.r2->get("ns", "empty", o); }) == 416);
  try {
    get_range({300, std::nullopt, std::nullopt});
    FAIL("expected 416");
  } catch (const ApiError& e) {
    CHECK(e.unsatisfiable_size == 256u);  // the meaning: http/ writes Content-Range: bytes */256
    CHECK(e.header.first.empty());
  }
}

TEST_CASE("get with a condition that fails gives the info without a body") {
  Fixture f;
  const ObjectInfo v = put(*f.r2, "ns", "k", "abc");
  GetOptions o;
  o.only_if.if_none_match = std::vector<std::string>{v.etag};
  o.range = ByteRange{100, std::nullopt, std::nullopt};  // unsatisfiable, but the condition comes first
  auto r = f.r2->get("ns", "k", o);
  REQUIRE(r);
  CHECK_FALSE(r->has_body());
  CHECK(r->info().etag == v.etag);
  char c;
  CHECK(r->read(&c, 1) == 0);
  o.only_if.if_none_match = std::vector<std::string>{"other"};
  o.range.reset();
  CHECK(f.r2->get("ns", "k", o)->has_body());
}

TEST_CASE("list: byte order, prefix, pages with a cursor") {
  Fixture f;
  std::vector<std::string> keys;
  for (int i = 0; i < 25; ++i) keys.push_back("p/" + std::to_string(100 + i));
  keys.push_back("q");
  keys.push_back(std::string("p/\0", 3));
  keys.push_back("p/\xc3\xa9");
  for (const auto& k : keys) put(*f.r2, "ns", k, k);
  std::set<std::string> expected;
  for (const auto& k : keys)
    if (k.rfind("p/", 0) == 0) expected.insert(k);

  std::vector<std::string> seen;
  ListOptions o;
  o.prefix = "p/";
  o.limit = 4;
  for (int pages = 0; pages < 20; ++pages) {
    ObjectPage page = f.r2->list("ns", o);
    CHECK(page.objects.size() <= 4);
    for (auto& obj : page.objects) {
      seen.push_back(obj.key);
      CHECK(obj.size == obj.key.size());
    }
    if (!page.truncated) break;
    CHECK_FALSE(page.cursor.empty());
    o.cursor = page.cursor;
  }
  CHECK(seen == std::vector<std::string>(expected.begin(), expected.end()));  // byte order, each once

  o.cursor = "not a cursor!";
  CHECK(status_of([&] { f.r2->list("ns", o); }) == 400);
}

TEST_CASE("list with a delimiter rolls keys up into prefixes, and pages across them") {
  Fixture f;
  for (const char* k : {"a.txt", "dir1/x", "dir1/y", "dir1/sub/z", "dir2/x", "e.txt", "photos/2024/jan.jpg"})
    put(*f.r2, "ns", k, "x");
  ListOptions o;
  o.delimiter = "/";
  ObjectPage all = f.r2->list("ns", o);
  std::vector<std::string> objs;
  for (auto& x : all.objects) objs.push_back(x.key);
  CHECK(objs == std::vector<std::string>{"a.txt", "e.txt"});
  CHECK(all.delimited_prefixes == std::vector<std::string>{"dir1/", "dir2/", "photos/"});
  CHECK_FALSE(all.truncated);

  // Objects and prefixes share the limit; the cursor resumes after a prefix, not inside it.
  std::vector<std::string> walk;
  o.limit = 2;
  for (int pages = 0; pages < 10; ++pages) {
    ObjectPage p = f.r2->list("ns", o);
    CHECK(p.objects.size() + p.delimited_prefixes.size() <= 2);
    for (auto& x : p.objects) walk.push_back(x.key);
    for (auto& x : p.delimited_prefixes) walk.push_back(x);
    if (!p.truncated) break;
    o.cursor = p.cursor;
  }
  std::sort(walk.begin(), walk.end());
  CHECK(walk == std::vector<std::string>{"a.txt", "dir1/", "dir2/", "e.txt", "photos/"});

  ListOptions sub;
  sub.prefix = "dir1/";
  sub.delimiter = "/";
  ObjectPage p = f.r2->list("ns", sub);
  CHECK(p.objects.size() == 2);
  CHECK(p.delimited_prefixes == std::vector<std::string>{"dir1/sub/"});
}

TEST_CASE("start-up removes temp files and blobs no row points at, and keeps the rest") {
  Fixture f;
  put(*f.r2, "ns", "kept", "kept");
  f.close();
  std::ofstream(f.dir + "/objects/tmp/0123456789abcdef0123456789abcdef.tmp") << "partial upload";
  std::ofstream(f.dir + "/objects/ab/ab000000000000000000000000000000") << "renamed, never committed";
  f.open();
  CHECK(f.local->startup_cleanup().temp_files == 1);
  CHECK(f.local->startup_cleanup().orphan_blobs == 1);
  CHECK(f.files().size() == 1);
  CHECK(read_all(*f.r2->get("ns", "kept")) == "kept");
}

TEST_CASE("concurrent writers to one key: the last commit wins whole, and one blob remains") {
  Fixture f;
  std::vector<std::string> bodies;
  for (int t = 0; t < 6; ++t) bodies.push_back(std::string(20000 + t * 1000, static_cast<char>('a' + t)));
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < 5; ++i) f.r2->put("ns", "hot", {}, chunks(bodies[t], 999));
      } catch (...) {
        ++errors;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(errors == 0);
  std::string got = read_all(*f.r2->get("ns", "hot"));
  CHECK(std::find(bodies.begin(), bodies.end(), got) != bodies.end());
  CHECK(f.r2->head("ns", "hot")->etag == Md5::hex_of(got));
  CHECK(f.files().size() == 1);
}

TEST_CASE("Precondition::holds follows If-Match / If-None-Match") {
  Precondition p;
  CHECK(p.holds(std::nullopt));
  CHECK(p.holds(std::string("e")));
  p.if_match = std::vector<std::string>{"*"};
  CHECK_FALSE(p.holds(std::nullopt));
  CHECK(p.holds(std::string("e")));
  p.if_match = std::vector<std::string>{"a", "e"};
  CHECK(p.holds(std::string("e")));
  CHECK_FALSE(p.holds(std::string("x")));
  p = {};
  p.if_none_match = std::vector<std::string>{"*"};
  CHECK(p.holds(std::nullopt));
  CHECK_FALSE(p.holds(std::string("e")));
  p.if_none_match = std::vector<std::string>{"e"};
  CHECK_FALSE(p.holds(std::string("e")));
  CHECK(p.holds(std::string("x")));
}

TEST_CASE("the registry's r2 counters follow puts, replacements, failed puts and deletes") {
  Fixture f;
  auto counter = [&](const std::string& ns) {
    auto db = f.readers->lease();
    sqlite::StmtUse st(db->cached("SELECT count, bytes FROM resource_counters WHERE type = 'r2' AND ns = ?1"));
    st->bind_text(1, ns);
    return st->step() ? std::make_pair(st->int64(0), st->int64(1)) : std::make_pair(int64_t(0), int64_t(0));
  };
  put(*f.r2, "ns", "a", "12345");
  put(*f.r2, "ns", "b", "1");
  put(*f.r2, "other", "a", "1");
  CHECK(counter("ns") == std::make_pair(int64_t(2), int64_t(6)));
  put(*f.r2, "ns", "a", "12");  // replaced: same count, new bytes
  CHECK(counter("ns") == std::make_pair(int64_t(2), int64_t(3)));
  PutOptions o;
  o.precondition.if_none_match = std::vector<std::string>{"*"};
  CHECK(status_of([&] { put(*f.r2, "ns", "a", "1234567", o); }) == 412);
  CHECK(counter("ns") == std::make_pair(int64_t(2), int64_t(3)));
  f.r2->remove("ns", "a");
  f.r2->remove("ns", "a");
  CHECK(counter("ns") == std::make_pair(int64_t(1), int64_t(1)));
  f.r2->remove("ns", "b");
  CHECK(counter("ns") == std::make_pair(int64_t(0), int64_t(0)));
  CHECK(counter("other") == std::make_pair(int64_t(1), int64_t(1)));
}

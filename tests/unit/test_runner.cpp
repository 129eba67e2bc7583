// The runner: per-session working directories, the SDK and environment it injects, concurrency.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <future>
#include <thread>
#include <string>

#include "runner/runner.h"
#include "support.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace era;
using namespace era::runner;
using era::test::status_of;
using era::test::wait_until;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

struct Fixture {
  era::test::TempDir dir{"runner"};
  fs::path root = dir.path();
  RunnerOptions opts;
  Fixture() {
    opts.sessions_dir = (root / "sessions").string();
    opts.sdk_python = "def hello():\n    return 'hello from the sdk'\n";
    opts.sdk_js = "module.exports = { hello: async () => 'hello from the js sdk' };\n";
    if (::geteuid() == 0) opts.run_as = std::make_pair(uid_t(65534), gid_t(65534));
    opts.default_timeout_s = 10;
    opts.max_timeout_s = 20;
  }
  RunRequest py(const std::string& session, const std::string& code) {
    RunRequest r;
    r.session_id = session;
    r.language = Language::python;
    r.token = "token-of-" + session;
    r.code = code;
    return r;
  }
  // A run that marks that it started (the file "started" in its working directory), then stays until
  // the test lets it go (release()): the test waits on those events, never on the clock.
  RunRequest held(const std::string& session) {
    RunRequest r = py(session, R"(import os, time
open('started', 'w').close()
while not os.path.exists('release'):
    time.sleep(0.01)
)");
    r.timeout_s = 20;
    return r;
  }
  bool started(Runner& runner, const std::string& session) {
    return fs::exists(fs::path(runner.session_dir(session)) / "started");
  }
  void release(Runner& runner, const std::string& session) {
    std::ofstream(fs::path(runner.session_dir(session)) / "release") << "go";
  }
};

template <typename T>
bool finished(std::future<T>& f) {
  return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

}  // namespace

TEST_CASE("runner: the guide's environment and SDK, in Python") {
  Fixture f;
  Runner runner(f.opts);
  auto r = runner.run(f.py("ses_a", R"(import os, era_storage
print(era_storage.hello())
for k in ("ERA_SESSION", "ERA_SESSION_ID", "ERA_LANGUAGE", "ERA_STORAGE_TOKEN", "GREETING"):
    print(k, os.environ.get(k))
)"));
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_data ==
        "hello from the sdk\nERA_SESSION true\nERA_SESSION_ID ses_a\nERA_LANGUAGE python\n"
        "ERA_STORAGE_TOKEN token-of-ses_a\nGREETING None\n");
  CHECK(fs::exists(fs::path(runner.session_dir("ses_a")) / "era_storage.py"));
  CHECK(fs::exists(fs::path(runner.session_dir("ses_a")) / "era_storage.js"));
}

TEST_CASE("runner: JavaScript requires ./era_storage.js and may await at the top level") {
  Fixture f;
  Runner runner(f.opts);
  RunRequest req = f.py("ses_js", R"(const { hello } = require('./era_storage.js');
const msg = await hello();
console.log(msg, process.env.ERA_LANGUAGE, process.env.GREETING);
)");
  req.language = Language::javascript;
  req.env = {{"GREETING", "hi"}};
  auto r = runner.run(req);
  CHECK(r.stderr_data == "");
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_data == "hello from the js sdk javascript hi\n");

  req.code = "await Promise.reject(new Error('boom'));";
  auto failed = runner.run(req);
  CHECK(failed.exit_code == 1);
  CHECK(failed.stderr_data.find("boom") != std::string::npos);
}

TEST_CASE("runner: a session's files persist across runs and go with remove_session") {
  Fixture f;
  Runner runner(f.opts);
  CHECK(runner.run(f.py("ses_p", "open('data.txt','w').write('state')")).exit_code == 0);
  CHECK(runner.run(f.py("ses_p", "print(open('data.txt').read())")).stdout_data == "state\n");
  runner.remove_session("ses_p");
  CHECK_FALSE(fs::exists(runner.session_dir("ses_p")));
  CHECK(runner.run(f.py("ses_p", "import os; print(os.path.exists('data.txt'))")).stdout_data == "False\n");
}

TEST_CASE("runner: one session cannot reach another's directory") {
  Fixture f;
  Runner runner(f.opts);
  CHECK(runner.run(f.py("ses_victim", "open('secret.txt','w').write('s3cret')")).exit_code == 0);
  auto r = runner.run(f.py("ses_thief", R"(import os
found = []
for p in ("../ses_victim/secret.txt", "/home/ses_victim/secret.txt", "/home/session/../ses_victim/secret.txt"):
    try:
        found.append(open(p).read())
    except OSError:
        pass
for root, dirs, files in os.walk("/"):
    if root.startswith("/proc") or root.startswith("/sys") or root.startswith("/usr"):
        continue
    found += [os.path.join(root, n) for n in files if n == "secret.txt"]
print(found, os.listdir("/home"))
)"));
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_data == "[] ['session']\n");
}

TEST_CASE("runner: a symlink planted as era_storage.py is replaced, never written through") {
  Fixture f;
  Runner runner(f.opts);
  const fs::path victim = f.root / "victim.txt";
  std::ofstream(victim) << "intact";
  fs::permissions(victim, fs::perms::all);
  auto planted = runner.run(f.py("ses_s", "import os\nos.remove('era_storage.py')\nos.symlink('" +
                                              victim.string() + "', 'era_storage.py')\n"));
  CHECK(planted.exit_code == 0);
  auto r = runner.run(f.py("ses_s", "import era_storage; print(era_storage.hello())"));
  CHECK(r.stdout_data == "hello from the sdk\n");
  CHECK(read(victim) == "intact");
  CHECK_FALSE(fs::is_symlink(fs::path(runner.session_dir("ses_s")) / "era_storage.py"));

  // remove_session deletes the link, not what it points to.
  CHECK(runner.run(f.py("ses_s", "import os; os.symlink('" + f.root.string() + "', 'outside')")).exit_code == 0);
  runner.remove_session("ses_s");
  CHECK(read(victim) == "intact");
}

TEST_CASE("runner: bad requests are refused before anything runs") {
  Fixture f;
  Runner runner(f.opts);
  auto with = [&](auto change) {
    RunRequest r = f.py("ses_bad", "print(1)");
    change(r);
    return status_of([&] { runner.run(r); });
  };
  CHECK(with([](RunRequest& r) { r.env = {{"ERA_STORAGE_TOKEN", "forged"}}; }) == 400);
  CHECK(with([](RunRequest& r) { r.env = {{"BAD-NAME", "x"}}; }) == 400);
  CHECK(with([](RunRequest& r) { r.env = {{"X", std::string("a\0b", 3)}}; }) == 400);
  CHECK(with([](RunRequest& r) { r.timeout_s = 0; }) == 400);
  CHECK(with([](RunRequest& r) { r.timeout_s = 21; }) == 400);
  CHECK(with([](RunRequest& r) { r.session_id = ".."; }) == 400);
  CHECK(with([](RunRequest& r) { r.session_id = "a/b"; }) == 400);
  CHECK(with([](RunRequest& r) { r.code = std::string(kMaxCodeBytes + 1, '#'); }) == 413);
  CHECK_FALSE(fs::exists(runner.session_dir("ses_bad")));
  CHECK_FALSE(fs::exists(f.root / "sessions" / "a"));
}

TEST_CASE("runner: different sessions run side by side") {
  Fixture f;
  f.opts.max_concurrent = 2;
  Runner runner(f.opts);
  auto one = std::async(std::launch::async, [&] { return runner.run(f.held("ses_one")); });
  auto two = std::async(std::launch::async, [&] { return runner.run(f.held("ses_two")); });
  // Both are inside at once: each started while the other is still held.
  CHECK(wait_until([&] { return f.started(runner, "ses_one") && f.started(runner, "ses_two"); }));
  CHECK_FALSE(finished(one));
  CHECK_FALSE(finished(two));
  f.release(runner, "ses_one");
  f.release(runner, "ses_two");
  CHECK(one.get().exit_code == 0);
  CHECK(two.get().exit_code == 0);
}

TEST_CASE("runner: a session's runs take turns: a second run waits for the first") {
  Fixture f;
  f.opts.max_concurrent = 2;  // a free slot: only the session's own turn holds the second run back
  f.opts.queue_timeout_s = 1;
  Runner runner(f.opts);
  auto first = std::async(std::launch::async, [&] { return runner.run(f.held("ses_same")); });
  REQUIRE(wait_until([&] { return f.started(runner, "ses_same"); }));
  // The second run of the session waits for the first; held past queue_timeout_s, it is turned away
  // without having run.
  std::string code;
  CHECK(status_of([&] { runner.run(f.py("ses_same", "open('second', 'w').close()")); }, &code) == 503);
  CHECK(code == "runner_busy");
  CHECK_FALSE(fs::exists(fs::path(runner.session_dir("ses_same")) / "second"));
  CHECK_FALSE(finished(first));
  f.release(runner, "ses_same");
  CHECK(first.get().exit_code == 0);
  // Its turn came: it runs.
  CHECK(runner.run(f.py("ses_same", "open('second', 'w').close()")).exit_code == 0);
  CHECK(fs::exists(fs::path(runner.session_dir("ses_same")) / "second"));
}

TEST_CASE("runner: past max_concurrent, a run waits and then gets 503 runner_busy") {
  Fixture f;
  f.opts.max_concurrent = 1;
  f.opts.queue_timeout_s = 1;
  Runner runner(f.opts);
  auto slow = std::async(std::launch::async, [&] { return runner.run(f.held("ses_slow")); });
  REQUIRE(wait_until([&] { return f.started(runner, "ses_slow"); }));
  std::string code;
  CHECK(status_of([&] { runner.run(f.py("ses_other", "print(1)")); }, &code) == 503);
  CHECK(code == "runner_busy");
  f.release(runner, "ses_slow");
  CHECK(slow.get().exit_code == 0);
  CHECK(runner.run(f.py("ses_other", "print(1)")).stdout_data == "1\n");
}

TEST_CASE("runner: prune removes the directories of sessions that are no longer live") {
  Fixture f;
  Runner runner(f.opts);
  for (const char* id : {"ses_live", "ses_gone"}) CHECK(runner.run(f.py(id, "open('f','w').write('x')")).exit_code == 0);
  CHECK(runner.prune([](const std::string& id) { return id == "ses_live"; }) == 1);
  CHECK(fs::exists(fs::path(runner.session_dir("ses_live")) / "f"));
  CHECK_FALSE(fs::exists(runner.session_dir("ses_gone")));
}

TEST_CASE("runner: with is_live, runs prune the directories of dead sessions") {
  Fixture f;
  std::set<std::string> live = {"ses_first", "ses_second"};
  std::mutex mu;
  f.opts.is_live = [&](const std::string& id) {
    std::lock_guard<std::mutex> lock(mu);
    return live.count(id) > 0;
  };
  f.opts.prune_interval_s = 0;
  Runner runner(f.opts);
  CHECK(runner.run(f.py("ses_first", "pass")).exit_code == 0);
  {
    std::lock_guard<std::mutex> lock(mu);
    live.erase("ses_first");  // expired
  }
  CHECK(fs::exists(runner.session_dir("ses_first")));
  CHECK(runner.run(f.py("ses_second", "pass")).exit_code == 0);
  CHECK_FALSE(fs::exists(runner.session_dir("ses_first")));
  CHECK(fs::exists(runner.session_dir("ses_second")));
}

TEST_CASE("runner: env names that steer the loader or libc are refused, before anything runs") {
  Fixture f;
  Runner runner(f.opts);
  for (const char* name : {"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_DEBUG", "LD_ANYTHING", "ld_preload",
                           "Ld_Preload", "GCONV_PATH", "gconv_path", "GETCONF_DIR", "HOSTALIASES", "LOCALDOMAIN",
                           "LOCPATH", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR",
                           "MALLOC_CHECK_", "MALLOC_TRACE", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES"}) {
    RunRequest r = f.py("ses_env", "open('ran', 'w').write('x')");
    r.env = {{"HARMLESS", "x"}, {name, "/home/session/evil.so"}};
    int status = 0;
    std::string code, message;
    try {
      runner.run(r);
    } catch (const ApiError& e) {
      status = e.status();
      code = e.code();
      message = e.what();
    }
    CHECK_MESSAGE(status == 400, name);
    CHECK_MESSAGE(code == "unsafe_env", name);
    CHECK_MESSAGE(message.find(name) != std::string::npos, message);
    CHECK(message.find("refused: ") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(runner.session_dir("ses_env")));
  // Names that merely look alike, and the languages' own variables, are the caller's business.
  RunRequest ok = f.py("ses_env", "import os\nprint(os.environ['LDFLAGS'], os.environ['PYTHONPATH'], "
                                  "os.environ['MY_LD_PRELOAD'], os.environ['TMP'])");
  ok.env = {{"LDFLAGS", "-O2"}, {"PYTHONPATH", "/home/session/lib"}, {"MY_LD_PRELOAD", "x"}, {"TMP", "/tmp"}};
  auto r = runner.run(ok);
  CHECK(r.stdout_data == "-O2 /home/session/lib x /tmp\n");
  CHECK(unsafe_env_reason("LD_PRELOAD").find("dynamic loader") != std::string::npos);
  CHECK(unsafe_env_reason("NODE_OPTIONS").empty());
}

TEST_CASE("runner: working directories and the SDK files in them are the proxy's and the sandbox's alone") {
  Fixture f;
  fs::permissions(f.root, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read |
                              fs::perms::group_exec | fs::perms::others_exec);
  fs::create_directories(f.opts.sessions_dir);
  fs::permissions(f.opts.sessions_dir, fs::perms::all);  // as an operator's hand-made directory might be
  Runner runner(f.opts);
  CHECK(runner.run(f.py("ses_modes", "open('data.txt', 'w').write('tenant data')")).exit_code == 0);
  auto mode = [](const fs::path& p) {
    struct stat st;
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
  };
  const fs::path dir = runner.session_dir("ses_modes");
  CHECK(mode(f.opts.sessions_dir) == 0700);
  CHECK(mode(dir) == 0700);
  CHECK(mode(dir / "era_storage.py") == 0600);
  CHECK(mode(dir / "era_storage.js") == 0600);
  if (f.opts.run_as) {
    struct stat st;
    REQUIRE(::stat((dir / "era_storage.py").c_str(), &st) == 0);
    CHECK(st.st_uid == f.opts.run_as->first);
  }
}

TEST_CASE("runner: a disk quota bounds the bytes a session's working directory keeps on disk") {
  Fixture f;
  f.opts.disk_quota_bytes = 16 << 20;
  Runner runner(f.opts);
  if (!f.opts.run_as) {
    CHECK_FALSE(runner.disk_quota_enforced());
    MESSAGE("not root: the quota is not enforced here (the runner warns at start)");
    return;
  }
  REQUIRE(runner.disk_quota_enforced());
  auto first = runner.run(f.py("ses_quota", "open('keep.bin', 'wb').write(b'k' * (4 << 20))\nprint('kept')"));
  CHECK(first.stdout_data == "kept\n");
  CHECK(first.limits.empty());
  CHECK(first.disk_bytes > (12u << 20));
  CHECK(first.disk_bytes <= (16u << 20));
  // Past the quota: the write fails with ENOSPC inside, the run names the limit, and what is on the
  // host's disk stays within the image's size.
  auto full = runner.run(f.py("ses_quota", R"(import errno
try:
    with open('big.bin', 'wb') as f:
        for i in range(64):
            f.write(b'x' * (1 << 20))
            f.flush()
    print('wrote it all')
except OSError as e:
    print('stopped:', errno.errorcode[e.errno])
)"));
  CHECK(full.stdout_data == "stopped: ENOSPC\n");
  CHECK(full.exit_code == 0);
  CHECK_MESSAGE(full.limit == Limit::disk, full.disk_bytes << " bytes, " << full.disk_used_bytes << " used");
  CHECK(full.disk_used_bytes > (12u << 20));
  const fs::path image = fs::path(runner.session_dir("ses_quota")) / "disk.img";
  struct stat st;
  REQUIRE(::stat(image.c_str(), &st) == 0);
  CHECK(uint64_t(st.st_blocks) * 512 <= (16u << 20));
  CHECK((st.st_mode & 0777) == 0600);
  // Nothing but the image is in the session's directory, which the sandbox's user cannot write to.
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(runner.session_dir("ses_quota"))) entries.push_back(e.path().filename());
  CHECK(entries == std::vector<std::string>{"disk.img"});
  REQUIRE(::stat(runner.session_dir("ses_quota").c_str(), &st) == 0);
  CHECK(st.st_uid == ::geteuid());
  CHECK((st.st_mode & 0777) == 0700);
  // The session goes on: its files are there (the SDK too, though the code filled the disk and
  // deleted it), and freeing space frees it.
  auto after = runner.run(f.py("ses_quota", R"(import os, era_storage
print(os.path.getsize('keep.bin'), era_storage.hello(), oct(os.stat('.').st_mode & 0o777))
os.remove('big.bin')
os.remove('era_storage.py')
open('again.bin', 'wb').write(b'y' * (4 << 20))
print('room again')
)"));
  CHECK(after.stdout_data == "4194304 hello from the sdk 0o700\nroom again\n");
  CHECK(after.limits.empty());
  CHECK(runner.run(f.py("ses_quota", "import era_storage; print(era_storage.hello())")).stdout_data ==
        "hello from the sdk\n");
  // Sessions have an image each.
  CHECK(runner.run(f.py("ses_quota_b", "import os; print(sorted(os.listdir('.')))")).stdout_data ==
        "['era_storage.js', 'era_storage.py']\n");
  runner.remove_session("ses_quota");
  CHECK_FALSE(fs::exists(runner.session_dir("ses_quota")));
}

// The sandbox against hostile code: each case runs real code in a real bwrap sandbox.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "runner/cgroup.h"
#include "runner/sandbox.h"
#include "util/fd.h"

namespace fs = std::filesystem;
using namespace era;
using namespace era::runner;

namespace {

std::string test_tmp() {
  const char* t = std::getenv("ERA_TEST_TMP");
  return t && *t ? t : fs::temp_directory_path().string();
}

// A fresh working directory, writable by the sandbox user, removed afterwards.
struct Workdir {
  fs::path path;
  UniqueFd fd;
  explicit Workdir(const std::string& name) {
    path = fs::path(test_tmp()) / ("sandbox-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
    if (::geteuid() == 0 && ::chown(path.c_str(), 65534, 65534) != 0) FAIL("chown");
    fd.reset(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
  ~Workdir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

SandboxResult python(const Workdir& w, const std::string& code, int timeout_ms = 10000,
                     SandboxLimits limits = {}, const std::string& cgroup = "") {
  SandboxSpec s;
  s.command = {"/usr/bin/python3", "-"};
  s.stdin_data = code;
  s.workdir_fd = w.fd.get();
  s.env = {{"PATH", "/usr/bin:/bin"}, {"SECRET_TOKEN", "tok-123"}};
  if (::geteuid() == 0) s.run_as = std::make_pair(uid_t(65534), gid_t(65534));
  s.limits = limits;
  s.limits.timeout_ms = timeout_ms;
  s.cgroup_name = cgroup.empty() ? "" : cgroup + "-" + std::to_string(::getpid());
  return run_sandbox(s);
}

}  // namespace

TEST_CASE("sandbox: runs code in the working directory, which keeps its files") {
  Workdir w("basic");
  auto r = python(w, "import os\nprint(os.getcwd())\nopen('note.txt','w').write('kept')\n");
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_data == "/home/session\n");
  CHECK(r.limit == Limit::none);
  std::ifstream in(w.path / "note.txt");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  CHECK(text == "kept");
  auto again = python(w, "print(open('note.txt').read())");
  CHECK(again.stdout_data == "kept\n");
}

TEST_CASE("sandbox: exit codes, stderr, and the environment given (not the proxy's)") {
  Workdir w("exit");
  ::setenv("ERA_TEST_PROXY_ONLY", "leak", 1);
  auto r = python(w, "import os,sys\nprint(os.environ.get('SECRET_TOKEN'), os.environ.get('ERA_TEST_PROXY_ONLY'))\n"
                     "sys.stderr.write('oops')\nsys.exit(3)");
  ::unsetenv("ERA_TEST_PROXY_ONLY");
  CHECK(r.exit_code == 3);
  CHECK(r.stdout_data == "tok-123 None\n");
  CHECK(r.stderr_data == "oops");
}

TEST_CASE("sandbox: the environment never appears on the command line") {
  SandboxSpec s;
  s.command = {"/usr/bin/python3", "-"};
  s.env = {{"ERA_STORAGE_TOKEN", "secret-token-value"}};
  auto argv = bwrap_argv(s);
  for (const auto& a : argv) CHECK(a.find("secret-token-value") == std::string::npos);
  CHECK(std::find(argv.begin(), argv.end(), "--unshare-net") != argv.end());
  CHECK(std::find(argv.begin(), argv.end(), "--unshare-user") != argv.end());
  CHECK(std::find(argv.begin(), argv.end(), "--unshare-pid") != argv.end());
}

TEST_CASE("sandbox: no network: TCP to loopback and to the outside both fail") {
  Workdir w("net");
  auto r = python(w, R"(import socket
for host in ("127.0.0.1", "10.0.0.1", "1.1.1.1"):
    try:
        socket.create_connection((host, 80), timeout=2)
        print(host, "connected")
    except OSError as e:
        print(host, "refused", e.errno)
print(sorted(i[1] for i in socket.if_nameindex()))
)");
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_data.find("connected") == std::string::npos);
  CHECK(r.stdout_data.find("['lo']") != std::string::npos);
}

TEST_CASE("sandbox: the host's files are not there, and the root is read-only") {
  Workdir w("fs");
  auto r = python(w, R"(import os
print(os.path.exists("/etc/passwd"), os.path.exists("/work"), os.path.exists("/root"), os.path.exists("/var"))
for p in ("/usr/evil", "/etc/evil", "/evil", "/home/evil", "/dev/evil", "/run/evil", "/proc/evil"):
    try:
        open(p, "w").write("x")
        print(p, "written")
    except OSError:
        pass
print(os.listdir("/home"))
open("/tmp/ok", "w").write("x"); open("/dev/shm/ok", "w").write("x")
try:
    open("/tmp/big", "wb").write(b"x" * (80 << 20))
except OSError as e:
    print("tmp full")
)");
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_data == "False False False False\n['session']\ntmp full\n");
}

TEST_CASE("sandbox: a wall-clock timeout kills the whole process tree and keeps the output so far") {
  Workdir w("timeout");
  auto r = python(w, R"(import os, time
print("started", flush=True)
if os.fork() == 0:
    os.setsid()
    while True: time.sleep(1)
while True: pass
)", 1000);
  CHECK(r.limit == Limit::timeout);
  CHECK(r.stdout_data == "started\n");
  CHECK(r.duration < 5);
  CHECK(r.exit_code == 137);
}

TEST_CASE("sandbox: printing forever is cut at the output cap") {
  Workdir w("print");
  SandboxLimits l;
  l.max_output = 4096;
  auto r = python(w, "while True: print('y' * 100)", 20000, l);
  CHECK(r.limit == Limit::output);
  CHECK(r.stdout_truncated);
  CHECK_FALSE(r.stderr_truncated);
  CHECK(r.stdout_data.size() == 4096);
  CHECK(r.duration < 10);
}

TEST_CASE("sandbox: a fork bomb is held to the process limit") {
  Workdir w("fork");
  SandboxLimits l;
  l.max_processes = 16;
  auto r = python(w, R"(import os, time
n = 0
try:
    for i in range(200):
        if os.fork() == 0:
            time.sleep(5); os._exit(0)
        n += 1
except OSError as e:
    print("fork refused after", n)
)", 10000, l);
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_data.rfind("fork refused after", 0) == 0);
  CHECK(std::stoi(r.stdout_data.substr(19)) < 16);
}

TEST_CASE("sandbox: unbounded allocation fails inside the sandbox") {
  Workdir w("mem");
  SandboxLimits l;
  l.memory_bytes = 128ull << 20;
  auto r = python(w, "x = bytearray(1 << 30)\nprint('allocated')", 10000, l);
  CHECK(r.exit_code != 0);
  CHECK(r.stdout_data.empty());
  CHECK(r.stderr_data.find("MemoryError") != std::string::npos);
}

TEST_CASE("sandbox: a broken setup is an error, not a result") {
  Workdir w("broken");
  SandboxSpec s;
  s.bwrap = "/nonexistent/bwrap";
  s.command = {"/usr/bin/python3", "-"};
  s.workdir_fd = w.fd.get();
  CHECK_THROWS_AS(run_sandbox(s), std::runtime_error);
}

// With a control group (where the machine gives one), the whole tree is limited and the limit named.
TEST_CASE("sandbox: with a cgroup, a fork bomb is named 'processes' and a memory hog 'memory'") {
  std::string why;
  if (!RunCgroup::create("era-test-probe-" + std::to_string(::getpid()), 1 << 30, 16, why)) {
    MESSAGE("no usable cgroups on this machine (" << why << "): only the rlimit cases apply");
    return;
  }
  Workdir w("cgroup");
  SandboxLimits l;
  l.max_processes = 16;
  l.memory_bytes = 128ull << 20;
  auto bomb = python(w, R"(import os
while True:
    try:
        os.fork()
    except OSError:
        pass
)", 2000, l, "era-test-bomb");
  CHECK(bomb.cgroup);
  CHECK(bomb.limit == Limit::processes);
  REQUIRE(bomb.limits.size() == 2);
  CHECK(bomb.limits[1] == Limit::timeout);

  // Many processes, each under the per-process rlimit, together over the run's memory.
  auto hog = python(w, R"(import os, time
for i in range(4):
    if os.fork() == 0:
        x = b"x" * (60 << 20)
        time.sleep(5)
        os._exit(0)
x = b"x" * (60 << 20)
os.wait()
)", 8000, l, "era-test-hog");
  CHECK(hog.cgroup);
  CHECK(hog.limit == Limit::memory);

  // A run within its limits names none.
  auto fine = python(w, "print('ok')", 5000, l, "era-test-fine");
  CHECK(fine.cgroup);
  CHECK(fine.limit == Limit::none);
  CHECK(fine.limits.empty());
}

TEST_CASE("sandbox: the code gets default signal handling, not the proxy's") {
  Workdir w("signals");
  SandboxSpec s;
  s.command = {"/bin/sh", "-c", "exec grep -E '^Sig(Ign|Blk)' /proc/self/status"};
  s.workdir_fd = w.fd.get();
  if (::geteuid() == 0) s.run_as = std::make_pair(uid_t(65534), gid_t(65534));
  // What the proxy does to itself (main.cpp): block SIGTERM, ignore SIGPIPE.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  auto previous = std::signal(SIGPIPE, SIG_IGN);
  auto r = run_sandbox(s);
  std::signal(SIGPIPE, previous);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  CHECK(r.stdout_data == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

// The sandbox against hostile code: each case runs real code in a real bwrap sandbox.
#include <doctest/doctest.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runner/cgroup.h"
#include "runner/sandbox.h"
#include "support.h"
#include "util/fd.h"

namespace fs = std::filesystem;
using namespace era;
using namespace era::runner;

namespace {

// A fresh working directory (era::test::TempDir), writable by the sandbox user, removed afterwards.
struct Workdir {
  era::test::TempDir dir;
  fs::path path = dir.path();
  UniqueFd fd;
  explicit Workdir(const std::string& name) : dir("sandbox-" + name) {
    if (::geteuid() == 0 && ::chown(path.c_str(), 65534, 65534) != 0) FAIL("chown");
    fd.reset(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
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

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// The pid of our child process running `comm` (the host-side bwrap), or 0.
pid_t child_named(const std::string& comm) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = slurp(e.path() / "stat");
    auto open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid == ::getpid() && stat.substr(open + 1, close - open - 1) == comm) return std::stoi(name);
  }
  return 0;
}

SandboxSpec python_spec(const Workdir& w, const std::string& code) {
  SandboxSpec s;
  s.command = {"/usr/bin/python3", "-"};
  s.stdin_data = code;
  s.workdir_fd = w.fd.get();
  if (::geteuid() == 0) s.run_as = std::make_pair(uid_t(65534), gid_t(65534));
  s.limits.timeout_ms = 20000;
  return s;
}

}  // namespace

TEST_CASE("sandbox: the run's environment reaches bwrap only as arguments on a descriptor") {
  SandboxSpec s;
  s.command = {"/usr/bin/python3", "-"};
  s.env = {{"ERA_STORAGE_TOKEN", "secret-token-value"}, {"X", "--bind"}, {"Y", "/ /"}};
  const auto argv = bwrap_argv(s);
  for (const auto& a : argv) {
    CHECK(a.find("secret-token-value") == std::string::npos);
    CHECK(a != "--setenv");
  }
  REQUIRE(argv.size() > 3);
  CHECK(argv[1] == "--args");  // first, so nothing after it can be shadowed
  const std::string blob = bwrap_env_args(s);
  const std::string want("--clearenv\0--setenv\0ERA_STORAGE_TOKEN\0secret-token-value\0--setenv\0X\0--bind\0"
                         "--setenv\0Y\0/ /\0",
                         sizeof "--clearenv\0--setenv\0ERA_STORAGE_TOKEN\0secret-token-value\0--setenv\0X\0--bind\0"
                                "--setenv\0Y\0/ /\0" - 1);
  CHECK(blob == want);
  CHECK(bwrap_host_env() == std::vector<std::string>{"PATH=/usr/bin:/bin"});
  for (auto bad : {std::make_pair(std::string("A=B"), std::string("x")), std::make_pair(std::string(""), std::string("x")),
                   std::make_pair(std::string("A\0B", 3), std::string("x")),
                   std::make_pair(std::string("A"), std::string("x\0y", 3))}) {
    s.env = {bad};
    CHECK_THROWS_AS(bwrap_env_args(s), std::invalid_argument);
  }
}

TEST_CASE("sandbox: bwrap runs on the host with the fixed environment; the run's exists inside only") {
  Workdir w("hostenv");
  for (const char* fifo : {"ready", "go"}) {
    REQUIRE(::mkfifo((w.path / fifo).c_str(), 0666) == 0);
    ::chmod((w.path / fifo).c_str(), 0666);
  }
  SandboxSpec s = python_spec(w, R"(import os
open("ready", "w").write("x")
open("go").read()
print(os.environ.get("HARMLESS"), os.environ.get("SECRET_TOKEN"), sorted(os.environ))
)");
  s.env = {{"HARMLESS", "visible"}, {"SECRET_TOKEN", "tok-123"}};
  auto run = std::async(std::launch::async, [&] { return run_sandbox(s); });
  // Readable once the code wrote to it: bwrap is up (a failed setup shows as a timeout here, and
  // then as the run's error).
  UniqueFd ready(::open((w.path / "ready").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  REQUIRE(ready);
  pollfd p{ready.get(), POLLIN, 0};
  const bool up = ::poll(&p, 1, 30000) == 1 && (p.revents & POLLIN);
  if (!up) {
    auto failed = run.get();
    FAIL("the sandbox never started: " << failed.stderr_data);
  }
  const pid_t bwrap = child_named("bwrap");
  CHECK(bwrap > 0);
  const std::string host_env = slurp("/proc/" + std::to_string(bwrap) + "/environ");
  { std::ofstream go(w.path / "go"); go << "go"; }
  auto r = run.get();
  CHECK(host_env == std::string("PATH=/usr/bin:/bin\0", sizeof "PATH=/usr/bin:/bin\0" - 1));
  CHECK(slurp("/proc/" + std::to_string(bwrap) + "/cmdline").find("tok-123") == std::string::npos);
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_data == "visible tok-123 ['HARMLESS', 'LC_CTYPE', 'PWD', 'SECRET_TOKEN']\n");
}

TEST_CASE("sandbox: LD_PRELOAD in a run's environment loads nothing on the host") {
  Workdir w("preload");
  // The library is in the working directory, as a tenant would write it there; its host path and
  // its path inside are both tried. Loaded anywhere, it appends to ESCAPE_MARKER.
  fs::copy_file(ERA_TEST_PRELOAD, w.path / "evil.so");
  if (::geteuid() == 0 && ::chown((w.path / "evil.so").c_str(), 65534, 65534) != 0) FAIL("chown");
  // Not in the working directory (out of the tenant's reach); writable by any user, so the marker
  // appears whichever user a program that loaded the library ran as.
  const era::test::TempDir marker_dir("escape-marker");
  fs::permissions(marker_dir.path(), fs::perms::all);
  const fs::path marker = marker_dir.path() / "marker";
  for (const std::string& lib : {(w.path / "evil.so").string(), std::string("/home/session/evil.so")}) {
    SandboxSpec s = python_spec(w, "print('ran')");
    s.env = {{"LD_PRELOAD", lib}, {"ESCAPE_MARKER", marker.string()}};
    auto r = run_sandbox(s);
    CHECK(r.stdout_data == "ran\n");
    CHECK_MESSAGE(!fs::exists(marker), "loaded on the host: " << slurp(marker));
  }
  // The library works: loaded by a program of ours, it writes the marker.
  REQUIRE(::setenv("ESCAPE_MARKER", marker.string().c_str(), 1) == 0);
  void* h = ::dlopen(ERA_TEST_PRELOAD, RTLD_NOW);
  ::unsetenv("ESCAPE_MARKER");
  REQUIRE(h != nullptr);
  CHECK(fs::exists(marker));
  fs::remove(marker);
}

TEST_CASE("sandbox: environment values that look like bwrap options stay values") {
  Workdir w("argv");
  SandboxSpec s = python_spec(w, "import os\nprint(os.environ['A'], os.environ['B'], os.path.exists('/etc/passwd'))");
  s.env = {{"A", "--bind"}, {"B", "/"}, {"C", "/etc"}, {"D", "--"}, {"E", "--ro-bind"}};
  auto r = run_sandbox(s);
  CHECK(r.stdout_data == "--bind / False\n");
}

TEST_CASE("sandbox: the code inherits only stdin, stdout and stderr, and sees only its own processes") {
  Workdir w("fds");
  // Descriptors the proxy holds without O_CLOEXEC (as a library might) must not leak in: some take
  // the low numbers the sandbox's own descriptors are moved to (the socket's slot is unused here),
  // some higher ones.
  std::vector<UniqueFd> leaky;
  for (int i = 0; i < 12; ++i) {
    leaky.emplace_back(::open("/proc/self/status", O_RDONLY));
    REQUIRE(leaky.back());
  }
  auto r = run_sandbox(python_spec(w, R"(import os
fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
print([f for f in fds if os.path.exists(f"/proc/self/fd/{f}") and f > 2])
print(len([p for p in os.listdir("/proc") if p.isdigit()]) < 6)
)"));
  CHECK(r.exit_code == 0);
  CHECK(r.stdout_data == "[]\nTrue\n");
}

TEST_CASE("sandbox: the seccomp filter refuses what code has no business doing") {
  Workdir w("seccomp");
  auto r = run_sandbox(python_spec(w, R"(import ctypes, errno, os, threading, subprocess
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return errno.errorcode.get(ctypes.get_errno(), "ok") if rc == -1 else "ok"
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x20000, 17
checks = {
    "ptrace": call(101, 0, 0, 0, 0),               # PTRACE_TRACEME
    "mount": call(165, 0, 0, 0, 0, 0),
    "umount2": call(166, 0, 0),
    "pivot_root": call(155, 0, 0),
    "keyctl": call(250, 0, 0, 0, 0, 0),
    "add_key": call(248, 0, 0, 0, 0, 0),
    "bpf": call(321, 0, 0, 0),
    "userfaultfd": call(323, 0),
    "perf_event_open": call(298, 0, 0, 0, 0, 0),
    "unshare_user": call(272, CLONE_NEWUSER),
    "unshare_ns": call(272, CLONE_NEWNS),
    "setns": call(308, 0, 0),
    "clone_newuser": call(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "clone3": call(435, 0, 0),
    "process_vm_readv": call(310, os.getpid(), 0, 0, 0, 0, 0),
    "kexec_load": call(246, 0, 0, 0, 0),
    "init_module": call(175, 0, 0, 0),
    "open_by_handle_at": call(304, 0, 0, 0),
    "acct": call(163, 0),
    "swapon": call(167, 0, 0),
    "reboot": call(169, 0, 0, 0, 0),
    "settimeofday": call(164, 0, 0),
    "clock_settime": call(227, 0, 0),
    "iopl": call(172, 3),
    "ioperm": call(173, 0, 1, 1),
    "io_uring_setup": call(425, 1, 0),
    "personality_no_aslr": call(135, 0x0040000),
    "personality_exec": call(135, 0x0400000),
}
for k, v in checks.items():
    print(k, v)
print("personality_plain", libc.personality(0) >= 0, libc.personality(8) >= 0, libc.personality(0) >= 0)
print("status", [l for l in open("/proc/self/status") if l.startswith("Seccomp:")][0].split())
t = threading.Thread(target=lambda: None); t.start(); t.join()
print("thread ok")
print(subprocess.run(["/bin/echo", "subprocess ok"], capture_output=True, text=True).stdout.strip())
)"));
  CHECK(r.exit_code == 0);
  CHECK(r.stderr_data == "");
  const std::string out = r.stdout_data;
  for (const char* name : {"ptrace", "mount", "umount2", "pivot_root", "keyctl", "add_key", "bpf", "userfaultfd",
                           "perf_event_open", "unshare_user", "unshare_ns", "setns", "clone_newuser",
                           "process_vm_readv", "kexec_load", "init_module", "open_by_handle_at", "acct", "swapon",
                           "reboot", "settimeofday", "clock_settime", "iopl", "ioperm", "io_uring_setup",
                           "personality_no_aslr", "personality_exec"})
    CHECK_MESSAGE(("\n" + out).find("\n" + std::string(name) + " EPERM\n") != std::string::npos,
                  name << " not refused with EPERM:\n" << out);
  CHECK(out.find("\nclone3 ENOSYS\n") != std::string::npos);
  CHECK(out.find("personality_plain True True True\n") != std::string::npos);
  CHECK(out.find("status ['Seccomp:', '2']\n") != std::string::npos);
  CHECK(out.find("thread ok\nsubprocess ok\n") != std::string::npos);
}

TEST_CASE("sandbox: a system call of another architecture kills the process") {
  Workdir w("badarch");
  // getpid through the 32-bit int 0x80 gate (eax = 20), from a page of machine code.
  auto r = run_sandbox(python_spec(w, R"(import ctypes, mmap
code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])   # mov eax, 20; int 0x80; ret
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
print("calling", flush=True)
print("returned", ctypes.CFUNCTYPE(ctypes.c_int)(addr)())
)"));
  CHECK(r.stdout_data == "calling\n");
  CHECK(r.exit_code == 128 + SIGSYS);
}

TEST_CASE("sandbox: without the filter (spec.seccomp false) the same calls reach the kernel") {
  Workdir w("noseccomp");
  SandboxSpec s = python_spec(w, R"(import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.syscall(ctypes.c_long(435), ctypes.c_long(0), ctypes.c_long(0)), ctypes.get_errno())
print(libc.syscall(ctypes.c_long(101), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0)))
print(libc.personality(ctypes.c_ulong(0x0040000)) >= 0)
)");
  s.seccomp = false;
  auto r = run_sandbox(s);
  // clone3 with a null argument: EINVAL from the kernel, not ENOSYS; PTRACE_TRACEME and
  // ADDR_NO_RANDOMIZE succeed.
  CHECK(r.stdout_data == "-1 22\n0\nTrue\n");
}

TEST_CASE("sandbox: a disk image that cannot be mounted is a setup error, not a hang") {
  if (::geteuid() != 0) {
    MESSAGE("not root: images are not used");
    return;
  }
  SandboxSpec s;
  s.command = {"/usr/bin/python3", "-"};
  s.stdin_data = "print('never')";
  s.image_device = "/dev/null";  // not a block device: the child's mount fails before it reports
  s.run_as = std::make_pair(uid_t(65534), gid_t(65534));
  try {
    run_sandbox(s);
    FAIL("ran without its working directory");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("cannot mount the session's disk image") != std::string::npos);
  }
}

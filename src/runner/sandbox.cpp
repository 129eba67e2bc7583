#include "runner/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/mman.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "runner/cgroup.h"
#include "runner/seccomp.h"
#include "util/fd.h"
#include "util/log.h"

namespace era::runner {
namespace {

// Fixed descriptor numbers inside bwrap (the child dup2()s everything onto these).
constexpr int kWorkdirFd = 3;
constexpr int kSocketFd = 4;
constexpr int kStatusFd = 5;
constexpr int kSeccompFd = 6;  // the BPF program (bwrap --seccomp)
constexpr int kArgsFd = 7;     // the run's environment as bwrap arguments (bwrap --args)
constexpr int kPassed = 8;     // descriptors the child passes on: 0 .. kPassed-1; the rest are closed

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

struct Pipe {
  UniqueFd read, write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail("pipe");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// What bwrap or the code reads goes in through an anonymous in-memory file rather than a pipe: the
// whole of it is readable at once, so writing it can never block against the child's output.
UniqueFd memory_file(const char* name, const std::string& data) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_memfd_create, name, MFD_CLOEXEC)));
  if (!fd) fail("memfd_create");
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(std::string("write ") + name);
    off += static_cast<size_t>(n);
  }
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) fail("lseek");
  return fd;
}

// What the host's /bin, /lib, /lib64... are: on merged-/usr systems, links into /usr, which the
// sandbox reproduces as links; on others, directories bound read-only.
void add_root_entries(std::vector<std::string>& a) {
  for (const char* p : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat st;
    if (::lstat(p, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(p, target, sizeof target - 1);
      if (n <= 0) continue;
      a.insert(a.end(), {"--symlink", std::string(target, static_cast<size_t>(n)), p});
    } else if (S_ISDIR(st.st_mode)) {
      a.insert(a.end(), {"--ro-bind", p, p});
    }
  }
  // Only what the dynamic loader and the runtimes read from /etc; never the whole of it.
  for (const char* p : {"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                        "/etc/alternatives"})
    a.insert(a.end(), {"--ro-bind-try", p, p});
}

struct ChildPlan {
  std::vector<std::string> argv, envv;
  int workdir_tree = -1, socket_tree = -1;  // detached clones of both mounts (open_tree), when staging
  std::vector<char*> argp, envp;
  // spec.files, laid out before the fork (the child may not allocate).
  std::vector<const char*> file_names, file_data;
  std::vector<size_t> file_sizes;
  int report_fd = -1;  // with an image: the child sends the mounted root's descriptor here
};

int fd_dup_high(int fd) { return fd < 0 ? -1 : ::fcntl(fd, F_DUPFD_CLOEXEC, 64); }

// In the forked child: only async-signal-safe calls from here to execve.
struct ChildFds {
  int code = -1, out = -1, err = -1, status = -1, seccomp = -1, args = -1;
};

[[noreturn]] void exec_child(const SandboxSpec& spec, ChildPlan& plan, const ChildFds& fds, pid_t parent,
                             const std::vector<int>& cgroup_procs) {
  // Into the run's control group first, while still privileged: everything started from here is in it.
  for (int fd : cgroup_procs)
    if (::write(fd, "0", 1) != 1) ::_exit(125);
  ::setsid();
  int workdir_fd = spec.workdir_fd, socket_fd = spec.socket_fd;
  if (spec.run_as) {
    // bwrap resolves every source path (even /proc/self/fd/N) by name, and the unprivileged uid it will
    // run as may not traverse the data dir. So, while still root and in a mount namespace of this
    // process alone, the working directory and the socket are attached onto a fresh tmpfs at /tmp that
    // it can traverse; the host's mounts are untouched (everything is made private first).
    if (::unshare(CLONE_NEWNS) != 0 || ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("era-stage", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") != 0 ||
        ::mkdir("/tmp/work", 0755) != 0)
      ::_exit(124);
    if (!spec.image_device.empty()) {
      // The session's image as its working directory: mounted here, in this run's namespace only.
      if (::mount(spec.image_device.c_str(), "/tmp/work", "ext4", MS_NOSUID | MS_NODEV, nullptr) != 0) ::_exit(122);
      int root = ::open("/tmp/work", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (root < 0) ::_exit(122);
      ::unlinkat(root, "lost+found", AT_REMOVEDIR);  // mke2fs's; the code has no use for it
      if (::fchown(root, spec.run_as->first, spec.run_as->second) != 0 || ::fchmod(root, 0700) != 0) ::_exit(122);
      for (size_t i = 0; i < plan.file_names.size(); ++i) {
        const char* name = plan.file_names[i];
        if (::unlinkat(root, name, 0) != 0 && errno != ENOENT) ::_exit(errno == EISDIR ? 123 : 122);
        int f = ::openat(root, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (f < 0 || ::fchown(f, spec.run_as->first, spec.run_as->second) != 0) ::_exit(122);
        for (size_t off = 0, size = plan.file_sizes[i]; off < size;) {
          ssize_t n = ::write(f, plan.file_data[i] + off, size - off);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) ::_exit(errno == ENOSPC || errno == EDQUOT ? 121 : 122);
          off += static_cast<size_t>(n);
        }
        ::close(f);
      }
      // The parent measures the file system after the run through this descriptor.
      if (plan.report_fd >= 0) {
        char data[CMSG_SPACE(sizeof(int))] = {};
        char byte = 0;
        iovec iov{&byte, 1};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = data;
        msg.msg_controllen = sizeof data;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &root, sizeof(int));
        if (::sendmsg(plan.report_fd, &msg, MSG_NOSIGNAL) != 1) ::_exit(122);
      }
      ::close(root);
    } else if (::syscall(SYS_move_mount, plan.workdir_tree, "", AT_FDCWD, "/tmp/work", MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      ::_exit(124);
    }
    workdir_fd = ::open("/tmp/work", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (spec.socket_fd >= 0) {
      int f = ::open("/tmp/storage.sock", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (f < 0) ::_exit(124);
      ::close(f);
      if (::syscall(SYS_move_mount, plan.socket_tree, "", AT_FDCWD, "/tmp/storage.sock", MOVE_MOUNT_F_EMPTY_PATH) != 0)
        ::_exit(124);
      socket_fd = ::open("/tmp/storage.sock", O_PATH | O_CLOEXEC);
    }
    if (workdir_fd < 0 || (spec.socket_fd >= 0 && socket_fd < 0)) ::_exit(124);
  }
  // Move every fd we pass out of the way first, so the dup2()s below cannot clobber one another.
  // Then every other descriptor of the proxy's (listening sockets, database files, other runs'
  // pipes, opened by other threads with or without O_CLOEXEC) is closed: none reaches bwrap.
  int src[kPassed] = {fd_dup_high(fds.code),     fd_dup_high(fds.out),       fd_dup_high(fds.err),
                      fd_dup_high(workdir_fd),   fd_dup_high(socket_fd),     fd_dup_high(fds.status),
                      fd_dup_high(fds.seccomp),  fd_dup_high(fds.args)};
  const int dst[kPassed] = {0, 1, 2, kWorkdirFd, kSocketFd, kStatusFd, kSeccompFd, kArgsFd};
  for (int i = 0; i < kPassed; ++i) {
    if (src[i] >= 0 && ::dup2(src[i], dst[i]) < 0) ::_exit(126);
    if (src[i] < 0) ::close(dst[i]);  // a slot with nothing to pass must not pass what the proxy has there
  }
  if (::syscall(SYS_close_range, unsigned(kPassed), ~0u, 0u) != 0)
    for (int fd = kPassed; fd < 65536; ++fd) ::close(fd);  // kernels before 5.9
  if (spec.run_as) {
    if (::syscall(SYS_setgroups, 0, nullptr) != 0 ||
        ::syscall(SYS_setresgid, spec.run_as->second, spec.run_as->second, spec.run_as->second) != 0 ||
        ::syscall(SYS_setresuid, spec.run_as->first, spec.run_as->first, spec.run_as->first) != 0)
      ::_exit(126);
  }
  // After the uid change (which clears it): if the proxy dies, so does the sandbox.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(126);
  // The proxy blocks SIGINT/SIGTERM and ignores SIGPIPE; the code gets the defaults.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &dfl, nullptr);
  ::execve(spec.bwrap.c_str(), plan.argp.data(), plan.envp.data());
  ::_exit(127);
}

}  // namespace

const char* to_string(Limit limit) {
  switch (limit) {
    case Limit::memory: return "memory";
    case Limit::processes: return "processes";
    case Limit::timeout: return "timeout";
    case Limit::output: return "output";
    case Limit::disk: return "disk";
    case Limit::none: break;
  }
  return "";
}

std::vector<std::string> bwrap_argv(const SandboxSpec& spec) {
  const SandboxLimits& l = spec.limits;
  // With a control group holding the run, its limits come first (they are the ones that can be
  // named); the rlimits stay as a per-process backstop, loose enough not to fire before it.
  const bool cg = !spec.cgroup_name.empty();
  const uint64_t data = cg ? 2 * l.memory_bytes : l.memory_bytes;
  const int nproc = cg ? l.max_processes + 16 : l.max_processes;
  // The run's environment first (--args: --clearenv, then its variables), from a descriptor.
  std::vector<std::string> a = {spec.bwrap, "--args", std::to_string(kArgsFd),
                                "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                                "--unshare-net", "--unshare-cgroup-try",
                                "--disable-userns",  // no nested user namespaces: less kernel to attack
                                "--die-with-parent", "--new-session",  // new session: no TIOCSTI into ours
                                "--hostname", "era-sandbox", "--uid", "1000", "--gid", "1000",
                                "--cap-drop", "ALL",
                                "--ro-bind", "/usr", "/usr"};
  add_root_entries(a);
  // /tmp and /dev/shm are private, sized tmpfs (they are host memory the rlimits do not count).
  a.insert(a.end(), {"--proc", "/proc", "--dev", "/dev",
                     "--size", std::to_string(l.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp",
                     "--size", std::to_string(l.tmp_bytes), "--perms", "1777", "--tmpfs", "/dev/shm",
                     "--bind-fd", std::to_string(kWorkdirFd), spec.workdir, "--chdir", spec.workdir});
  if (spec.socket_fd >= 0) a.insert(a.end(), {"--bind-fd", std::to_string(kSocketFd), spec.socket_path});
  // bwrap's root and /dev are tmpfs the sandbox could fill with host memory: read-only once built.
  a.insert(a.end(), {"--remount-ro", "/dev", "--remount-ro", "/"});
  if (spec.seccomp) a.insert(a.end(), {"--seccomp", std::to_string(kSeccompFd)});
  a.insert(a.end(), {"--json-status-fd", std::to_string(kStatusFd), "--", spec.prlimit,
                     "--nproc=" + std::to_string(nproc), "--data=" + std::to_string(data),
                     "--fsize=" + std::to_string(l.max_file_bytes), "--core=0",
                     "--nofile=" + std::to_string(l.max_open_files), "--"});
  a.insert(a.end(), spec.command.begin(), spec.command.end());
  return a;
}

const std::vector<std::string>& bwrap_host_env() {
  static const std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
  return env;
}

std::string bwrap_env_args(const SandboxSpec& spec) {
  std::string out("--clearenv", sizeof "--clearenv");  // with its NUL
  for (const auto& [k, v] : spec.env) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
      throw std::invalid_argument("invalid environment variable name '" + k + "'");
    if (v.find('\0') != std::string::npos)
      throw std::invalid_argument("environment variable " + k + " holds a NUL byte");
    out.append("--setenv", sizeof "--setenv");
    out.append(k).push_back('\0');
    out.append(v).push_back('\0');
  }
  return out;
}

SandboxResult run_sandbox(const SandboxSpec& spec) {
  if (spec.command.empty()) throw std::invalid_argument("sandbox command is empty");
  if (spec.image_device.empty() ? spec.workdir_fd < 0 : !spec.run_as)
    throw std::invalid_argument("sandbox working directory is missing (an image needs run_as)");
  const SandboxLimits& lim = spec.limits;

  ChildPlan plan;
  plan.argv = bwrap_argv(spec);
  plan.envv = bwrap_host_env();
  UniqueFd env_args = memory_file("era-env", bwrap_env_args(spec));
  UniqueFd seccomp;
  if (spec.seccomp) seccomp = memory_file("era-seccomp", seccomp_program());
  for (auto& s : plan.argv) plan.argp.push_back(s.data());
  plan.argp.push_back(nullptr);
  for (auto& s : plan.envv) plan.envp.push_back(s.data());
  plan.envp.push_back(nullptr);
  // A mount made before the child's unshare cannot be bound by path inside it; a detached clone
  // (open_tree) can be attached there.
  UniqueFd workdir_tree, socket_tree, report_read, report_write;
  for (const auto& [name, data] : spec.files) {
    plan.file_names.push_back(name.c_str());
    plan.file_data.push_back(data.data());
    plan.file_sizes.push_back(data.size());
  }
  if (!spec.image_device.empty()) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) fail("socketpair");
    report_read.reset(sv[0]);
    report_write.reset(sv[1]);
    plan.report_fd = report_write.get();
  }
  if (spec.run_as) {
    const unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH;
    if (spec.image_device.empty()) {
      workdir_tree.reset(static_cast<int>(::syscall(SYS_open_tree, spec.workdir_fd, "", flags)));
      if (!workdir_tree) fail("open_tree of the working directory");
    }
    if (spec.socket_fd >= 0) {
      socket_tree.reset(static_cast<int>(::syscall(SYS_open_tree, spec.socket_fd, "", flags)));
      if (!socket_tree) fail("open_tree of the proxy's socket");
    }
  }
  plan.workdir_tree = workdir_tree.get();
  plan.socket_tree = socket_tree.get();

  std::unique_ptr<RunCgroup> cgroup;
  if (!spec.cgroup_name.empty()) {
    std::string why;
    // +2: bwrap itself and its init in the PID namespace are in the group too.
    cgroup = RunCgroup::create(spec.cgroup_name, lim.memory_bytes, lim.max_processes + 2, why);
    if (!cgroup) log::warn("run without a cgroup (" + why + "): memory and process limits are rlimits only");
  }
  const std::vector<int> cgroup_procs = cgroup ? cgroup->procs_fds() : std::vector<int>{};

  UniqueFd code = memory_file("era-code", spec.stdin_data);
  Pipe out = make_pipe(), err = make_pipe(), status = make_pipe();

  const auto start = Clock::now();
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    ChildFds fds{code.get(), out.write.get(), err.write.get(), status.write.get(), seccomp.get(), env_args.get()};
    exec_child(spec, plan, fds, parent, cgroup_procs);
  }

  out.write.reset();
  err.write.reset();
  status.write.reset();
  code.reset();
  env_args.reset();
  seccomp.reset();
  // With an image, the child sends the mounted file system's root, or dies first: then EOF (a
  // SEQPACKET pair reports the peer's close; a DGRAM one would wait forever).
  UniqueFd image_root;
  if (report_read) {
    report_write.reset();
    char byte = 0;
    char data[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = data;
    msg.msg_controllen = sizeof data;
    ssize_t got;
    while ((got = ::recvmsg(report_read.get(), &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
    }
    if (cmsghdr* c = got == 1 ? CMSG_FIRSTHDR(&msg) : nullptr; c && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      image_root.reset(fd);
    }
  }
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  SandboxResult r;
  bool killed = false;
  auto kill_all = [&](Limit why) {
    if (!killed) {
      ::kill(-pid, SIGKILL);  // bwrap leads its own process group; its death ends the PID namespace
      ::kill(pid, SIGKILL);
      killed = true;
      if (r.limit == Limit::none) r.limit = why;
    }
  };

  struct Stream {
    int fd;
    std::string* buf;
    bool* truncated;
  } streams[2] = {{out.read.get(), &r.stdout_data, &r.stdout_truncated},
                  {err.read.get(), &r.stderr_data, &r.stderr_truncated}};
  bool open[2] = {true, true};
  bool exited = false;
  int wstatus = 0;
  const auto deadline = start + std::chrono::milliseconds(lim.timeout_ms);
  // Once the command exited or was killed, what is still in the pipes is read for at most this long
  // (every process that could hold them open dies with the PID namespace).
  auto drain_until = Clock::time_point::max();
  char chunk[65536];

  for (;;) {
    auto now = Clock::now();
    if (!killed && !exited && now >= deadline) kill_all(Limit::timeout);
    if (!exited && ::waitpid(pid, &wstatus, WNOHANG) == pid) exited = true;
    if ((exited || killed) && drain_until == Clock::time_point::max()) drain_until = now + std::chrono::milliseconds(500);
    if (exited && !open[0] && !open[1]) break;
    if (now >= drain_until) break;

    pollfd pfds[3];
    nfds_t n = 0;
    int slot[2] = {-1, -1};
    for (int i = 0; i < 2; ++i)
      if (open[i]) {
        slot[i] = static_cast<int>(n);
        pfds[n++] = {streams[i].fd, POLLIN, 0};
      }
    if (!exited && pidfd) pfds[n++] = {pidfd.get(), POLLIN, 0};  // readable when the process exits
    auto until = std::min(killed || exited ? drain_until : deadline, drain_until);
    long long wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
    if (!pidfd && !exited) wait_ms = std::min(wait_ms, 20LL);  // no pidfd: notice the exit by polling
    wait_ms = std::clamp(wait_ms, 0LL, 1000LL);
    int pr = ::poll(pfds, n, static_cast<int>(wait_ms));
    if (pr < 0 && errno != EINTR) fail("poll");
    if (pr <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (slot[i] < 0 || !(pfds[slot[i]].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(streams[i].fd, chunk, sizeof chunk);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        open[i] = false;
        continue;
      }
      std::string& buf = *streams[i].buf;
      const size_t room = lim.max_output - std::min(lim.max_output, buf.size());
      buf.append(chunk, std::min(room, static_cast<size_t>(got)));
      if (static_cast<size_t>(got) > room) {
        *streams[i].truncated = true;
        kill_all(Limit::output);
      }
    }
  }
  if (!exited) {
    kill_all(Limit::timeout);
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
  }
  r.duration = std::chrono::duration<double>(Clock::now() - start).count();

  // bwrap reports {"child-pid": N} on the status fd once the sandbox is set up; without it, bwrap
  // itself failed and its stderr says why.
  std::string status_text;
  ::fcntl(status.read.get(), F_SETFL, O_NONBLOCK);
  for (ssize_t got; (got = ::read(status.read.get(), chunk, sizeof chunk)) > 0;)
    status_text.append(chunk, static_cast<size_t>(got));
  if (!killed && status_text.find("child-pid") == std::string::npos) {
    std::string why = r.stderr_data.substr(0, 500);
    while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 127 && why.empty()) why = "cannot execute " + spec.bwrap;
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 126 && why.empty()) why = "cannot drop privileges";
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 125 && why.empty()) why = "cannot join the run's cgroup";
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 124 && why.empty())
      why = "cannot stage the working directory for the sandbox user";
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 123 && why.empty())
      throw SetupRefused("sdk_blocked", "a directory in the working directory has the name of a file the proxy places there");
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 121 && why.empty())
      throw SetupRefused("disk_full", "the working directory is full (its disk quota): there is no room for the SDK files");
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 122 && why.empty())
      why = "cannot mount the session's disk image";
    throw std::runtime_error("sandbox setup failed: " + (why.empty() ? std::string("bwrap exited") : why));
  }
  if (WIFEXITED(wstatus)) r.exit_code = WEXITSTATUS(wstatus);
  else if (WIFSIGNALED(wstatus)) r.exit_code = 128 + WTERMSIG(wstatus);

  r.cgroup = cgroup != nullptr;
  if (cgroup && cgroup->memory_hit()) r.limits.push_back(Limit::memory);
  if (cgroup && cgroup->processes_hit()) r.limits.push_back(Limit::processes);
  struct statfs fs;
  if (image_root && ::fstatfs(image_root.get(), &fs) == 0) {
    r.disk_bytes = uint64_t(fs.f_blocks) * fs.f_bsize;
    const uint64_t left = uint64_t(fs.f_bavail) * fs.f_bsize;
    r.disk_used_bytes = r.disk_bytes - std::min(r.disk_bytes, uint64_t(fs.f_bfree) * fs.f_bsize);
    // ext4 refuses writes a little before statfs shows nothing left (it keeps clusters back for its
    // own metadata): "full" is within 5% (at least 1 MiB) of the end.
    if (left < std::max<uint64_t>(1 << 20, r.disk_bytes / 20)) r.limits.push_back(Limit::disk);
  }
  if (r.limit == Limit::output) r.limits.push_back(Limit::output);
  if (r.limit == Limit::timeout) r.limits.push_back(Limit::timeout);
  r.limit = r.limits.empty() ? Limit::none : r.limits.front();
  return r;
}

}  // namespace era::runner

// Sandbox: runs one command inside bubblewrap, with limits, and collects what it printed.
//
// The sandbox has new user, PID, IPC, UTS, network and cgroup namespaces; the root is an empty
// tmpfs with the host's /usr (and the /bin, /lib... links into it) bound read-only, a private /proc,
// a minimal /dev, a small private /tmp, and exactly two things from the host bound read-write: the
// working directory and (optionally) the proxy's Unix socket. Nothing else of the host's file
// system — the proxy's data dir and config included — exists inside. The network namespace has
// only its own loopback, so no TCP or UDP connection can leave it; the Unix socket is the one way
// out, and it leads to the proxy (which checks the session's token like any other caller's).
//
// Limits:
// - wall clock: past `timeout`, the whole sandbox is killed (SIGKILL to bwrap, whose death takes the
//   PID namespace and every process in it with it);
// - output: stdout and stderr are kept up to `max_output` bytes each; a stream that goes past it
//   is truncated there and the sandbox is killed (printing forever must not hold a slot or memory);
// - memory and processes for the whole run: a control group per run (runner/cgroup.h) when the
//   machine gives us one; it is what names a "memory" (OOM kill) or "processes" (fork refused) limit;
// - processes, memory per process, file size, open files: rlimits set by prlimit(1) inside the
//   sandbox, after the user namespace exists, always (the floor when there is no cgroup, and a
//   bound on untouched virtual memory when there is). RLIMIT_NPROC then counts the processes of that
//   one namespace, so each run has its own process budget. The kernel does not apply RLIMIT_NPROC to
//   real uid 0, so when the proxy runs as root the sandbox is started as an unprivileged uid
//   (`run_as`): that also means the sandbox owns nothing on the host but its working directory.
//
// Everything given to bwrap by path is opened by the proxy first and passed as a file descriptor,
// so an unprivileged bwrap needs no access to the data dir's path, and a path swapped under us
// (a symlink planted by earlier code) cannot redirect a bind.
//
// The environment: bwrap runs on the host, outside every namespace, as the proxy's (or runner.uid's)
// user, so nothing of the run may steer it. It is exec'd with a fixed environment
// (bwrap_host_env()), and the run's variables travel as `--clearenv --setenv NAME VALUE...`
// arguments read from a file descriptor (`--args`): they exist only inside the sandbox, and are on
// no command line (argv is readable by every local user through /proc/PID/cmdline). bwrap sets them
// while parsing its arguments, long after its dynamic loader and libc started, so even LD_PRELOAD
// there would load nothing on the host; the runner refuses such names anyway (runner.h).
//
// System calls: the command runs under a seccomp filter (runner/seccomp.h, bwrap --seccomp),
// applied by bwrap just before it execs the command, so bwrap's own namespace setup is unaffected.
//
// Descriptors: the command inherits exactly stdin, stdout and stderr; everything else the proxy
// has open is closed (close_range) before bwrap starts, and bwrap's own are close-on-exec.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace era::runner {

// A limit a run hit.
enum class Limit { none, memory, processes, disk, output, timeout };
const char* to_string(Limit limit);

struct SandboxLimits {
  int timeout_ms = 30000;
  size_t max_output = 1 << 20;          // bytes kept per stream
  uint64_t memory_bytes = 512ull << 20;  // the run's memory (cgroup), and RLIMIT_DATA per process
  int max_processes = 64;                // the run's processes and threads (cgroup pids, RLIMIT_NPROC)
  uint64_t max_file_bytes = 64ull << 20; // RLIMIT_FSIZE
  uint64_t tmp_bytes = 64ull << 20;      // size of the private /tmp
  int max_open_files = 256;              // RLIMIT_NOFILE
};

struct SandboxSpec {
  std::string bwrap = "/usr/bin/bwrap";
  std::string prlimit = "/usr/bin/prlimit";
  std::vector<std::string> command;  // absolute path inside the sandbox first
  std::string stdin_data;            // given to the command on its stdin (then EOF)

  int workdir_fd = -1;  // an open directory: bound read-write at `workdir`, the command's cwd
  // Instead of workdir_fd (needs run_as, i.e. root): the path of an attached loop device whose ext4
  // file system becomes the working directory, mounted (nosuid, nodev) in a mount namespace of the
  // run alone; its size bounds the bytes the run can keep. `files` are then written into its root
  // (owned by run_as, 0600) before the command starts, replacing whatever is there under that name.
  std::string image_device;
  std::vector<std::pair<std::string, std::string>> files;
  std::string workdir = "/home/session";
  int socket_fd = -1;   // an O_PATH fd of the proxy's Unix socket, bound at `socket_path`; -1 for none
  std::string socket_path = "/run/era/storage.sock";

  // The command's whole environment (inside the sandbox only). Names must be non-empty and free of
  // '=' and NUL, values free of NUL (std::invalid_argument otherwise).
  std::vector<std::pair<std::string, std::string>> env;
  std::optional<std::pair<uid_t, gid_t>> run_as;          // host ids to drop to before bwrap
  std::string cgroup_name;  // unique per run: the run's control group; "" for rlimits only
  bool seccomp = true;      // run the command under the seccomp filter (runner/seccomp.h)
  SandboxLimits limits;
};

struct SandboxResult {
  int exit_code = -1;  // the command's exit status, or 128 + signal
  std::string stdout_data;
  std::string stderr_data;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  Limit limit = Limit::none;  // the first of `limits`
  std::vector<Limit> limits;  // every limit hit, most telling first: memory, processes, disk, output, timeout
  bool cgroup = false;        // whether a control group held the run (memory/processes can be named)
  // With an image: its file system's size and the bytes in use after the run ("disk" is named when
  // the code was left less than 5% of it, or 1 MiB: a write past that failed with ENOSPC).
  uint64_t disk_bytes = 0, disk_used_bytes = 0;
  double duration = 0;  // seconds, wall clock
};

// The bwrap command line for `spec`. It holds no variable of the run (see bwrap_env_args). Exposed
// for tests, as are the two below.
std::vector<std::string> bwrap_argv(const SandboxSpec& spec);
// The environment bwrap itself is exec'd with on the host: the same for every run.
const std::vector<std::string>& bwrap_host_env();
// The run's environment as NUL-separated bwrap arguments ("--clearenv\0--setenv\0NAME\0VALUE\0..."),
// which bwrap reads from a file descriptor (--args). Throws std::invalid_argument for a name that
// is empty or holds '=' or NUL, or a value that holds NUL.
std::string bwrap_env_args(const SandboxSpec& spec);

// The run could not start because of what the session's working directory holds, not because of
// the machine: `code` is "sdk_blocked" (a directory under the name of a file placed there) or
// "disk_full" (no room left for those files).
struct SetupRefused : std::runtime_error {
  SetupRefused(std::string c, const std::string& what) : std::runtime_error(what), code(std::move(c)) {}
  std::string code;
};

// Runs the command to completion or to a limit. Throws std::runtime_error if the sandbox could not
// be set up (bwrap missing, namespaces not permitted...); the code's own failures are results.
SandboxResult run_sandbox(const SandboxSpec& spec);

}  // namespace era::runner

// Runner: runs a session's code in a sandbox (runner/sandbox.h), the way a session VM would, so the
// guide's "Testing" flow works on one machine.
//
// - Each session has a working directory, <sessions_dir>/<session id>, created on its first run,
//   kept across runs (files the code writes are there next time) and deleted by remove_session().
//   With a disk quota (RunnerOptions::disk_quota_bytes) the files live in a disk image there.
//   Before every run the SDK files era_storage.py and era_storage.js are (re)placed in it, so
//   `import era_storage` and `require('./era_storage.js')` work as the guide shows.
// - The code sees ERA_SESSION=true, ERA_SESSION_ID, ERA_LANGUAGE, ERA_STORAGE_URL (the proxy's Unix
//   socket, unix:///run/era/storage.sock: the sandbox has no network) and ERA_STORAGE_TOKEN (the
//   session's own token, so it is held to the session's namespaces), plus the caller's `env` (see
//   unsafe_env_reason() for the names refused).
// - Python runs as `python3 -` (the code on stdin: the working directory is on sys.path). JavaScript
//   runs as `node -` with the code inside an async function, so the guide's top-level `await` works
//   in CommonJS next to `require`.
// - Concurrency: at most `max_concurrent` runs at once, and one run per session at a time (a second
//   run of the same session waits for the first). Waiting longer than `queue_timeout_s` is a 503.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "runner/sandbox.h"

namespace era::runner {

enum class Language { python, javascript };
const char* to_string(Language l);
// "python", "javascript" (or "node"); false for anything else.
bool parse_language(const std::string& s, Language& out);

struct RunnerOptions {
  std::string sessions_dir;  // parent of the per-session working directories
  std::string sdk_python;    // era_storage.py, placed in the working directory before each run
  std::string sdk_js;        // era_storage.js
  std::string socket_path;   // the proxy's Unix socket on the host; "" for none
  std::string bwrap = "/usr/bin/bwrap";
  std::string prlimit = "/usr/bin/prlimit";
  std::string python = "/usr/bin/python3";
  std::string node = "/usr/bin/node";
  int default_timeout_s = 30;
  int max_timeout_s = 300;
  int max_concurrent = 4;
  int queue_timeout_s = 60;
  std::optional<std::pair<uid_t, gid_t>> run_as;  // host ids for the sandbox (used when we are root)
  // Whether a session is still live; when set, runs prune the directories of dead sessions (ended
  // while the proxy was down, or expired) at most every prune_interval_s.
  std::function<bool(const std::string&)> is_live;
  int prune_interval_s = 600;
  // The bytes a session's working directory may hold on disk; 0 for no quota. Enforced when the
  // proxy runs as root (run_as) on a machine with loop devices: the directory is then an ext4 file
  // system in <sessions_dir>/<id>/disk.img (a sparse file of this size, made by mke2fs on the first
  // run) mounted for each run in that run's mount namespace only, so a run can never keep more
  // (writes past it fail with ENOSPC, and the run names the limit "disk"). Elsewhere it is not
  // enforced, and the runner says so at start.
  uint64_t disk_quota_bytes = 0;
  std::string mke2fs = "/usr/sbin/mke2fs";
  SandboxLimits limits;                           // timeout_ms is set per run
};

struct RunRequest {
  std::string session_id;
  Language language = Language::python;
  std::string token;
  std::string code;
  std::optional<double> timeout_s;                        // default: default_timeout_s
  std::vector<std::pair<std::string, std::string>> env;  // extra variables
};

// The limits on a request, checked before anything runs (ApiError 400/413 when broken).
constexpr size_t kMaxCodeBytes = 1 << 20;
constexpr size_t kMaxEnvVars = 64;
constexpr size_t kMaxEnvBytes = 64 * 1024;

class Runner {
 public:
  explicit Runner(RunnerOptions options);

  // Runs the code. Throws ApiError: 400 for a bad request (timeout out of range, reserved or invalid
  // env names), 503 "runner_busy" when no slot frees within queue_timeout_s, 503
  // "sandbox_unavailable" when the sandbox cannot be set up on this machine.
  SandboxResult run(const RunRequest& request);

  // Deletes the session's working directory, waiting for a run of it in progress to end first.
  void remove_session(const std::string& session_id);

  // Deletes the working directories of sessions that are no longer live (expired or ended while the
  // proxy was down): every directory under sessions_dir for which `is_live(id)` is false. Returns how
  // many it removed.
  int prune(const std::function<bool(const std::string&)>& is_live);

  // The working directory's host path (for tests and logs).
  std::string session_dir(const std::string& session_id) const;

  const RunnerOptions& options() const { return options_; }
  // Whether runs get a control group ("v1", "v2"), or "" (rlimits only); decided once, at start.
  const std::string& cgroup_version() const { return cgroup_version_; }
  // Whether disk_quota_bytes is enforced (a disk image per session); decided once, at start.
  bool disk_quota_enforced() const { return disk_images_; }

 private:
  class Slot;
  void acquire(const std::string& session_id, bool needs_capacity);
  void release(const std::string& session_id, bool had_capacity);
  void maybe_prune();

  RunnerOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;
  std::set<std::string> busy_;  // sessions with a run (or a removal) in progress
  std::string cgroup_version_;
  bool disk_images_ = false;
  std::atomic<uint64_t> seq_{0};  // names each run's control group
  std::chrono::steady_clock::time_point last_prune_;
};

// The runner's options from the configuration: defaults resolved against the data dir, and the
// sandbox's host ids set when the proxy runs as root.
RunnerOptions options_from(const Config& config, std::string sdk_python, std::string sdk_js);

// Why a run's `env` may not set `name` (a sentence), or "" if it may. Refused: LD_* (the dynamic
// loader), MALLOC_* and GLIBC_* (allocator and tunables), and the rest of glibc's own list of
// variables unsafe across a privilege boundary (GCONV_PATH, GETCONF_DIR, HOSTALIASES, LOCALDOMAIN,
// LOCPATH, NIS_PATH, NLSPATH, RESOLV_HOST_CONF, RES_OPTIONS, TMPDIR, TZDIR), whatever their case.
// The variables exist only inside the sandbox (runner/sandbox.h); these would still steer the
// launcher that sets the run's rlimits before the code starts. Language variables (PYTHON*,
// NODE_OPTIONS...) are allowed: they change only the interpreter that runs the caller's own code.
std::string unsafe_env_reason(const std::string& name);

// True if `id` can name a working directory: 1 to 128 of [A-Za-z0-9_.-], and not "." or "..".
bool is_safe_session_id(const std::string& id);

}  // namespace era::runner

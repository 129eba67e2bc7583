#include "runner/runner.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "runner/cgroup.h"
#include "util/error.h"
#include "util/fd.h"
#include "util/log.h"

namespace era::runner {
namespace {

// Inside the sandbox.
constexpr const char* kWorkdir = "/home/session";
constexpr const char* kSocket = "/run/era/storage.sock";

ApiError unavailable(const std::string& why) {
  return ApiError(503, "sandbox_unavailable", "cannot run code on this machine: " + why);
}

// Writes `data` as `name` in the directory, replacing whatever the code left there under that name
// without following it: a symlink planted by earlier code must not turn our write into one outside.
// The file is 0600, owned by the sandbox's user (`owner`, when the proxy runs as root).
void place_file(int dirfd, const char* name, const std::string& data,
                const std::optional<std::pair<uid_t, gid_t>>& owner) {
  if (::unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
    throw ApiError(409, "sdk_blocked",
                   std::string("cannot place ") + name + " in the session's directory: " + std::strerror(errno) +
                       " (remove what is there under that name)");
  UniqueFd fd(::openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) throw std::runtime_error(std::string("create ") + name + ": " + std::strerror(errno));
  if (owner && ::fchown(fd.get(), owner->first, owner->second) != 0)
    throw std::runtime_error(std::string("chown ") + name + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(std::string("write ") + name + ": " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
}

bool valid_env_name(const std::string& k) {
  if (k.empty() || k.size() > 128 || std::isdigit(static_cast<unsigned char>(k[0]))) return false;
  for (char c : k)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

bool starts_with_nocase(const std::string& s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

}  // namespace

std::string unsafe_env_reason(const std::string& name) {
  // Families, matched without regard to case (a lower-case variant is refused too, though libc
  // would ignore it: there is no reason to send one).
  if (starts_with_nocase(name, "LD_"))
    return "LD_* variables steer the dynamic loader of every program the sandbox starts, including the "
           "launcher that runs before the run's limits are set";
  if (starts_with_nocase(name, "MALLOC_") || starts_with_nocase(name, "GLIBC_"))
    return "MALLOC_* and GLIBC_* variables change the C library's allocator and tunables in every program "
           "the sandbox starts";
  // The rest of the C library's own list of variables that are unsafe for programs more privileged
  // than their caller (glibc's unsecvars.h; it strips them for set-user-ID programs).
  static const char* const kLibc[] = {"GCONV_PATH", "GETCONF_DIR", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
                                      "NIS_PATH",   "NLSPATH",     "RESOLV_HOST_CONF", "RES_OPTIONS",
                                      "TMPDIR",     "TZDIR"};
  for (const char* n : kLibc)
    if (starts_with_nocase(name, n) && name.size() == std::strlen(n))
      return "it makes the C library load files (modules, locales, host tables) from a path the caller "
             "chooses, in every program the sandbox starts";
  return "";
}

namespace {

// JavaScript runs as CommonJS (so `require('./era_storage.js')` works) inside an async function (so
// the guide's top-level `await` does too). The prefix shares the code's first line, so line numbers
// in errors stay the user's.
std::string wrap_javascript(const std::string& code) {
  return "(async () => {" + code +
         "\n})().catch((e) => { console.error(e); process.exitCode = 1; });\n";
}

// The session's disk image (`disk.img` in its directory, which only the proxy can write to), made
// on first use: a sparse file of `bytes` with an ext4 file system whose root the sandbox's user
// owns; 1% is reserved for root, so the SDK files can always be placed even when the code filled
// the rest.
UniqueFd open_image(int dirfd, const std::string& dir, uint64_t bytes, const std::string& mke2fs,
                    std::pair<uid_t, gid_t> owner) {
  UniqueFd fd(::openat(dirfd, "disk.img", O_RDWR | O_NOFOLLOW | O_CLOEXEC));
  struct stat st;
  if (fd) {
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
      throw std::runtime_error(dir + "/disk.img is not a regular file");
    return fd;
  }
  if (errno != ENOENT) throw std::runtime_error("open " + dir + "/disk.img: " + std::strerror(errno));
  ::unlinkat(dirfd, "disk.img.new", 0);  // from a start interrupted before the rename
  UniqueFd tmp(::openat(dirfd, "disk.img.new", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!tmp || ::ftruncate(tmp.get(), static_cast<off_t>(bytes)) != 0)
    throw std::runtime_error("create " + dir + "/disk.img.new: " + std::strerror(errno));
  const std::string path = dir + "/disk.img.new";
  const std::string owner_opt = "root_owner=" + std::to_string(owner.first) + ":" + std::to_string(owner.second) +
                                ",lazy_itable_init=1,lazy_journal_init=1,nodiscard";
  std::vector<std::string> args = {mke2fs, "-q", "-F", "-t", "ext4", "-m", "1", "-L", "era-session", "-E", owner_opt, path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char env0[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char* envp[] = {env0, nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, mke2fs.c_str(), &actions, nullptr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot run " + mke2fs + ": " + std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ::unlinkat(dirfd, "disk.img.new", 0);
    throw std::runtime_error(mke2fs + " failed on " + path + " (status " + std::to_string(status) + ")");
  }
  if (::renameat(dirfd, "disk.img.new", dirfd, "disk.img") != 0)
    throw std::runtime_error("rename " + path + ": " + std::strerror(errno));
  return tmp;
}

// Attaches the image to a free loop device, which detaches itself once the run's mount and this
// descriptor are gone (LO_FLAGS_AUTOCLEAR). Returns the device, open, and its path in `path`.
UniqueFd attach_loop(int image_fd, std::string& path) {
  UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control) throw std::runtime_error(std::string("open /dev/loop-control: ") + std::strerror(errno));
  for (int attempt = 0; attempt < 64; ++attempt) {
    const int n = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (n < 0) throw std::runtime_error(std::string("no free loop device: ") + std::strerror(errno));
    path = "/dev/loop" + std::to_string(n);
    UniqueFd dev(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!dev) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
    loop_config config{};
    config.fd = static_cast<uint32_t>(image_fd);
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    if (::ioctl(dev.get(), LOOP_CONFIGURE, &config) == 0) return dev;
    if (errno != EBUSY) throw std::runtime_error("attach " + path + ": " + std::strerror(errno));
    // Taken by a concurrent run between GET_FREE and CONFIGURE: ask again.
  }
  throw std::runtime_error("no loop device stayed free");
}

}  // namespace

const char* to_string(Language l) { return l == Language::python ? "python" : "javascript"; }

bool parse_language(const std::string& s, Language& out) {
  if (s == "python") out = Language::python;
  else if (s == "javascript" || s == "node") out = Language::javascript;
  else return false;
  return true;
}

bool is_safe_session_id(const std::string& id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

RunnerOptions options_from(const Config& c, std::string sdk_python, std::string sdk_js) {
  RunnerOptions o;
  o.sessions_dir = c.runner_sessions_dir.empty() ? c.data_dir + "/sessions" : c.runner_sessions_dir;
  o.socket_path = c.runner_socket.empty() ? c.data_dir + "/proxy.sock" : c.runner_socket;
  o.sdk_python = std::move(sdk_python);
  o.sdk_js = std::move(sdk_js);
  o.bwrap = c.runner_bwrap;
  o.python = c.runner_python;
  o.node = c.runner_node;
  o.default_timeout_s = c.runner_default_timeout;
  o.max_timeout_s = c.runner_max_timeout;
  o.max_concurrent = c.runner_max_concurrent;
  o.queue_timeout_s = c.runner_queue_timeout;
  o.limits.memory_bytes = uint64_t(c.runner_memory_mb) << 20;
  o.limits.max_processes = c.runner_max_processes;
  o.limits.max_output = static_cast<size_t>(c.runner_max_output_bytes);
  o.limits.max_file_bytes = uint64_t(c.runner_max_file_mb) << 20;
  o.limits.tmp_bytes = uint64_t(c.runner_tmp_mb) << 20;
  o.disk_quota_bytes = uint64_t(c.runner_disk_quota_mb) << 20;
  // The kernel does not hold uid 0 to RLIMIT_NPROC, and root's sandbox should own nothing: as root,
  // the sandbox runs as runner.uid/gid.
  if (::geteuid() == 0) o.run_as = std::make_pair(uid_t(c.runner_uid), gid_t(c.runner_gid));
  return o;
}

Runner::Runner(RunnerOptions options) : options_(std::move(options)) {
  if (options_.disk_quota_bytes > 0) {
    std::string no;
    if (!options_.run_as) no = "the proxy is not root (it cannot mount a disk image per session)";
    else if (::access("/dev/loop-control", R_OK | W_OK) != 0) no = "no /dev/loop-control on this machine";
    else if (::access(options_.mke2fs.c_str(), X_OK) != 0) no = options_.mke2fs + " is missing (e2fsprogs)";
    disk_images_ = no.empty();
    if (!disk_images_)
      log::warn("runner: the disk quota of sessions' working directories is NOT enforced: " + no +
                " (set runner.disk_quota_mb = 0 to say so, or see docs/operations.md)");
  }
  std::string why;
  if (auto probe = RunCgroup::create("era-probe-" + std::to_string(::getpid()), 1 << 30, 16, why))
    cgroup_version_ = probe->version();
  else
    log::warn("runner: no cgroups (" + why + "): memory and process limits are per-process rlimits only");
}

std::string Runner::session_dir(const std::string& session_id) const {
  return options_.sessions_dir + "/" + session_id;
}

// Holds a concurrency slot and the session's turn for one run (or removal).
class Runner::Slot {
 public:
  Slot(Runner& r, std::string id, bool capacity) : r_(r), id_(std::move(id)), capacity_(capacity) {
    r_.acquire(id_, capacity_);
  }
  ~Slot() { r_.release(id_, capacity_); }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

 private:
  Runner& r_;
  std::string id_;
  bool capacity_;
};

void Runner::acquire(const std::string& id, bool needs_capacity) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool ok = cv_.wait_for(lock, std::chrono::seconds(options_.queue_timeout_s), [&] {
    return !busy_.count(id) && (!needs_capacity || running_ < options_.max_concurrent);
  });
  if (!ok) {
    ApiError e(503, "runner_busy",
               "no sandbox became free within " + std::to_string(options_.queue_timeout_s) +
                   " seconds (runner.max_concurrent runs at once, one per session); retry later");
    e.retry_after_s = 5;
    throw e;
  }
  busy_.insert(id);
  if (needs_capacity) ++running_;
}

void Runner::release(const std::string& id, bool had_capacity) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    busy_.erase(id);
    if (had_capacity) --running_;
  }
  cv_.notify_all();
}

SandboxResult Runner::run(const RunRequest& req) {
  if (!is_safe_session_id(req.session_id))
    throw bad_request("invalid_session_id", "session id must be 1 to 128 of [A-Za-z0-9_.-], not . or ..");
  if (req.code.size() > kMaxCodeBytes) throw too_large("code_too_large", "code is at most 1 MiB (1048576 bytes)");
  double timeout = req.timeout_s.value_or(options_.default_timeout_s);
  if (!std::isfinite(timeout) || timeout <= 0 || timeout > options_.max_timeout_s)
    throw bad_request("invalid_timeout", "timeout must be a number of seconds above 0 and at most " +
                                             std::to_string(options_.max_timeout_s) + " (runner.max_timeout)");

  std::vector<std::pair<std::string, std::string>> env = {
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"HOME", kWorkdir},
      {"TMPDIR", "/tmp"},  // set by the proxy only (unsafe_env_reason)
      {"LANG", "C.UTF-8"},
      {"PYTHONUNBUFFERED", "1"},         // output printed before a kill is not lost in a buffer
      {"PYTHONDONTWRITEBYTECODE", "1"},  // no __pycache__ left in the session's directory
  };
  if (req.env.size() > kMaxEnvVars)
    throw bad_request("invalid_env", "env has at most " + std::to_string(kMaxEnvVars) + " variables");
  size_t env_bytes = 0;
  for (const auto& [k, v] : req.env) {
    if (!valid_env_name(k))
      throw bad_request("invalid_env", "env name '" + k.substr(0, 128) + "' must match [A-Za-z_][A-Za-z0-9_]*");
    if (k.rfind("ERA_", 0) == 0)
      throw bad_request("reserved_env", "env name '" + k + "' is reserved: ERA_* variables are set by the proxy");
    if (std::string why = unsafe_env_reason(k); !why.empty())
      throw bad_request("unsafe_env", "env name '" + k + "' is refused: " + why);
    if (v.find('\0') != std::string::npos) throw bad_request("invalid_env", "env value of " + k + " contains NUL");
    env_bytes += k.size() + v.size() + 2;
    bool replaced = false;
    for (auto& e : env)
      if (e.first == k) e.second = v, replaced = true;
    if (!replaced) env.emplace_back(k, v);
  }
  if (env_bytes > kMaxEnvBytes) throw too_large("env_too_large", "env is at most 64 KiB in total");
  env.insert(env.end(), {{"ERA_SESSION", "true"},
                         {"ERA_SESSION_ID", req.session_id},
                         {"ERA_LANGUAGE", to_string(req.language)},
                         {"ERA_STORAGE_URL", options_.socket_path.empty() ? "" : std::string("unix://") + kSocket},
                         {"ERA_STORAGE_TOKEN", req.token}});

  const bool py = req.language == Language::python;
  maybe_prune();
  Slot slot(*this, req.session_id, true);

  std::error_code ec;
  std::filesystem::create_directories(options_.sessions_dir, ec);
  // The proxy's alone (whatever the umask): working directories are reached only through it.
  if (::chmod(options_.sessions_dir.c_str(), 0700) != 0)
    throw std::runtime_error("chmod " + options_.sessions_dir + ": " + std::strerror(errno));
  UniqueFd parent(::open(options_.sessions_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent) throw std::runtime_error("open " + options_.sessions_dir + ": " + std::strerror(errno));
  const bool created = ::mkdirat(parent.get(), req.session_id.c_str(), 0700) == 0;
  if (!created && errno != EEXIST)
    throw std::runtime_error("create " + session_dir(req.session_id) + ": " + std::strerror(errno));
  UniqueFd dir(::openat(parent.get(), req.session_id.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) throw std::runtime_error("open " + session_dir(req.session_id) + ": " + std::strerror(errno));
  UniqueFd image, loop;
  std::string loop_path;
  if (disk_images_) {
    // The directory holds the image only, and only the proxy may write to it: the code's files are
    // in the image.
    if (::fchown(dir.get(), ::geteuid(), ::getegid()) != 0 || ::fchmod(dir.get(), 0700) != 0)
      throw std::runtime_error("chown " + session_dir(req.session_id) + ": " + std::strerror(errno));
    try {
      image = open_image(dir.get(), session_dir(req.session_id), options_.disk_quota_bytes, options_.mke2fs,
                         *options_.run_as);
      loop = attach_loop(image.get(), loop_path);
    } catch (const std::runtime_error& e) {
      log::error(std::string("run of session ") + req.session_id + ": " + e.what());
      throw unavailable(e.what());
    }
  } else {
    if (options_.run_as && ::fchown(dir.get(), options_.run_as->first, options_.run_as->second) != 0)
      throw std::runtime_error("chown " + session_dir(req.session_id) + ": " + std::strerror(errno));
    place_file(dir.get(), "era_storage.py", options_.sdk_python, options_.run_as);
    place_file(dir.get(), "era_storage.js", options_.sdk_js, options_.run_as);
  }

  UniqueFd sock;
  if (!options_.socket_path.empty()) {
    sock.reset(::open(options_.socket_path.c_str(), O_PATH | O_CLOEXEC));
    if (!sock) throw unavailable("the proxy's socket " + options_.socket_path + ": " + std::strerror(errno));
  }

  SandboxSpec spec;
  spec.bwrap = options_.bwrap;
  spec.prlimit = options_.prlimit;
  spec.command = {py ? options_.python : options_.node, "-"};
  spec.stdin_data = py ? req.code : wrap_javascript(req.code);
  if (disk_images_) {
    spec.image_device = loop_path;
    spec.files = {{"era_storage.py", options_.sdk_python}, {"era_storage.js", options_.sdk_js}};
  } else {
    spec.workdir_fd = dir.get();
  }
  spec.workdir = kWorkdir;
  spec.socket_fd = sock.get();
  spec.socket_path = kSocket;
  spec.env = std::move(env);
  spec.run_as = options_.run_as;
  if (!cgroup_version_.empty())
    spec.cgroup_name = "era-run-" + std::to_string(::getpid()) + "-" + std::to_string(++seq_);
  spec.limits = options_.limits;
  spec.limits.timeout_ms = static_cast<int>(std::ceil(timeout * 1000));
  try {
    return run_sandbox(spec);
  } catch (const SetupRefused& e) {
    if (e.code == "disk_full") throw ApiError(507, "disk_full", std::string(e.what()) + "; delete the session");
    throw ApiError(409, "sdk_blocked", std::string(e.what()) + " (remove it)");
  } catch (const std::runtime_error& e) {
    log::error(std::string("run of session ") + req.session_id + ": " + e.what());
    throw unavailable(e.what());
  }
}

void Runner::remove_session(const std::string& session_id) {
  if (!is_safe_session_id(session_id)) return;
  Slot slot(*this, session_id, false);
  std::error_code ec;
  // remove_all never follows symlinks, and no process of the session is alive to race it: every
  // run's processes die with its PID namespace before the slot is released.
  std::filesystem::remove_all(session_dir(session_id), ec);
  if (ec) log::warn("cannot delete " + session_dir(session_id) + ": " + ec.message());
}

}  // namespace era::runner

namespace era::runner {

void Runner::maybe_prune() {
  if (!options_.is_live) return;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (last_prune_ != std::chrono::steady_clock::time_point() &&
        now - last_prune_ < std::chrono::seconds(options_.prune_interval_s))
      return;
    last_prune_ = now;
  }
  if (int n = prune(options_.is_live)) log::info("runner: removed " + std::to_string(n) + " stale session dir(s)");
}

int Runner::prune(const std::function<bool(const std::string&)>& is_live) {
  std::error_code ec;
  std::vector<std::string> stale;
  for (const auto& entry : std::filesystem::directory_iterator(options_.sessions_dir, ec)) {
    const std::string id = entry.path().filename().string();
    if (is_safe_session_id(id) && !is_live(id)) stale.push_back(id);
  }
  int removed = 0;
  for (const auto& id : stale) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (busy_.count(id)) continue;  // a run still in progress: next time
      busy_.insert(id);
    }
    std::filesystem::remove_all(session_dir(id), ec);
    if (ec) log::warn("cannot delete " + session_dir(id) + ": " + ec.message());
    else ++removed;
    release(id, false);
  }
  return removed;
}

}  // namespace era::runner

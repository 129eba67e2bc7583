#include "runner/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace era::runner {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

bool write_text(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  return fd && ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream is(s);
  while (std::getline(is, item, sep)) out.push_back(item);
  return out;
}

bool has_item(const std::string& list, const std::string& item, char sep) {
  for (const auto& x : split(list, sep))
    if (x == item) return true;
  return false;
}

// The value after `key` in a flat-keyed file ("oom_kill 3\n..."); 0 if absent.
long long keyed(const std::string& path, const std::string& key) {
  std::istringstream in(read_text(path));
  std::string k;
  long long v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

// Where the hierarchy with `controller` ("" for v2) has our own group, as a directory; "" if none.
std::string own_group_dir(const std::string& controller) {
  std::string path;
  bool found = false;
  std::istringstream cg(read_text("/proc/self/cgroup"));
  for (std::string line; std::getline(cg, line);) {
    auto f = split(line, ':');
    if (f.size() < 3) continue;
    std::string p = line.substr(f[0].size() + f[1].size() + 2);
    if ((controller.empty() && f[0] == "0" && f[1].empty()) || (!controller.empty() && has_item(f[1], controller, ','))) {
      path = p;
      found = true;
      break;
    }
  }
  if (!found) return "";
  std::istringstream mi(read_text("/proc/self/mountinfo"));
  for (std::string line; std::getline(mi, line);) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto pre = split(line.substr(0, dash), ' ');
    auto post = split(line.substr(dash + 3), ' ');
    if (pre.size() < 5 || post.size() < 3) continue;
    const std::string& root = pre[3];
    const std::string& mountpoint = pre[4];
    const bool match = controller.empty() ? post[0] == "cgroup2"
                                          : post[0] == "cgroup" && has_item(post[2], controller, ',');
    if (!match) continue;
    if (root == "/") return mountpoint + (path == "/" ? "" : path);
    if (path.compare(0, root.size(), root) == 0) return mountpoint + path.substr(root.size());
  }
  return "";
}

}  // namespace

std::unique_ptr<RunCgroup> RunCgroup::create(const std::string& name, uint64_t memory_bytes, int max_processes,
                                             std::string& why) {
  std::unique_ptr<RunCgroup> g(new RunCgroup());
  const std::string mem = std::to_string(memory_bytes), pids = std::to_string(max_processes);

  // v2: our group must already hand memory and pids down to its children.
  if (std::string base = own_group_dir(""); !base.empty()) {
    const std::string ctl = read_text(base + "/cgroup.subtree_control");
    if (has_item(ctl.substr(0, ctl.find('\n')), "memory", ' ') && has_item(ctl.substr(0, ctl.find('\n')), "pids", ' ') &&
        ::mkdir((base + "/" + name).c_str(), 0755) == 0) {
      const std::string dir = base + "/" + name;
      g->v2_ = true;
      g->dirs_ = {dir};
      g->memory_dir_ = g->pids_dir_ = dir;
      write_text(dir + "/memory.swap.max", "0");
      if (write_text(dir + "/memory.max", mem) && write_text(dir + "/pids.max", pids)) {
        g->procs_.emplace_back(::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
        if (g->procs_.back()) return g;
      }
      why = "cannot configure " + dir;
      return nullptr;  // the destructor removes the group
    }
  }

  // v1: separate memory and pids hierarchies.
  const std::string mbase = own_group_dir("memory"), pbase = own_group_dir("pids");
  if (mbase.empty() || pbase.empty()) {
    why = "no cgroup v2 delegation of memory and pids, and no cgroup v1 memory and pids hierarchies";
    return nullptr;
  }
  for (const auto& base : {mbase, pbase}) {
    const std::string dir = base + "/" + name;
    if (::mkdir(dir.c_str(), 0755) != 0) {
      why = "cannot create " + dir + ": " + std::strerror(errno);
      return nullptr;
    }
    g->dirs_.push_back(dir);
  }
  g->memory_dir_ = g->dirs_[0];
  g->pids_dir_ = g->dirs_[1];
  const bool ok = write_text(g->memory_dir_ + "/memory.limit_in_bytes", mem) &&
                  write_text(g->pids_dir_ + "/pids.max", pids);
  write_text(g->memory_dir_ + "/memory.memsw.limit_in_bytes", mem);  // no swap beyond it, where swap is accounted
  if (!ok) {
    why = "cannot set limits in " + g->memory_dir_ + " / " + g->pids_dir_;
    return nullptr;
  }
  for (const auto& d : g->dirs_) {
    g->procs_.emplace_back(::open((d + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!g->procs_.back()) {
      why = "cannot open " + d + "/cgroup.procs";
      return nullptr;
    }
  }
  return g;
}

std::vector<int> RunCgroup::procs_fds() const {
  std::vector<int> fds;
  for (const auto& f : procs_) fds.push_back(f.get());
  return fds;
}

bool RunCgroup::memory_hit() const {
  if (v2_) return keyed(memory_dir_ + "/memory.events", "oom_kill") > 0 || keyed(memory_dir_ + "/memory.events", "oom") > 0;
  return keyed(memory_dir_ + "/memory.oom_control", "oom_kill") > 0;
}

bool RunCgroup::processes_hit() const { return keyed(pids_dir_ + "/pids.events", "max") > 0; }

RunCgroup::~RunCgroup() {
  procs_.clear();
  // A group can be removed only once empty. Its processes are normally gone with the sandbox's PID
  // namespace already; whatever is still exiting gets SIGKILL, for at most about a second.
  for (const auto& dir : dirs_) {
    if (v2_) write_text(dir + "/cgroup.kill", "1");
    for (int attempt = 0; attempt < 200 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++attempt) {
      std::istringstream procs(read_text(dir + "/cgroup.procs"));
      for (pid_t pid; procs >> pid;) ::kill(pid, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

}  // namespace era::runner

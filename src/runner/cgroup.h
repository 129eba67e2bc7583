// RunCgroup: one control group per run, holding every process of the sandbox, so that memory and the
// process count are limited for the whole tree (rlimits are per process) and a limit that was hit
// can be named afterwards.
//
// cgroup v2 is used when our own group's subtree delegates the memory and pids controllers; else the
// v1 memory and pids hierarchies when we may create groups in them (as on a Docker host with a
// hybrid layout); else none: then the runner relies on rlimits alone (still contained, but a memory
// or process limit hit is not named).
//
// The sandbox's first process joins the group itself, before it execs bwrap, by writing "0" to each
// cgroup.procs (procs_fds()): nothing it starts can run outside the group.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/fd.h"

namespace era::runner {

class RunCgroup {
 public:
  // A new group named `name` (unique per run) with the limits set; nullptr when this machine gives
  // us no usable cgroups (the reason goes to `why`).
  static std::unique_ptr<RunCgroup> create(const std::string& name, uint64_t memory_bytes, int max_processes,
                                           std::string& why);
  ~RunCgroup();  // kills whatever is left in the group and removes it
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;

  // Open cgroup.procs files (write-only) for the child to join with write(fd, "0", 1).
  std::vector<int> procs_fds() const;

  // After the run: did the group run out of memory (an OOM kill or an allocation refused at the
  // limit), or hit its process limit (a fork refused)?
  bool memory_hit() const;
  bool processes_hit() const;

  const char* version() const { return v2_ ? "v2" : "v1"; }

 private:
  RunCgroup() = default;
  bool v2_ = false;
  std::vector<std::string> dirs_;  // v2: one; v1: memory's and pids'
  std::string memory_dir_, pids_dir_;
  std::vector<UniqueFd> procs_;
};

}  // namespace era::runner

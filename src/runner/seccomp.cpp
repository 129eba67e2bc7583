#include "runner/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <stdexcept>

#include "util/fd.h"

namespace era::runner {
namespace {

// Denied outright, with EPERM. Names this libseccomp or architecture does not know are skipped.
constexpr const char* kDenied[] = {
    // Reaching into other processes.
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise", "kcmp",
    // Mounts and namespaces.
    "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr", "unshare", "setns",
    // The kernel's keyrings, BPF, and the interfaces behind many kernel exploits.
    "keyctl", "add_key", "request_key", "bpf", "userfaultfd", "perf_event_open", "io_uring_setup",
    "io_uring_enter", "io_uring_register",
    // The machine's kernel, modules, time, swap, accounting, I/O ports.
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
    "query_module", "get_kernel_syms", "open_by_handle_at", "name_to_handle_at", "acct", "swapon",
    "swapoff", "reboot", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime", "iopl",
    "ioperm", "modify_ldt", "syslog", "quotactl", "quotactl_fd", "lookup_dcookie", "vhangup", "uselib",
    "sysfs", "ustat", "_sysctl", "nfsservctl", "fanotify_init",
};

// personality(2) flags that weaken a process's hardening or change its memory layout. libseccomp
// allows one comparison per argument in a rule, so each flag gets a rule of its own; a persona
// with none of them (PER_LINUX, PER_LINUX32, UNAME26) is allowed. The query (0xffffffff) has them
// all set, so it is refused too: no runtime the sandbox runs makes it.
constexpr scmp_datum_t kPersonalityFlags[] = {
    0x0040000 /* ADDR_NO_RANDOMIZE */, 0x0080000 /* FDPIC_FUNCPTRS */,  0x0100000 /* MMAP_PAGE_ZERO */,
    0x0200000 /* ADDR_COMPAT_LAYOUT */, 0x0400000 /* READ_IMPLIES_EXEC */, 0x0800000 /* ADDR_LIMIT_32BIT */,
    0x1000000 /* SHORT_INODE */,       0x2000000 /* WHOLE_SECONDS */,     0x4000000 /* STICKY_TIMEOUTS */,
    0x8000000 /* ADDR_LIMIT_3GB */};

constexpr scmp_datum_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                            CLONE_NEWUSER, CLONE_NEWPID,   CLONE_NEWNET};

struct CtxFree {
  void operator()(scmp_filter_ctx c) const { seccomp_release(c); }
};

void check(int rc, const std::string& what) {
  if (rc < 0) throw std::runtime_error("seccomp filter: " + what + ": " + std::strerror(-rc));
}

std::string build() {
  std::unique_ptr<void, CtxFree> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) throw std::runtime_error("seccomp filter: seccomp_init failed");
  scmp_filter_ctx c = ctx.get();
  // Only the native ABI: a system call of another architecture (int 0x80, x32) kills the process.
  check(seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "bad-arch action");
  const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : kDenied) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;
    check(seccomp_rule_add(c, deny, nr, 0), name);
  }
  for (scmp_datum_t flag : kNamespaceFlags)
    check(seccomp_rule_add(c, deny, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)), "clone");
  check(seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3");
  for (scmp_datum_t flag : kPersonalityFlags)
    check(seccomp_rule_add(c, deny, SCMP_SYS(personality), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)),
          "personality");

  // libseccomp 2.5 exports to a descriptor only.
  UniqueFd mem(static_cast<int>(::syscall(SYS_memfd_create, "era-seccomp-build", MFD_CLOEXEC)));
  if (!mem) throw std::runtime_error(std::string("seccomp filter: memfd_create: ") + std::strerror(errno));
  check(seccomp_export_bpf(c, mem.get()), "export");
  std::string out;
  char buf[4096];
  if (::lseek(mem.get(), 0, SEEK_SET) != 0) throw std::runtime_error("seccomp filter: lseek");
  for (ssize_t n; (n = ::read(mem.get(), buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("seccomp filter: read: ") + std::strerror(errno));
    out.append(buf, static_cast<size_t>(n));
  }
  if (out.empty() || out.size() % 8 != 0) throw std::runtime_error("seccomp filter: empty or torn program");
  return out;
}

}  // namespace

const std::string& seccomp_program() {
  static const std::string program = build();
  return program;
}

}  // namespace era::runner

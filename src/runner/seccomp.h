// The seccomp filter sandboxed code runs under (bwrap --seccomp): defence in depth behind the
// namespaces, against system calls code has no business making and that have carried kernel bugs.
//
// Denied with EPERM: ptrace, process_vm_readv/writev, pidfd_getfd, process_madvise, kcmp; mount,
// umount2, pivot_root, chroot, the new mount API (fsopen, fsconfig, fsmount, fspick, move_mount,
// open_tree, mount_setattr); unshare and setns; clone with any CLONE_NEW* flag; keyctl, add_key,
// request_key; bpf; userfaultfd; perf_event_open; kexec_load, kexec_file_load; init_module,
// finit_module, delete_module; open_by_handle_at, name_to_handle_at; acct; swapon, swapoff;
// reboot; settimeofday, clock_settime, clock_adjtime, adjtimex; iopl, ioperm, modify_ldt; syslog;
// quotactl, quotactl_fd; lookup_dcookie; vhangup; uselib; sysfs, ustat; fanotify_init; io_uring_*;
// personality with any flag (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, MMAP_PAGE_ZERO... which weaken
// the process's hardening; the 0xffffffff query has them all set and is refused too), while the
// plain personas (PER_LINUX, PER_LINUX32, UNAME26) are allowed.
// clone3 fails with ENOSYS (its flags are behind a pointer seccomp cannot read), so libc falls
// back to clone, whose flags it can.
// Any other architecture's system calls (the 32-bit int 0x80 ABI on x86_64, and x32) kill the
// process: only the native ABI is allowed.
//
// bwrap applies the filter just before it execs the command, after its own namespace setup, so
// bwrap itself may still create the namespaces the filter denies to the code.
#pragma once

#include <string>

namespace era::runner {

// The filter as a classic BPF program (struct sock_filter[]), as bwrap --seccomp reads it. Built
// once with libseccomp; throws std::runtime_error if libseccomp cannot build it.
const std::string& seccomp_program();

}  // namespace era::runner

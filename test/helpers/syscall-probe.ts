import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A static test program that makes each named system call, in a child process of its own, and
 * prints `NAME ok`, `NAME ERRNO` or `NAME killed-SIGNAL`. The arguments are chosen so that a kernel that is reached
 * answers something other than EPERM (EINVAL, EFAULT, EBADF, ENOSYS or success) wherever it can:
 * EPERM then means the seccomp filter said no, not a missing capability.
 */
const SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t sleeper(void) { pid_t p = fork(); if (p == 0) { pause(); _exit(0); } return p; }
static void reap(pid_t p) { int e = errno; kill(p, SIGKILL); waitpid(p, 0, 0); errno = e; }
static long joined(long r) { if (r == 0) _exit(0); if (r > 0) { waitpid(r, 0, 0); return 0; } return r; }

static long call(const char *c) {
  if (!strcmp(c, "fork")) return joined(fork());
  if (!strcmp(c, "thread-clone")) { static char stack[65536]; return joined(syscall(SYS_clone, CLONE_VM | CLONE_FS | CLONE_FILES | SIGCHLD, stack + sizeof stack, 0, 0, 0)); }
  if (!strcmp(c, "unshare-user")) return unshare(CLONE_NEWUSER);
  if (!strcmp(c, "unshare-mount")) return unshare(CLONE_NEWNS);
  if (!strcmp(c, "clone-newuser")) return joined(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
  if (!strcmp(c, "clone3")) return syscall(SYS_clone3, 0, 0);
  if (!strcmp(c, "setns")) return syscall(SYS_setns, -1, 0);
  if (!strcmp(c, "keyctl")) return syscall(SYS_keyctl, 9999, 0, 0, 0, 0);
  if (!strcmp(c, "add_key")) return syscall(SYS_add_key, 0, 0, 0, 0, 0);
  if (!strcmp(c, "request_key")) return syscall(SYS_request_key, 0, 0, 0, 0);
  if (!strcmp(c, "bpf")) return syscall(SYS_bpf, 9999, 0, 0);
  if (!strcmp(c, "perf_event_open")) return syscall(SYS_perf_event_open, 0, 0, -1, -1, 0);
  if (!strcmp(c, "ptrace")) { pid_t p = sleeper(); long r = syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, p, 0, 0); reap(p); return r; }
  if (!strcmp(c, "process_vm_readv")) { char a[4], b[4]; struct iovec l = {a, 4}, m = {b, 4}; pid_t p = sleeper(); long r = syscall(SYS_process_vm_readv, p, &l, 1, &m, 1, 0); reap(p); return r; }
  if (!strcmp(c, "init_module")) return syscall(SYS_init_module, 0, 0, "");
  if (!strcmp(c, "finit_module")) return syscall(SYS_finit_module, -1, "", 0);
  if (!strcmp(c, "delete_module")) return syscall(SYS_delete_module, "slipway-none", 0);
  if (!strcmp(c, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, 0, 0);
  /* reboot needs CAP_SYS_BOOT, which a process has in a user and pid namespace of its own:
     there a kernel that is reached answers EINVAL (LINUX_REBOOT_CMD_CAD_OFF in a child pid
     namespace); where no such namespace can be made, the call is tried as is. */
  if (!strcmp(c, "reboot")) {
    pid_t p = syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
    if (p == 0) _exit(syscall(SYS_reboot, 0xfee1dead, 672274793, 0, 0) < 0 ? errno : 0);
    if (p > 0) { int s; waitpid(p, &s, 0); errno = WEXITSTATUS(s); return errno ? -1 : 0; }
    return syscall(SYS_reboot, 0xfee1dead, 672274793, 0, 0);
  }
  if (!strcmp(c, "mount")) return syscall(SYS_mount, (char *)1, "/", (char *)1, 0, 0);
  if (!strcmp(c, "umount2")) return syscall(SYS_umount2, (char *)1, 0);
  if (!strcmp(c, "swapon")) return syscall(SYS_swapon, (char *)1, 0);
  if (!strcmp(c, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, -1, 0, 0);
  if (!strcmp(c, "userfaultfd")) return syscall(SYS_userfaultfd, -1);
  if (!strcmp(c, "personality")) return syscall(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */);
  if (!strcmp(c, "io_uring_setup")) return syscall(SYS_io_uring_setup, 0, 0);
#ifdef __x86_64__
  /* getpid through the 32-bit ABI (int 0x80, call 20): another architecture as far as seccomp goes. */
  if (!strcmp(c, "compat-abi")) { long r; __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory"); if (r < 0) { errno = -r; return -1; } return 0; }
#endif
  errno = 0;
  return -2;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    pid_t p = fork();
    if (p == 0) {
      errno = 0;
      long r = call(argv[i]);
      printf("%s %s\n", argv[i], r == -2 ? "unknown" : r < 0 ? strerrorname_np(errno) : "ok");
      fflush(stdout);
      _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    if (WIFSIGNALED(st)) printf("%s killed-%s\n", argv[i], sigabbrev_np(WTERMSIG(st)));
    fflush(stdout);
  }
  return 0;
}
`;

/** Compiles the probe (static: it runs on any stack) into dir/probe. */
export async function compileProbe(dir: string): Promise<string> {
  await writeFile(join(dir, 'probe.c'), SOURCE);
  execFileSync('gcc', ['-static', '-O1', '-o', join(dir, 'probe'), join(dir, 'probe.c')]);
  return join(dir, 'probe');
}

/** `NAME RESULT` lines into a map. */
export function probeResults(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const hit = /^([a-z0-9_-]+) (ok|unknown|E[A-Z0-9]+|killed-[A-Z0-9]+)$/.exec(line.trim());
    if (hit) m.set(hit[1]!, hit[2]!);
  }
  return m;
}

/*
 * dyno-init: the first process of every dyno, as PID 1 of a container or (process runtime) a
 * child subreaper leading its own process group on the host. Runs `PROG ARG...` as its child and:
 *  - reaps every process that ends up as its child (orphans included), as an init must;
 *  - when the main child exits, exits with its status (128 + N for signal N) at once: the dyno
 *    is over, and whatever it left behind goes with it;
 *  - on SIGTERM sent to it (the supervisor's stop), passes it to every process of the dyno once,
 *    then waits until all of them are gone, however long that takes: the supervisor's
 *    --stop-timeout decides when to SIGKILL, and says R12;
 *  - passes SIGINT, SIGQUIT, SIGHUP, SIGUSR1 and SIGUSR2 sent to it on the same way, but not
 *    those a terminal generated: the terminal gave them to its foreground group already.
 * With a terminal on stdin in the foreground of the caller's session (process runtime, `slipway
 * run` on a TTY), it takes the terminal for its own process group and gives it back on exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static const int FORWARDED[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2};

static int status_of(int st) {
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: dyno-init PROG [ARG...]\n");
    return 2;
  }
  const int pid1 = getpid() == 1;
  pid_t gave_back = -1;
  sigset_t handled, orig;
  sigemptyset(&handled);
  for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++) sigaddset(&handled, FORWARDED[i]);
  sigaddset(&handled, SIGCHLD);
  sigaddset(&handled, SIGTTOU); /* so that tcsetpgrp works from wherever this group is */
  sigprocmask(SIG_BLOCK, &handled, &orig);
  if (!pid1) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (getpgrp() != getpid()) {
      pid_t caller = getpgrp();
      setpgid(0, 0);
      if (isatty(0) && tcgetpgrp(0) == caller && tcsetpgrp(0, getpid()) == 0) gave_back = caller;
    }
  }
  pid_t main_child = fork();
  if (main_child < 0) {
    perror("dyno-init: fork");
    return 126;
  }
  if (main_child == 0) {
    sigprocmask(SIG_SETMASK, &orig, NULL);
    execvp(argv[1], argv + 1);
    fprintf(stderr, "dyno-init: %s: %s\n", argv[1], strerror(errno));
    _exit(127);
  }
  int stopping = 0, code = -1;
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&handled, &si);
    if (sig < 0) continue;
    if (sig == SIGCHLD) {
      int st;
      pid_t p;
      while ((p = waitpid(-1, &st, WNOHANG)) > 0)
        if (p == main_child) code = status_of(st);
      /* The main child is gone: done, unless stopping, then only once nothing of the dyno is left. */
      if (code >= 0 && (!stopping || (p < 0 && errno == ECHILD))) break;
      continue;
    }
    if (sig == SIGTTOU) continue;
    if (sig == SIGTERM) stopping = 1;
    /* Only what was sent (kill), never what a terminal generated or this process sent itself. */
    if (si.si_code > 0 || (si.si_code == SI_USER && si.si_pid == getpid())) continue;
    kill(pid1 ? -1 : -getpgrp(), sig);
    if (stopping && code >= 0 && waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD) break;
  }
  if (gave_back > 0) tcsetpgrp(0, gave_back);
  return code;
}

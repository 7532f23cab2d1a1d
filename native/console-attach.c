/*
 * console-attach SOCKET: the caller's end of a container dyno's terminal, for crun (runc's
 * foreground `run` does this itself). Listens on SOCKET, tells its parent on fd 3 ("listening"),
 * receives the pseudo-terminal master the OCI runtime sends over it (--console-socket, SCM_RIGHTS:
 * what Node cannot receive), tells "attached", then puts the caller's terminal in raw mode (restored
 * on every exit it sees), gives the master the caller's window size (again on each SIGWINCH) and
 * copies bytes both ways until the dyno's side of the terminal is closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved;
static int raw = 0;
static volatile sig_atomic_t resized = 0, ended = 0;

static void restore(void) {
  if (raw) tcsetattr(0, TCSAFLUSH, &saved);
  raw = 0;
}

static void on_signal(int sig) {
  if (sig == SIGWINCH) resized = 1;
  else ended = 1;
}

static void copy_size(int master) {
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
}

static int write_all(int fd, const char *buf, ssize_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, (size_t)n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    buf += w;
    n -= w;
  }
  return 0;
}

static int receive_fd(int conn) {
  /* The payload is the terminal's name, unused; the descriptor comes as ancillary data. */
  char name[4096], control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) < 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: console-attach SOCKET (fd 3: where to say listening/attached)\n");
    return 2;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(argv[1]) >= sizeof addr.sun_path) {
    fprintf(stderr, "console-attach: socket path too long: %s\n", argv[1]);
    return 2;
  }
  strcpy(addr.sun_path, argv[1]);
  int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(srv, 1) < 0) {
    fprintf(stderr, "console-attach: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGWINCH, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  write_all(3, "listening\n", 10);
  int conn = accept4(srv, NULL, NULL, SOCK_CLOEXEC);
  int master = conn < 0 ? -1 : receive_fd(conn);
  unlink(argv[1]);
  if (master < 0) {
    if (!ended) fprintf(stderr, "console-attach: no terminal received: %s\n", strerror(errno));
    return 1;
  }
  close(conn);
  close(srv);
  write_all(3, "attached\n", 9);
  close(3);
  if (isatty(0) && tcgetattr(0, &saved) == 0) {
    struct termios t = saved;
    cfmakeraw(&t);
    if (tcsetattr(0, TCSAFLUSH, &t) == 0) raw = 1;
    atexit(restore);
  }
  copy_size(master);
  struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = master, .events = POLLIN}};
  char buf[65536];
  while (!ended) {
    if (resized) {
      resized = 0;
      copy_size(master);
    }
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n > 0) write_all(master, buf, n);
      else if (n == 0 || errno != EINTR) fds[0].fd = -1; /* caller's input is over; output goes on */
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) {
        if (write_all(1, buf, n) < 0) break;
      } else if (n == 0 || errno != EINTR) break; /* EIO: every process of the dyno closed the terminal */
    }
  }
  restore();
  return 0;
}

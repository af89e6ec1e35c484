// Copied from the machine's anchors (/work/shared/anchors/echo/echo_server.c, 2026-12-01) so that bench/echo does not
// depend on them at run time. Unchanged; run.sh derives the busy-poll variant (epoll_wait timeout 0) with sed, as
// the anchors' run.sh does.
// Single-threaded epoll echo server, edge-triggered, pinned to a CPU.
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sched.h>
int main(int argc, char** argv) {
  int port = atoi(argv[1]); int cpu = argc > 2 ? atoi(argv[2]) : 1;
  cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s); sched_setaffinity(0, sizeof s, &s);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0); int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (bind(l, (void*)&a, sizeof a) || listen(l, 1024)) { perror("bind"); return 1; }
  int ep = epoll_create1(0); struct epoll_event ev = { .events = EPOLLIN, .data.fd = l }; epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  struct epoll_event evs[256]; char buf[65536];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) { int c; while ((c = accept4(l, 0, 0, SOCK_NONBLOCK)) >= 0) { setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); struct epoll_event e = { .events = EPOLLIN | EPOLLET, .data.fd = c }; epoll_ctl(ep, EPOLL_CTL_ADD, c, &e); } continue; }
      for (;;) { ssize_t r = recv(fd, buf, sizeof buf, 0); if (r > 0) { ssize_t off = 0; while (off < r) { ssize_t w = send(fd, buf + off, r - off, MSG_NOSIGNAL); if (w < 0) { if (errno == EAGAIN) continue; break; } off += w; } } else if (r == 0 || errno != EAGAIN) { close(fd); break; } else break; }
    }
  }
}

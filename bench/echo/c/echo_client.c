// Copied from the machine's anchors (/work/shared/anchors/echo/echo_client.c, 2026-12-01) so that bench/echo does not
// depend on them at run time. One addition (marked below): after the anchors' result line it prints the client's own
// CPU time and voluntary context switches (getrusage), which run.sh uses to tell the server's and others' share.
// Echo load: C connections, each with D messages of B bytes in flight; counts round trips for T seconds. Pinned to a CPU.
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <sched.h>
#include <sys/resource.h> /* bench/echo addition */
static double now(){ struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char** argv) {
  int port = atoi(argv[1]), C = atoi(argv[2]), D = atoi(argv[3]), B = atoi(argv[4]); double T = atof(argv[5]); int cpu = argc > 6 ? atoi(argv[6]) : 0;
  cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s); sched_setaffinity(0, sizeof s, &s);
  int ep = epoll_create1(0); int one = 1; char msg[4096]; memset(msg, 'x', B); char buf[65536];
  long *pending = calloc(C, sizeof(long)); int *fds = calloc(C, sizeof(int));
  for (int i = 0; i < C; i++) {
    int f = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(f, (void*)&a, sizeof a)) { perror("connect"); return 1; }
    setsockopt(f, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); fds[i] = f;
    struct epoll_event e = { .events = EPOLLIN, .data.u32 = i }; epoll_ctl(ep, EPOLL_CTL_ADD, f, &e);
    for (int k = 0; k < D; k++) send(f, msg, B, 0); pending[i] = (long)D * B;
  }
  long done = 0; double t0 = now(), end = t0 + T; struct epoll_event evs[256];
  while (now() < end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) { int c = evs[i].data.u32; ssize_t r = recv(fds[c], buf, sizeof buf, 0); if (r <= 0) { fprintf(stderr, "closed\n"); return 1; }
      long bytes = r; while (bytes >= B) { send(fds[c], msg, B, 0); bytes -= B; done++; } if (bytes) { /* partial: resend remainder accounting simplified */ long need = B - bytes; while (need > 0) { ssize_t q = recv(fds[c], buf, need, 0); if (q > 0) need -= q; } send(fds[c], msg, B, 0); done++; } }
  }
  double el = now() - t0;
  printf("conns=%d depth=%d bytes=%d: %.0f round trips/s, %.1f us per round trip per connection-slot\n", C, D, B, done / el, el / done * 1e6 * C * D);
  /* bench/echo addition: the client's own cost, on a second line */
  struct rusage ru; getrusage(RUSAGE_SELF, &ru);
  printf("client cpu_s=%.3f vcsw=%ld elapsed_s=%.3f done=%ld\n", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6, ru.ru_nvcsw, el, done);
}

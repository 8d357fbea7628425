/*
 * One-process ICMP prober for the converge benchmark (compiled with gcc at run
 * time by scripts/bench/prober/index.ts).
 *
 * stdin, one line per container, then a line "end":
 *     <netns name> <peer IPv4> <peer IPv4> ...
 * For each line it enters /run/netns/<name> (or /var/run/netns/<name>), opens
 * one raw ICMP socket there (a socket stays in the namespace it was made in)
 * and comes back. Then it prints "ready <pid>" and waits for one more line on
 * stdin: that line is t0. From t0 on, every pair (container, peer) that has not
 * answered yet gets an echo request every <interval> ms, the pairs spread over
 * the interval in 1 ms ticks so the sends do not come in one burst; one epoll
 * loop reads the replies. Output, one line each:
 *     go <CLOCK_MONOTONIC ns of t0>
 *     a <container index> <peer index> <ns since t0>     first answer of a pair
 *     miss <container index> <peer index>                  at the end, per unanswered pair
 *     done answered=N pairs=N sent=N user_ms=N sys_ms=N
 * It exits when every pair answered, or at the timeout.
 *
 * usage: prober [interval_ms=10] [timeout_ms=60000]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/icmp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct ns {
  int fd;
  int npeers;
  uint32_t *peer;      /* network order */
  int64_t *answered;   /* ns since t0, -1 until answered */
};

static struct ns *nss;
static int nns;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint16_t csum(const void *data, size_t len) {
  const uint16_t *p = data;
  uint32_t s = 0;
  for (; len > 1; len -= 2) s += *p++;
  if (len) s += *(const uint8_t *)p;
  s = (s >> 16) + (s & 0xffff);
  s += s >> 16;
  return (uint16_t)~s;
}

static int open_in_netns(const char *name, int home) {
  char path[512];
  snprintf(path, sizeof path, "/run/netns/%s", name);
  int nfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nfd < 0) {
    snprintf(path, sizeof path, "/var/run/netns/%s", name);
    nfd = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (nfd < 0) { fprintf(stderr, "prober: open netns %s: %s\n", name, strerror(errno)); exit(2); }
  if (setns(nfd, CLONE_NEWNET) < 0) { fprintf(stderr, "prober: setns %s: %s\n", name, strerror(errno)); exit(2); }
  close(nfd);
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) { fprintf(stderr, "prober: socket in %s: %s\n", name, strerror(errno)); exit(2); }
  /* Only echo replies wake us: the kernel answers the peers' requests itself. */
  struct icmp_filter filt = { .data = ~(1U << ICMP_ECHOREPLY) };
  setsockopt(fd, SOL_RAW, ICMP_FILTER, &filt, sizeof filt);
  int rcv = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  if (setns(home, CLONE_NEWNET) < 0) { perror("prober: setns home"); exit(2); }
  return fd;
}

static void read_config(int home) {
  size_t cap = 0;
  char *line = NULL;
  int nscap = 0;
  while (getline(&line, &cap, stdin) > 0) {
    line[strcspn(line, "\r\n")] = 0;
    if (strcmp(line, "end") == 0) break;
    char *save = NULL;
    char *name = strtok_r(line, " ", &save);
    if (!name) continue;
    if (nns == nscap) {
      nscap = nscap ? nscap * 2 : 64;
      nss = realloc(nss, sizeof *nss * nscap);
    }
    struct ns *n = &nss[nns];
    memset(n, 0, sizeof *n);
    int pcap = 0;
    for (char *tok; (tok = strtok_r(NULL, " ", &save));) {
      if (n->npeers == pcap) {
        pcap = pcap ? pcap * 2 : 32;
        n->peer = realloc(n->peer, sizeof *n->peer * pcap);
      }
      struct in_addr a;
      if (inet_pton(AF_INET, tok, &a) != 1) { fprintf(stderr, "prober: bad address %s\n", tok); exit(2); }
      n->peer[n->npeers++] = a.s_addr;
    }
    if (n->npeers > 65535) { fprintf(stderr, "prober: too many peers in %s\n", name); exit(2); }
    n->answered = malloc(sizeof *n->answered * (n->npeers ? n->npeers : 1));
    for (int i = 0; i < n->npeers; i++) n->answered[i] = -1;
    n->fd = open_in_netns(name, home);
    nns++;
  }
  free(line);
}

int main(int argc, char **argv) {
  int interval_ms = argc > 1 ? atoi(argv[1]) : 10;
  int timeout_ms = argc > 2 ? atoi(argv[2]) : 60000;
  if (interval_ms < 1) interval_ms = 1;
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) { perror("prober: /proc/self/ns/net"); return 2; }
  setvbuf(stdout, NULL, _IOLBF, 0);
  read_config(home);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  long pairs = 0;
  for (int i = 0; i < nns; i++) {
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
    epoll_ctl(ep, EPOLL_CTL_ADD, nss[i].fd, &ev);
    pairs += nss[i].npeers;
  }
  /* A flat list of pairs for the round-robin sender. */
  int *pair_ns = malloc(sizeof(int) * (pairs ? pairs : 1));
  int *pair_peer = malloc(sizeof(int) * (pairs ? pairs : 1));
  for (int i = 0, k = 0; i < nns; i++)
    for (int j = 0; j < nss[i].npeers; j++, k++) pair_ns[k] = i, pair_peer[k] = j;

  printf("ready %d\n", (int)getpid());
  char go[64];
  if (!fgets(go, sizeof go, stdin)) return 3;
  int64_t t0 = now_ns();
  printf("go %lld\n", (long long)t0);

  uint16_t ident = (uint16_t)getpid();
  long answered = 0, sent = 0, cursor = 0;
  /* Pairs per 1 ms tick so that each pair is probed once per interval. */
  long per_tick = (pairs + interval_ms - 1) / interval_ms;
  int64_t next_tick = t0, deadline = t0 + (int64_t)timeout_ms * 1000000LL;
  unsigned char pkt[64], buf[1500];
  while (answered < pairs) {
    int64_t t = now_ns();
    if (t >= deadline) break;
    if (t >= next_tick) {
      /* Send to the next per_tick unanswered pairs (skipping answered ones, at most one lap). */
      long sentNow = 0;
      for (long scanned = 0; scanned < pairs && sentNow < per_tick; scanned++) {
        long k = cursor;
        cursor = (cursor + 1) % pairs;
        struct ns *n = &nss[pair_ns[k]];
        int j = pair_peer[k];
        if (n->answered[j] >= 0) continue;
        struct icmphdr *h = (struct icmphdr *)pkt;
        memset(pkt, 0, sizeof pkt);
        h->type = ICMP_ECHO;
        h->un.echo.id = htons(ident);
        h->un.echo.sequence = htons((uint16_t)j);
        int64_t ts = t - t0;
        memcpy(pkt + sizeof *h, &ts, sizeof ts);
        size_t len = sizeof *h + 24;
        h->checksum = csum(pkt, len);
        struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = n->peer[j] };
        /* Errors (no neighbour yet, queue full) are just a lost probe: the next round retries. */
        if (sendto(n->fd, pkt, len, 0, (struct sockaddr *)&to, sizeof to) >= 0) sent++;
        sentNow++;
      }
      next_tick += 1000000LL;
      if (next_tick < t) next_tick = t + 1000000LL; /* fell behind: do not burst to catch up */
    }
    int wait_ms = (int)((next_tick - now_ns() + 999999) / 1000000LL);
    if (wait_ms < 0) wait_ms = 0;
    struct epoll_event evs[64];
    int ne = epoll_wait(ep, evs, 64, wait_ms);
    for (int e = 0; e < ne; e++) {
      struct ns *n = &nss[evs[e].data.u32];
      for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t r = recvfrom(n->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (r < 0) break;
        int64_t at = now_ns() - t0;
        struct iphdr *ip = (struct iphdr *)buf;
        size_t ihl = (size_t)ip->ihl * 4;
        if ((size_t)r < ihl + sizeof(struct icmphdr)) continue;
        struct icmphdr *h = (struct icmphdr *)(buf + ihl);
        if (h->type != ICMP_ECHOREPLY || ntohs(h->un.echo.id) != ident) continue;
        int j = ntohs(h->un.echo.sequence);
        if (j >= n->npeers || n->peer[j] != ip->saddr || n->answered[j] >= 0) continue;
        n->answered[j] = at;
        answered++;
        printf("a %d %d %lld\n", (int)evs[e].data.u32, j, (long long)at);
      }
    }
  }
  for (int i = 0; i < nns; i++)
    for (int j = 0; j < nss[i].npeers; j++)
      if (nss[i].answered[j] < 0) printf("miss %d %d\n", i, j);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("done answered=%ld pairs=%ld sent=%ld user_ms=%ld sys_ms=%ld\n", answered, pairs, sent,
         ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000, ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000);
  return answered == pairs ? 0 : 1;
}

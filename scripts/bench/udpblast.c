/* Bounded UDP load: `send ADDR PORT SECONDS PAYLOAD` sends datagrams of PAYLOAD bytes as
 * fast as sendmmsg allows for SECONDS (then stops); `recv PORT SECONDS` counts datagrams
 * and prints packets/s. 18 bytes of payload make 60-byte frames (64 on the wire); over
 * IPv6 (an address with a colon) the frames are 20 bytes longer. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc >= 6 && !strcmp(argv[1], "send")) {
    /* An IPv6 address (it has a colon) is sent to over IPv6. */
    const int v6 = strchr(argv[2], ':') != NULL;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    struct sockaddr_in6 to6 = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[3]))};
    if (v6 ? inet_pton(AF_INET6, argv[2], &to6.sin6_addr) != 1 : inet_pton(AF_INET, argv[2], &to.sin_addr) != 1) {
      fprintf(stderr, "udpblast: bad address %s\n", argv[2]);
      return 2;
    }
    if (connect(fd, v6 ? (struct sockaddr *)&to6 : (struct sockaddr *)&to, v6 ? sizeof to6 : sizeof to) < 0) {
      perror("connect");
      return 1;
    }
    const double secs = atof(argv[4]);
    size_t len = atoi(argv[5]);
    char buf[1500] = {0};
    struct mmsghdr m[64];
    struct iovec iov[64];
    for (int i = 0; i < 64; ++i) {
      iov[i].iov_base = buf; iov[i].iov_len = len;
      memset(&m[i], 0, sizeof m[i]);
      m[i].msg_hdr.msg_iov = &iov[i]; m[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long sent = 0;
    const double start = now();
    while (now() - start < secs) {
      int n = sendmmsg(fd, m, 64, 0);
      if (n > 0) sent += n;
    }
    printf("%.0f\n", sent / (now() - start));
    return 0;
  }
  if (argc >= 4 && !strcmp(argv[1], "recv")) {
    /* Both families: an IPv6 socket that takes IPv4 too. */
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    int rcv = 16 << 20, only6 = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only6, sizeof only6);
    struct sockaddr_in6 me = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[2]))};
    if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0) { perror("bind"); return 1; }
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const double secs = atof(argv[3]);
    char buf[2048];
    unsigned long got = 0;
    double first = 0, last = 0;
    const double start = now();
    while (now() - start < secs) {
      if (recv(fd, buf, sizeof buf, 0) > 0) {
        last = now();
        if (!got) first = last;
        ++got;
      }
    }
    printf("%.0f\n", got > 1 ? got / (last - first) : 0.0);
    return 0;
  }
  fprintf(stderr, "usage: udpblast send ADDR PORT SECONDS PAYLOAD | recv PORT SECONDS\n");
  return 2;
}

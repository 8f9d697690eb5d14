/* Idle-priority spinner: counts loop iterations for SECONDS and prints iterations/s.
 * Pinned to the director's core under SCHED_IDLE, the work it loses to everything else on
 * that core is that core's load (/proc/stat under-counts softirq work in this VM). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  const double seconds = argc > 1 ? atof(argv[1]) : 5;
  volatile unsigned long x = 0;
  unsigned long n = 0;
  const double start = now();
  double t = start;
  while (t - start < seconds) {
    for (int i = 0; i < 100000; ++i) x += i;
    n += 100000;
    t = now();
  }
  printf("%.0f\n", n / (t - start));
  return 0;
}

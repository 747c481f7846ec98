/* The physical limit of starting processes here: posix_spawn + waitpid of
 * PROGRAM ARGS... N times, with at most P in flight. No pipes, no output
 * capture, no bookkeeping: no job runner can beat it.
 * An argument "{}" is replaced by the job number (1..N), so the very same
 * commands as xargs -n1, parallel and ferry run can be started.
 * Usage: spawn_limit N P PROGRAM [ARGS...] */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char** environ;

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: spawn_limit N P PROGRAM [ARGS...]\n");
    return 2;
  }
  long total = atol(argv[1]), parallel = atol(argv[2]), started = 0, running = 0;
  char** args = argv + 3;
  char number[32];
  for (char** arg = args; *arg; ++arg)
    if (strcmp(*arg, "{}") == 0) *arg = number;
  while (started < total || running > 0) {
    while (running < parallel && started < total) {
      pid_t pid;
      snprintf(number, sizeof number, "%ld", ++started);
      if (posix_spawnp(&pid, args[0], NULL, NULL, args, environ) != 0) return 1;
      ++running;
    }
    int status;
    if (waitpid(-1, &status, 0) > 0) --running;
  }
  return 0;
}

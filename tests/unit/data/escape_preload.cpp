/* A stand-in for the .so a hostile tenant would name in LD_PRELOAD: when a program loads it, it
 * writes the file named by ESCAPE_MARKER (with that program's pid), so a test can see where it ran. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void escape(void) {
  const char* marker = getenv("ESCAPE_MARKER");
  if (!marker || !*marker) return;
  int fd = open(marker, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[64];
  int n = snprintf(line, sizeof line, "loaded in pid %d\n", static_cast<int>(getpid()));
  if (n > 0) if (write(fd, line, static_cast<size_t>(n)) < 0) {}
  close(fd);
}

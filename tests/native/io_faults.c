/* Faults a real filesystem or kernel can produce, injected with LD_PRELOAD into a test process:
 *   IO_FAULTS_REFUSE_DIRECT=SUFFIX  open() of a path ending in SUFFIX with O_DIRECT fails with
 *                                   EINVAL, as on a filesystem without direct I/O;
 *   IO_FAULTS_REFUSE_IO_URING=1     io_uring_setup fails with EPERM, as in a container whose
 *                                   seccomp profile blocks io_uring;
 *   IO_FAULTS_EIO_AT=BYTE           pread() of a range of a .npy file holding that byte fails
 *                                   with EIO, as a bad sector in the middle of a file does. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static int refuses_direct(const char* path, int flags) {
  const char* suffix = getenv("IO_FAULTS_REFUSE_DIRECT");
  if (!suffix || !(flags & O_DIRECT)) return 0;
  size_t n = strlen(path), m = strlen(suffix);
  return n >= m && strcmp(path + n - m, suffix) == 0;
}

#define OPEN_WRAPPER(name)                                                  \
  int name(const char* path, int flags, ...) {                              \
    static int (*real)(const char*, int, ...) = 0;                          \
    if (!real) real = (int (*)(const char*, int, ...))dlsym(RTLD_NEXT, #name); \
    mode_t mode = 0;                                                        \
    if (flags & (O_CREAT | O_TMPFILE)) {                                    \
      va_list args;                                                         \
      va_start(args, flags);                                                \
      mode = va_arg(args, mode_t);                                          \
      va_end(args);                                                         \
    }                                                                       \
    if (refuses_direct(path, flags)) {                                      \
      errno = EINVAL;                                                       \
      return -1;                                                            \
    }                                                                       \
    return real(path, flags, mode);                                         \
  }
OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

static int is_npy(int fd) {
  char link[64], path[4096];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof(path) - 1);
  return n > 4 && memcmp(path + n - 4, ".npy", 4) == 0;
}

#define PREAD_WRAPPER(name)                                                     \
  ssize_t name(int fd, void* buffer, size_t count, off_t offset) {              \
    static ssize_t (*real)(int, void*, size_t, off_t) = 0;                      \
    if (!real) real = (ssize_t (*)(int, void*, size_t, off_t))dlsym(RTLD_NEXT, #name); \
    const char* at = getenv("IO_FAULTS_EIO_AT");                                \
    if (at && is_npy(fd)) {                                                     \
      long long bad = atoll(at);                                                \
      if (offset <= bad && bad < offset + (long long)count) {                   \
        errno = EIO;                                                            \
        return -1;                                                              \
      }                                                                         \
    }                                                                           \
    return real(fd, buffer, count, offset);                                     \
  }
PREAD_WRAPPER(pread)
PREAD_WRAPPER(pread64)

long syscall(long number, ...) {
  va_list args;
  va_start(args, number);
  long a[6];
  for (int i = 0; i < 6; ++i) a[i] = va_arg(args, long);
  va_end(args);
  if (number == SYS_io_uring_setup && getenv("IO_FAULTS_REFUSE_IO_URING")) {
    errno = EPERM;
    return -1;
  }
  static long (*real)(long, ...) = 0;
  if (!real) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
  return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

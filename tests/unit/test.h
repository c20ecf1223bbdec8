/* test.h: the unit-test harness, after libuv's test/ runner.  A test binary
 * holds several tests; `BIN --list` names them and `BIN NAME` runs one in
 * its own process (tests/run.py does this, in parallel, with a timeout).
 * `BIN` alone runs each in a forked child with a 30 s alarm. */
#ifndef PARLEY_TEST_H
#define PARLEY_TEST_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct test_entry {
    const char *name;
    void (*fn)(void);
} test_entry;

#define ASSERT(x)                                                                        \
    do {                                                                                 \
        if (!(x)) {                                                                      \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #x);    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define ASSERT_INT(a, op, b)                                                             \
    do {                                                                                 \
        int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                    \
        if (!(a_ op b_)) {                                                               \
            fprintf(stderr, "%s:%d: assertion failed: %s %s %s (%" PRId64 " vs %" PRId64 ")\n", \
                    __FILE__, __LINE__, #a, #op, #b, a_, b_);                            \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_INT(a, ==, b)

#define ASSERT_STR(a, b)                                                                 \
    do {                                                                                 \
        const char *a_ = (a), *b_ = (b);                                                 \
        if (strcmp(a_, b_) != 0) {                                                       \
            fprintf(stderr, "%s:%d: %s == %s failed (\"%s\" vs \"%s\")\n", __FILE__,       \
                    __LINE__, #a, #b, a_, b_);                                           \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static inline int test_main(int argc, char **argv, const test_entry *t, size_t n) {
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", t[i].name);
        return 0;
    }
    if (argc > 1) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(argv[1], t[i].name) == 0) {
                t[i].fn();
                return 0;
            }
        }
        fprintf(stderr, "no test named %s\n", argv[1]);
        return 2;
    }
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30);
            t[i].fn();
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        printf("%s %s\n", ok ? "ok  " : "FAIL", t[i].name);
        failed += !ok;
    }
    printf("%zu passed, %zu failed\n", n - failed, failed);
    return failed ? 1 : 0;
}

/* A database in a fresh temporary directory (/tmp/parley-WHAT-XXXXXX/tracker.db),
 * and its removal with its -wal and -shm files and the directory. */
typedef struct test_db {
    char dir[64], path[128];
} test_db;

static inline void test_db_make(test_db *d, const char *what) {
    snprintf(d->dir, sizeof d->dir, "/tmp/parley-%s-XXXXXX", what);
    ASSERT(mkdtemp(d->dir) != NULL);
    snprintf(d->path, sizeof d->path, "%s/tracker.db", d->dir);
}

static inline void test_db_remove(const test_db *d) {
    char p[160];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", d->path, sfx[i]);
        unlink(p);
    }
    rmdir(d->dir);
}

#define TEST_MAIN(...)                                                                   \
    int main(int argc, char **argv) {                                                    \
        static const test_entry tests_[] = {__VA_ARGS__};                                \
        return test_main(argc, argv, tests_, sizeof tests_ / sizeof *tests_);            \
    }
#define T(fn) { #fn, fn }

#endif

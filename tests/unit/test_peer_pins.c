/* test_peer_pins: the peer's known_peers file (peer/pins.c) in a temporary
 * home: pins set and read back, kept across a close and an open, written
 * 0600 with no temporary file left behind; a file other users can read is
 * refused with a message that says how to fix it, and so is a line that
 * does not parse (naming the line); warnings about one user are rate
 * limited.  Linked with the peer's modules (Makefile: test_peer_*). */
#include "pins.h"
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <uv.h>

static char home[256];
static char file[300];

static void make_home(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(home, sizeof home, "%s/parley-pins-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ASSERT(mkdtemp(home) != NULL);
    snprintf(file, sizeof file, "%s/known_peers", home);
}

/* Entries in home other than . and .. */
static int entries(void) {
    DIR *d = opendir(home);
    ASSERT(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void remove_home(void) {
    unlink(file);
    ASSERT_EQ(entries(), 0);
    ASSERT_EQ(rmdir(home), 0);
}

static void write_file(const char *text, mode_t mode) {
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ASSERT_EQ(fchmod(fd, mode), 0);
    ASSERT_EQ(close(fd), 0);
}

static void read_file(char *out, size_t cap) {
    int fd = open(file, O_RDONLY);
    ASSERT(fd >= 0);
    ssize_t n = read(fd, out, cap - 1);
    ASSERT(n >= 0);
    out[n] = '\0';
    close(fd);
}

static void key_of(unsigned char key[IDENT_PK], unsigned char b) {
    for (int i = 0; i < IDENT_PK; i++)
        key[i] = (unsigned char)(b + i);
}

static void set_ok(pins *p, const char *fold, const unsigned char key[IDENT_PK]) {
    char err[512] = "";
    ASSERT_EQ(pins_set(p, fold, key, err, sizeof err), 0);
    ASSERT_STR(err, "");
}

static void has(const pins *p, const char *fold, const unsigned char key[IDENT_PK]) {
    unsigned char got[IDENT_PK];
    ASSERT_EQ(pins_get(p, fold, got), 0);
    ASSERT(memcmp(got, key, IDENT_PK) == 0);
}

/* No file yet: nothing pinned.  A pin reads back, replaces an earlier one
 * for the same name, and is written at once, 0600, without a leftover
 * temporary file. */
static void set_and_get(void) {
    ASSERT(sodium_init() >= 0);
    make_home();
    pins *p = NULL;
    char err[512] = "";
    ASSERT_EQ(pins_open(home, &p, err, sizeof err), 0);
    ASSERT(p != NULL);
    unsigned char k1[IDENT_PK], k2[IDENT_PK], got[IDENT_PK];
    key_of(k1, 1);
    key_of(k2, 100);
    ASSERT_EQ(pins_get(p, "alice", got), UV_ENOENT);
    ASSERT_EQ(entries(), 0); /* opening writes nothing */
    set_ok(p, "alice", k1);
    has(p, "alice", k1);
    ASSERT_EQ(pins_get(p, "bob", got), UV_ENOENT);
    set_ok(p, "alice", k2);
    has(p, "alice", k2);
    struct stat st;
    ASSERT_EQ(stat(file, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ASSERT_EQ(entries(), 1);
    pins_close(p);
    remove_home();
}

/* What was pinned is there after a close and an open, one line per user
 * (a replaced pin is not left behind), comments kept out of the pins. */
static void persists_across_open(void) {
    ASSERT(sodium_init() >= 0);
    make_home();
    pins *p = NULL;
    char err[512] = "";
    ASSERT_EQ(pins_open(home, &p, err, sizeof err), 0);
    unsigned char ka[IDENT_PK], kb[IDENT_PK], kc[IDENT_PK];
    key_of(ka, 1);
    key_of(kb, 2);
    key_of(kc, 3);
    set_ok(p, "alice", ka);
    set_ok(p, "bob", kb);
    set_ok(p, "alice", kc);
    pins_close(p);

    char text[2048], hex[IDENT_PK * 2 + 1], line[128];
    read_file(text, sizeof text);
    sodium_bin2hex(hex, sizeof hex, kc, IDENT_PK);
    snprintf(line, sizeof line, "\nalice %s\n", hex);
    ASSERT(strstr(text, line) != NULL);
    ASSERT(strstr(strstr(text, line) + 1, "\nalice ") == NULL); /* one alice line */
    sodium_bin2hex(hex, sizeof hex, kb, IDENT_PK);
    snprintf(line, sizeof line, "\nbob %s\n", hex);
    ASSERT(strstr(text, line) != NULL);
    ASSERT_EQ(text[0], '#');

    p = NULL;
    ASSERT_EQ(pins_open(home, &p, err, sizeof err), 0);
    has(p, "alice", kc);
    has(p, "bob", kb);
    unsigned char got[IDENT_PK];
    ASSERT_EQ(pins_get(p, "carol", got), UV_ENOENT);
    pins_close(p);
    remove_home();
}

/* A file written by hand: comments, blank lines and CRLF line ends are fine. */
static void hand_written_file(void) {
    ASSERT(sodium_init() >= 0);
    make_home();
    unsigned char k[IDENT_PK];
    key_of(k, 7);
    char hex[IDENT_PK * 2 + 1], text[512];
    sodium_bin2hex(hex, sizeof hex, k, IDENT_PK);
    snprintf(text, sizeof text, "# mine\n\n\xc3\xa9mile %s\r\n", hex); /* "émile" */
    write_file(text, 0600);
    pins *p = NULL;
    char err[512] = "";
    ASSERT_EQ(pins_open(home, &p, err, sizeof err), 0);
    has(p, "\xc3\xa9mile", k);
    pins_close(p);
    remove_home();
}

/* A known_peers file others can read (0644), or that the group can read
 * or anyone write, is refused, with the file, its mode and the fix. */
static void refuses_file_open_to_others(void) {
    ASSERT(sodium_init() >= 0);
    static const mode_t modes[] = {0644, 0640, 0602, 0666};
    unsigned char k[IDENT_PK];
    key_of(k, 9);
    char hex[IDENT_PK * 2 + 1], text[256];
    sodium_bin2hex(hex, sizeof hex, k, IDENT_PK);
    snprintf(text, sizeof text, "alice %s\n", hex);
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        make_home();
        write_file(text, modes[i]);
        static int untouched;
        pins *p = (pins *)&untouched; /* pins_open must leave it as it is */
        char err[512] = "", want[600];
        ASSERT_EQ(pins_open(home, &p, err, sizeof err), UV_EPERM);
        ASSERT(p == (pins *)&untouched);
        ASSERT(strstr(err, file) != NULL);
        snprintf(want, sizeof want, "is open to other users (mode %03o)", (unsigned)modes[i]);
        ASSERT(strstr(err, want) != NULL);
        snprintf(want, sizeof want, "chmod 600 %s", file);
        ASSERT(strstr(err, want) != NULL);
        remove_home();
    }
    /* The same file at 0600 is read. */
    make_home();
    write_file(text, 0600);
    pins *p = NULL;
    char err[512] = "";
    ASSERT_EQ(pins_open(home, &p, err, sizeof err), 0);
    has(p, "alice", k);
    pins_close(p);
    remove_home();
}

/* A line that is not "FOLDED-NAME HEXKEY" stops the open, naming the line. */
static void corrupt_line_refused(void) {
    ASSERT(sodium_init() >= 0);
    unsigned char k[IDENT_PK];
    key_of(k, 5);
    char hex[IDENT_PK * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, k, IDENT_PK);
    const char *bad[] = {
        "bob",                    /* no key */
        "bob nothex",             /* not hex */
        "bob 0011",               /* a key of 2 bytes */
        "Bob @",                  /* a name that is not folded (key replaced below) */
        "a\x01" "b @",            /* not a valid name */
        "bob @ extra",            /* more after the key */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char line[256], text[768];
        snprintf(line, sizeof line, "%s", bad[i]);
        char *at = strchr(line, '@');
        if (at) {
            char rest[128];
            snprintf(rest, sizeof rest, "%s", at + 1);
            snprintf(at, sizeof line - (size_t)(at - line), "%s%s", hex, rest);
        }
        snprintf(text, sizeof text, "# header\n\nalice %s\n%s\n", hex, line);
        make_home();
        write_file(text, 0600);
        pins *p = NULL;
        char err[512] = "";
        ASSERT_EQ(pins_open(home, &p, err, sizeof err), UV_EINVAL);
        ASSERT(p == NULL);
        ASSERT(strstr(err, file) != NULL);
        ASSERT(strstr(err, "line 4 is not \"NAME HEXKEY\"") != NULL);
        remove_home();
    }
}

/* A refusal for one user is shown once every few seconds, not once per
 * address a dial tries; each pinned user has its own clock (refusals for
 * alice, bob, alice warn twice, not three times); without a pin, or
 * without pins (p NULL), always. */
static void warn_due_rate_limited(void) {
    ASSERT(sodium_init() >= 0);
    make_home();
    pins *p = NULL;
    char err[512] = "";
    unsigned char k[IDENT_PK];
    ASSERT_EQ(pins_open(home, &p, err, sizeof err), 0);
    key_of(k, 1);
    ASSERT_EQ(pins_set(p, "alice", k, err, sizeof err), 0);
    key_of(k, 2);
    ASSERT_EQ(pins_set(p, "bob", k, err, sizeof err), 0);
    ASSERT_EQ(pins_warn_due(p, "alice", 10000), 1);
    ASSERT_EQ(pins_warn_due(p, "alice", 10000), 0);
    ASSERT_EQ(pins_warn_due(p, "alice", 10001), 0);
    ASSERT_EQ(pins_warn_due(p, "bob", 10002), 1);   /* another user */
    ASSERT_EQ(pins_warn_due(p, "alice", 10003), 0); /* bob's warning did not reset alice's */
    ASSERT_EQ(pins_warn_due(p, "alice", 14999), 0);
    ASSERT_EQ(pins_warn_due(p, "alice", 15000), 1); /* 5 s later */
    ASSERT_EQ(pins_warn_due(p, "alice", 15001), 0);
    ASSERT_EQ(pins_warn_due(p, "bob", 15003), 1);
    ASSERT_EQ(pins_warn_due(p, "carol", 15004), 1); /* not pinned */
    ASSERT_EQ(pins_warn_due(p, "carol", 15005), 1);
    key_of(k, 3); /* /trust: a new key for bob starts a new clock */
    ASSERT_EQ(pins_set(p, "bob", k, err, sizeof err), 0);
    ASSERT_EQ(pins_warn_due(p, "bob", 15006), 1);
    ASSERT_EQ(pins_warn_due(p, "bob", 15007), 0);
    ASSERT_EQ(pins_warn_due(NULL, "alice", 15004), 1);
    ASSERT_EQ(pins_warn_due(NULL, "alice", 15005), 1);
    pins_close(p);
    pins_close(NULL);
    remove_home();
}

/* Without pins (p NULL: pinning off) nothing is pinned and setting says so. */
static void pinning_off(void) {
    unsigned char k[IDENT_PK], got[IDENT_PK];
    key_of(k, 1);
    char err[512] = "";
    ASSERT_EQ(pins_get(NULL, "alice", got), UV_ENOENT);
    ASSERT_EQ(pins_set(NULL, "alice", k, err, sizeof err), UV_EINVAL);
    ASSERT_STR(err, "key pinning is off");
}

/* The file cannot be written (its directory is gone): pins_set says why,
 * and the pin holds in memory. */
static void write_failure_keeps_pin_in_memory(void) {
    ASSERT(sodium_init() >= 0);
    make_home();
    pins *p = NULL;
    char err[512] = "";
    ASSERT_EQ(pins_open(home, &p, err, sizeof err), 0);
    ASSERT_EQ(rmdir(home), 0);
    unsigned char k[IDENT_PK];
    key_of(k, 3);
    ASSERT(pins_set(p, "alice", k, err, sizeof err) < 0);
    ASSERT(strncmp(err, "cannot write ", 13) == 0);
    ASSERT(strstr(err, home) != NULL);
    has(p, "alice", k);
    pins_close(p);
}

/* A home path too long for the file name is refused, not cut. */
static void home_too_long(void) {
    char dir[5000];
    memset(dir, 'd', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = '\0';
    pins *p = NULL;
    char err[512] = "";
    ASSERT_EQ(pins_open(dir, &p, err, sizeof err), UV_ENAMETOOLONG);
    ASSERT(p == NULL);
    ASSERT(strstr(err, "too long") != NULL);
}

TEST_MAIN(T(set_and_get), T(persists_across_open), T(hand_written_file),
          T(refuses_file_open_to_others), T(corrupt_line_refused), T(warn_due_rate_limited),
          T(pinning_off), T(write_failure_keeps_pin_in_memory), T(home_too_long))

/* pins: known_peers, loaded at start-up into a small array, written back
 * whole on every change.  Writes happen on the loop, but the file is a line
 * per user met and changes only on a first meeting or a /trust. */
#include "pins.h"
#include "grow.h"

#include "name.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define WARN_EVERY_MS 5000

typedef struct pin {
    char fold[NAME_BUFLEN];
    unsigned char key[IDENT_PK];
    int warned;         /* a refusal of another key was shown, at warned_at */
    uint64_t warned_at;
} pin;

struct pins {
    char file[4096];
    pin *v;
    size_t n, cap;
};

static pin *find(const pins *p, const char *fold) {
    for (size_t i = 0; p && i < p->n; i++)
        if (strcmp(p->v[i].fold, fold) == 0)
            return &p->v[i];
    return NULL;
}

void pins_each(const pins *p, void (*fn)(const char *fold, void *arg), void *arg) {
    for (size_t i = 0; p && i < p->n; i++)
        fn(p->v[i].fold, arg);
}

static int add(pins *p, const char *fold, const unsigned char key[IDENT_PK]) {
    pin *e = find(p, fold);
    if (!e) {
        pin *v = grow(p->v, &p->cap, p->n + 1, sizeof *v, 16);
        if (!v)
            return UV_ENOMEM;
        p->v = v;
        e = &p->v[p->n++];
        *e = (pin){0};
        snprintf(e->fold, sizeof e->fold, "%s", fold);
    }
    if (memcmp(e->key, key, IDENT_PK) != 0)
        e->warned = 0; /* a refusal of some key other than this one is news */
    memcpy(e->key, key, IDENT_PK);
    return 0;
}

/* One line: "FOLD HEX".  0 or UV_EINVAL. */
static int parse_line(pins *p, char *line) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '\0' || line[0] == '#')
        return 0;
    char *sp = strchr(line, ' ');
    if (!sp)
        return UV_EINVAL;
    *sp = '\0';
    const char *hex = sp + 1;
    char fold[NAME_BUFLEN];
    unsigned char key[IDENT_PK];
    size_t klen = 0;
    if (name_fold(line, strlen(line), fold) || strcmp(fold, line) != 0 ||
        sodium_hex2bin(key, sizeof key, hex, strlen(hex), NULL, &klen, NULL) != 0 ||
        klen != IDENT_PK)
        return UV_EINVAL;
    return add(p, fold, key);
}

static int load(pins *p, char *err, size_t errlen) {
    int fd = open(p->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        int e = -errno;
        snprintf(err, errlen, "cannot open %s: %s", p->file, strerror(errno));
        return e;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
        close(fd);
        snprintf(err, errlen,
                 "%s is open to other users (mode %03o); fix it with: chmod 600 %s", p->file,
                 (unsigned)(st.st_mode & 0777), p->file);
        return UV_EPERM;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        snprintf(err, errlen, "cannot read %s: out of memory", p->file);
        return UV_ENOMEM;
    }
    char line[512];
    int r = 0, lineno = 0;
    while (r == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        r = parse_line(p, line);
    }
    fclose(f);
    if (r == UV_EINVAL)
        snprintf(err, errlen, "%s line %d is not \"NAME HEXKEY\"; fix or delete that line",
                 p->file, lineno);
    else if (r)
        snprintf(err, errlen, "cannot load %s: %s", p->file, uv_strerror(r));
    return r;
}

int pins_open(const char *dir, pins **out, char *err, size_t errlen) {
    pins *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    if ((size_t)snprintf(p->file, sizeof p->file, "%s/known_peers", dir) >= sizeof p->file) {
        free(p);
        snprintf(err, errlen, "home directory path is too long");
        return UV_ENAMETOOLONG;
    }
    int r = load(p, err, errlen);
    if (r) {
        pins_close(p);
        return r;
    }
    *out = p;
    return 0;
}

void pins_close(pins *p) {
    if (!p)
        return;
    free(p->v);
    free(p);
}

int pins_get(const pins *p, const char *fold, unsigned char key[IDENT_PK]) {
    const pin *e = find(p, fold);
    if (!e)
        return UV_ENOENT;
    memcpy(key, e->key, IDENT_PK);
    return 0;
}

static int save(const pins *p, char *err, size_t errlen) {
    /* One temporary file per process: two peers sharing a --home must not
     * rename each other's half-written file away (the last one wins). */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p->file, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = -errno;
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return e;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        snprintf(err, errlen, "cannot write %s: out of memory", tmp);
        return UV_ENOMEM;
    }
    fprintf(f, "# parley known_peers: folded user name, Ed25519 public key (hex).\n"
               "# Managed by the peer; /trust NAME replaces a line.\n");
    for (size_t i = 0; i < p->n; i++) {
        char hex[IDENT_PK * 2 + 1];
        sodium_bin2hex(hex, sizeof hex, p->v[i].key, IDENT_PK);
        fprintf(f, "%s %s\n", p->v[i].fold, hex);
    }
    int ok = fflush(f) == 0 && fsync(fd) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok || rename(tmp, p->file) != 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        snprintf(err, errlen, "cannot write %s: %s", p->file, strerror(e));
        return -e;
    }
    return 0;
}

int pins_set(pins *p, const char *fold, const unsigned char key[IDENT_PK], char *err,
             size_t errlen) {
    if (!p) {
        snprintf(err, errlen, "key pinning is off");
        return UV_EINVAL;
    }
    int r = add(p, fold, key);
    if (r) {
        snprintf(err, errlen, "out of memory");
        return r;
    }
    return save(p, err, errlen);
}

int pins_warn_due(pins *p, const char *fold, uint64_t now_ms) {
    pin *e = find(p, fold);
    if (!e)
        return 1; /* nothing pinned, nothing refused: always news */
    if (e->warned && now_ms - e->warned_at < WARN_EVERY_MS)
        return 0;
    e->warned = 1;
    e->warned_at = now_ms;
    return 1;
}

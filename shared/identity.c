/* identity: key storage and the two signature formats.  Key files are read
 * once at start-up, before the loop runs, so plain blocking I/O is fine. */
#include "identity.h"

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

#define REG_CTX "parley-register-v1"

int ident_expand_home(const char *path, char *out, size_t outlen) {
    int n;
    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return UV_EINVAL;
        n = snprintf(out, outlen, "%s%s", home, path + 1);
    } else {
        n = snprintf(out, outlen, "%s", path);
    }
    return n < 0 || (size_t)n >= outlen ? UV_EINVAL : 0;
}

static int read_key(const char *file, identity *id, char *err, size_t errlen) {
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = -errno;
        snprintf(err, errlen, "cannot open %s: %s", file, strerror(errno));
        return e;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
        close(fd);
        snprintf(err, errlen,
                 "%s is readable by other users (mode %03o); fix it with: chmod 600 %s", file,
                 (unsigned)(st.st_mode & 0777), file);
        return UV_EPERM;
    }
    unsigned char buf[IDENT_SK + 1];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n != IDENT_SK) {
        snprintf(err, errlen, "%s is not a parley key file (expected %d bytes); move it away to create a new key",
                 file, IDENT_SK);
        return UV_EINVAL;
    }
    memcpy(id->sk, buf, IDENT_SK);
    crypto_sign_ed25519_sk_to_pk(id->pk, id->sk);
    sodium_memzero(buf, sizeof buf);
    return 0;
}

static int create_key(const char *file, identity *id, char *err, size_t errlen) {
    crypto_sign_keypair(id->pk, id->sk);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = -errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return e;
    }
    ssize_t n = write(fd, id->sk, IDENT_SK);
    int ok = n == IDENT_SK && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok || rename(tmp, file) != 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        snprintf(err, errlen, "cannot write %s: %s", file, strerror(e));
        return -e;
    }
    return 0;
}

int ident_load(const char *dir, identity *id, char *err, size_t errlen) {
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return UV_EIO;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int e = -errno;
        snprintf(err, errlen, "cannot create home directory %s: %s", dir, strerror(errno));
        return e;
    }
    char file[4096];
    if ((size_t)snprintf(file, sizeof file, "%s/identity.key", dir) >= sizeof file) {
        snprintf(err, errlen, "home directory path is too long");
        return UV_ENAMETOOLONG;
    }
    if (access(file, F_OK) == 0)
        return read_key(file, id, err, errlen);
    return create_key(file, id, err, errlen);
}

/* The bytes a signature covers: ctx, a NUL, the nonce, an optional binary
 * extra (the relay session), then the name.  One layout for every kind, so
 * the context string alone keeps a signature from being reused elsewhere. */
#define SIGBUF (32 + IDENT_NONCE + IDENT_SESSION + NAME_MAX_BYTES)

static size_t sig_input(unsigned char *out, const char *ctx, const unsigned char *nonce,
                        const unsigned char *extra, size_t extralen, const char *name,
                        size_t namelen) {
    size_t n = strlen(ctx) + 1;
    memcpy(out, ctx, n);
    memcpy(out + n, nonce, IDENT_NONCE);
    n += IDENT_NONCE;
    if (extralen)
        memcpy(out + n, extra, extralen);
    n += extralen;
    memcpy(out + n, name, namelen);
    return n + namelen;
}

static void sign_with(const identity *id, const char *ctx, const unsigned char *nonce,
                      const unsigned char *extra, size_t extralen, const char *name,
                      size_t namelen, unsigned char sig[IDENT_SIG]) {
    unsigned char m[SIGBUF];
    if (namelen > NAME_MAX_BYTES)
        namelen = NAME_MAX_BYTES;
    size_t n = sig_input(m, ctx, nonce, extra, extralen, name, namelen);
    crypto_sign_detached(sig, NULL, m, n, id->sk);
}

static int verify_with(const unsigned char pk[IDENT_PK], const char *ctx,
                       const unsigned char *nonce, const unsigned char *extra, size_t extralen,
                       const char *name, size_t namelen, const unsigned char sig[IDENT_SIG]) {
    unsigned char m[SIGBUF];
    if (namelen > NAME_MAX_BYTES)
        return UV_EPERM;
    size_t n = sig_input(m, ctx, nonce, extra, extralen, name, namelen);
    return crypto_sign_verify_detached(sig, m, n, pk) == 0 ? 0 : UV_EPERM;
}

void ident_sign_register(const identity *id, const unsigned char nonce[IDENT_NONCE],
                         const char *name, size_t namelen, unsigned char sig[IDENT_SIG]) {
    sign_with(id, REG_CTX, nonce, NULL, 0, name, namelen, sig);
}

int ident_verify_register(const unsigned char pk[IDENT_PK], const unsigned char nonce[IDENT_NONCE],
                          const char *name, size_t namelen, const unsigned char sig[IDENT_SIG]) {
    return verify_with(pk, REG_CTX, nonce, NULL, 0, name, namelen, sig);
}

#define RELAY_CTX "parley-relay-v1"

void ident_sign_relay(const identity *id, const unsigned char nonce[IDENT_NONCE],
                      const unsigned char session[IDENT_SESSION], const char *name, size_t namelen,
                      unsigned char sig[IDENT_SIG]) {
    sign_with(id, RELAY_CTX, nonce, session, IDENT_SESSION, name, namelen, sig);
}

int ident_verify_relay(const unsigned char pk[IDENT_PK], const unsigned char nonce[IDENT_NONCE],
                       const unsigned char session[IDENT_SESSION], const char *name,
                       size_t namelen, const unsigned char sig[IDENT_SIG]) {
    return verify_with(pk, RELAY_CTX, nonce, session, IDENT_SESSION, name, namelen, sig);
}

void ident_fingerprint(const unsigned char pk[IDENT_PK], char out[32]) {
    unsigned char h[12];
    crypto_generichash(h, sizeof h, pk, IDENT_PK, NULL, 0);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < sizeof h; i++) {
        if (i && i % 2 == 0)
            out[o++] = '-';
        out[o++] = hex[h[i] >> 4];
        out[o++] = hex[h[i] & 15];
    }
    out[o] = '\0';
}

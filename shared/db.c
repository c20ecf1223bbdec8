/* db: the SQLite connection and group commit under the tracker's registry
 * and mailbox and the peer's history (db.h).  Only the modules above speak
 * their SQL; the transaction rhythm, migrations and file checks live here,
 * once. */
#include "db.h"

#include "grow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct waiter {
    db_done_cb cb;
    void *arg;
} waiter;

enum { ST_BEGIN, ST_BEGIN_READ, ST_COMMIT, ST_ROLLBACK, ST_FIXED };

static const char *const fixed_sql[ST_FIXED] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

struct db {
    uv_check_t check; /* ends the pass: commits the batch after the I/O phase */
    uv_idle_t idle;   /* keeps poll from blocking while a pass is open */
    int handles;      /* open handles; the struct is freed when 0 */
    const logger *lg;
    const char *what; /* the schema's, for messages */
    sqlite3 *sq;
    sqlite3_stmt *fixed[ST_FIXED];
    sqlite3_stmt **st; /* db_prepare's, finalized at close */
    size_t nst, capst;
    int in_tx;        /* the write batch's transaction is open */
    int in_read;      /* a read transaction is open */
    waiter *waiters;
    size_t nwait, capwait;
    void (*batch_end)(void *arg, int status);
    void *batch_arg;
    void (*on_commit)(void *arg, uint64_t ns);
    void *commit_arg;
};

int db_error(int rc) {
    switch (rc & 0xff) {
    case SQLITE_NOMEM: return UV_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return UV_EBUSY;
    case SQLITE_FULL: return UV_ENOSPC;
    case SQLITE_PERM:
    case SQLITE_READONLY: return UV_EACCES;
    default: return UV_EIO;
    }
}

sqlite3 *db_sqlite(db *d) { return d->sq; }

void db_done(sqlite3_stmt *st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int db_run(db *d, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    db_done(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    log_error(d->lg, "database error: %s", sqlite3_errmsg(d->sq));
    return db_error(rc);
}

static int exec_const(sqlite3 *sq, const char *q) { return sqlite3_exec(sq, q, NULL, NULL, NULL); }

int db_int_pragma(sqlite3 *sq, const char *q, int *out) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(sq, q, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int migrate(sqlite3 *sq, const char *path, const db_schema *s, char *err, size_t errlen) {
    int rc = exec_const(sq, "BEGIN IMMEDIATE");
    int version = 0;
    if (rc == SQLITE_OK)
        rc = db_int_pragma(sq, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK && version > s->n) {
        exec_const(sq, "ROLLBACK");
        snprintf(err, errlen,
                 "%s %s has schema version %d but this program knows only up to %d; "
                 "run a newer parley or %s",
                 s->what, path, version, s->n, s->hint);
        return UV_EINVAL;
    }
    for (int v = version; rc == SQLITE_OK && v < s->n; v++)
        rc = exec_const(sq, s->migrations[v]);
    if (rc == SQLITE_OK && s->at_open)
        rc = exec_const(sq, s->at_open);
    if (rc == SQLITE_OK && s->at_open_c && (rc = s->at_open_c(sq, s->at_open_arg, err, errlen))) {
        exec_const(sq, "ROLLBACK"); /* err holds its message */
        return db_error(rc);
    }
    if (rc == SQLITE_OK)
        rc = exec_const(sq, "COMMIT");
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up %s %s: %s", s->what, path, sqlite3_errmsg(sq));
        exec_const(sq, "ROLLBACK");
        return db_error(rc);
    }
    return 0;
}

/* SQLite gives the -wal and -shm files the main file's mode, so creating
 * that one 0600 keeps all three private. */
static int check_private(const char *path, const db_schema *s, char *err, size_t errlen) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = -errno;
        snprintf(err, errlen, "cannot open %s %s: %s; %s", s->what, path, strerror(errno), s->hint);
        return e;
    }
    struct stat st;
    int bad = fstat(fd, &st) == 0 && (st.st_mode & 077);
    close(fd);
    if (bad) {
        snprintf(err, errlen, "%s is open to other users (mode %03o); fix it with: chmod 600 %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        return UV_EACCES;
    }
    return 0;
}

static void free_sql(db *d) {
    for (int i = 0; i < ST_FIXED; i++)
        sqlite3_finalize(d->fixed[i]);
    for (size_t i = 0; i < d->nst; i++)
        sqlite3_finalize(d->st[i]);
    free(d->st);
    d->st = NULL;
    d->nst = 0;
    sqlite3_close(d->sq);
    d->sq = NULL;
}

static void on_idle(uv_idle_t *h) { (void)h; }
static void on_check(uv_check_t *h);

int db_open(uv_loop_t *loop, const char *path, const db_schema *s, const logger *lg, db **out,
            char *err, size_t errlen) {
    if (s->private_file) {
        int e = check_private(path, s, err, errlen);
        if (e)
            return e;
    }
    db *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory opening %s %s", s->what, path);
        return UV_ENOMEM;
    }
    d->lg = lg;
    d->what = s->what;
    int e = UV_EIO;
    int rc = sqlite3_open_v2(path, &d->sq,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen,
                 "cannot open %s %s: %s; check that its directory exists and is writable, or %s",
                 s->what, path, d->sq ? sqlite3_errmsg(d->sq) : "out of memory", s->hint);
        goto fail;
    }
    /* A reader (say the sqlite3 shell) may briefly hold a lock; wait a
     * little rather than fail the batch. */
    sqlite3_busy_timeout(d->sq, 200);
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(d->sq, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        rc = mode && strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot use %s as the %s (%s); is it an SQLite file on a local disk? %s",
                 path, s->what, sqlite3_errmsg(d->sq), s->hint);
        goto fail;
    }
    /* FULL: a commit is on disk before its waiters acknowledge anything. */
    if (exec_const(d->sq, "PRAGMA synchronous = FULL") != SQLITE_OK) {
        snprintf(err, errlen, "cannot configure %s %s: %s", s->what, path, sqlite3_errmsg(d->sq));
        goto fail;
    }
    if ((e = migrate(d->sq, path, s, err, errlen)) != 0)
        goto fail;
    e = UV_EIO;
    for (int i = 0; i < ST_FIXED; i++) {
        if (sqlite3_prepare_v3(d->sq, fixed_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->fixed[i],
                               NULL) != SQLITE_OK) {
            snprintf(err, errlen, "cannot prepare statements for %s %s: %s", s->what, path,
                     sqlite3_errmsg(d->sq));
            goto fail;
        }
    }
    uv_check_init(loop, &d->check);
    uv_idle_init(loop, &d->idle);
    d->check.data = d->idle.data = d;
    d->handles = 2;
    *out = d;
    return 0;
fail:
    free_sql(d);
    free(d);
    return e;
}

int db_prepare(db *d, const char *sql, sqlite3_stmt **out) {
    sqlite3_stmt **nst = grow(d->st, &d->capst, d->nst + 1, sizeof *nst, 16);
    if (!nst)
        return UV_ENOMEM;
    d->st = nst;
    int rc = sqlite3_prepare_v3(d->sq, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    if (rc != SQLITE_OK) {
        log_error(d->lg, "cannot prepare \"%s\": %s", sql, sqlite3_errmsg(d->sq));
        return db_error(rc);
    }
    d->st[d->nst++] = *out;
    return 0;
}

int db_prepare_all(db *d, const char *const *sql, int n, sqlite3_stmt **st, char *err,
                   size_t errlen) {
    for (int i = 0; i < n; i++) {
        int e = db_prepare(d, sql[i], &st[i]);
        if (e) {
            snprintf(err, errlen, "cannot prepare the statements of the %s: %s", d->what,
                     e == UV_ENOMEM ? "out of memory" : sqlite3_errmsg(d->sq));
            return e;
        }
    }
    return 0;
}

static void arm(db *d) {
    uv_check_start(&d->check, on_check);
    uv_idle_start(&d->idle, on_idle);
}

void db_touch(db *d) { arm(d); }

/* Ends the pass: commit, then tell every waiter how it went.  The waiter
 * list is detached first so callbacks may start the next batch. */
static void flush(db *d) {
    int status = 0;
    if (d->in_read) {
        db_run(d, d->fixed[ST_COMMIT]);
        d->in_read = 0;
    }
    if (d->in_tx) {
        if (sqlite3_get_autocommit(d->sq)) {
            status = UV_EIO; /* an earlier error already rolled the batch back */
            log_error(d->lg, "database batch was rolled back; its writes are lost");
        } else {
            uint64_t t0 = uv_hrtime();
            status = db_run(d, d->fixed[ST_COMMIT]);
            if (d->on_commit)
                d->on_commit(d->commit_arg, uv_hrtime() - t0);
            if (status && !sqlite3_get_autocommit(d->sq))
                db_run(d, d->fixed[ST_ROLLBACK]);
        }
        d->in_tx = 0;
    }
    uv_check_stop(&d->check);
    uv_idle_stop(&d->idle);
    waiter *w = d->waiters;
    size_t n = d->nwait;
    d->waiters = NULL;
    d->nwait = d->capwait = 0;
    for (size_t i = 0; i < n; i++)
        w[i].cb(status, w[i].arg);
    free(w);
    if (d->batch_end)
        d->batch_end(d->batch_arg, status);
}

static void on_check(uv_check_t *h) { flush(h->data); }

int db_begin_write(db *d) {
    if (d->in_tx)
        return 0;
    if (d->in_read) { /* BEGIN IMMEDIATE, not an upgrade: waits out a shell's write lock */
        db_run(d, d->fixed[ST_COMMIT]);
        d->in_read = 0;
    }
    int e = db_run(d, d->fixed[ST_BEGIN]);
    if (e)
        return e;
    d->in_tx = 1;
    arm(d);
    return 0;
}

int db_begin_read(db *d) {
    if (d->in_tx || d->in_read)
        return 0;
    int e = db_run(d, d->fixed[ST_BEGIN_READ]);
    if (e)
        return e;
    d->in_read = 1;
    arm(d); /* a read outside a callback must not leave poll blocking */
    return 0;
}

int db_wait(db *d, db_done_cb cb, void *arg) {
    waiter *nw = grow(d->waiters, &d->capwait, d->nwait + 1, sizeof *nw, 16);
    if (!nw)
        return UV_ENOMEM;
    d->waiters = nw;
    d->waiters[d->nwait++] = (waiter){cb, arg};
    arm(d);
    return 0;
}

void db_unwait(db *d) {
    if (d->nwait)
        d->nwait--;
}

void db_on_batch_end(db *d, void (*cb)(void *arg, int status), void *arg) {
    d->batch_end = cb;
    d->batch_arg = arg;
}

void db_on_commit(db *d, void (*cb)(void *arg, uint64_t ns), void *arg) {
    d->on_commit = cb;
    d->commit_arg = arg;
}

static void on_handle_closed(uv_handle_t *h) {
    db *d = h->data;
    if (--d->handles == 0)
        free(d);
}

void db_close(db *d) {
    if (!d)
        return;
    flush(d);
    free_sql(d);
    uv_close((uv_handle_t *)&d->check, on_handle_closed);
    uv_close((uv_handle_t *)&d->idle, on_handle_closed);
}

/* db: the SQLite connection and group commit under the tracker's registry
 * and mailbox and the peer's history (db.h).  Only the modules above speak
 * their SQL; the transaction rhythm, migrations and file checks live here,
 * once. */
#include "db.h"

#include "grow.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct waiter {
    db_done_cb cb;
    void *arg;
    uint64_t epoch; /* sync thread: the commit it waits for the fsync of */
} waiter;

/* The WAL frames after which the sync thread checkpoints (SQLite's own
 * automatic checkpoint default: about 4 MB of 4 KB pages). */
#define CKPT_FRAMES 4096
/* What a -wal file is cut back to when it restarts after a checkpoint
 * that found it larger (a long burst without a full checkpoint). */
#define WAL_KEEP_BYTES (24 << 20)
/* Bounds of input_ready's deferral. */
#define DEFER_PASSES 8
#define DEFER_NS 1000000

enum { ST_BEGIN, ST_BEGIN_READ, ST_COMMIT, ST_ROLLBACK, ST_FIXED };

static const char *const fixed_sql[ST_FIXED] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

struct db {
    uv_check_t check; /* ends the pass: commits the batch after the I/O phase */
    uv_idle_t idle;   /* keeps poll from blocking while the pass has work left */
    uv_timer_t lazy;  /* sync thread: commits a batch of hints only */
    uv_async_t synced; /* sync thread: an fsync is back */
    int handles;      /* open handles; the struct is freed when 0 */
    const logger *lg;
    const char *what; /* the schema's, for messages */
    sqlite3 *sq;
    sqlite3_stmt *fixed[ST_FIXED];
    sqlite3_stmt **st; /* db_prepare's, finalized at close */
    size_t nst, capst;
    int in_tx;        /* the write batch's transaction is open */
    int in_read;      /* a read transaction is open */
    int prompt;       /* the open batch holds a write that is not a hint */
    int deferred;     /* behind: passes the open batch was kept open for ready input */
    uint64_t began;   /* behind: when the open batch began (uv_hrtime) */
    waiter *waiters;  /* the open batch's (or this pass's, with no write) */
    size_t nwait, capwait;
    void (*batch_end)(void *arg, int status);
    void *batch_arg;
    void (*on_commit)(void *arg, uint64_t ns);
    void *commit_arg;
    void (*pre_commit)(void *arg);
    void *pre_commit_arg;

    /* ---- the sync thread; none of it is used in the loop rhythm ---- */
    int pipelined;      /* DB_SYNC_WAIT or DB_SYNC_BEHIND: the thread runs */
    int behind;         /* DB_SYNC_BEHIND */
    /* The loop's side. */
    uint64_t committed; /* commits made (epochs) */
    uint64_t durable;   /* the last epoch known synced */
    int durable_status; /* 0, or the first fsync failure (sticky: the disk lost writes) */
    int inflight;       /* a job the thread has not answered yet */
    int ckpt_running;   /* a checkpoint the next transaction waits for (phase 2) */
    int ckpt_phase;     /* 0 none, 1 the first pass asked, 2 it ended, 3 the last asked */
    uint64_t ckpt_asked; /* checkpoints asked for */
    int wal_frames;     /* frames in the -wal after the last commit (the WAL hook) */
    int ckpt_base;      /* wal_frames when the last checkpoint was asked for */
    waiter *dw;         /* committed, waiting for the fsync of their epoch, in order */
    size_t ndw, capdw;
    /* Shared with the thread, under mu. */
    uv_thread_t thr;
    uv_mutex_t mu;
    uv_cond_t wake;     /* loop -> thread: a job, or stop */
    uv_cond_t answered; /* thread -> loop: done caught up with req */
    uint64_t req;       /* the epoch to make durable */
    uint64_t done;      /* the epoch made durable */
    int done_status;
    int req_ckpt, stop;
    uint64_t ckpt_done; /* checkpoints made */
    int thr_idle;       /* the thread waits for a job (only then is it signalled) */
    /* The thread's own (the loop touches them only before the thread
     * starts and after it ended). */
    int wal_fd;         /* the -wal file, for fdatasync */
    int dir_fd;         /* its directory, synced once */
    sqlite3 *ck;        /* the checkpointing connection, synchronous=FULL */
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
    sqlite3_close(d->ck);
    d->ck = NULL;
    sqlite3_close(d->sq);
    d->sq = NULL;
    if (d->wal_fd >= 0)
        close(d->wal_fd);
    if (d->dir_fd >= 0)
        close(d->dir_fd);
    d->wal_fd = d->dir_fd = -1;
}

/* ---- the sync thread ---- */


/* The thread's fsync: the -wal file's data (its inode, whichever fd wrote
 * it), and once its directory entry. */
static int sync_wal(db *d) {
    if (fdatasync(d->wal_fd) != 0)
        return -errno;
    if (d->dir_fd >= 0) {
        if (fsync(d->dir_fd) != 0)
            return -errno;
        close(d->dir_fd);
        d->dir_fd = -1;
    }
    return 0;
}

/* A checkpoint on the thread's own connection.  Its synchronous=FULL makes
 * SQLite sync the -wal before copying frames into the database file, and
 * the database file before it records them as copied, so a restart of the
 * -wal by the loop's next commit never drops a frame that is not on disk
 * in the database file (the loop's own connection, synchronous=OFF, never
 * checkpoints: the WAL hook replaced its automatic checkpoint).  PASSIVE:
 * it takes no lock the loop waits for (see request_sync for how the -wal
 * gets fully copied all the same). */
static void checkpoint(db *d) {
    int nlog = 0, nckpt = 0;
    int rc = sqlite3_wal_checkpoint_v2(d->ck, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        log_error(d->lg, "%s checkpoint failed: %s", d->what, sqlite3_errmsg(d->ck));
}

static void sync_main(void *arg) {
    db *d = arg;
    uv_mutex_lock(&d->mu);
    for (;;) {
        d->thr_idle = 1;
        while (!d->stop && d->req == d->done && !d->req_ckpt)
            uv_cond_wait(&d->wake, &d->mu);
        d->thr_idle = 0;
        uint64_t start = uv_hrtime();
        uint64_t target = d->req;
        int ck = d->req_ckpt, stop = d->stop;
        d->req_ckpt = 0;
        int need = target != d->done;
        uv_mutex_unlock(&d->mu);
        int status = need ? sync_wal(d) : 0;
        uv_mutex_lock(&d->mu);
        if (status && !d->done_status)
            d->done_status = status;
        d->done = target;
        uv_cond_broadcast(&d->answered);
        uv_async_send(&d->synced);
        if (ck) { /* after the answer: the fsync's waiters need not wait for it */
            uv_mutex_unlock(&d->mu);
            if (status == 0)
                checkpoint(d);
            uv_mutex_lock(&d->mu);
            d->ckpt_done++;
            uv_cond_broadcast(&d->answered);
            uv_async_send(&d->synced);
        }
        if (stop && d->req == d->done && !d->req_ckpt)
            break;
        /* Behind: the commits of the next DB_SYNC_GAP_MS share one fsync
         * (a checkpoint the loop is to wait for starts at once). */
        uint64_t until = start + (uint64_t)DB_SYNC_GAP_MS * 1000000;
        for (uint64_t now; d->behind && !d->stop && !d->req_ckpt && (now = uv_hrtime()) < until;)
            uv_cond_timedwait(&d->wake, &d->mu, until - now);
    }
    uv_mutex_unlock(&d->mu);
}

/* ---- the loop's side ---- */

static int on_wal(void *arg, sqlite3 *sq, const char *name, int frames) {
    db *d = arg;
    d->wal_frames = frames;
    return SQLITE_OK;
}

static void fire(waiter *w, size_t n, int status) {
    for (size_t i = 0; i < n; i++)
        w[i].cb(status, w[i].arg);
}

/* Fires the open batch's waiters with status.  The list is detached first:
 * callbacks may start the next batch. */
static void fire_open(db *d, int status) {
    waiter *w = d->waiters;
    size_t n = d->nwait;
    d->waiters = NULL;
    d->nwait = d->capwait = 0;
    fire(w, n, status);
    free(w);
}

/* Fires, in order, the committed waiters whose fsync is back.  The list is
 * detached first: callbacks may write, wait and commit again. */
static void fire_durable(db *d) {
    size_t n = 0;
    while (n < d->ndw && d->dw[n].epoch <= d->durable)
        n++;
    if (n == 0)
        return;
    waiter *w = d->dw;
    size_t rest = d->ndw - n;
    waiter *keep = NULL;
    if (rest && (keep = malloc(rest * sizeof *keep)) != NULL)
        memcpy(keep, w + n, rest * sizeof *keep);
    if (rest && !keep) { /* out of memory: fire what is due later, from the list */
        fire(w, n, d->durable_status);
        memmove(w, w + n, rest * sizeof *w);
        d->ndw = rest;
        return;
    }
    d->dw = keep;
    d->ndw = d->capdw = rest;
    fire(w, n, d->durable_status);
    free(w);
}

/* Moves the open batch's waiters behind the fsync of epoch. */
static void park(db *d, uint64_t epoch) {
    if (d->nwait == 0)
        return;
    waiter *nw = grow(d->dw, &d->capdw, d->ndw + d->nwait, sizeof *nw, 16);
    if (!nw) { /* cannot wait in line: keep them for the next pass */
        log_error(d->lg, "out of memory waiting for the %s to reach the disk", d->what);
        return;
    }
    d->dw = nw;
    for (size_t i = 0; i < d->nwait; i++) {
        d->waiters[i].epoch = epoch;
        d->dw[d->ndw++] = d->waiters[i];
    }
    d->nwait = 0;
}

/* The thread syncs everything committed so far, and checkpoints after
 * that fsync when the -wal has grown by CKPT_FRAMES.  A checkpoint comes
 * in two: the first copies the bulk of the frames (and syncs the database
 * file) while the loop goes on committing; the second, asked for with the
 * next commit once the first ended, copies what came meanwhile, and the
 * loop begins no transaction until it ended (wait_checkpoint), so it
 * leaves the -wal fully copied and the next commit restarts it from its
 * start.  Only that short second one makes the loop wait, unless the first
 * takes so long (a slow disk) that the -wal grew by CKPT_FRAMES more
 * meanwhile: then the loop waits for it too, which bounds the -wal to about
 * three times CKPT_FRAMES pages. */
static void request_sync(db *d) {
    if (d->wal_frames < d->ckpt_base)
        d->ckpt_base = 0; /* the -wal restarted */
    int ck = 0;
    if (d->ckpt_phase == 0 && d->wal_frames >= d->ckpt_base + CKPT_FRAMES) {
        ck = 1;
        d->ckpt_phase = 1;
        d->ckpt_base = d->wal_frames;
    } else if (d->ckpt_phase == 2) {
        ck = 1;
        d->ckpt_phase = 3;
        d->ckpt_running = 1;
    }
    d->ckpt_asked += ck;
    uv_mutex_lock(&d->mu);
    d->req = d->committed;
    d->req_ckpt |= ck;
    if (d->thr_idle || ck) /* else it looks again after its fsync or its gap */
        uv_cond_signal(&d->wake);
    uv_mutex_unlock(&d->mu);
    d->inflight = 1;
    uv_ref((uv_handle_t *)&d->synced);
}

/* Waits (blocking the loop) for a checkpoint under way to end, so the
 * transaction about to begin sees the -wal fully copied and its commit
 * restarts it.  Its waiters fire from the async callback as usual. */
static void wait_checkpoint(db *d) {
    if (!d->ckpt_running)
        return;
    uv_mutex_lock(&d->mu);
    while (d->ckpt_done != d->ckpt_asked)
        uv_cond_wait(&d->answered, &d->mu);
    uv_mutex_unlock(&d->mu);
    d->ckpt_running = 0;
}

static void on_synced(uv_async_t *h);
static void on_lazy(uv_timer_t *t);
static void on_handle_closed(uv_handle_t *h);

/* Starts the sync thread and its second connection; 0, or an error after
 * which the db keeps the loop rhythm (logged). */
static int start_sync_thread(db *d, uv_loop_t *loop, const char *path, int mode) {
    if (!sqlite3_threadsafe()) /* two threads, one connection each, need its mutexes */
        return UV_ENOTSUP;
    char wal[4200];
    if ((size_t)snprintf(wal, sizeof wal, "%s-wal", path) >= sizeof wal)
        return UV_ENAMETOOLONG;
    /* The -wal exists: the migration's transaction opened it, and the
     * connection keeps it until it closes. */
    d->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (d->wal_fd < 0)
        return -errno;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    d->dir_fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sqlite3_open_v2(path, &d->ck, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        exec_const(d->ck, "PRAGMA synchronous = FULL") != SQLITE_OK)
        return UV_EIO;
    sqlite3_busy_timeout(d->ck, 0);
    if (uv_mutex_init(&d->mu))
        return UV_ENOMEM;
    if (uv_cond_init(&d->wake) || uv_cond_init(&d->answered)) {
        uv_mutex_destroy(&d->mu);
        return UV_ENOMEM;
    }
    d->synced.data = d;
    d->behind = mode == DB_SYNC_BEHIND; /* read by the thread from its start */
    int e = uv_async_init(loop, &d->synced, on_synced);
    if (e == 0 && (e = uv_thread_create(&d->thr, sync_main, d)) != 0) {
        d->handles++; /* freed with the rest */
        uv_close((uv_handle_t *)&d->synced, on_handle_closed);
    }
    if (e) {
        uv_cond_destroy(&d->wake);
        uv_cond_destroy(&d->answered);
        uv_mutex_destroy(&d->mu);
        return e;
    }
    uv_unref((uv_handle_t *)&d->synced);
    uv_timer_init(loop, &d->lazy);
    d->lazy.data = d;
    d->handles += 2;
    d->pipelined = 1;
    d->behind = mode == DB_SYNC_BEHIND;
    return 0;
}

static void on_idle(uv_idle_t *h) { (void)h; }
static void on_check(uv_check_t *h);

static void configure_sqlite(void) {
    static int done;
    if (done)
        return;
    done = 1;
    /* No memory statistics: they take a global mutex on every allocation.
     * Only before SQLite initialises; later it is refused, harmlessly. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int db_open(uv_loop_t *loop, const char *path, const db_schema *s, const logger *lg, db **out,
            char *err, size_t errlen) {
    if (s->private_file) {
        int e = check_private(path, s, err, errlen);
        if (e)
            return e;
    }
    configure_sqlite();
    db *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory opening %s %s", s->what, path);
        return UV_ENOMEM;
    }
    d->lg = lg;
    d->what = s->what;
    d->wal_fd = d->dir_fd = -1;
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
    /* FULL: a commit is on disk before its waiters acknowledge anything
     * (and so are the migrations, whichever rhythm follows). */
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
    if (s->sync_thread) {
        int t = start_sync_thread(d, loop, path, s->sync_thread);
        if (t) {
            log_warn(lg, "%s %s: no sync thread (%s); committing with an fsync in the loop",
                     s->what, path, uv_strerror(t));
            sqlite3_close(d->ck);
            d->ck = NULL;
        } else {
            /* The loop only write()s its commits; the thread syncs and
             * checkpoints (the WAL hook replaces the automatic checkpoint). */
            char q[64];
            snprintf(q, sizeof q, "PRAGMA journal_size_limit = %d", WAL_KEEP_BYTES);
            exec_const(d->sq, q);
            exec_const(d->sq, "PRAGMA synchronous = OFF");
            sqlite3_wal_hook(d->sq, on_wal, d);
        }
    }
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

/* Whether the end of the pass is to come without waiting in poll.  Only
 * an open batch can wait there: for the lazy timer when it holds hints only,
 * for the fsync's answer (the async handle) when it waits for one. */
static int work_now(db *d) {
    if (!d->pipelined || !d->in_tx)
        return 1;
    if (!d->prompt && !d->nwait)
        return 0;
    return d->behind || !d->inflight;
}

static void arm(db *d) {
    uv_check_start(&d->check, on_check);
    if (work_now(d))
        uv_idle_start(&d->idle, on_idle);
}

void db_touch(db *d) { arm(d); }

/* Commits the open batch.  In the loop rhythm its waiters fire now; with
 * the sync thread they wait for the fsync of this commit, asked for here. */
static int commit(db *d) {
    int status;
    if (sqlite3_get_autocommit(d->sq)) {
        status = UV_EIO; /* an earlier error already rolled the batch back */
        log_error(d->lg, "database batch was rolled back; its writes are lost");
    } else {
        uint64_t t0 = uv_hrtime();
        if (d->pre_commit)
            d->pre_commit(d->pre_commit_arg);
        status = sqlite3_get_autocommit(d->sq) ? UV_EIO : db_run(d, d->fixed[ST_COMMIT]);
        if (d->on_commit)
            d->on_commit(d->commit_arg, uv_hrtime() - t0);
        if (status && !sqlite3_get_autocommit(d->sq))
            db_run(d, d->fixed[ST_ROLLBACK]);
    }
    d->in_tx = 0;
    d->prompt = 0;
    if (d->pipelined) {
        uv_timer_stop(&d->lazy);
        if (status == 0) {
            d->committed++;
            if (!d->behind)
                park(d, d->committed);
            request_sync(d);
            if (d->behind)
                status = d->durable_status; /* a disk that failed an fsync fails what follows */
        }
    }
    return status;
}

/* Behind, a batch that would commit now stays open for one more pass (at
 * most DEFER_PASSES, and DEFER_NS after it began) while the loop has input
 * ready: its epoll descriptor polls readable.  On a busy loop the commit
 * then covers every message that had already arrived instead of one per
 * pass (a commit writes ~10 WAL pages however few rows changed), for no
 * wait: the loop handles that input right away either way. */
static int input_ready(db *d) {
    if (!d->behind || !d->in_tx || !(d->prompt || d->nwait) || d->deferred >= DEFER_PASSES ||
        uv_hrtime() - d->began > DEFER_NS)
        return 0;
    struct pollfd pf = {uv_backend_fd(d->check.loop), POLLIN, 0};
    if (poll(&pf, 1, 0) != 1)
        return 0;
    d->deferred++;
    return 1;
}

/* Ends the pass: ends its read transaction, commits the batch when it may
 * (always in the loop rhythm; with the sync thread when the batch holds
 * more than hints and, waiting for fsyncs, none is out), then fires what
 * is due.  The waiter list is detached first so callbacks may start the
 * next batch. */
static void end_pass(db *d) {
    int status = 0;
    if (input_ready(d))
        return; /* the check and idle handles stay on: the next pass ends it */
    d->deferred = 0;
    if (d->in_read) {
        db_run(d, d->fixed[ST_COMMIT]);
        d->in_read = 0;
    }
    if (d->in_tx && (!d->pipelined || ((d->behind || !d->inflight) && (d->prompt || d->nwait))))
        status = commit(d);
    else if (d->pipelined && !d->behind && !d->in_tx)
        park(d, d->committed); /* no write: behind whatever it may have read */
    uv_check_stop(&d->check);
    uv_idle_stop(&d->idle);
    if (!d->in_tx && (!d->pipelined || d->behind || status))
        fire_open(d, status); /* committed (or failed, or nothing written): now */
    if (d->pipelined && !d->behind)
        fire_durable(d);
    if (d->batch_end)
        d->batch_end(d->batch_arg, status);
}

static void on_check(uv_check_t *h) { end_pass(h->data); }

static void on_synced(uv_async_t *h) {
    db *d = h->data;
    uv_mutex_lock(&d->mu);
    uint64_t done = d->done;
    int status = d->done_status;
    int ckpt_idle = d->ckpt_done == d->ckpt_asked;
    uv_mutex_unlock(&d->mu);
    if (ckpt_idle && (d->ckpt_phase == 1 || d->ckpt_phase == 3)) {
        d->ckpt_phase = d->ckpt_phase == 1 ? 2 : 0;
        d->ckpt_running = 0;
    }
    if (status && !d->durable_status)
        log_error(d->lg, "cannot sync the %s to disk: %s; what was written since may be lost",
                  d->what, uv_strerror(status));
    d->durable = done;
    d->durable_status = status;
    if (done == d->committed)
        d->inflight = 0;
    if (!d->inflight && ckpt_idle)
        uv_unref((uv_handle_t *)&d->synced);
    size_t before = d->ndw;
    fire_durable(d);
    if (d->batch_end && d->ndw < before)
        d->batch_end(d->batch_arg, status); /* after these waiters too */
    if (d->in_tx || d->nwait)
        arm(d); /* the batch gathered meanwhile commits at the end of this pass */
}

static void on_lazy(uv_timer_t *t) {
    db *d = t->data;
    if (!d->in_tx)
        return;
    d->prompt = 1;
    arm(d);
}

static int begin(db *d, int prompt) {
    if (d->in_tx) {
        if (prompt && !d->prompt) {
            d->prompt = 1;
            arm(d);
        }
        return 0;
    }
    if (d->in_read) { /* BEGIN IMMEDIATE, not an upgrade: waits out a shell's write lock */
        db_run(d, d->fixed[ST_COMMIT]);
        d->in_read = 0;
    }
    if (d->pipelined && d->ckpt_phase == 1 && d->wal_frames >= d->ckpt_base + CKPT_FRAMES)
        d->ckpt_running = 1; /* a slow first pass: the -wal has grown enough meanwhile */
    if (d->pipelined)
        wait_checkpoint(d);
    int e = db_run(d, d->fixed[ST_BEGIN]);
    if (e)
        return e;
    d->in_tx = 1;
    d->prompt = prompt;
    d->began = uv_hrtime();
    if (d->pipelined && !prompt)
        uv_timer_start(&d->lazy, on_lazy, DB_LAZY_MS, 0);
    arm(d);
    return 0;
}

int db_begin_write(db *d) { return begin(d, 1); }

int db_begin_hint(db *d) { return begin(d, 0); }

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
    d->waiters[d->nwait++] = (waiter){cb, arg, 0};
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

void db_on_pre_commit(db *d, void (*cb)(void *arg), void *arg) {
    d->pre_commit = cb;
    d->pre_commit_arg = arg;
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

/* With the sync thread: commits what is open, lets the thread sync it and
 * stop, then fires every waiter left. */
static void close_pipeline(db *d) {
    if (d->in_read) {
        db_run(d, d->fixed[ST_COMMIT]);
        d->in_read = 0;
    }
    int status = 0;
    if (d->in_tx)
        status = commit(d);
    else
        park(d, d->committed);
    uv_mutex_lock(&d->mu);
    d->stop = 1;
    uv_cond_signal(&d->wake);
    uv_mutex_unlock(&d->mu);
    uv_thread_join(&d->thr);
    d->durable = d->done;
    d->durable_status = d->done_status;
    d->inflight = 0;
    uv_timer_stop(&d->lazy);
    uv_check_stop(&d->check);
    uv_idle_stop(&d->idle);
    fire_durable(d);
    /* Behind: the last commit's waiters (its fsync is back too); or a
     * failed commit's. */
    fire_open(d, status);
    /* Written from one of those callbacks, after the last commit: lost. */
    if (d->in_tx)
        db_run(d, d->fixed[ST_ROLLBACK]);
    d->in_tx = 0;
    fire_open(d, UV_ECANCELED);
    free(d->dw);
    d->dw = NULL;
    d->ndw = 0;
    if (d->batch_end)
        d->batch_end(d->batch_arg, status);
    uv_cond_destroy(&d->wake);
    uv_cond_destroy(&d->answered);
    uv_mutex_destroy(&d->mu);
    /* The close below may checkpoint and delete the -wal as the last
     * connection: with synchronous=FULL that checkpoint syncs the database
     * file first. */
    sqlite3_close(d->ck);
    d->ck = NULL;
    exec_const(d->sq, "PRAGMA synchronous = FULL");
    sqlite3_wal_hook(d->sq, NULL, NULL);
}

void db_close(db *d) {
    if (!d)
        return;
    if (d->pipelined)
        close_pipeline(d);
    else
        end_pass(d);
    free_sql(d);
    uv_close((uv_handle_t *)&d->check, on_handle_closed);
    uv_close((uv_handle_t *)&d->idle, on_handle_closed);
    if (d->pipelined) {
        uv_close((uv_handle_t *)&d->lazy, on_handle_closed);
        uv_close((uv_handle_t *)&d->synced, on_handle_closed);
    }
}

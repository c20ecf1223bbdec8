/* registry: SQLite behind the tracker.  Only this file speaks SQL; every
 * statement is prepared once at open and bound per call.  The group commit
 * lives here too: the first write of a batch opens a transaction and starts
 * a check handle (plus an idle handle so the loop cannot block in poll with
 * a batch open); the check callback commits, then fires the batch's
 * callbacks. */
#include "registry.h"

#include "cache.h"
#include "grow.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ordered schema migrations: entry i brings user_version from i to i+1 and
 * ends by recording that.  Append only; never edit a released entry. */
static const char *const migrations[] = {
    "CREATE TABLE users ("
    " folded TEXT PRIMARY KEY NOT NULL,"  /* name_fold() form: the key */
    " name TEXT NOT NULL,"                /* spelling of the first registration */
    " key BLOB NOT NULL CHECK (length(key) = 32),"
    " endpoints TEXT NOT NULL DEFAULT '',"/* space-separated numeric HOST:PORT */
    " last_seen INTEGER NOT NULL DEFAULT 0,"
    " online INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    /* list pages walk this index: online = 1, folded in a range, in order */
    "CREATE INDEX users_online ON users (online, folded);"
    "PRAGMA user_version = 1;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof *migrations))

/* Records kept in memory for lookups (cache.c): at most this many, about
 * 150-250 bytes each with their index, so at most ~25 MB.  Every record a
 * lookup or registration touched lately; a tracker with fewer users holds
 * them all. */
#define CACHE_MAX 100000

enum {
    ST_BEGIN, ST_BEGIN_READ, ST_COMMIT, ST_ROLLBACK, ST_GET, ST_INSERT, ST_UPDATE, ST_PRESENCE,
    ST_LIST_FROM, ST_LIST_AFTER, ST_DATA_VERSION, ST_COUNT
};

static const char *const sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_GET] = "SELECT name, key, endpoints, last_seen, online FROM users WHERE folded = ?1",
    [ST_INSERT] = "INSERT INTO users (folded, name, key, endpoints, last_seen, online, created)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, 1, ?5)",
    /* A bind also marks the user online: one write per registration. */
    [ST_UPDATE] = "UPDATE users SET endpoints = ?2, last_seen = ?3, online = 1 WHERE folded = ?1",
    [ST_PRESENCE] = "UPDATE users SET online = ?2, last_seen = ?3 WHERE folded = ?1",
    [ST_LIST_FROM] = "SELECT name, folded FROM users WHERE online = 1 AND folded >= ?1"
                     " AND folded < ?2 ORDER BY folded LIMIT ?3",
    [ST_LIST_AFTER] = "SELECT name, folded FROM users WHERE online = 1 AND folded > ?1"
                      " AND folded < ?2 ORDER BY folded LIMIT ?3",
    /* Changes only when another connection commits: the cache's guard. */
    [ST_DATA_VERSION] = "PRAGMA data_version",
};

typedef struct waiter {
    reg_done_cb cb;
    void *arg;
} waiter;

struct registry {
    uv_check_t check; /* commits the batch after the loop's I/O phase */
    uv_idle_t idle;   /* keeps poll from blocking while a batch is open */
    int handles;      /* open handles; the struct is freed when 0 */
    const logger *lg;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    int in_tx;        /* the write batch's transaction is open */
    int in_read;      /* a read transaction is open (ended in on_check) */
    int pass_checked; /* data_version compared in this loop pass */
    int64_t data_version;
    cache *cache;
    uint64_t cache_hits, cache_misses; /* lookups of existing names */
    waiter *waiters;
    size_t nwait, capwait;
    void (*batch_end)(void *arg); /* reg_on_batch_end */
    void *batch_arg;
    void (*on_commit)(void *arg, uint64_t ns); /* reg_on_commit, for --metrics */
    void *commit_arg;
};

static int sqlite_to_uv(int rc) {
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

/* Runs a statement that returns no rows, then resets it. */
static int run(registry *r, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE)
        return 0;
    log_error(r->lg, "database error: %s", sqlite3_errmsg(r->db));
    return sqlite_to_uv(rc);
}

static int exec_const(sqlite3 *db, const char *q) {
    return sqlite3_exec(db, q, NULL, NULL, NULL);
}

static int int_pragma(sqlite3 *db, const char *q, int *out) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, q, -1, &st, NULL);
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

static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen) {
    int rc = exec_const(db, "BEGIN IMMEDIATE");
    int version = 0;
    if (rc == SQLITE_OK)
        rc = int_pragma(db, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK && version > SCHEMA_VERSION) {
        exec_const(db, "ROLLBACK");
        snprintf(err, errlen,
                 "database %s has schema version %d but this tracker knows only up to %d; "
                 "run a newer tracker or use --db to pick another file",
                 path, version, SCHEMA_VERSION);
        return UV_EINVAL;
    }
    for (int v = version; rc == SQLITE_OK && v < SCHEMA_VERSION; v++)
        rc = exec_const(db, migrations[v]);
    /* No session survives a restart, so nobody is online yet. */
    if (rc == SQLITE_OK)
        rc = exec_const(db, "UPDATE users SET online = 0 WHERE online <> 0");
    if (rc == SQLITE_OK)
        rc = exec_const(db, "COMMIT");
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up database %s: %s", path, sqlite3_errmsg(db));
        exec_const(db, "ROLLBACK");
        return sqlite_to_uv(rc);
    }
    return 0;
}

static void free_db(registry *r) {
    cache_free(r->cache);
    r->cache = NULL;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(r->st[i]);
    sqlite3_close(r->db);
    r->db = NULL;
}

static void on_check(uv_check_t *h);
static void on_idle(uv_idle_t *h) { (void)h; }

int reg_open(uv_loop_t *loop, const char *path, const logger *lg, registry **out, char *err,
             size_t errlen) {
    registry *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory opening the database");
        return UV_ENOMEM;
    }
    r->lg = lg;
    int rc = sqlite3_open_v2(path, &r->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen,
                 "cannot open database %s: %s; check that its directory exists and is writable, "
                 "or use --db to pick another file",
                 path, r->db ? sqlite3_errmsg(r->db) : "out of memory");
        goto fail;
    }
    /* A reader (say the sqlite3 shell) may briefly hold a lock; wait a
     * little rather than fail the batch. */
    sqlite3_busy_timeout(r->db, 200);
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(r->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        rc = mode && strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen,
                 "cannot use %s as the tracker database (%s); is it an SQLite file on a local "
                 "disk? use --db to pick another file",
                 path, sqlite3_errmsg(r->db));
        goto fail;
    }
    /* FULL: a commit is on disk before its callbacks acknowledge anything. */
    if (exec_const(r->db, "PRAGMA synchronous = FULL") != SQLITE_OK) {
        snprintf(err, errlen, "cannot configure database %s: %s", path, sqlite3_errmsg(r->db));
        goto fail;
    }
    int e = migrate(r->db, path, err, errlen);
    if (e) {
        free_db(r);
        free(r);
        return e;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(r->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &r->st[i], NULL) !=
            SQLITE_OK) {
            snprintf(err, errlen, "cannot prepare database statements for %s: %s", path,
                     sqlite3_errmsg(r->db));
            goto fail;
        }
    }
    if (!(r->cache = cache_new(CACHE_MAX))) {
        snprintf(err, errlen, "out of memory opening the database");
        free_db(r);
        free(r);
        return UV_ENOMEM;
    }
    r->data_version = -1; /* the first pass reads it; the cache is empty anyway */
    uv_check_init(loop, &r->check);
    uv_idle_init(loop, &r->idle);
    r->check.data = r->idle.data = r;
    r->handles = 2;
    *out = r;
    return 0;
fail:
    free_db(r);
    free(r);
    return UV_EIO;
}

/* Ends the open batch: commit, then tell every waiter how it went.  The
 * waiter list is detached first so callbacks may queue the next batch. */
static void flush(registry *r) {
    int status = 0;
    if (r->in_read) {
        run(r, r->st[ST_COMMIT]);
        r->in_read = 0;
    }
    if (r->in_tx) {
        if (sqlite3_get_autocommit(r->db)) {
            status = UV_EIO; /* an earlier error already rolled the batch back */
            log_error(r->lg, "database batch was rolled back; its writes are lost");
        } else {
            uint64_t t0 = uv_hrtime();
            status = run(r, r->st[ST_COMMIT]);
            if (r->on_commit)
                r->on_commit(r->commit_arg, uv_hrtime() - t0);
            if (status && !sqlite3_get_autocommit(r->db))
                run(r, r->st[ST_ROLLBACK]);
        }
        r->in_tx = 0;
    }
    if (status)
        cache_clear(r->cache); /* it may hold writes that were rolled back */
    r->pass_checked = 0;
    uv_check_stop(&r->check);
    uv_idle_stop(&r->idle);
    waiter *w = r->waiters;
    size_t n = r->nwait;
    r->waiters = NULL;
    r->nwait = r->capwait = 0;
    for (size_t i = 0; i < n; i++)
        w[i].cb(status, w[i].arg);
    free(w);
    if (r->batch_end)
        r->batch_end(r->batch_arg);
}

void reg_on_commit(registry *r, void (*cb)(void *arg, uint64_t ns), void *arg) {
    r->on_commit = cb;
    r->commit_arg = arg;
}

void reg_on_batch_end(registry *r, void (*cb)(void *arg), void *arg) {
    r->batch_end = cb;
    r->batch_arg = arg;
}

static void on_check(uv_check_t *h) {
    flush(h->data);
}

/* Opens the batch transaction if needed; every write goes through here. */
static int begin_write(registry *r) {
    if (r->in_tx)
        return 0;
    if (r->in_read) { /* BEGIN IMMEDIATE, not an upgrade: waits out a shell's write lock */
        run(r, r->st[ST_COMMIT]);
        r->in_read = 0;
    }
    int e = run(r, r->st[ST_BEGIN]);
    if (e)
        return e;
    r->in_tx = 1;
    uv_check_start(&r->check, on_check);
    uv_idle_start(&r->idle, on_idle);
    return 0;
}

/* Every read of a loop pass shares one read transaction, ended by on_check
 * after the pass: SQLite then takes its WAL read lock (two fcntl calls)
 * once per pass instead of once per query.  Inside a write batch reads use
 * the batch's transaction.  Other processes are not blocked: in WAL mode
 * readers never block readers or the one writer, and the transaction lasts
 * one loop pass (the idle handle keeps poll from blocking until the check
 * has ended it). */
static int begin_read(registry *r) {
    if (r->in_tx || r->in_read)
        return 0;
    int e = run(r, r->st[ST_BEGIN_READ]);
    if (e)
        return e;
    r->in_read = 1;
    uv_check_start(&r->check, on_check);
    uv_idle_start(&r->idle, on_idle); /* a read outside a callback must not leave poll blocking */
    return 0;
}

/* Once per loop pass, before the cache answers anything: a commit by another
 * process (an operator's sqlite3 shell) bumps PRAGMA data_version, and then
 * nothing cached can be trusted.  The check handle ends the pass. */
static int check_pass(registry *r) {
    if (r->pass_checked)
        return 0;
    sqlite3_stmt *st = r->st[ST_DATA_VERSION];
    int rc = sqlite3_step(st);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        log_error(r->lg, "database error: %s", sqlite3_errmsg(r->db));
        return sqlite_to_uv(rc);
    }
    if (v != r->data_version) {
        cache_clear(r->cache);
        r->data_version = v;
    }
    r->pass_checked = 1;
    uv_check_start(&r->check, on_check);
    uv_idle_start(&r->idle, on_idle);
    return 0;
}

static int add_waiter(registry *r, reg_done_cb cb, void *arg) {
    waiter *nw = grow(r->waiters, &r->capwait, r->nwait + 1, sizeof *nw, 16);
    if (!nw)
        return UV_ENOMEM;
    r->waiters = nw;
    r->waiters[r->nwait++] = (waiter){cb, arg};
    return 0;
}

static void on_handle_closed(uv_handle_t *h) {
    registry *r = h->data;
    if (--r->handles == 0)
        free(r);
}

void reg_close(registry *r) {
    if (!r)
        return;
    flush(r);
    free_db(r);
    uv_close((uv_handle_t *)&r->check, on_handle_closed);
    uv_close((uv_handle_t *)&r->idle, on_handle_closed);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s) {
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static const char *column_str(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static void split_endpoints(const char *s, reg_user *u) {
    u->nendpoints = 0;
    while (s && *s && u->nendpoints < REG_MAX_ENDPOINTS) {
        size_t n = strcspn(s, " ");
        if (n > 0 && n < ADDR_STRLEN) {
            memcpy(u->endpoints[u->nendpoints], s, n);
            u->endpoints[u->nendpoints++][n] = '\0';
        }
        s += n;
        s += strspn(s, " ");
    }
}

static void fill_user(reg_user *u, const cache_row *row) {
    size_t n = strlen(row->name);
    if (n >= sizeof u->name)
        n = sizeof u->name - 1; /* cannot happen: names are checked before storing */
    memcpy(u->name, row->name, n);
    u->name[n] = '\0';
    memcpy(u->key, row->key, IDENT_PK);
    split_endpoints(row->endpoints, u);
    u->last_seen = row->last_seen;
    u->online = row->online;
}

int reg_lookup(registry *r, const char *folded, reg_user *u) {
    int e = check_pass(r);
    if (e)
        return e;
    cache_row row;
    if (cache_get(r->cache, folded, &row) == 0) {
        r->cache_hits++;
        fill_user(u, &row);
        return 0;
    }
    if ((e = begin_read(r)) != 0)
        return e;
    sqlite3_stmt *st = r->st[ST_GET];
    bind_str(st, 1, folded);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        static const unsigned char nokey[IDENT_PK];
        row.name = column_str(st, 0);
        row.key = sqlite3_column_bytes(st, 1) == IDENT_PK ? sqlite3_column_blob(st, 1) : nokey;
        row.endpoints = column_str(st, 2);
        row.last_seen = sqlite3_column_int64(st, 3);
        row.online = sqlite3_column_int(st, 4) != 0;
        fill_user(u, &row);
        cache_put(r->cache, folded, &row);
        r->cache_misses++;
    } else if (rc == SQLITE_DONE) {
        e = UV_ENOENT;
    } else {
        log_error(r->lg, "database lookup failed: %s", sqlite3_errmsg(r->db));
        e = sqlite_to_uv(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return e;
}

void reg_get_cache_stats(const registry *r, reg_cache_stats *out) {
    out->records = cache_count(r->cache);
    out->hits = r->cache_hits;
    out->misses = r->cache_misses;
}

int reg_bind(registry *r, const char *name, const char *folded, const unsigned char key[IDENT_PK],
             const char *const *endpoints, size_t nendpoints, int64_t now,
             char stored[NAME_BUFLEN], reg_done_cb cb, void *arg) {
    char eps[REG_MAX_ENDPOINTS * ADDR_STRLEN];
    size_t o = 0;
    eps[0] = '\0';
    for (size_t i = 0; i < nendpoints && i < REG_MAX_ENDPOINTS; i++) {
        size_t n = strlen(endpoints[i]);
        if (n == 0 || n >= ADDR_STRLEN || strchr(endpoints[i], ' '))
            return UV_EINVAL;
        if (o)
            eps[o++] = ' ';
        memcpy(eps + o, endpoints[i], n + 1);
        o += n;
    }
    if (nendpoints > REG_MAX_ENDPOINTS)
        return UV_EINVAL;

    reg_user u;
    int e = reg_lookup(r, folded, &u);
    if (e && e != UV_ENOENT)
        return e;
    int exists = e == 0;
    if (exists && memcmp(u.key, key, IDENT_PK) != 0)
        return UV_EEXIST;
    if ((e = add_waiter(r, cb, arg)) != 0) /* reserve first: no failure after the write */
        return e;
    if ((e = begin_write(r)) != 0) {
        r->nwait--;
        return e;
    }
    sqlite3_stmt *st;
    if (exists) {
        st = r->st[ST_UPDATE];
        bind_str(st, 1, folded);
        bind_str(st, 2, eps);
        sqlite3_bind_int64(st, 3, now);
        snprintf(stored, NAME_BUFLEN, "%s", u.name);
    } else {
        st = r->st[ST_INSERT];
        bind_str(st, 1, folded);
        bind_str(st, 2, name);
        sqlite3_bind_blob(st, 3, key, IDENT_PK, SQLITE_TRANSIENT);
        bind_str(st, 4, eps);
        sqlite3_bind_int64(st, 5, now);
        snprintf(stored, NAME_BUFLEN, "%s", name);
    }
    if ((e = run(r, st)) != 0) {
        r->nwait--;
        return e;
    }
    cache_row row = {stored, key, eps, now, 1};
    cache_put(r->cache, folded, &row);
    return 0;
}

int reg_presence(registry *r, const char *folded, int is_online, int64_t last_seen) {
    int e = begin_write(r);
    if (e)
        return e;
    sqlite3_stmt *st = r->st[ST_PRESENCE];
    bind_str(st, 1, folded);
    sqlite3_bind_int(st, 2, is_online ? 1 : 0);
    sqlite3_bind_int64(st, 3, last_seen);
    if ((e = run(r, st)) == 0)
        cache_presence(r->cache, folded, is_online, last_seen);
    return e;
}

int reg_list(registry *r, const char *prefix, const char *cursor, size_t limit, reg_list_cb cb,
             void *arg, int *more) {
    *more = 0;
    if (!prefix)
        prefix = "";
    if (limit == 0)
        return 0;
    /* Folded names are UTF-8, which never holds the byte 0xff, so every name
     * starting with prefix sorts below prefix + 0xff (BINARY collation). */
    char upper[NAME_BUFLEN + 1];
    size_t pn = strlen(prefix);
    if (pn >= NAME_BUFLEN)
        return 0; /* longer than any name: nothing can match */
    memcpy(upper, prefix, pn);
    upper[pn] = (char)0xff;
    upper[pn + 1] = '\0';
    /* Start at the later of prefix and cursor so each page is one index
     * range scan, however deep into the list it is. */
    int after = cursor && *cursor && strcmp(cursor, prefix) >= 0;
    sqlite3_stmt *st = r->st[after ? ST_LIST_AFTER : ST_LIST_FROM];
    bind_str(st, 1, after ? cursor : prefix);
    sqlite3_bind_text(st, 2, upper, (int)pn + 1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    int e = begin_read(r);
    if (e)
        return e;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            *more = 1;
            break;
        }
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *folded = (const char *)sqlite3_column_text(st, 1);
        if (cb(name ? name : "", folded ? folded : "", arg)) {
            *more = 1;
            break;
        }
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_error(r->lg, "database list failed: %s", sqlite3_errmsg(r->db));
        e = sqlite_to_uv(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return e;
}

/* registry: the users table of the tracker's database.  Only this file
 * speaks its SQL (but for release.c's operator --release, another process
 * by design); every statement is prepared once at open and bound per
 * call.  The connection, the schema (schema.c) and the group commit are
 * shared/db.c's; the lookup cache (cache.c) sits in front of the reads.
 * Each name's look-alike skeleton (confusable.c) is stored beside it.
 * With reg_open_shared the users table is PostgreSQL's (registry_pg.c):
 * each function below hands its SQL over there, after the part both
 * backends share (endpoints, skeletons, list bounds and paging). */
#include "registry.h"

#include "cache.h"
#include "confusable.h"
#include "db.h"
#include "grow.h"
#include "registry_pg.h"
#include "schema.h"

#include <sodium.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records kept in memory for lookups (cache.c): at most this many, about
 * 150-250 bytes each with their index, so at most ~25 MB.  Every record a
 * lookup or registration touched lately; a tracker with fewer users holds
 * them all. */
#define CACHE_MAX 100000

enum {
    ST_GET, ST_INSERT, ST_UPDATE, ST_PRESENCE, ST_LIST_FROM, ST_LIST_AFTER, ST_DATA_VERSION,
    ST_LOOKALIKE, ST_COUNT
};

static const char *const sql[ST_COUNT] = {
    [ST_GET] = "SELECT name, key, endpoints, last_seen, online FROM users WHERE folded = ?1",
    [ST_INSERT] = "INSERT INTO users (folded, name, key, endpoints, last_seen, online, created,"
                  " skeleton) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?5, ?6)",
    /* A bind also marks the user online: one write per registration. */
    [ST_UPDATE] = "UPDATE users SET endpoints = ?2, last_seen = ?3, online = 1 WHERE folded = ?1",
    [ST_PRESENCE] = "UPDATE users SET online = ?2, last_seen = ?3 WHERE folded = ?1",
    [ST_LIST_FROM] = "SELECT name, folded FROM users WHERE online = 1 AND folded >= ?1"
                     " AND folded < ?2 ORDER BY folded LIMIT ?3",
    [ST_LIST_AFTER] = "SELECT name, folded FROM users WHERE online = 1 AND folded > ?1"
                      " AND folded < ?2 ORDER BY folded LIMIT ?3",
    /* Changes only when another connection commits: the cache's guard. */
    [ST_DATA_VERSION] = "PRAGMA data_version",
    /* One users_skeleton index probe. */
    [ST_LOOKALIKE] = "SELECT name FROM users WHERE skeleton = ?1 AND key <> ?2 LIMIT 1",
};

struct registry {
    const logger *lg;
    db *d;
    sqlite3_stmt *st[ST_COUNT];
    int pass_checked; /* data_version compared in this loop pass */
    int64_t data_version;
    cache *cache;
    uint64_t cache_hits, cache_misses; /* lookups of existing names */
    void (*batch_end)(void *arg); /* reg_on_batch_end */
    void *batch_arg;
    void (*outside)(void *arg);   /* reg_on_outside_write */
    void *outside_arg;
    reg_pg *pg; /* the shared users table, or NULL: SQLite's */
    reg_presence_cb remote;       /* reg_on_remote_presence */
    void *remote_arg;
    reg_forward_cb forward;       /* reg_on_forward */
    void *forward_arg;
};

static void on_batch_end(void *arg, int status) {
    registry *r = arg;
    r->pass_checked = 0;
    if (status)
        cache_clear(r->cache); /* it may hold writes that were rolled back */
    if (r->batch_end)
        r->batch_end(r->batch_arg);
}

/* The skeletons of the names listed in folded[0..n): 0 or an SQLite error. */
static int fill_some(registry *r, sqlite3_stmt *set, char (*folded)[NAME_BUFLEN], size_t n) {
    for (size_t i = 0; i < n; i++) {
        char skel[CONF_SKELETON_BUFLEN];
        if (conf_skeleton(folded[i], strlen(folded[i]), skel)) {
            /* Not a name name_fold makes (written by hand?): it looks like
             * itself at least. */
            log_warn(r->lg, "cannot compute the look-alike skeleton of the stored name %s; "
                     "keeping the name itself", folded[i]);
            snprintf(skel, sizeof skel, "%s", folded[i]);
        }
        sqlite3_bind_text(set, 1, skel, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(set, 2, folded[i], -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(set);
        sqlite3_reset(set);
        if (rc != SQLITE_DONE)
            return rc;
    }
    return SQLITE_OK;
}

/* db_open's C step (db_schema.at_open_c), in the migration transaction:
 * the skeleton of every name that lacks one (the rows from before
 * migration 3, a row an operator wrote), and of every name when they were
 * computed by another ICU than this one (its confusables data changes). */
static int fill_skeletons(sqlite3 *sq, void *arg, char *err, size_t errlen) {
    registry *r = arg;
    if (conf_init(err, errlen))
        return SQLITE_ERROR;
    const char *now = conf_version();
    enum { BATCH = 256 };
    static const char *const q[] = {
        "SELECT value FROM meta WHERE name = 'skeletons'",
        "UPDATE users SET skeleton = NULL",
        "INSERT OR REPLACE INTO meta (name, value) VALUES ('skeletons', ?1)",
        /* in batches along the primary key: a name that fails is not met again */
        "SELECT folded FROM users WHERE skeleton IS NULL AND folded > ?1 ORDER BY folded LIMIT ?2",
        "UPDATE users SET skeleton = ?1 WHERE folded = ?2",
    };
    enum { Q_GET, Q_CLEAR, Q_SET_VERSION, Q_MISSING, Q_SET, Q_N };
    sqlite3_stmt *st[Q_N] = {0};
    char (*folded)[NAME_BUFLEN] = malloc(BATCH * sizeof *folded);
    int rc = folded ? SQLITE_OK : SQLITE_NOMEM;
    for (int i = 0; rc == SQLITE_OK && i < Q_N; i++)
        rc = sqlite3_prepare_v2(sq, q[i], -1, &st[i], NULL);
    char was[64] = "";
    if (rc == SQLITE_OK && (rc = sqlite3_step(st[Q_GET])) == SQLITE_ROW) {
        snprintf(was, sizeof was, "%s", (const char *)sqlite3_column_text(st[Q_GET], 0));
        rc = SQLITE_DONE;
    }
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    if (rc == SQLITE_OK && strcmp(was, now) != 0) {
        if (was[0])
            log_info(r->lg, "the look-alike skeletons of the names were computed with %s; "
                     "computing them again with %s", was, now);
        rc = sqlite3_step(st[Q_CLEAR]);
        if (rc == SQLITE_DONE) {
            sqlite3_bind_text(st[Q_SET_VERSION], 1, now, -1, SQLITE_STATIC);
            rc = sqlite3_step(st[Q_SET_VERSION]);
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    size_t total = 0;
    char after[NAME_BUFLEN] = "";
    while (rc == SQLITE_OK) {
        size_t n = 0;
        sqlite3_bind_text(st[Q_MISSING], 1, after, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st[Q_MISSING], 2, BATCH);
        while (n < BATCH && (rc = sqlite3_step(st[Q_MISSING])) == SQLITE_ROW) {
            const char *f = (const char *)sqlite3_column_text(st[Q_MISSING], 0);
            snprintf(folded[n++], NAME_BUFLEN, "%s", f ? f : "");
        }
        sqlite3_reset(st[Q_MISSING]);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
            break;
        rc = fill_some(r, st[Q_SET], folded, n);
        total += n;
        if (n < BATCH)
            break;
        snprintf(after, sizeof after, "%s", folded[n - 1]);
    }
    if (rc == SQLITE_OK && total)
        log_info(r->lg, "computed the look-alike skeletons of %zu name%s (%s)", total,
                 total == 1 ? "" : "s", now);
    if (rc != SQLITE_OK)
        snprintf(err, errlen, "cannot fill in the look-alike skeletons of the names: %s",
                 sqlite3_errmsg(sq));
    for (int i = 0; i < Q_N; i++)
        sqlite3_finalize(st[i]);
    free(folded);
    return rc;
}

/* This tracker's id in the shared registry (who holds which session), made
 * once and kept in the SQLite file's meta table so it survives restarts:
 * 0, or an SQLite error. */
static int tracker_id(registry *r, char id[33]) {
    unsigned char raw[16];
    char fresh[33];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(fresh, sizeof fresh, raw, sizeof raw);
    sqlite3 *sq = db_sqlite(r->d);
    sqlite3_stmt *put = NULL, *get = NULL;
    int rc = sqlite3_prepare_v2(sq, "INSERT OR IGNORE INTO meta (name, value) "
                                "VALUES ('tracker_id', ?1)", -1, &put, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(put, 1, fresh, -1, SQLITE_STATIC);
        rc = sqlite3_step(put) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(sq);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(sq, "SELECT value FROM meta WHERE name = 'tracker_id'", -1, &get,
                                NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(get) == SQLITE_ROW ? SQLITE_OK : SQLITE_ERROR;
        if (rc == SQLITE_OK)
            snprintf(id, 33, "%s", (const char *)sqlite3_column_text(get, 0));
    }
    sqlite3_finalize(put);
    sqlite3_finalize(get);
    return rc;
}

/* A PostgreSQL batch's callbacks ran: the pass then ends like one that
 * used the database, so what they queued (presence pushes) goes out. */
static void touch(void *arg) {
    registry *r = arg;
    db_touch(r->d);
}

static int open_any(uv_loop_t *loop, const char *path, const char *conninfo, unsigned lease_s,
                    const logger *lg, registry **out, char *err, size_t errlen) {
    registry *r = calloc(1, sizeof *r);
    if (!r || !(r->cache = cache_new(CACHE_MAX))) {
        free(r);
        snprintf(err, errlen, "out of memory opening the database");
        return UV_ENOMEM;
    }
    r->lg = lg;
    db_schema schema = tracker_schema;
    schema.at_open_c = fill_skeletons;
    schema.at_open_arg = r;
    int e = db_open(loop, path, &schema, lg, &r->d, err, errlen);
    if (e == 0)
        e = db_prepare_all(r->d, sql, ST_COUNT, r->st, err, errlen);
    if (e == 0 && conninfo) {
        char id[33];
        if (tracker_id(r, id) != SQLITE_OK) {
            snprintf(err, errlen, "cannot keep the tracker id in %s: %s", path,
                     sqlite3_errmsg(db_sqlite(r->d)));
            e = UV_EIO;
        } else if ((e = rpg_open(loop, conninfo, id, lease_s, lg, &r->pg, err, errlen)) == 0) {
            rpg_on_batch_done(r->pg, touch, r);
        }
    }
    if (e) {
        db_close(r->d);
        cache_free(r->cache);
        free(r);
        return e;
    }
    /* What the file is at now, so that any commit by another process from
     * here on is seen (the mailbox counted its totals just after this). */
    sqlite3_stmt *st = r->st[ST_DATA_VERSION];
    r->data_version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    db_on_batch_end(r->d, on_batch_end, r);
    *out = r;
    return 0;
}

int reg_open(uv_loop_t *loop, const char *path, const logger *lg, registry **out, char *err,
             size_t errlen) {
    return open_any(loop, path, NULL, 0, lg, out, err, errlen);
}

int reg_open_shared(uv_loop_t *loop, const char *path, const char *conninfo, unsigned lease_s,
                    const logger *lg, registry **out, char *err, size_t errlen) {
    return open_any(loop, path, conninfo, lease_s, lg, out, err, errlen);
}

void reg_on_reconnected(registry *r, void (*cb)(void *arg), void *arg) {
    if (r->pg)
        rpg_on_reconnected(r->pg, cb, arg);
}

int reg_shared(const registry *r) { return r->pg != NULL; }

db *reg_db(registry *r) { return r->d; }

reg_pg *reg_pg_conn(registry *r) { return r->pg; }

void reg_on_commit(registry *r, void (*cb)(void *arg, uint64_t ns), void *arg) {
    db_on_commit(r->d, cb, arg);
}

void reg_on_batch_end(registry *r, void (*cb)(void *arg), void *arg) {
    r->batch_end = cb;
    r->batch_arg = arg;
}

static void on_remote(void *arg, const char *name, const char *folded, int is_online) {
    registry *r = arg;
    if (!r->remote)
        return;
    db_touch(r->d); /* the batch end sends what the callback queued */
    r->remote(r->remote_arg, name, folded, is_online);
}

const char *reg_home(const registry *r) { return r->pg ? rpg_tracker_id(r->pg) : ""; }

int reg_elsewhere(const registry *r, const reg_user *u) {
    return r->pg && u->online && u->home[0] && strcmp(u->home, rpg_tracker_id(r->pg)) != 0;
}

int reg_forward(registry *r, const char *home, const char *folded, const char *payload) {
    return r->pg ? rpg_forward(r->pg, home, folded, payload) : UV_ENOTSUP;
}

static void on_forward(void *arg, const char *payload) {
    registry *r = arg;
    if (!r->forward)
        return;
    db_touch(r->d); /* as on_remote */
    r->forward(r->forward_arg, payload);
}

void reg_on_forward(registry *r, reg_forward_cb cb, void *arg) {
    r->forward = cb;
    r->forward_arg = arg;
    if (r->pg)
        rpg_on_forward(r->pg, cb ? on_forward : NULL, r);
}

void reg_on_remote_presence(registry *r, reg_presence_cb cb, void *arg) {
    r->remote = cb;
    r->remote_arg = arg;
    if (r->pg)
        rpg_on_presence(r->pg, cb ? on_remote : NULL, r);
}

void reg_on_outside_write(registry *r, void (*cb)(void *arg), void *arg) {
    r->outside = cb;
    r->outside_arg = arg;
}

/* Once per loop pass, before the cache answers anything: a commit by another
 * process (an operator's --release or sqlite3 shell) bumps PRAGMA
 * data_version, and then nothing cached can be trusted.  The db's end of
 * pass resets the flag. */
static int check_pass(registry *r) {
    if (r->pass_checked)
        return 0;
    sqlite3_stmt *st = r->st[ST_DATA_VERSION];
    int rc = sqlite3_step(st);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        log_error(r->lg, "database error: %s", sqlite3_errmsg(db_sqlite(r->d)));
        return db_error(rc);
    }
    if (v != r->data_version) {
        cache_clear(r->cache);
        int first = r->data_version < 0; /* could not be read at open */
        r->data_version = v;
        if (!first) {
            log_info(r->lg, "another process changed the database (an operator's --release?); "
                     "reading it afresh");
            if (r->outside)
                r->outside(r->outside_arg);
        }
    }
    r->pass_checked = 1;
    db_touch(r->d);
    return 0;
}

void reg_close(registry *r) {
    if (!r)
        return;
    rpg_close(r->pg);
    db_close(r->d);
    cache_free(r->cache);
    free(r);
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
    u->home[0] = '\0';
}

int reg_lookup(registry *r, const char *folded, reg_user *u) {
    if (r->pg) {
        char eps[REG_MAX_ENDPOINTS * ADDR_STRLEN];
        int e = rpg_lookup(r->pg, folded, u, eps, sizeof eps);
        if (e == 0)
            split_endpoints(eps, u);
        return e;
    }
    int e = check_pass(r);
    if (e)
        return e;
    cache_row row;
    if (cache_get(r->cache, folded, &row) == 0) {
        r->cache_hits++;
        fill_user(u, &row);
        return 0;
    }
    if ((e = db_begin_read(r->d)) != 0)
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
        log_error(r->lg, "database lookup failed: %s", sqlite3_errmsg(db_sqlite(r->d)));
        e = db_error(rc);
    }
    db_done(st);
    return e;
}

/* A shared registry's lookup in flight (reg_lookup_start). */
typedef struct pending_lookup {
    reg_user *u;
    reg_done_cb cb;
    void *arg;
    char eps[REG_MAX_ENDPOINTS * ADDR_STRLEN];
} pending_lookup;

static void on_looked_up(int status, void *arg) {
    pending_lookup *pl = arg;
    if (status == 0)
        split_endpoints(pl->eps, pl->u);
    pl->cb(status, pl->arg);
    free(pl);
}

int reg_lookup_start(registry *r, const char *folded, reg_user *u, reg_done_cb cb, void *arg) {
    if (!r->pg)
        return reg_lookup(r, folded, u);
    pending_lookup *pl = malloc(sizeof *pl);
    if (!pl)
        return UV_ENOMEM;
    *pl = (pending_lookup){u, cb, arg, ""};
    int e = rpg_lookup_start(r->pg, folded, u, pl->eps, sizeof pl->eps, on_looked_up, pl);
    if (e) {
        free(pl);
        return e;
    }
    return REG_PENDING;
}

/* A shared registry's online query in flight (reg_online_start). */
typedef struct pending_online {
    registry *r;
    reg_online_cb each;
    reg_done_cb done;
    void *arg;
} pending_online;

static int online_row(void *arg, const char *const *vals, const int *lens, int ncols) {
    pending_online *po = arg;
    if (ncols == 3 && strcmp(vals[2], rpg_tracker_id(po->r->pg)) != 0)
        po->each(po->arg, vals[0], vals[1]); /* ours are this tracker's sessions to say */
    return 0;
}

static void on_online(int status, void *arg) {
    pending_online *po = arg;
    po->done(status, po->arg);
    free(po);
}

int reg_online_start(registry *r, const char *const *folded, size_t n, reg_online_cb each,
                     reg_done_cb done, void *arg) {
    if (!r->pg)
        return UV_ENOTSUP;
    pending_online *po = malloc(sizeof *po);
    if (!po)
        return UV_ENOMEM;
    *po = (pending_online){r, each, done, arg};
    int e = rpg_online_start(r->pg, folded, n, online_row, po, on_online, po);
    if (e)
        free(po);
    return e;
}

void reg_get_cache_stats(const registry *r, reg_cache_stats *out) {
    out->records = cache_count(r->cache);
    out->hits = r->cache_hits;
    out->misses = r->cache_misses;
}

/* The look-alike skeleton stored with a new name, or NULL when it cannot be
 * computed: the name then stays without one (no look-alike check finds
 * it) until the next open fills it in (SQLite only). */
static const char *skeleton_of(registry *r, const char *folded, const char *name,
                               char skel[CONF_SKELETON_BUFLEN]) {
    if (conf_skeleton(folded, strlen(folded), skel) == 0)
        return skel;
    log_warn(r->lg, "cannot compute the look-alike skeleton of %s", name);
    return NULL;
}

/* The endpoints as stored, space-separated: 0 or UV_EINVAL. */
static int join_endpoints(const char *const *endpoints, size_t n,
                          char eps[REG_MAX_ENDPOINTS * ADDR_STRLEN]) {
    size_t o = 0;
    eps[0] = '\0';
    if (n > REG_MAX_ENDPOINTS)
        return UV_EINVAL;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(endpoints[i]);
        if (len == 0 || len >= ADDR_STRLEN || strchr(endpoints[i], ' '))
            return UV_EINVAL;
        if (o)
            eps[o++] = ' ';
        memcpy(eps + o, endpoints[i], len + 1);
        o += len;
    }
    return 0;
}

int reg_claim(registry *r, const char *name, const char *folded, const unsigned char key[IDENT_PK],
              const char *const *endpoints, size_t nendpoints, int64_t now, int name_ok,
              char stored[NAME_BUFLEN], reg_done_cb cb, void *arg) {
    if (!r->pg)
        return UV_ENOTSUP;
    char eps[REG_MAX_ENDPOINTS * ADDR_STRLEN], skel[CONF_SKELETON_BUFLEN];
    int e = join_endpoints(endpoints, nendpoints, eps);
    if (e)
        return e;
    snprintf(stored, NAME_BUFLEN, "%s", name); /* until the answer says how it was bound */
    return rpg_claim(r->pg, name, folded, key, eps, now, skeleton_of(r, folded, name, skel),
                     name_ok, stored, cb, arg);
}

int reg_bind(registry *r, const char *name, const char *folded, const unsigned char key[IDENT_PK],
             const char *const *endpoints, size_t nendpoints, int64_t now,
             char stored[NAME_BUFLEN], reg_done_cb cb, void *arg) {
    if (r->pg)
        return UV_ENOTSUP;
    char eps[REG_MAX_ENDPOINTS * ADDR_STRLEN];
    int e = join_endpoints(endpoints, nendpoints, eps);
    if (e)
        return e;
    reg_user u;
    e = reg_lookup(r, folded, &u);
    if (e && e != UV_ENOENT)
        return e;
    int exists = e == 0;
    if (exists && memcmp(u.key, key, IDENT_PK) != 0)
        return UV_EEXIST;
    char skel[CONF_SKELETON_BUFLEN];
    if ((e = db_wait(r->d, cb, arg)) != 0) /* reserve first: no failure after the write */
        return e;
    if ((e = db_begin_write(r->d)) != 0) {
        db_unwait(r->d);
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
        const char *sk = skeleton_of(r, folded, name, skel);
        if (sk)
            bind_str(st, 6, sk);
        snprintf(stored, NAME_BUFLEN, "%s", name);
    }
    if ((e = db_run(r->d, st)) != 0) {
        db_unwait(r->d);
        return e;
    }
    cache_row row = {stored, key, eps, now, 1};
    cache_put(r->cache, folded, &row);
    return 0;
}

int reg_lookalike(registry *r, const char *folded, const unsigned char key[IDENT_PK],
                  char other[NAME_BUFLEN]) {
    if (r->pg)
        return UV_ENOTSUP;
    char skel[CONF_SKELETON_BUFLEN];
    int e = conf_skeleton(folded, strlen(folded), skel);
    if (e) {
        log_error(r->lg, "cannot compute the look-alike skeleton of %s", folded);
        return e;
    }
    if ((e = db_begin_read(r->d)) != 0)
        return e;
    sqlite3_stmt *st = r->st[ST_LOOKALIKE];
    bind_str(st, 1, skel);
    sqlite3_bind_blob(st, 2, key, IDENT_PK, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(other, NAME_BUFLEN, "%s", column_str(st, 0));
    } else if (rc == SQLITE_DONE) {
        e = UV_ENOENT;
    } else {
        log_error(r->lg, "database look-alike lookup failed: %s", sqlite3_errmsg(db_sqlite(r->d)));
        e = db_error(rc);
    }
    db_done(st);
    return e;
}

int reg_presence(registry *r, const char *folded, int is_online, int64_t last_seen) {
    if (r->pg) {
        db_touch(r->d); /* the pass's end comes, for the presence pushes (reg_on_batch_end) */
        return rpg_presence(r->pg, folded, is_online, last_seen);
    }
    int e = db_begin_write(r->d);
    if (e)
        return e;
    sqlite3_stmt *st = r->st[ST_PRESENCE];
    bind_str(st, 1, folded);
    sqlite3_bind_int(st, 2, is_online ? 1 : 0);
    sqlite3_bind_int64(st, 3, last_seen);
    if ((e = db_run(r->d, st)) == 0)
        cache_presence(r->cache, folded, is_online, last_seen);
    return e;
}

/* A list page on its way to the caller's cb: it ends at limit names or
 * when cb asks, and then says whether more follow (either backend's rows
 * come through here). */
typedef struct pager {
    reg_list_cb cb;
    void *arg;
    size_t n, limit;
    int *more;
} pager;

static int page_row(const char *name, const char *folded, void *arg) {
    pager *pg = arg;
    if (pg->n == pg->limit || pg->cb(name, folded, pg->arg)) {
        *pg->more = 1;
        return 1;
    }
    pg->n++;
    return 0;
}

/* PostgreSQL's bound for the names starting with prefix (its text must be
 * valid UTF-8, which prefix + 0xff is not): the least string above all of
 * them in code point order, which is COLLATE "C"'s UTF-8 byte order.  That
 * is prefix with its last code point incremented (past U+10FFFF: the one
 * before it), or, for "", a string above every name: more U+10FFFF than a
 * name has room for.  out holds NAME_BUFLEN + 8 bytes. */
static void upper_utf8(const char *prefix, char *out) {
    size_t n = strlen(prefix);
    while (n > 0) {
        size_t at = n - 1;
        while (at > 0 && ((unsigned char)prefix[at] & 0xc0) == 0x80)
            at--;
        unsigned c;
        if (utf8_decode((const unsigned char *)prefix + at, n - at, &c) == 0)
            c = 0x10ffff; /* not UTF-8, so no name: drop it */
        if (++c == 0xd800)
            c = 0xe000;
        if (c <= 0x10ffff) {
            memcpy(out, prefix, at);
            out[at + utf8_encode(c, out + at)] = '\0';
            return;
        }
        n = at;
    }
    size_t o = 0;
    for (int i = 0; i <= NAME_MAX_BYTES / 4; i++)
        o += utf8_encode(0x10ffff, out + o);
    out[o] = '\0';
}

/* A list page's bounds: from (prefix or the cursor, the later), whether
 * it starts after it, and the bound every name starting with prefix sorts
 * below (upper, NAME_BUFLEN + 8 bytes, for backend pg or SQLite).  -1 when
 * prefix is longer than any name (nothing can match), else 0. */
static int list_bounds(int pg, const char *prefix, const char *cursor, const char **from,
                       int *after, char *upper, size_t *upper_len) {
    /* Folded names are UTF-8, which never holds the byte 0xff, so every name
     * starting with prefix sorts below prefix + 0xff (BINARY collation). */
    size_t pn = strlen(prefix);
    if (pn >= NAME_BUFLEN)
        return -1;
    memcpy(upper, prefix, pn);
    upper[pn] = (char)0xff;
    upper[pn + 1] = '\0';
    *upper_len = pn + 1;
    if (pg)
        upper_utf8(prefix, upper);
    /* Start at the later of prefix and cursor so each page is one index
     * range scan, however deep into the list it is. */
    *after = cursor && *cursor && strcmp(cursor, prefix) >= 0;
    *from = *after ? cursor : prefix;
    return 0;
}

/* A shared registry's list page in flight (reg_list_start): its rows,
 * gathered, go through the pager once the batch is answered. */
typedef struct pending_list {
    pager pg;
    int more;
    int cut;        /* out of memory for a row: the page ends early */
    int *more_out;
    reg_done_cb done;
    void *arg;
    char (*rows)[2][NAME_BUFLEN]; /* name as stored, folded */
    size_t n, cap;
} pending_list;

static int list_row(void *arg, const char *const *vals, const int *lens, int ncols) {
    pending_list *pl = arg;
    if (ncols != 2 || (size_t)lens[0] >= NAME_BUFLEN || (size_t)lens[1] >= NAME_BUFLEN)
        return 0;
    char (*nr)[2][NAME_BUFLEN] = grow(pl->rows, &pl->cap, pl->n + 1, sizeof *nr, 16);
    if (!nr) {
        pl->cut = 1;
        return 1;
    }
    pl->rows = nr;
    memcpy(pl->rows[pl->n][0], vals[0], (size_t)lens[0] + 1);
    memcpy(pl->rows[pl->n++][1], vals[1], (size_t)lens[1] + 1);
    return 0;
}

static void on_listed(int status, void *arg) {
    pending_list *pl = arg;
    size_t i = 0;
    while (status == 0 && i < pl->n && page_row(pl->rows[i][0], pl->rows[i][1], &pl->pg) == 0)
        i++;
    if (status == 0 && pl->cut && pl->n == 0)
        status = UV_ENOMEM; /* not even one row: no page to go on from */
    /* A page cut short says more follow, so the next one goes on from it. */
    *pl->more_out = status == 0 && (pl->more || (pl->cut && i == pl->n));
    pl->done(status, pl->arg);
    free(pl->rows);
    free(pl);
}

int reg_list_start(registry *r, const char *prefix, const char *cursor, size_t limit,
                   reg_list_cb cb, void *arg, int *more, reg_done_cb done, void *done_arg) {
    if (!r->pg)
        return reg_list(r, prefix, cursor, limit, cb, arg, more);
    *more = 0;
    const char *from;
    int after;
    char upper[NAME_BUFLEN + 8];
    size_t ulen;
    if (!prefix)
        prefix = "";
    if (limit == 0 || list_bounds(1, prefix, cursor, &from, &after, upper, &ulen))
        return 0;
    pending_list *pl = calloc(1, sizeof *pl);
    if (!pl)
        return UV_ENOMEM;
    pl->pg = (pager){cb, arg, 0, limit, &pl->more};
    pl->more_out = more;
    pl->done = done;
    pl->arg = done_arg;
    int e = rpg_list_start(r->pg, from, after, upper, limit, list_row, pl, on_listed, pl);
    if (e) {
        free(pl);
        return e;
    }
    return REG_PENDING;
}

int reg_list(registry *r, const char *prefix, const char *cursor, size_t limit, reg_list_cb cb,
             void *arg, int *more) {
    *more = 0;
    if (!prefix)
        prefix = "";
    const char *from;
    int after;
    char upper[NAME_BUFLEN + 8];
    size_t ulen;
    if (r->pg)
        return UV_ENOTSUP;
    if (limit == 0 || list_bounds(0, prefix, cursor, &from, &after, upper, &ulen))
        return 0;
    pager pg = {cb, arg, 0, limit, more};
    sqlite3_stmt *st = r->st[after ? ST_LIST_AFTER : ST_LIST_FROM];
    bind_str(st, 1, from);
    sqlite3_bind_text(st, 2, upper, (int)ulen, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    int e = db_begin_read(r->d);
    if (e)
        return e;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *folded = (const char *)sqlite3_column_text(st, 1);
        if (page_row(name ? name : "", folded ? folded : "", &pg))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_error(r->lg, "database list failed: %s", sqlite3_errmsg(db_sqlite(r->d)));
        e = db_error(rc);
    }
    db_done(st);
    return e;
}

/* test_registry: the tracker's SQLite registry on a temporary database, and
 * the in-memory online table.  The group-commit tests drive a real loop. */
#include "test.h"

#include "../../tracker/cache.h"
#include "../../tracker/confusable.h"
#include "../../tracker/namemap.h"
#include "../../tracker/registry.h"

#include <signal.h>
#include <sqlite3.h>
#include <uv.h>

static const logger lg = {LOG_WARN, "test"};
static test_db tdb;

static void tmpdb(void) { test_db_make(&tdb, "reg"); }

static void cleanup(void) { test_db_remove(&tdb); }

static registry *open_reg(uv_loop_t *loop) {
    registry *r = NULL;
    char err[512];
    int e = reg_open(loop, tdb.path, &lg, &r, err, sizeof err);
    if (e)
        fprintf(stderr, "reg_open: %s\n", err);
    ASSERT_EQ(e, 0);
    return r;
}

static void close_reg(registry *r, uv_loop_t *loop) {
    reg_close(r);
    ASSERT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(loop), 0);
}

static void key_of(unsigned char k[IDENT_PK], int seed) {
    memset(k, seed, IDENT_PK);
}

typedef struct done {
    int calls;
    int status;
} done;

static void on_done(int status, void *arg) {
    done *d = arg;
    d->calls++;
    d->status = status;
}

/* Binds and runs the loop until the batch committed; returns reg_bind's code. */
static int bind_now(registry *r, uv_loop_t *loop, const char *name, int seed,
                    const char *const *eps, size_t neps, char stored[NAME_BUFLEN]) {
    char folded[NAME_BUFLEN], dummy[NAME_BUFLEN];
    unsigned char k[IDENT_PK];
    key_of(k, seed);
    ASSERT_EQ(name_fold(name, strlen(name), folded), 0);
    done d = {0, -1};
    int e = reg_bind(r, name, folded, k, eps, neps, 1000, stored ? stored : dummy, on_done, &d);
    ASSERT_EQ(d.calls, 0); /* never from inside the call */
    uv_run(loop, UV_RUN_DEFAULT);
    if (e == 0) {
        ASSERT_EQ(d.calls, 1);
        ASSERT_EQ(d.status, 0);
    } else {
        ASSERT_EQ(d.calls, 0);
    }
    return e;
}

static sqlite3 *side_db(void) {
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(tdb.path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    return db;
}

static int side_int(sqlite3 *db, const char *q) {
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_schema_created(void) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    close_reg(r, &loop);
    sqlite3 *db = side_db();
    ASSERT_EQ(side_int(db, "PRAGMA user_version"), 4);
    ASSERT_EQ(side_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'users'"), 1);
    ASSERT_EQ(side_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'users_online'"), 1);
    /* migration 2: the mailbox's tables (test_mailbox.c uses them) */
    ASSERT_EQ(side_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('mail', "
                           "'receipts', 'mail_recipient', 'mail_expires', 'receipts_sender')"), 5);
    /* migration 3: the look-alike skeletons and what computed them */
    ASSERT_EQ(side_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('users_skeleton', "
                           "'meta')"), 2);
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STR((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* Opening again migrates nothing and keeps the version. */
    uv_loop_init(&loop);
    close_reg(open_reg(&loop), &loop);
    cleanup();
}

static void test_refuses_newer_schema(void) {
    tmpdb();
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(tdb.path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = NULL;
    char err[512];
    ASSERT(reg_open(&loop, tdb.path, &lg, &r, err, sizeof err) < 0);
    ASSERT(strstr(err, "schema version 99") != NULL);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    cleanup();
}

static void test_open_bad_path(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = NULL;
    char err[512];
    ASSERT(reg_open(&loop, "/nonexistent-dir/x/tracker.db", &lg, &r, err, sizeof err) < 0);
    ASSERT(strstr(err, "/nonexistent-dir/x/tracker.db") != NULL);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

static void test_bind_same_key_ok_other_key_refused(void) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    char stored[NAME_BUFLEN];
    ASSERT_EQ(bind_now(r, &loop, "alice", 1, NULL, 0, stored), 0);
    ASSERT_STR(stored, "alice");
    ASSERT_EQ(bind_now(r, &loop, "ALICE", 1, NULL, 0, stored), 0);
    ASSERT_STR(stored, "alice"); /* first spelling wins */
    ASSERT_EQ(bind_now(r, &loop, "Alice", 2, NULL, 0, stored), UV_EEXIST);
    reg_user u;
    ASSERT_EQ(reg_lookup(r, "alice", &u), 0);
    unsigned char k1[IDENT_PK];
    key_of(k1, 1);
    ASSERT(memcmp(u.key, k1, IDENT_PK) == 0);
    ASSERT_STR(u.name, "alice");
    close_reg(r, &loop);
    cleanup();
}

static void test_restart_keeps_bindings(void) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    const char *eps[] = {"192.0.2.1:4000", "[2001:db8::1]:4000"};
    ASSERT_EQ(bind_now(r, &loop, "Émile", 7, eps, 2, NULL), 0);
    ASSERT_EQ(reg_presence(r, "émile", 1, 1234), 0);
    close_reg(r, &loop);

    uv_loop_init(&loop);
    r = open_reg(&loop);
    reg_user u;
    ASSERT_EQ(reg_lookup(r, "émile", &u), 0);
    ASSERT_STR(u.name, "Émile");
    ASSERT_EQ(u.nendpoints, 2);
    ASSERT_STR(u.endpoints[0], "192.0.2.1:4000");
    ASSERT_STR(u.endpoints[1], "[2001:db8::1]:4000");
    ASSERT_EQ(u.online, 0); /* nobody is online after a restart */
    ASSERT_EQ(u.last_seen, 1234);
    char stored[NAME_BUFLEN];
    ASSERT_EQ(bind_now(r, &loop, "éMILE", 8, NULL, 0, stored), UV_EEXIST);
    ASSERT_EQ(bind_now(r, &loop, "éMILE", 7, NULL, 0, stored), 0);
    ASSERT_STR(stored, "Émile");
    ASSERT_EQ(reg_lookup(r, "émile", &u), 0);
    ASSERT_EQ(u.nendpoints, 0); /* endpoints follow the latest registration */
    close_reg(r, &loop);
    cleanup();
}

/* An acknowledged registration survives kill -9 (WAL; answered after its fsync). */
static void test_survives_kill9(void) {
    tmpdb();
    pid_t pid = fork();
    if (pid == 0) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        registry *r = open_reg(&loop);
        const char *eps[] = {"198.51.100.9:1"};
        ASSERT_EQ(bind_now(r, &loop, "bob", 3, eps, 1, NULL), 0);
        ASSERT_EQ(reg_presence(r, "bob", 1, 5), 0); /* left uncommitted */
        raise(SIGKILL);
        _exit(3);
    }
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    reg_user u;
    ASSERT_EQ(reg_lookup(r, "bob", &u), 0);
    ASSERT_EQ(u.nendpoints, 1);
    ASSERT_STR(u.endpoints[0], "198.51.100.9:1");
    ASSERT_EQ(u.online, 0);
    close_reg(r, &loop);
    cleanup();
}

static void test_lookup_missing(void) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    reg_user u;
    ASSERT_EQ(reg_lookup(r, "nobody", &u), UV_ENOENT);
    ASSERT_EQ(bind_now(r, &loop, "somebody", 1, NULL, 0, NULL), 0);
    ASSERT_EQ(reg_lookup(r, "nobody", &u), UV_ENOENT);
    ASSERT_EQ(reg_lookup(r, "somebod", &u), UV_ENOENT);
    close_reg(r, &loop);
    cleanup();
}

typedef struct collect {
    char (*folded)[NAME_BUFLEN];
    size_t n, cap;
    int refuse_after; /* refuse once n reaches this (0: never) */
} collect;

static int collect_cb(const char *name, const char *folded, void *arg) {
    collect *c = arg;
    if (c->refuse_after && (int)c->n >= c->refuse_after)
        return 1;
    ASSERT(c->n < c->cap);
    char f[NAME_BUFLEN];
    ASSERT_EQ(name_fold(name, strlen(name), f), 0);
    ASSERT_STR(f, folded);
    snprintf(c->folded[c->n++], NAME_BUFLEN, "%s", folded);
    return 0;
}

/* Pages through everything matching prefix with the given limit. */
static size_t page_all(registry *r, const char *prefix, size_t limit, collect *c, int *pages) {
    char cursor[NAME_BUFLEN] = "";
    c->n = 0;
    *pages = 0;
    for (;;) {
        size_t before = c->n;
        int more = 0;
        ASSERT_EQ(reg_list(r, prefix, cursor, limit, collect_cb, c, &more), 0);
        ASSERT(c->n - before <= limit);
        (*pages)++;
        if (!more)
            break;
        ASSERT_EQ(c->n - before, limit);
        snprintf(cursor, sizeof cursor, "%s", c->folded[c->n - 1]);
    }
    for (size_t i = 1; i < c->n; i++)
        ASSERT(strcmp(c->folded[i - 1], c->folded[i]) < 0); /* in order, each once */
    return c->n;
}

static void test_list_paging(void) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    unsigned char k[IDENT_PK];
    key_of(k, 9);
    done d = {0, 0};
    size_t nonline = 0, online01 = 0;
    for (int i = 0; i < 1000; i++) {
        char name[NAME_BUFLEN], folded[NAME_BUFLEN], stored[NAME_BUFLEN];
        snprintf(name, sizeof name, i % 2 ? "User%04d" : "user%04d", i);
        ASSERT_EQ(name_fold(name, strlen(name), folded), 0);
        ASSERT_EQ(reg_bind(r, name, folded, k, NULL, 0, 1, stored, on_done, &d), 0);
        /* A bind marks the user online; every 7th goes offline again. */
        ASSERT_EQ(reg_presence(r, folded, i % 7 != 0, 2), 0);
        if (i % 7 != 0) {
            nonline++;
            online01 += i >= 100 && i < 200;
        }
    }
    ASSERT_EQ(bind_now(r, &loop, "zed", 1, NULL, 0, NULL), 0);
    ASSERT_EQ(reg_presence(r, "zed", 0, 2), 0); /* offline, sorts last */
    ASSERT_EQ(d.calls, 1000);

    collect c = {calloc(2000, NAME_BUFLEN), 0, 2000, 0};
    int pages;
    ASSERT_EQ(page_all(r, "", 37, &c, &pages), nonline);
    ASSERT_EQ(pages, (int)(nonline + 36) / 37); /* a full last page needs no extra one */
    ASSERT_EQ(page_all(r, "", 500, &c, &pages), nonline);
    ASSERT_EQ(page_all(r, "", 100000, &c, &pages), nonline);
    ASSERT_EQ(pages, 1);
    ASSERT_EQ(page_all(r, "user01", 10, &c, &pages), online01);
    ASSERT_STR(c.folded[0], "user0100");
    ASSERT_STR(c.folded[c.n - 1], "user0199");
    ASSERT_EQ(page_all(r, "user0999", 10, &c, &pages), 1);
    ASSERT_EQ(page_all(r, "nobody", 10, &c, &pages), 0);

    /* A cursor before the prefix starts at the prefix; one past it skips. */
    int more;
    c.n = 0;
    ASSERT_EQ(reg_list(r, "user02", "user0001", 3, collect_cb, &c, &more), 0);
    ASSERT_EQ(c.n, 3);
    ASSERT_STR(c.folded[0], "user0200");
    ASSERT_EQ(more, 1);
    c.n = 0;
    ASSERT_EQ(reg_list(r, "user02", "user0299", 3, collect_cb, &c, &more), 0);
    ASSERT_EQ(c.n, 0);
    ASSERT_EQ(more, 0);

    /* The callback may end a page early; the page then says more. */
    c.n = 0;
    c.refuse_after = 5;
    ASSERT_EQ(reg_list(r, "", "", 100, collect_cb, &c, &more), 0);
    ASSERT_EQ(c.n, 5);
    ASSERT_EQ(more, 1);
    c.refuse_after = 0;

    /* Going offline leaves the list at once (reads see queued writes). */
    ASSERT_EQ(reg_presence(r, "user0101", 0, 3), 0);
    ASSERT_EQ(page_all(r, "user010", 100, &c, &pages), 8); /* 0100..0109 minus 0105 and 0101 */
    uv_run(&loop, UV_RUN_DEFAULT);
    close_reg(r, &loop);

    /* After a restart nobody is online. */
    uv_loop_init(&loop);
    r = open_reg(&loop);
    ASSERT_EQ(page_all(r, "", 100, &c, &pages), 0);
    close_reg(r, &loop);
    free(c.folded);
    cleanup();
}

typedef struct batch {
    registry *r;
    sqlite3 *side;
    int calls, second_calls;
    int rows_at_first_call;
    done later;
} batch;

static void on_batch_done(int status, void *arg) {
    batch *b = arg;
    ASSERT_EQ(status, 0);
    if (b->calls++ == 0) {
        /* Another connection sees only committed data: the whole batch is. */
        b->rows_at_first_call = side_int(b->side, "SELECT count(*) FROM users");
        /* A write from a callback starts the next batch; its callback is
         * not run from here either. */
        unsigned char k[IDENT_PK];
        char stored[NAME_BUFLEN];
        key_of(k, 5);
        ASSERT_EQ(reg_bind(b->r, "later", "later", k, NULL, 0, 1, stored, on_done, &b->later), 0);
        ASSERT_EQ(b->later.calls, 0);
    }
}

static void test_batched_commit_fires_after_commit(void) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    batch b = {r, side_db(), 0, 0, -1, {0, -1}};
    unsigned char k[IDENT_PK];
    key_of(k, 4);
    const char *names[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        char stored[NAME_BUFLEN];
        ASSERT_EQ(reg_bind(r, names[i], names[i], k, NULL, 0, 1, stored, on_batch_done, &b), 0);
    }
    ASSERT_EQ(b.calls, 0);
    ASSERT_EQ(side_int(b.side, "SELECT count(*) FROM users"), 0); /* not yet committed */
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0); /* returns: the batch leaves no handle active */
    ASSERT_EQ(b.calls, 3);
    ASSERT_EQ(b.rows_at_first_call, 3);
    ASSERT_EQ(b.later.calls, 1);
    ASSERT_EQ(b.later.status, 0);
    ASSERT_EQ(side_int(b.side, "SELECT count(*) FROM users"), 4);
    sqlite3_close(b.side);
    close_reg(r, &loop);
    cleanup();
}

/* reg_close commits what is still queued and fires its callbacks. */
static void test_close_commits_pending(void) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    unsigned char k[IDENT_PK];
    key_of(k, 4);
    char stored[NAME_BUFLEN];
    done d = {0, -1};
    ASSERT_EQ(reg_bind(r, "carol", "carol", k, NULL, 0, 1, stored, on_done, &d), 0);
    reg_close(r);
    ASSERT_EQ(d.calls, 1);
    ASSERT_EQ(d.status, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    sqlite3 *db = side_db();
    ASSERT_EQ(side_int(db, "SELECT count(*) FROM users WHERE folded = 'carol'"), 1);
    sqlite3_close(db);
    reg_close(NULL);
    cleanup();
}

static void count_each(void *sess, void *arg) {
    (*(size_t *)arg)++;
}

static void test_online_table(void) {
    namemap *t = namemap_new();
    ASSERT(t != NULL);
    static int sess[3000];
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "u%d", i);
        ASSERT_EQ(namemap_put(t, key, &sess[i]), 0);
    }
    ASSERT_EQ(namemap_count(t), 3000);
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "u%d", i);
        ASSERT(namemap_get(t, key) == &sess[i]);
    }
    ASSERT(namemap_get(t, "nobody") == NULL);
    /* Replacing keeps one entry; the replaced session cannot delete it. */
    int newer;
    ASSERT_EQ(namemap_put(t, "u7", &newer), 0);
    ASSERT_EQ(namemap_count(t), 3000);
    ASSERT_EQ(namemap_del(t, "u7", &sess[7]), 0);
    ASSERT(namemap_get(t, "u7") == &newer);
    ASSERT_EQ(namemap_del(t, "u7", &newer), 1);
    ASSERT(namemap_get(t, "u7") == NULL);
    size_t n = 0;
    namemap_each(t, count_each, &n);
    ASSERT_EQ(n, 2999);
    namemap_free(t);
    namemap_free(NULL);
}

static void put_row(cache *c, const char *folded, const char *eps, int64_t seen) {
    unsigned char k[IDENT_PK];
    key_of(k, folded[0]);
    cache_row row = {folded, k, eps, seen, 1};
    cache_put(c, folded, &row);
}

static void test_cache_lru(void) {
    cache *c = cache_new(3);
    ASSERT(c != NULL);
    cache_row row;
    ASSERT_EQ(cache_get(c, "a", &row), UV_ENOENT);
    put_row(c, "a", "1.2.3.4:5", 1);
    put_row(c, "b", "", 2);
    put_row(c, "c", "5.6.7.8:9 [::1]:7", 3);
    ASSERT_EQ(cache_count(c), 3);
    ASSERT_EQ(cache_get(c, "a", &row), 0); /* a is now the most recent */
    ASSERT_STR(row.name, "a");
    ASSERT_STR(row.endpoints, "1.2.3.4:5");
    ASSERT_EQ(row.key[0], 'a');
    ASSERT_EQ(row.last_seen, 1);
    put_row(c, "d", "", 4); /* evicts b, the least recently used */
    ASSERT_EQ(cache_count(c), 3);
    ASSERT_EQ(cache_get(c, "b", &row), UV_ENOENT);
    ASSERT_EQ(cache_get(c, "c", &row), 0);
    ASSERT_EQ(cache_get(c, "a", &row), 0);
    ASSERT_EQ(cache_get(c, "d", &row), 0);
    /* Replacing keeps one record and takes the new fields. */
    put_row(c, "c", "9.9.9.9:1", 5);
    ASSERT_EQ(cache_count(c), 3);
    ASSERT_EQ(cache_get(c, "c", &row), 0);
    ASSERT_STR(row.endpoints, "9.9.9.9:1");
    cache_presence(c, "c", 0, 77);
    cache_presence(c, "zz", 1, 78); /* not cached: nothing happens */
    ASSERT_EQ(cache_get(c, "c", &row), 0);
    ASSERT_EQ(row.online, 0);
    ASSERT_EQ(row.last_seen, 77);
    ASSERT_EQ(cache_get(c, "zz", &row), UV_ENOENT);
    cache_clear(c);
    ASSERT_EQ(cache_count(c), 0);
    ASSERT_EQ(cache_get(c, "a", &row), UV_ENOENT);
    put_row(c, "e", "", 6); /* still usable after a clear */
    ASSERT_EQ(cache_get(c, "e", &row), 0);
    cache_free(c);
    cache_free(NULL);

    cache *none = cache_new(0); /* holds nothing, never fails */
    ASSERT(none != NULL);
    put_row(none, "a", "", 1);
    ASSERT_EQ(cache_get(none, "a", &row), UV_ENOENT);
    ASSERT_EQ(cache_count(none), 0);
    cache_free(none);
}

/* Ends the loop pass the registry's reads opened (its check handle). */
static void end_pass(uv_loop_t *loop) {
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Lookups are answered from memory, but never from a stale copy: a commit
 * by another connection (an operator's sqlite3 shell) is seen on the next
 * loop pass, and the tracker's own writes update the copy at once. */
static void test_lookup_cache_coherent(void) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    const char *eps1[] = {"10.0.0.1:1000"};
    ASSERT_EQ(bind_now(r, &loop, "Carol", 3, eps1, 1, NULL), 0);
    reg_user u;
    ASSERT_EQ(reg_lookup(r, "carol", &u), 0); /* cached by the bind */
    ASSERT_STR(u.endpoints[0], "10.0.0.1:1000");
    ASSERT_EQ(u.online, 1);
    end_pass(&loop);

    /* Another process changes the row behind the tracker's back. */
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(tdb.path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE users SET endpoints = '10.0.0.2:2000', online = 0"
                               " WHERE folded = 'carol'", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(reg_lookup(r, "carol", &u), 0);
    ASSERT_STR(u.endpoints[0], "10.0.0.2:2000");
    ASSERT_EQ(u.online, 0);
    end_pass(&loop);

    /* A deleted row is gone for the tracker too. */
    ASSERT_EQ(sqlite3_exec(db, "DELETE FROM users WHERE folded = 'carol'", NULL, NULL, NULL),
              SQLITE_OK);
    ASSERT_EQ(reg_lookup(r, "carol", &u), UV_ENOENT);
    end_pass(&loop);
    sqlite3_close(db);

    /* The tracker's own writes: a new bind and presence show at once. */
    const char *eps3[] = {"10.0.0.3:3000", "10.0.0.4:4000"};
    ASSERT_EQ(bind_now(r, &loop, "carol", 3, eps3, 2, NULL), 0);
    ASSERT_EQ(reg_lookup(r, "carol", &u), 0);
    ASSERT_EQ(u.nendpoints, 2);
    ASSERT_STR(u.endpoints[1], "10.0.0.4:4000");
    ASSERT_STR(u.name, "carol"); /* the spelling of its first registration now */
    ASSERT_EQ(reg_presence(r, "carol", 0, 4242), 0);
    ASSERT_EQ(reg_lookup(r, "carol", &u), 0);
    ASSERT_EQ(u.online, 0);
    ASSERT_EQ(u.last_seen, 4242);
    end_pass(&loop);
    close_reg(r, &loop);

    /* And what the cache said is what is on disk. */
    uv_loop_init(&loop);
    r = open_reg(&loop);
    ASSERT_EQ(reg_lookup(r, "carol", &u), 0);
    ASSERT_EQ(u.nendpoints, 2);
    ASSERT_EQ(u.last_seen, 4242);
    close_reg(r, &loop);
    cleanup();
}

static void side_exec(const char *q) {
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(tdb.path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    char *msg = NULL;
    int rc = sqlite3_exec(db, q, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", q, msg ? msg : "?");
    ASSERT_EQ(rc, SQLITE_OK);
    sqlite3_close(db);
}

/* The stored skeleton of folded, into out ("NULL" for none). */
static void side_skeleton(const char *folded, char *out, size_t cap) {
    sqlite3 *db = side_db();
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT skeleton FROM users WHERE folded = ?1", -1, &st,
                                 NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, folded, -1, SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    const char *v = (const char *)sqlite3_column_text(st, 0);
    snprintf(out, cap, "%s", v ? v : "NULL");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A name that looks like another key's is found by its skeleton; the
 * key's own names never count; bind stores the skeleton. */
static void test_lookalike(void) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    ASSERT_EQ(bind_now(r, &loop, "Alice", 1, NULL, 0, NULL), 0);
    ASSERT_EQ(bind_now(r, &loop, "paypal", 1, NULL, 0, NULL), 0);
    unsigned char k1[IDENT_PK], k2[IDENT_PK];
    key_of(k1, 1);
    key_of(k2, 2);
    char other[NAME_BUFLEN];
    ASSERT_EQ(reg_lookalike(r, "\xd0\xb0lice", k2, other), 0); /* Cyrillic a */
    ASSERT_STR(other, "Alice");                                 /* as stored */
    ASSERT_EQ(reg_lookalike(r, "alice", k2, other), 0);
    ASSERT_EQ(reg_lookalike(r, "p\xd0\xb0yp\xd0\xb0l", k2, other), 0);
    ASSERT_STR(other, "paypal");
    ASSERT_EQ(reg_lookalike(r, "\xd0\xb0lice", k1, other), UV_ENOENT); /* its own */
    ASSERT_EQ(reg_lookalike(r, "bob", k2, other), UV_ENOENT);
    /* A bind of the same pass is seen before it commits. */
    done d = {0, -1};
    char stored[NAME_BUFLEN];
    ASSERT_EQ(reg_bind(r, "rnodern", "rnodern", k1, NULL, 0, 1, stored, on_done, &d), 0);
    ASSERT_EQ(reg_lookalike(r, "modern", k2, other), 0); /* m looks like rn */
    ASSERT_STR(other, "rnodern");
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(d.calls, 1);
    close_reg(r, &loop);
    char skel[CONF_SKELETON_BUFLEN];
    side_skeleton("alice", skel, sizeof skel);
    ASSERT_STR(skel, "alice");
    cleanup();
}

/* A database from before migration 3 gets every skeleton at open (more
 * names than one batch of the fill), and a database whose skeletons
 * another ICU computed gets them all again. */
static void test_skeletons_filled_at_open(void) {
    tmpdb();
    side_exec("CREATE TABLE users (folded TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL,"
              " key BLOB NOT NULL CHECK (length(key) = 32), endpoints TEXT NOT NULL DEFAULT '',"
              " last_seen INTEGER NOT NULL DEFAULT 0, online INTEGER NOT NULL DEFAULT 0,"
              " created INTEGER NOT NULL) WITHOUT ROWID;"
              "CREATE INDEX users_online ON users (online, folded);"
              "CREATE TABLE mail (mid INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL,"
              " recipient_name TEXT NOT NULL, sender TEXT NOT NULL, sender_name TEXT NOT NULL,"
              " sender_key BLOB NOT NULL, msg_id INTEGER NOT NULL, size INTEGER NOT NULL,"
              " stored INTEGER NOT NULL, expires INTEGER NOT NULL, box BLOB NOT NULL,"
              " UNIQUE (sender, recipient, msg_id));"
              "CREATE TABLE receipts (rid INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT NOT NULL,"
              " recipient TEXT NOT NULL, msg_id INTEGER NOT NULL, status TEXT NOT NULL,"
              " expires INTEGER NOT NULL);"
              "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 599)"
              " INSERT INTO users (folded, name, key, created)"
              " SELECT 'user' || i, 'User' || i, zeroblob(32), 1 FROM n;"
              "INSERT INTO users (folded, name, key, created) VALUES ('paypal', 'PayPal',"
              " zeroblob(32), 1);"
              "PRAGMA user_version = 2;");
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    unsigned char k2[IDENT_PK];
    key_of(k2, 2);
    char other[NAME_BUFLEN];
    ASSERT_EQ(reg_lookalike(r, "p\xd0\xb0yp\xd0\xb0l", k2, other), 0);
    ASSERT_STR(other, "PayPal");
    ASSERT_EQ(reg_lookalike(r, "userl0", k2, other), 0); /* user10: 1 looks like l */
    ASSERT_STR(other, "User10");
    close_reg(r, &loop);
    sqlite3 *db = side_db();
    ASSERT_EQ(side_int(db, "SELECT count(*) FROM users WHERE skeleton IS NULL"), 0);
    ASSERT_EQ(side_int(db, "SELECT count(*) FROM users"), 601);
    sqlite3_close(db);
    char skel[CONF_SKELETON_BUFLEN];
    side_skeleton("user599", skel, sizeof skel); /* the last batch */
    ASSERT_STR(skel, "user599");
    side_skeleton("user10", skel, sizeof skel);
    ASSERT_STR(skel, "userlo"); /* 1 looks like l, 0 like o */

    /* Another ICU made them (here: a stale one, and a row written by hand
     * without one): all are computed afresh. */
    side_exec("UPDATE meta SET value = 'ICU 1.0, Unicode 1.0' WHERE name = 'skeletons';"
              "UPDATE users SET skeleton = 'stale' WHERE folded = 'paypal';"
              "INSERT INTO users (folded, name, key, created) VALUES ('byhand', 'byhand',"
              " zeroblob(32), 1);");
    uv_loop_init(&loop);
    r = open_reg(&loop);
    close_reg(r, &loop);
    side_skeleton("paypal", skel, sizeof skel);
    ASSERT_STR(skel, "paypal");
    side_skeleton("byhand", skel, sizeof skel);
    ASSERT_STR(skel, "byhand");
    db = side_db();
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = 'skeletons'", -1, &st,
                                 NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STR((const char *)sqlite3_column_text(st, 0), conf_version());
    sqlite3_finalize(st);
    sqlite3_close(db);
    cleanup();
}

static int outside_calls;
static void on_outside(void *arg) { outside_calls++; }

/* A commit by another process is reported once, on the first read after
 * it; the registry's own commits are not. */
static void test_outside_write_reported(void) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    registry *r = open_reg(&loop);
    reg_on_outside_write(r, on_outside, NULL);
    ASSERT_EQ(bind_now(r, &loop, "dave", 4, NULL, 0, NULL), 0);
    reg_user u;
    ASSERT_EQ(reg_lookup(r, "dave", &u), 0);
    end_pass(&loop);
    ASSERT_EQ(outside_calls, 0);
    side_exec("DELETE FROM users WHERE folded = 'dave'");
    ASSERT_EQ(reg_lookup(r, "dave", &u), UV_ENOENT);
    ASSERT_EQ(outside_calls, 1);
    ASSERT_EQ(reg_lookup(r, "dave", &u), UV_ENOENT);
    end_pass(&loop);
    ASSERT_EQ(reg_lookup(r, "dave", &u), UV_ENOENT);
    ASSERT_EQ(outside_calls, 1);
    close_reg(r, &loop);
    cleanup();
}

TEST_MAIN(T(test_schema_created), T(test_refuses_newer_schema), T(test_open_bad_path),
          T(test_bind_same_key_ok_other_key_refused), T(test_restart_keeps_bindings),
          T(test_survives_kill9), T(test_lookup_missing), T(test_list_paging),
          T(test_batched_commit_fires_after_commit), T(test_close_commits_pending),
          T(test_online_table), T(test_cache_lru), T(test_lookup_cache_coherent),
          T(test_lookalike), T(test_skeletons_filled_at_open), T(test_outside_write_reported))

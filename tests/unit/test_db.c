/* test_db: shared/db.c's sync thread on a real loop and a temporary file,
 * in both of its modes: DB_SYNC_WAIT (a waiter fires once the fsync of the
 * thread covers its commit) and DB_SYNC_BEHIND (a waiter fires at its
 * commit, the thread syncs right behind).  Every callback finds its row
 * committed (a second connection sees it), in the order of the writes,
 * with fewer commits than writes when writes come while a sync is out; a
 * hint waits for the next real write or the lazy timer; closing commits,
 * syncs and fires what is pending.  The history's own tests (SIGKILL in a
 * stream of batches across checkpoints) are in test_peer_history. */
#include "db.h"
#include "test.h"

#include <sqlite3.h>
#include <uv.h>

static const logger lg = {LOG_WARN, "test"};
static test_db tdb; /* the file each test uses */

static const char *const migrations[] = {
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);"
    "PRAGMA user_version = 1;",
};

static void tmpdb(void) { test_db_make(&tdb, "db"); }

/* Nothing else may be left in the directory: it must be gone. */
static void cleanup(void) {
    test_db_remove(&tdb);
    ASSERT(access(tdb.dir, F_OK) != 0);
}

static db *open_db(uv_loop_t *loop, int mode) {
    db_schema s = {.migrations = migrations, .n = 1, .what = "test database",
                   .hint = "pick another file", .sync_thread = mode};
    db *d = NULL;
    char err[256] = "";
    int e = db_open(loop, tdb.path, &s, &lg, &d, err, sizeof err);
    if (e)
        fprintf(stderr, "db_open: %s\n", err);
    ASSERT_EQ(e, 0);
    return d;
}

static sqlite3 *side_db(void) {
    sqlite3 *sq;
    ASSERT_EQ(sqlite3_open_v2(tdb.path, &sq, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(sq, 2000);
    return sq;
}

static int64_t side_count(sqlite3 *sq) {
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(sq, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void count_commit(void *arg, uint64_t ns) { (*(int *)arg)++; }

/* A writer: one row per loop pass (an idle handle) until n, each with a
 * waiter that checks it is committed and in order. */
typedef struct writer {
    db *d;
    sqlite3_stmt *ins;
    sqlite3 *side;
    uv_idle_t idle;
    int n, written, fired, in_pass;
} writer;

static void on_written(int status, void *arg) {
    writer *w = arg;
    ASSERT_EQ(status, 0);
    ASSERT(!w->in_pass); /* never from inside the call that wrote */
    w->fired++;
    /* Committed before its waiter fires: another connection sees it. */
    ASSERT(side_count(w->side) >= w->fired);
}

static void write_one(writer *w) {
    w->in_pass = 1;
    ASSERT_EQ(db_wait(w->d, on_written, w), 0);
    ASSERT_EQ(db_begin_write(w->d), 0);
    sqlite3_bind_int64(w->ins, 1, ++w->written);
    ASSERT_EQ(db_run(w->d, w->ins), 0);
    w->in_pass = 0;
}

static void on_write_pass(uv_idle_t *h) {
    writer *w = h->data;
    write_one(w);
    if (w->written == w->n)
        uv_idle_stop(h);
}

static void stream(int mode) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    writer w = {open_db(&loop, mode), NULL, side_db(), {0}, 300, 0, 0, 0};
    int commits = 0;
    db_on_commit(w.d, count_commit, &commits);
    ASSERT_EQ(db_prepare(w.d, "INSERT INTO t (id, v) VALUES (?1, 'x')", &w.ins), 0);
    uv_idle_init(&loop, &w.idle);
    w.idle.data = &w;
    uv_idle_start(&w.idle, on_write_pass);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(w.fired, w.n);
    ASSERT(commits >= 1 && commits <= w.n);
    if (mode == DB_SYNC_WAIT) /* passes that came while an fsync was out shared a commit */
        ASSERT(commits < w.n);
    ASSERT_EQ(side_count(w.side), w.n);
    sqlite3_close(w.side);
    db_close(w.d);
    uv_close((uv_handle_t *)&w.idle, NULL);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    cleanup();
}

static void test_wait_stream(void) { stream(DB_SYNC_WAIT); }
static void test_behind_stream(void) { stream(DB_SYNC_BEHIND); }

/* A hint is committed by nothing of its own: not at the end of its pass,
 * but with the next real write, or by the lazy timer. */
static void hint(int mode) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    db *d = open_db(&loop, mode);
    sqlite3 *side = side_db();
    int commits = 0;
    db_on_commit(d, count_commit, &commits);
    sqlite3_stmt *ins;
    ASSERT_EQ(db_prepare(d, "INSERT INTO t (v) VALUES ('h')", &ins), 0);
    uv_update_time(&loop); /* the lazy timer counts from the loop's clock */
    uint64_t t0 = uv_hrtime();
    ASSERT_EQ(db_begin_hint(d), 0);
    ASSERT_EQ(db_run(d, ins), 0);
    ASSERT_EQ(uv_run(&loop, UV_RUN_NOWAIT), 1); /* ends the pass, the timer waits */
    ASSERT_EQ(commits, 0);
    ASSERT_EQ(side_count(side), 0);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(commits, 1);
    ASSERT(uv_hrtime() - t0 >= (DB_LAZY_MS - 2) * 1000000ull);
    ASSERT_EQ(side_count(side), 1);

    /* A hint, then a real write with a waiter a pass later: one commit. */
    ASSERT_EQ(db_begin_hint(d), 0);
    ASSERT_EQ(db_run(d, ins), 0);
    ASSERT_EQ(uv_run(&loop, UV_RUN_NOWAIT), 1);
    writer w = {d, NULL, side, {0}, 1, 0, 0, 0};
    ASSERT_EQ(db_prepare(d, "INSERT INTO t (id, v) VALUES (100 + ?1, 'x')", &w.ins), 0);
    write_one(&w);
    t0 = uv_hrtime();
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT(uv_hrtime() - t0 < DB_LAZY_MS * 1000000ull); /* no wait for the timer */
    ASSERT_EQ(w.fired, 1);
    ASSERT_EQ(commits, 2);
    ASSERT_EQ(side_count(side), 3);

    /* Closing commits a pending hint. */
    ASSERT_EQ(db_begin_hint(d), 0);
    ASSERT_EQ(db_run(d, ins), 0);
    db_close(d);
    ASSERT_EQ(commits, 3);
    ASSERT_EQ(side_count(side), 4);
    sqlite3_close(side);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    cleanup();
}

static void test_wait_hint(void) { hint(DB_SYNC_WAIT); }
static void test_behind_hint(void) { hint(DB_SYNC_BEHIND); }

typedef struct done {
    int calls, status;
} done;

static void on_done(int status, void *arg) {
    done *o = arg;
    o->calls++;
    o->status = status;
}

/* db_close commits what is open, waits for its fsync and fires the
 * waiters from inside the call; the file then holds it without its -wal. */
static void closing(int mode) {
    tmpdb();
    uv_loop_t loop;
    uv_loop_init(&loop);
    db *d = open_db(&loop, mode);
    sqlite3_stmt *ins;
    ASSERT_EQ(db_prepare(d, "INSERT INTO t (v) VALUES ('c')", &ins), 0);
    done o = {0, -1};
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(db_wait(d, on_done, &o), 0);
        ASSERT_EQ(db_begin_write(d), 0);
        ASSERT_EQ(db_run(d, ins), 0);
    }
    ASSERT_EQ(o.calls, 0);
    db_close(d);
    ASSERT_EQ(o.calls, 10);
    ASSERT_EQ(o.status, 0);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", tdb.path);
    ASSERT(access(wal, F_OK) != 0); /* the last connection checkpointed it away */
    sqlite3 *side = side_db();
    ASSERT_EQ(side_count(side), 10);
    sqlite3_close(side);
    cleanup();
}

static void test_wait_close(void) { closing(DB_SYNC_WAIT); }
static void test_behind_close(void) { closing(DB_SYNC_BEHIND); }

TEST_MAIN(T(test_wait_stream), T(test_behind_stream), T(test_wait_hint), T(test_behind_hint),
          T(test_wait_close), T(test_behind_close))

/* test_mailbox: the tracker's mailbox tables (tracker/mailbox.c) on a
 * temporary database: storing and the duplicates, the limits, the windows,
 * acknowledgements and receipts, the sweep, the totals, and migrating a
 * database of schema version 1. */
#include "test.h"

#include "../../tracker/mailbox.h"
#include "../../tracker/registry.h"

#include <sqlite3.h>
#include <uv.h>

static const logger lg = {LOG_WARN, "test"};
static test_db tdb;

static void tmpdb(void) { test_db_make(&tdb, "mbox"); }

static void cleanup(void) { test_db_remove(&tdb); }

typedef struct fixture {
    uv_loop_t loop;
    registry *r;
    mailbox *mb;
} fixture;

static void open_all(fixture *f) {
    char err[512];
    uv_loop_init(&f->loop);
    int e = reg_open(&f->loop, tdb.path, &lg, &f->r, err, sizeof err);
    if (e == 0)
        e = mbox_open(f->r, &lg, &f->mb, err, sizeof err);
    if (e)
        fprintf(stderr, "open: %s\n", err);
    ASSERT_EQ(e, 0);
}

static void close_all(fixture *f) {
    reg_close(f->r);
    mbox_close(f->mb);
    ASSERT_EQ(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
}

static const unsigned char key[IDENT_PK] = {7};

static int put(fixture *f, const char *from, const char *to, uint64_t id, const char *box,
               int64_t expires) {
    mbox_new m = {to, to, from, from, key, id, (const unsigned char *)box, strlen(box),
                  1000, expires};
    return mbox_put(f->mb, &m);
}

/* What the windows hand out, gathered. */
typedef struct got {
    uint64_t ids[64];
    char text[64][32];
    size_t n;
} got;

static int got_mail(const mbox_mail *m, void *arg) {
    got *g = arg;
    ASSERT_STR(m->from, "alice");
    ASSERT(memcmp(m->key, key, IDENT_PK) == 0);
    ASSERT_EQ(m->stored, 1000);
    g->ids[g->n] = m->mid;
    snprintf(g->text[g->n++], 32, "%.*s", (int)m->size, (const char *)m->box);
    return 0;
}

static int got_receipt(const mbox_receipt *r, void *arg) {
    got *g = arg;
    g->ids[g->n] = r->rid;
    snprintf(g->text[g->n++], 32, "%s %" PRIu64 " %s", r->to, r->msg_id, r->status);
    return 0;
}

/* What the windows hand out after *cursor, appended to g; returns g->n. */
static size_t mails(fixture *f, const char *who, uint64_t *cursor, size_t window, got *g) {
    ASSERT_EQ(mbox_next_mail(f->mb, who, cursor, window, got_mail, g), 0);
    return g->n;
}

static size_t receipts(fixture *f, const char *who, uint64_t *cursor, size_t window, got *g) {
    ASSERT_EQ(mbox_next_receipts(f->mb, who, cursor, window, got_receipt, g), 0);
    return g->n;
}

static void test_window_and_acks(void) {
    tmpdb();
    fixture f;
    open_all(&f);
    static const char *const boxes[] = {"one", "two", "three", "four", "five"};
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(put(&f, "alice", "bob", 100 + (uint64_t)i, boxes[i], 99999), 0);
    ASSERT_EQ(put(&f, "alice", "carol", 1, "for carol", 99999), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    mbox_totals t;
    mbox_get_totals(f.mb, &t);
    ASSERT_EQ(t.msgs, 6);
    ASSERT_EQ(t.bytes, 3 + 3 + 5 + 4 + 4 + 9);

    uint64_t cursor = 0;
    got g = {.n = 0};
    ASSERT_EQ(mails(&f, "bob", &cursor, 3, &g), 3);
    ASSERT_STR(g.text[0], "one");
    ASSERT_STR(g.text[2], "three");
    ASSERT(g.ids[0] < g.ids[1] && g.ids[1] < g.ids[2]);
    ASSERT_EQ(cursor, g.ids[2]);
    /* The window is full: nothing more until an acknowledgement. */
    ASSERT_EQ(mails(&f, "bob", &cursor, 3, &g), 3);
    /* Someone else's mid, or an unknown one, is no acknowledgement. */
    char sender[NAME_BUFLEN];
    got c = {.n = 0};
    uint64_t ccur = 0;
    ASSERT_EQ(mails(&f, "carol", &ccur, 3, &c), 1);
    ASSERT_EQ(mbox_ack(f.mb, "bob", "bob", c.ids[0], "delivered", 5000, sender), UV_ENOENT);
    ASSERT_EQ(mbox_ack(f.mb, "bob", "bob", 424242, "delivered", 5000, sender), UV_ENOENT);
    ASSERT_EQ(mbox_ack(f.mb, "bob", "bob", g.ids[1], "delivered", 5000, sender), 0);
    ASSERT_STR(sender, "alice");
    ASSERT_EQ(mbox_ack(f.mb, "bob", "bob", g.ids[1], "delivered", 5000, sender), UV_ENOENT);
    ASSERT_EQ(mails(&f, "bob", &cursor, 3, &g), 4);
    ASSERT_STR(g.text[3], "four");
    ASSERT_EQ(mbox_ack(f.mb, "bob", "bob", g.ids[0], "refused", 5000, sender), 0);
    mbox_get_totals(f.mb, &t);
    ASSERT_EQ(t.msgs, 4);
    ASSERT_EQ(t.bytes, 5 + 4 + 4 + 9);

    /* alice's receipts, in a window of their own. */
    uint64_t rcur = 0;
    got r = {.n = 0};
    ASSERT_EQ(receipts(&f, "alice", &rcur, 1, &r), 1);
    ASSERT_STR(r.text[0], "bob 101 delivered");
    ASSERT_EQ(mbox_receipt_ack(f.mb, "bob", r.ids[0]), UV_ENOENT); /* not bob's */
    ASSERT_EQ(mbox_receipt_ack(f.mb, "alice", r.ids[0]), 0);
    ASSERT_EQ(mbox_receipt_ack(f.mb, "alice", r.ids[0]), UV_ENOENT);
    ASSERT_EQ(receipts(&f, "alice", &rcur, 1, &r), 2);
    ASSERT_STR(r.text[1], "bob 100 refused");
    close_all(&f);

    /* A new connection starts from 0: what was handed out and not
     * acknowledged comes again, after a restart too. */
    open_all(&f);
    mbox_get_totals(f.mb, &t);
    ASSERT_EQ(t.msgs, 4);
    cursor = 0;
    g.n = 0;
    ASSERT_EQ(mails(&f, "bob", &cursor, 32, &g), 3);
    ASSERT_STR(g.text[0], "three");
    ASSERT_STR(g.text[2], "five");
    close_all(&f);
    cleanup();
}

static void test_known_and_duplicates(void) {
    tmpdb();
    fixture f;
    open_all(&f);
    ASSERT_EQ(mbox_known(f.mb, "alice", "bob", "bob", 9), 0);
    ASSERT_EQ(put(&f, "alice", "bob", 9, "x", 99999), 0);
    ASSERT_EQ(mbox_known(f.mb, "alice", "bob", "bob", 9), 1); /* seen in the open batch */
    ASSERT_EQ(put(&f, "alice", "bob", 9, "x", 99999), UV_EEXIST);
    ASSERT_EQ(mbox_known(f.mb, "carol", "bob", "bob", 9), 0);  /* ids are per sender */
    ASSERT_EQ(mbox_known(f.mb, "alice", "erin", "erin", 9), 0); /* and per recipient */
    ASSERT_EQ(put(&f, "alice", "bob", UINT64_MAX, "big id", 99999), 0);
    ASSERT_EQ(mbox_known(f.mb, "alice", "bob", "bob", UINT64_MAX), 1);
    mbox_totals t;
    mbox_get_totals(f.mb, &t);
    ASSERT_EQ(t.msgs, 2);
    uint64_t cursor = 0;
    got g = {.n = 0};
    ASSERT_EQ(mails(&f, "bob", &cursor, 32, &g), 2);
    char sender[NAME_BUFLEN];
    ASSERT_EQ(mbox_ack(f.mb, "bob", "bob", g.ids[0], "delivered", 5000, sender), 0);
    /* Delivered: its receipt still knows it, until the sender takes it. */
    ASSERT_EQ(mbox_known(f.mb, "alice", "bob", "bob", 9), 1);
    uint64_t rcur = 0;
    got r = {.n = 0};
    ASSERT_EQ(receipts(&f, "alice", &rcur, 32, &r), 1);
    ASSERT_EQ(mbox_receipt_ack(f.mb, "alice", r.ids[0]), 0);
    ASSERT_EQ(mbox_known(f.mb, "alice", "bob", "bob", 9), 0);
    close_all(&f);
    cleanup();
}

/* Each step asks mbox_room about a box of size bytes from one sender to
 * one recipient ('?': want is the answer), or stores one ('+'). */
static void test_limits(void) {
    static const struct step {
        char op;
        const char *from, *to;
        size_t size;
        mbox_full want;
    } steps[] = {
        {'?', "alice", "bob", 100, MBOX_ROOM},   {'?', "alice", "bob", 101, MBOX_FULL_BYTES},
        {'+', "alice", "bob", 10, 0},            {'+', "alice", "bob", 10, 0},
        {'?', "alice", "bob", 1, MBOX_FULL_SENDER}, {'?', "carol", "bob", 1, MBOX_ROOM},
        {'?', "carol", "bob", 81, MBOX_FULL_BYTES}, {'+', "carol", "bob", 2, 0},
        {'?', "dave", "bob", 1, MBOX_FULL_MSGS}, {'?', "alice", "erin", 100, MBOX_ROOM},
        {'+', "dave", "erin", 40, 0},            {'+', "dave", "frank", 40, 0},
        /* 102 bytes in all now: 48 more pass the total, 49 do not. */
        {'?', "alice", "gina", 48, MBOX_ROOM},   {'?', "alice", "gina", 49, MBOX_FULL_TOTAL},
    };
    static const mbox_limits lim = {3, 100, 2, 150};
    char box[128];
    memset(box, 'a', sizeof box);
    tmpdb();
    fixture f;
    open_all(&f);
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        const struct step *st = &steps[i];
        if (st->op == '+') {
            box[st->size] = '\0';
            ASSERT_EQ(put(&f, st->from, st->to, i + 1, box, 99999), 0);
            box[st->size] = 'a';
            continue;
        }
        mbox_full full;
        ASSERT_EQ(mbox_room(f.mb, st->to, st->from, st->size, &lim, &full), 0);
        if (full != st->want)
            fprintf(stderr, "step %zu\n", i);
        ASSERT_EQ(full, st->want);
    }
    close_all(&f);
    cleanup();
}

typedef struct told {
    char names[8][NAME_BUFLEN];
    int n;
} told;

static void on_told(const char *sender, void *arg) {
    told *t = arg;
    snprintf(t->names[t->n++], NAME_BUFLEN, "%s", sender);
}

static void test_expire(void) {
    tmpdb();
    fixture f;
    open_all(&f);
    ASSERT_EQ(put(&f, "alice", "bob", 1, "old", 2000), 0);
    ASSERT_EQ(put(&f, "alice", "carol", 2, "old too", 2500), 0);
    ASSERT_EQ(put(&f, "dave", "bob", 3, "old", 2500), 0);
    ASSERT_EQ(put(&f, "dave", "bob", 4, "young", 4000), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    told t = {.n = 0};
    uint64_t n = 99;
    ASSERT_EQ(mbox_expire(f.mb, 1999, 9000, on_told, &t, &n), 0);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(t.n, 0);
    ASSERT_EQ(mbox_expire(f.mb, 2500, 9000, on_told, &t, &n), 0);
    ASSERT_EQ(n, 3);
    ASSERT_EQ(t.n, 2); /* once per sender */
    ASSERT((strcmp(t.names[0], "alice") == 0 && strcmp(t.names[1], "dave") == 0) ||
           (strcmp(t.names[0], "dave") == 0 && strcmp(t.names[1], "alice") == 0));
    mbox_totals tot;
    mbox_get_totals(f.mb, &tot);
    ASSERT_EQ(tot.msgs, 1);
    ASSERT_EQ(tot.bytes, 5);
    uint64_t rcur = 0;
    got r = {.n = 0};
    ASSERT_EQ(receipts(&f, "alice", &rcur, 32, &r), 2);
    ASSERT_STR(r.text[0], "bob 1 expired");
    ASSERT_STR(r.text[1], "carol 2 expired");
    uv_run(&f.loop, UV_RUN_DEFAULT);
    close_all(&f);
    /* After a restart the totals are counted again; receipts expire too. */
    open_all(&f);
    mbox_get_totals(f.mb, &tot);
    ASSERT_EQ(tot.msgs, 1);
    t.n = 0;
    ASSERT_EQ(mbox_expire(f.mb, 9000, 20000, on_told, &t, &n), 0);
    ASSERT_EQ(n, 1);
    ASSERT_STR(t.names[0], "dave");
    rcur = 0;
    r.n = 0;
    ASSERT_EQ(receipts(&f, "alice", &rcur, 32, &r), 0); /* expired at 9000 */
    ASSERT_EQ(receipts(&f, "dave", &rcur, 32, &r), 1);
    ASSERT_STR(r.text[0], "bob 4 expired"); /* the fresh one stays */
    close_all(&f);
    cleanup();
}

/* A database a tracker without the mailbox made (schema version 1) gets
 * the new tables and keeps its users. */
static void test_migrates_version_1(void) {
    tmpdb();
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(tdb.path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE users (folded TEXT PRIMARY KEY NOT NULL, name TEXT NOT "
                           "NULL, key BLOB NOT NULL CHECK (length(key) = 32), endpoints TEXT NOT "
                           "NULL DEFAULT '', last_seen INTEGER NOT NULL DEFAULT 0, online INTEGER "
                           "NOT NULL DEFAULT 0, created INTEGER NOT NULL) WITHOUT ROWID;"
                           "CREATE INDEX users_online ON users (online, folded);"
                           "INSERT INTO users VALUES ('old', 'Old', zeroblob(32), '', 5, 1, 5);"
                           "PRAGMA user_version = 1;",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    fixture f;
    open_all(&f);
    reg_user u;
    ASSERT_EQ(reg_lookup(f.r, "old", &u), 0);
    ASSERT_STR(u.name, "Old");
    ASSERT_EQ(put(&f, "old", "bob", 1, "hi", 99999), 0);
    close_all(&f);
    ASSERT_EQ(sqlite3_open(tdb.path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(st, 0), 4);
    sqlite3_finalize(st);
    /* migration 4's skeleton, filled in for the row from before it */
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT skeleton FROM users WHERE folded = 'old'", -1, &st,
                                 NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STR((const char *)sqlite3_column_text(st, 0), "old");
    sqlite3_finalize(st);
    sqlite3_close(db);
    cleanup();
}

/* Another process deleting mail (an operator's --release) is recounted:
 * the totals behind --mail-total and the gauges follow the file. */
static void test_outside_delete_recounted(void) {
    tmpdb();
    fixture f;
    open_all(&f);
    ASSERT_EQ(put(&f, "alice", "bob", 1, "hello", 99999), 0);
    ASSERT_EQ(put(&f, "alice", "bob", 2, "again", 99999), 0);
    uv_run(&f.loop, UV_RUN_NOWAIT); /* commits the pass */
    mbox_totals t;
    mbox_get_totals(f.mb, &t);
    ASSERT_EQ(t.msgs, 2);
    ASSERT_EQ(t.bytes, 10);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(tdb.path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    ASSERT_EQ(sqlite3_exec(db, "DELETE FROM mail WHERE msg_id = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    reg_user u;
    ASSERT_EQ(reg_lookup(f.r, "nobody", &u), UV_ENOENT); /* the first read of the pass sees it */
    mbox_get_totals(f.mb, &t);
    ASSERT_EQ(t.msgs, 1);
    ASSERT_EQ(t.bytes, 5);
    close_all(&f);
    cleanup();
}

TEST_MAIN(T(test_window_and_acks), T(test_known_and_duplicates), T(test_limits), T(test_expire),
          T(test_migrates_version_1), T(test_outside_delete_recounted))

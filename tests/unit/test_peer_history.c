/* test_peer_history: the peer's history.db (peer/history.c) in a temporary
 * home on a real loop: the file is private (created 0600, refused when
 * others can read it) and refused when a newer parley wrote it; a write's
 * callback fires after its batch committed, never inside the call, and a
 * pass's writes are one commit; the outbox, the states, the last messages
 * of a conversation, the conversation list and the largest seq and id read
 * back after a reopen; a received message is stored once per sender key
 * and id, across runs; a writer killed with SIGKILL leaves an intact file
 * holding every message it had confirmed.  Linked with the peer's modules
 * (Makefile: test_peer_*). */
#include "history.h"
#include "name.h"
#include "test.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

static const logger lg = {LOG_WARN, "test"};
static char home[256], dbfile[300];

static void make_home(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(home, sizeof home, "%s/parley-hist-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ASSERT(mkdtemp(home) != NULL);
    snprintf(dbfile, sizeof dbfile, "%s/history.db", home);
}

static void remove_home(void) {
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[320];
        snprintf(p, sizeof p, "%s%s", dbfile, sfx[i]);
        unlink(p);
    }
    ASSERT_EQ(rmdir(home), 0);
}

static history *open_hist(uv_loop_t *loop) {
    history *h = NULL;
    char err[512] = "";
    int e = hist_open(loop, home, &lg, &h, err, sizeof err);
    if (e)
        fprintf(stderr, "hist_open: %s\n", err);
    ASSERT_EQ(e, 0);
    ASSERT(h != NULL);
    return h;
}

/* A new home and loop, and the history opened in them. */
static history *fresh(uv_loop_t *loop) {
    make_home();
    uv_loop_init(loop);
    return open_hist(loop);
}

static void close_hist(history *h, uv_loop_t *loop) {
    hist_close(h);
    ASSERT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(loop), 0);
}

static sqlite3 *side_db(void) {
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(dbfile, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    return db;
}

static int64_t side_int(sqlite3 *db, const char *q) {
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void key_of(unsigned char k[IDENT_PK], int seed) {
    for (int i = 0; i < IDENT_PK; i++)
        k[i] = (unsigned char)(seed + i);
}

typedef struct done {
    int calls, status, dup;
} done;

static void on_done(int status, int dup, void *arg) {
    done *d = arg;
    d->calls++;
    d->status = status;
    d->dup = dup;
}

/* A row as read, copied out of the callback. */
typedef struct row_copy {
    hist_row r;
    char peer[NAME_BUFLEN], name[NAME_BUFLEN];
    unsigned char key[IDENT_PK];
    char text[4096];
} row_copy;

typedef struct rows {
    row_copy v[16];
    size_t n;
    size_t stop_at; /* stop once this many are held (0: never) */
} rows;

static int collect(const hist_row *r, void *arg) {
    rows *c = arg;
    ASSERT(c->n < sizeof c->v / sizeof *c->v);
    ASSERT(r->len <= sizeof c->v[0].text);
    row_copy *o = &c->v[c->n++];
    o->r = *r;
    snprintf(o->peer, sizeof o->peer, "%s", r->peer);
    snprintf(o->name, sizeof o->name, "%s", r->name);
    memcpy(o->text, r->text, r->len);
    if (r->sender_key)
        memcpy(o->key, r->sender_key, IDENT_PK);
    return c->stop_at && c->n == c->stop_at;
}

static rows *new_rows(void) {
    rows *c = calloc(1, sizeof *c);
    ASSERT(c != NULL);
    return c;
}

/* Adds one sent message and runs the loop until its batch committed. */
static void add_out_now(history *h, uv_loop_t *loop, const char *fold, const char *name,
                        uint64_t id, uint64_t seq, const char *text) {
    done d = {0, -1, -1};
    ASSERT_EQ(hist_add_out(h, fold, name, id, seq, 1000 + (int64_t)seq, text, strlen(text),
                           on_done, &d), 0);
    ASSERT_EQ(d.calls, 0);
    ASSERT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(d.calls, 1);
    ASSERT_EQ(d.status, 0);
    ASSERT_EQ(d.dup, 0);
}

/* Adds one received message, runs the loop and returns the callback's dup. */
static int add_in_now(history *h, uv_loop_t *loop, int seed, uint64_t id, const char *text) {
    unsigned char k[IDENT_PK];
    key_of(k, seed);
    done d = {0, -1, -1};
    ASSERT_EQ(hist_add_in(h, "alice", "Alice", k, id, 77, text, strlen(text), on_done, &d), 0);
    ASSERT_EQ(d.calls, 0);
    ASSERT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(d.calls, 1);
    ASSERT_EQ(d.status, 0);
    return d.dup;
}

static mode_t mode_of(const char *path) {
    struct stat st;
    ASSERT_EQ(stat(path, &st), 0);
    return st.st_mode & 0777;
}

/* Created 0600 (and so are its -wal and -shm); once others can read it the
 * open is refused with the chmod that fixes it. */
static void test_open_private(void) {
    uv_loop_t loop;
    history *h = fresh(&loop);
    ASSERT_EQ(mode_of(dbfile), 0600);
    add_out_now(h, &loop, "bob", "Bob", 1, 1, "hi");
    char wal[320];
    snprintf(wal, sizeof wal, "%s-wal", dbfile);
    ASSERT_EQ(mode_of(wal), 0600);
    close_hist(h, &loop);
    hist_close(NULL);

    ASSERT_EQ(chmod(dbfile, 0644), 0);
    uv_loop_init(&loop);
    h = NULL;
    char err[512] = "";
    ASSERT_EQ(hist_open(&loop, home, &lg, &h, err, sizeof err), UV_EACCES);
    ASSERT(h == NULL);
    ASSERT(strstr(err, "chmod 600") != NULL);
    ASSERT(strstr(err, dbfile) != NULL);
    ASSERT_EQ(uv_loop_close(&loop), 0);

    ASSERT_EQ(chmod(dbfile, 0600), 0); /* as the message says: then it opens */
    uv_loop_init(&loop);
    h = open_hist(&loop);
    rows *c = new_rows();
    ASSERT_EQ(hist_last(h, "bob", 10, collect, c), 0);
    ASSERT_EQ(c->n, 1);
    free(c);
    close_hist(h, &loop);
    remove_home();
}

static void test_refuses_newer_schema(void) {
    make_home();
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(dbfile, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_EQ(chmod(dbfile, 0600), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    history *h = NULL;
    char err[512] = "";
    ASSERT_EQ(hist_open(&loop, home, &lg, &h, err, sizeof err), UV_EINVAL);
    ASSERT(h == NULL);
    ASSERT(strstr(err, "schema version 99") != NULL);
    ASSERT(strstr(err, "newer parley") != NULL);
    ASSERT_EQ(uv_loop_close(&loop), 0);

    /* A home that is not there: the message names the file. */
    uv_loop_init(&loop);
    ASSERT(hist_open(&loop, "/nonexistent-dir/x", &lg, &h, err, sizeof err) < 0);
    ASSERT(strstr(err, "/nonexistent-dir/x/history.db") != NULL);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    remove_home();
}

static void check_out_row(const row_copy *o, const char *peer, const char *name, uint64_t id,
                          uint64_t seq, const char *text, int state) {
    ASSERT_STR(o->peer, peer);
    ASSERT_STR(o->name, name);
    ASSERT_EQ(o->r.out, 1);
    ASSERT(o->r.msg_id == id);
    ASSERT_EQ(o->r.seq, seq);
    ASSERT_EQ(o->r.ts, 1000 + (int64_t)seq);
    ASSERT_EQ(o->r.len, strlen(text));
    ASSERT(memcmp(o->text, text, o->r.len) == 0);
    ASSERT_EQ(o->r.state, state);
    ASSERT(o->r.sender_key == NULL);
}

/* Sent messages: the callback after the commit, reads that see the pass's
 * own writes, the outbox in send order across a reopen, the states moving
 * forward only, the last messages oldest first, the largest seq and id. */
static void test_outbox_and_states(void) {
    uv_loop_t loop;
    history *h = fresh(&loop);
    int64_t before = (int64_t)time(NULL) * 1000;
    done d[4] = {{0, -1, -1}, {0, -1, -1}, {0, -1, -1}, {0, -1, -1}};
    ASSERT_EQ(hist_add_out(h, "alice", "Alice", 101, 1, 1001, "one", 3, on_done, &d[0]), 0);
    ASSERT_EQ(hist_add_out(h, "bob", "Bob", 102, 1, 1001, "to bob", 6, on_done, &d[1]), 0);
    ASSERT_EQ(hist_add_out(h, "alice", "ALICE", 103, 2, 1002, "two", 3, on_done, &d[2]), 0);
    ASSERT_EQ(hist_add_out(h, "alice", "Alice", 104, 3, 1003, "three", 5, NULL, NULL), 0);
    /* Our id again: refused, no callback. */
    ASSERT_EQ(hist_add_out(h, "bob", "Bob", 102, 9, 1009, "again", 5, on_done, &d[3]), UV_EEXIST);
    ASSERT_EQ(hist_add_out(h, "", "Bob", 105, 9, 1009, "x", 1, on_done, &d[3]), UV_EINVAL);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(d[i].calls, 0); /* never from inside the call */

    /* Not committed yet, but this connection reads its own batch. */
    rows *c = new_rows();
    ASSERT_EQ(hist_outbox(h, collect, c), 0);
    ASSERT_EQ(c->n, 4);
    uint64_t v;
    ASSERT_EQ(hist_max_seq(h, "alice", &v), 0);
    ASSERT_EQ(v, 3);
    sqlite3 *side = side_db();
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM messages"), 0);

    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(d[i].calls, 1);
        ASSERT_EQ(d[i].status, 0);
        ASSERT_EQ(d[i].dup, 0);
    }
    ASSERT_EQ(d[3].calls, 0);
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM messages"), 4);
    sqlite3_close(side);
    close_hist(h, &loop);

    uv_loop_init(&loop);
    h = open_hist(&loop);
    c->n = 0;
    ASSERT_EQ(hist_outbox(h, collect, c), 0);
    ASSERT_EQ(c->n, 4);
    check_out_row(&c->v[0], "alice", "Alice", 101, 1, "one", HIST_QUEUED);
    check_out_row(&c->v[1], "bob", "Bob", 102, 1, "to bob", HIST_QUEUED);
    check_out_row(&c->v[2], "alice", "ALICE", 103, 2, "two", HIST_QUEUED);
    check_out_row(&c->v[3], "alice", "Alice", 104, 3, "three", HIST_QUEUED);
    ASSERT(c->v[0].r.at >= before && c->v[0].r.at <= before + 60000);

    /* The callback may stop a read early. */
    c->n = 0;
    c->stop_at = 2;
    ASSERT_EQ(hist_outbox(h, collect, c), 0);
    ASSERT_EQ(c->n, 2);
    c->stop_at = 0;

    /* Forward only; the outbox is QUEUED and STORED. */
    ASSERT_EQ(hist_set_state(h, 102, HIST_DELIVERED), 0);
    ASSERT_EQ(hist_set_state(h, 102, HIST_STORED), UV_EALREADY); /* a late "stored" */
    ASSERT_EQ(hist_set_state(h, 102, HIST_DELIVERED), UV_EALREADY);
    ASSERT_EQ(hist_set_state(h, 101, HIST_STORED), 0);
    ASSERT_EQ(hist_set_state(h, 103, HIST_EXPIRED), 0);
    ASSERT_EQ(hist_set_state(h, 999, HIST_DELIVERED), UV_ENOENT);
    ASSERT_EQ(hist_set_state(h, 104, HIST_QUEUED), UV_EINVAL);
    ASSERT_EQ(hist_set_state(h, 104, HIST_RECEIVED), UV_EINVAL);
    c->n = 0;
    ASSERT_EQ(hist_outbox(h, collect, c), 0);
    ASSERT_EQ(c->n, 2);
    check_out_row(&c->v[0], "alice", "Alice", 101, 1, "one", HIST_STORED);
    check_out_row(&c->v[1], "alice", "Alice", 104, 3, "three", HIST_QUEUED);
    ASSERT_EQ(hist_set_state(h, 103, HIST_STORED), UV_EALREADY); /* given up stays given up */
    ASSERT_EQ(hist_set_state(h, 103, HIST_DELIVERED), 0);        /* but a delivery wins */
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    close_hist(h, &loop);

    uv_loop_init(&loop);
    h = open_hist(&loop);
    c->n = 0;
    ASSERT_EQ(hist_outbox(h, collect, c), 0);
    ASSERT_EQ(c->n, 2); /* the states were committed with the pass */
    c->n = 0;
    ASSERT_EQ(hist_last(h, "alice", 10, collect, c), 0);
    ASSERT_EQ(c->n, 3);
    check_out_row(&c->v[0], "alice", "Alice", 101, 1, "one", HIST_STORED);
    check_out_row(&c->v[1], "alice", "ALICE", 103, 2, "two", HIST_DELIVERED);
    check_out_row(&c->v[2], "alice", "Alice", 104, 3, "three", HIST_QUEUED);
    c->n = 0;
    ASSERT_EQ(hist_last(h, "alice", 2, collect, c), 0);
    ASSERT_EQ(c->n, 2);
    ASSERT(c->v[0].r.msg_id == 103 && c->v[1].r.msg_id == 104);
    c->n = 0;
    ASSERT_EQ(hist_last(h, "alice", 0, collect, c), 0);
    ASSERT_EQ(hist_last(h, "nobody", 5, collect, c), 0);
    ASSERT_EQ(c->n, 0);
    ASSERT_EQ(hist_max_seq(h, "alice", &v), 0);
    ASSERT_EQ(v, 3);
    ASSERT_EQ(hist_max_seq(h, "bob", &v), 0);
    ASSERT_EQ(v, 1);
    ASSERT_EQ(hist_max_seq(h, "nobody", &v), 0);
    ASSERT_EQ(v, 0);
    ASSERT_EQ(hist_max_id(h, &v), 0);
    ASSERT_EQ(v, 104);
    /* Ids are uint64: one with the top bit set is the largest. */
    add_out_now(h, &loop, "bob", "Bob", UINT64_MAX - 5, 2, "big");
    add_out_now(h, &loop, "bob", "Bob", 105, 3, "small");
    ASSERT_EQ(hist_max_id(h, &v), 0);
    ASSERT(v == UINT64_MAX - 5);
    ASSERT_EQ(hist_set_state(h, UINT64_MAX - 5, HIST_DELIVERED), 0);
    free(c);
    close_hist(h, &loop);
    remove_home();
}

static void test_empty_history(void) {
    uv_loop_t loop;
    history *h = fresh(&loop);
    rows *c = new_rows();
    ASSERT_EQ(hist_outbox(h, collect, c), 0);
    ASSERT_EQ(hist_conversations(h, collect, c), 0);
    ASSERT_EQ(c->n, 0);
    uint64_t v = 1;
    ASSERT_EQ(hist_max_id(h, &v), 0);
    ASSERT_EQ(v, 0);
    free(c);
    close_hist(h, &loop);
    remove_home();
}

/* Received messages are stored once per (sender key, id): a second copy's
 * callback says dup, in the same pass, in a later one, after a reopen. */
static void test_received_once(void) {
    uv_loop_t loop;
    history *h = fresh(&loop);
    unsigned char k1[IDENT_PK], k2[IDENT_PK];
    key_of(k1, 1);
    key_of(k2, 2);
    done d[4] = {{0, -1, -1}, {0, -1, -1}, {0, -1, -1}, {0, -1, -1}};
    ASSERT_EQ(hist_add_in(h, "alice", "Alice", k1, 7, 70, "hello", 5, on_done, &d[0]), 0);
    ASSERT_EQ(hist_add_in(h, "alice", "Alice", k1, 7, 70, "hello", 5, on_done, &d[1]), 0);
    ASSERT_EQ(hist_add_in(h, "mallory", "Mallory", k2, 7, 70, "other", 5, on_done, &d[2]), 0);
    /* Our own id 7 is another message as well. */
    ASSERT_EQ(hist_add_out(h, "alice", "Alice", 7, 1, 1001, "mine", 4, on_done, &d[3]), 0);
    ASSERT_EQ(hist_add_in(h, "alice", "Alice", NULL, 8, 70, "x", 1, on_done, &d[3]), UV_EINVAL);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(d[i].calls, 0);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    int dups[4] = {0, 1, 0, 0};
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(d[i].calls, 1);
        ASSERT_EQ(d[i].status, 0);
        ASSERT_EQ(d[i].dup, dups[i]);
    }
    ASSERT_EQ(add_in_now(h, &loop, 1, 7, "hello"), 1);
    ASSERT_EQ(add_in_now(h, &loop, 1, 8, "next"), 0);
    close_hist(h, &loop);

    uv_loop_init(&loop);
    h = open_hist(&loop);
    ASSERT_EQ(add_in_now(h, &loop, 1, 7, "hello"), 1);
    ASSERT_EQ(add_in_now(h, &loop, 1, 8, "next"), 1);
    ASSERT_EQ(add_in_now(h, &loop, 2, 8, "new"), 0);
    rows *c = new_rows();
    ASSERT_EQ(hist_last(h, "alice", 10, collect, c), 0);
    /* hello (ts 70), next and new (77), mine (1001): in the senders' order
     * (ts, then arrival); the dups stored nothing */
    ASSERT_EQ(c->n, 4);
    const row_copy *o = &c->v[0];
    ASSERT_STR(o->peer, "alice");
    ASSERT_STR(o->name, "Alice");
    ASSERT_EQ(o->r.out, 0);
    ASSERT_EQ(o->r.msg_id, 7);
    ASSERT_EQ(o->r.seq, 0);
    ASSERT_EQ(o->r.ts, 70);
    ASSERT_EQ(o->r.state, HIST_RECEIVED);
    ASSERT(o->r.sender_key != NULL);
    ASSERT(memcmp(o->key, k1, IDENT_PK) == 0);
    ASSERT_EQ(o->r.len, 5);
    ASSERT(memcmp(o->text, "hello", 5) == 0);
    ASSERT_EQ(c->v[3].r.out, 1);
    ASSERT(memcmp(c->v[1].text, "next", 4) == 0);
    ASSERT_EQ(c->v[2].r.len, 3);
    ASSERT(memcmp(c->v[2].text, "new", 3) == 0);
    /* Received messages are not ours: no outbox, no state, no max id. */
    c->n = 0;
    ASSERT_EQ(hist_outbox(h, collect, c), 0);
    ASSERT_EQ(c->n, 1);
    ASSERT_EQ(hist_set_state(h, 8, HIST_DELIVERED), UV_ENOENT);
    uint64_t v;
    ASSERT_EQ(hist_max_id(h, &v), 0);
    ASSERT_EQ(v, 7);
    ASSERT_EQ(hist_max_seq(h, "mallory", &v), 0);
    ASSERT_EQ(v, 0);
    free(c);
    close_hist(h, &loop);
    remove_home();
}

/* One row per conversation: its latest message, the latest first. */
static void test_conversations(void) {
    uv_loop_t loop;
    history *h = fresh(&loop);
    add_out_now(h, &loop, "alice", "alice", 1, 1, "a1");
    add_out_now(h, &loop, "bob", "Bob", 2, 1, "b1");
    ASSERT_EQ(add_in_now(h, &loop, 1, 50, "from alice"), 0); /* spelled "Alice" */
    add_out_now(h, &loop, "carol", "Carol", 3, 1, "c1");
    add_out_now(h, &loop, "bob", "BOB", 4, 2, "b2");
    rows *c = new_rows();
    ASSERT_EQ(hist_conversations(h, collect, c), 0);
    ASSERT_EQ(c->n, 3);
    ASSERT_STR(c->v[0].peer, "bob");
    ASSERT_STR(c->v[0].name, "BOB");
    ASSERT_EQ(c->v[0].r.msg_id, 4);
    ASSERT_STR(c->v[1].peer, "carol");
    ASSERT_STR(c->v[2].peer, "alice");
    ASSERT_STR(c->v[2].name, "Alice");
    ASSERT_EQ(c->v[2].r.out, 0);
    ASSERT(memcmp(c->v[2].text, "from alice", 10) == 0);
    ASSERT(c->v[0].r.at >= c->v[2].r.at);
    free(c);
    close_hist(h, &loop);
    remove_home();
}

static void count_commit(void *arg, uint64_t ns) { (*(int *)arg)++; }

typedef struct chain {
    history *h;
    int calls;
    done later;
} chain;

/* The first callback of a batch writes again: that starts the next batch,
 * whose callback is not run from here. */
static void on_chain(int status, int dup, void *arg) {
    chain *ch = arg;
    ASSERT_EQ(status, 0);
    if (ch->calls++ == 0) {
        ASSERT_EQ(hist_add_out(ch->h, "bob", "Bob", 5000, 1, 1, "later", 5, on_done, &ch->later),
                  0);
        ASSERT_EQ(ch->later.calls, 0);
    }
}

/* 1000 writes in one pass are one transaction: one commit, then the 1000
 * callbacks. */
static void test_one_commit_per_pass(void) {
    uv_loop_t loop;
    history *h = fresh(&loop);
    int commits = 0;
    hist_on_commit(h, count_commit, &commits);
    sqlite3 *side = side_db();
    done d = {0, -1, -1};
    unsigned char k[IDENT_PK];
    key_of(k, 3);
    for (int i = 0; i < 500; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "message %d", i);
        ASSERT_EQ(hist_add_out(h, "bob", "Bob", (uint64_t)i + 1, (uint64_t)i + 1, i, text,
                               (size_t)n, on_done, &d), 0);
        ASSERT_EQ(hist_add_in(h, "bob", "Bob", k, (uint64_t)i + 1, i, text, (size_t)n, on_done,
                              &d), 0);
    }
    ASSERT_EQ(d.calls, 0);
    ASSERT_EQ(commits, 0);
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM messages"), 0);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(commits, 1);
    ASSERT_EQ(d.calls, 1000);
    ASSERT_EQ(d.status, 0);
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM messages"), 1000);

    chain ch = {h, 0, {0, -1, -1}};
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(hist_add_out(h, "carol", "Carol", 2000 + (uint64_t)i, (uint64_t)i + 1, 1, "c",
                               1, on_chain, &ch), 0);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(ch.calls, 3);
    ASSERT_EQ(ch.later.calls, 1);
    ASSERT_EQ(ch.later.status, 0);
    ASSERT_EQ(commits, 3);
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM messages"), 1004);
    sqlite3_close(side);

    /* Closing commits what is pending and fires its callbacks. */
    done last = {0, -1, -1};
    ASSERT_EQ(hist_add_out(h, "dave", "Dave", 9000, 1, 1, "bye", 3, on_done, &last), 0);
    hist_close(h);
    ASSERT_EQ(last.calls, 1);
    ASSERT_EQ(last.status, 0);
    ASSERT_EQ(commits, 4);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    side = side_db();
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM messages WHERE peer = 'dave'"), 1);
    sqlite3_close(side);
    remove_home();
}

/* Text is bytes: NUL bytes, the longest chat message, an empty one. */
static void test_text_bytes(void) {
    uv_loop_t loop;
    history *h = fresh(&loop);
    static char big[4000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i % 251); /* every byte value, NUL among them */
    const char nul[] = {'a', 0, 'b', 0};
    unsigned char k[IDENT_PK];
    key_of(k, 9);
    done d = {0, -1, -1};
    ASSERT_EQ(hist_add_out(h, "bob", "Bob", 1, 1, 1, big, sizeof big, on_done, &d), 0);
    ASSERT_EQ(hist_add_in(h, "bob", "Bob", k, 1, 1, nul, sizeof nul, on_done, &d), 0);
    ASSERT_EQ(hist_add_out(h, "bob", "Bob", 2, 2, 1, NULL, 0, on_done, &d), 0);
    ASSERT_EQ(hist_add_in(h, "bob", "Bob", k, 2, 1, "", 0, on_done, &d), 0);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(d.calls, 4);
    ASSERT_EQ(d.status, 0);
    close_hist(h, &loop);

    uv_loop_init(&loop);
    h = open_hist(&loop);
    rows *c = new_rows();
    ASSERT_EQ(hist_last(h, "bob", 10, collect, c), 0);
    ASSERT_EQ(c->n, 4);
    ASSERT_EQ(c->v[0].r.len, sizeof big);
    ASSERT(memcmp(c->v[0].text, big, sizeof big) == 0);
    ASSERT_EQ(c->v[1].r.len, sizeof nul);
    ASSERT(memcmp(c->v[1].text, nul, sizeof nul) == 0);
    ASSERT_EQ(c->v[2].r.len, 0);
    ASSERT(c->v[2].r.text != NULL);
    ASSERT_EQ(c->v[3].r.len, 0);
    free(c);
    close_hist(h, &loop);
    remove_home();
}

/* ---- crash safety ---- */

#define CRASH_BATCH 25
#define CRASH_SEEN 2000 /* ids a writer confirms before its kill is due */
#define CRASH_ROUNDS 4

static int confirm_fd = -1;

static void on_confirmed(int status, int dup, void *arg) {
    ASSERT_EQ(status, 0);
    uint64_t id = (uint64_t)(uintptr_t)arg;
    ASSERT_EQ(write(confirm_fd, &id, sizeof id), (ssize_t)sizeof id);
}

typedef struct writer {
    history *h;
    uint64_t next;
    char text[300];
} writer;

/* Every pass writes a batch; the loop never idles. */
static void on_write_pass(uv_idle_t *idle) {
    writer *w = idle->data;
    for (int i = 0; i < CRASH_BATCH; i++) {
        uint64_t id = ++w->next;
        ASSERT_EQ(hist_add_out(w->h, "bob", "Bob", id, id, (int64_t)id, w->text, sizeof w->text,
                               on_confirmed, (void *)(uintptr_t)id), 0);
    }
}

/* The child: goes on from the largest id stored, writing and reporting
 * each id over fd once its callback fired, until it is killed. */
static void run_writer(int fd) {
    alarm(20); /* the parent kills it long before */
    confirm_fd = fd;
    uv_loop_t loop;
    uv_loop_init(&loop);
    writer w = {open_hist(&loop), 0, {0}};
    ASSERT_EQ(hist_max_id(w.h, &w.next), 0);
    memset(w.text, 'x', sizeof w.text);
    uv_idle_t idle;
    uv_idle_init(&loop, &idle);
    idle.data = &w;
    uv_idle_start(&idle, on_write_pass);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(3); /* not reached */
}

static int check_id(const hist_row *r, void *arg) {
    uint64_t *last = arg;
    ASSERT(r->msg_id == *last + 1); /* batches commit whole and in order: no gap */
    ASSERT_EQ(r->len, 300);
    *last = r->msg_id;
    return 0;
}

/* Starts a writer, lets it confirm seen ids, then SIGKILLs it a little
 * later (anywhere in a batch, its commit or a checkpoint).  The largest id
 * it confirmed. */
static long long wal_high; /* the largest -wal crash_writer saw */

static uint64_t crash_writer(uint64_t confirmed, uint64_t seen, unsigned delay_us) {
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        run_writer(p[1]);
    }
    close(p[1]);
    uint64_t id, n = 0;
    while (n < seen && read(p[0], &id, sizeof id) == (ssize_t)sizeof id) {
        ASSERT(id == confirmed + 1); /* confirmed in order, after what is stored */
        confirmed = id;
        n++;
        char wal[320];
        struct stat st;
        snprintf(wal, sizeof wal, "%s-wal", dbfile);
        if (n % 256 == 0 && stat(wal, &st) == 0 && st.st_size > wal_high)
            wal_high = st.st_size;
    }
    ASSERT_EQ(n, seen);
    usleep(delay_us);
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    while (read(p[0], &id, sizeof id) == (ssize_t)sizeof id) {
        ASSERT(id == confirmed + 1);
        confirmed = id;
    }
    close(p[0]);
    return confirmed;
}

/* Reopens the file a killed writer left: intact, every confirmed message
 * in it, whole batches only.  The number of messages it holds. */
static uint64_t check_after_crash(uint64_t confirmed) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    history *h = open_hist(&loop);
    uint64_t last = 0;
    ASSERT_EQ(hist_outbox(h, check_id, &last), 0);
    ASSERT(last >= confirmed);
    ASSERT(last % CRASH_BATCH == 0); /* whole batches only */
    uint64_t v;
    ASSERT_EQ(hist_max_id(h, &v), 0);
    ASSERT(v == last);
    ASSERT_EQ(hist_max_seq(h, "bob", &v), 0); /* the conversation row went with its batch */
    ASSERT(v == last);
    sqlite3 *side = side_db();
    sqlite3_stmt *q;
    ASSERT_EQ(sqlite3_prepare_v2(side, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
    ASSERT_STR((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM messages"), (int64_t)last);
    sqlite3_close(side);
    close_hist(h, &loop);
    return last;
}

/* Writers killed with SIGKILL in the middle of their stream of batches,
 * one after another on the same file: each time it is intact and holds
 * every message whose callback had fired. */
static void test_survives_kill9(void) {
    make_home();
    uint64_t stored = 0;
    for (int round = 0; round < CRASH_ROUNDS; round++)
        stored = check_after_crash(crash_writer(stored, CRASH_SEEN, (unsigned)round * 700));
    remove_home();
}

/* The same over a stream long enough for several checkpoints, which the
 * sync thread makes while the writer goes on: killed in the middle, the
 * file is intact and holds every confirmed message, and the -wal stayed
 * bounded all along (it restarts after each full checkpoint; without them
 * it would hold every page the stream wrote, well over 100 MB). */
static void test_kill9_across_checkpoints(void) {
    make_home();
    uint64_t stored = 0;
    for (int round = 0; round < 2; round++) {
        wal_high = 0;
        uint64_t confirmed = crash_writer(stored, 60000, (unsigned)round * 1500);
        ASSERT(wal_high > 0);
        ASSERT(wal_high < 56 << 20); /* ~3 x 4096 frames of 4120 bytes, and a batch */
        stored = check_after_crash(confirmed);
    }
    remove_home();
}

/* Schema 1 as parley wrote it (peer/history.c's first migration, to the
 * letter): the files older peers left. */
static const char schema1[] =
    "CREATE TABLE messages (id INTEGER PRIMARY KEY, peer TEXT NOT NULL, name TEXT NOT NULL,"
    " dir INTEGER NOT NULL CHECK (dir IN (0, 1)), sender_key BLOB"
    "  CHECK (dir = 0 AND sender_key IS NULL OR dir = 1 AND length(sender_key) = 32),"
    " msg_id INTEGER NOT NULL, seq INTEGER NOT NULL DEFAULT 0, ts INTEGER NOT NULL,"
    " at INTEGER NOT NULL, text BLOB NOT NULL, state INTEGER NOT NULL"
    "  CHECK (dir = 0 AND state BETWEEN 0 AND 3 OR dir = 1 AND state = 4));"
    "CREATE UNIQUE INDEX messages_received ON messages (sender_key, msg_id) WHERE dir = 1;"
    "CREATE UNIQUE INDEX messages_sent ON messages (msg_id) WHERE dir = 0;"
    "CREATE INDEX messages_peer ON messages (peer, ts);"
    "CREATE INDEX messages_outbox ON messages (id) WHERE dir = 0 AND state IN (0, 1);"
    "CREATE TABLE conversations (peer TEXT PRIMARY KEY NOT NULL, last INTEGER NOT NULL,"
    " seq INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TRIGGER messages_conversation AFTER INSERT ON messages BEGIN"
    " INSERT INTO conversations (peer, last, seq) VALUES (new.peer, new.id, new.seq)"
    " ON CONFLICT (peer) DO UPDATE SET last = excluded.last, seq = max(seq, excluded.seq);"
    " END;"
    "PRAGMA user_version = 1;"
    /* bob: sent #1 delivered, sent #2 queued, one received; carol: sent #1
     * stored (in the mailbox), then the latest message of all, from her. */
    "INSERT INTO messages (peer, name, dir, msg_id, seq, ts, at, text, state) VALUES"
    " ('bob', 'Bob', 0, 10, 1, 1001, 1, 'one', 2),"
    " ('bob', 'Bob', 0, 11, 2, 1003, 1, 'two', 0);"
    "INSERT INTO messages (peer, name, dir, sender_key, msg_id, ts, at, text, state) VALUES"
    " ('bob', 'Bob', 1, zeroblob(32), 500, 1002, 1, 'hi', 4);"
    "INSERT INTO messages (peer, name, dir, msg_id, seq, ts, at, text, state) VALUES"
    " ('carol', 'Carol', 0, 12, 1, 1004, 1, 'three', 1);"
    "INSERT INTO messages (peer, name, dir, sender_key, msg_id, ts, at, text, state) VALUES"
    " ('carol', 'Carol', 1, zeroblob(32), 600, 1005, 1, 'yo', 4);";

/* A file of schema 1 (or 2: its trigger dropped, conversations kept by
 * history.c) is brought to schema 3 (a table per direction): every row
 * moves over as it was, and the conversations, the order, the outbox, the
 * states, the largest seq and id and the dedupe go on being right. */
static void upgrade_from(int version) {
    make_home();
    sqlite3 *side;
    ASSERT_EQ(sqlite3_open(dbfile, &side), SQLITE_OK);
    ASSERT_EQ(chmod(dbfile, 0600), 0);
    ASSERT_EQ(sqlite3_exec(side, "PRAGMA journal_mode = WAL", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(side, schema1, NULL, NULL, NULL), SQLITE_OK);
    if (version == 2)
        ASSERT_EQ(sqlite3_exec(side, "DROP TRIGGER messages_conversation; PRAGMA user_version = 2",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    sqlite3_close(side);
    uv_loop_t loop;
    uv_loop_init(&loop);
    history *h = open_hist(&loop);
    side = side_db();
    ASSERT_EQ(side_int(side, "PRAGMA user_version"), 3);
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 0);
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM messages"), 5); /* the view */
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM sent"), 3);
    ASSERT_EQ(side_int(side, "SELECT count(*) FROM received"), 2);
    sqlite3_close(side);
    rows *c = new_rows();
    ASSERT_EQ(hist_conversations(h, collect, c), 0);
    ASSERT_EQ(c->n, 2);
    ASSERT_STR(c->v[0].peer, "carol");
    ASSERT_EQ(c->v[0].r.out, 0);
    ASSERT_EQ(c->v[0].r.msg_id, 600);
    ASSERT_STR(c->v[1].peer, "bob");
    ASSERT_EQ(c->v[1].r.msg_id, 500); /* inserted last of bob's */
    ASSERT_STR(c->v[1].name, "Bob");
    c->n = 0;
    ASSERT_EQ(hist_last(h, "bob", 10, collect, c), 0);
    ASSERT_EQ(c->n, 3);
    ASSERT_STR(c->v[0].text, "one");
    ASSERT_EQ(c->v[0].r.state, HIST_DELIVERED);
    ASSERT_STR(c->v[1].text, "hi");
    ASSERT_EQ(c->v[1].r.out, 0);
    ASSERT_EQ(c->v[1].r.state, HIST_RECEIVED);
    ASSERT(c->v[1].r.sender_key != NULL);
    ASSERT_STR(c->v[2].text, "two");
    ASSERT_EQ(c->v[2].r.seq, 2);
    c->n = 0;
    ASSERT_EQ(hist_outbox(h, collect, c), 0);
    ASSERT_EQ(c->n, 2);
    ASSERT_EQ(c->v[0].r.msg_id, 11);
    ASSERT_EQ(c->v[0].r.state, HIST_QUEUED);
    ASSERT_EQ(c->v[1].r.msg_id, 12);
    ASSERT_EQ(c->v[1].r.state, HIST_STORED);
    free(c);
    uint64_t v;
    ASSERT_EQ(hist_max_seq(h, "bob", &v), 0);
    ASSERT_EQ(v, 2);
    ASSERT_EQ(hist_max_id(h, &v), 0);
    ASSERT_EQ(v, 12);
    ASSERT_EQ(hist_set_state(h, 10, HIST_STORED), UV_EALREADY);
    ASSERT_EQ(hist_set_state(h, 12, HIST_DELIVERED), 0);
    ASSERT_EQ(hist_set_state(h, 99, HIST_DELIVERED), UV_ENOENT);
    /* A moved received row still dedupes its repeat; the next id does not. */
    unsigned char zero[IDENT_PK] = {0};
    for (uint64_t id = 500; id <= 501; id++) {
        done d = {0, -1, -1};
        ASSERT_EQ(hist_add_in(h, "bob", "Bob", zero, id, 1002, "hi", 2, on_done, &d), 0);
        ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
        ASSERT_EQ(d.calls, 1);
        ASSERT_EQ(d.status, 0);
        ASSERT_EQ(d.dup, id == 500);
    }
    /* New ids come after the moved ones: 501 is now the latest of all. */
    c = new_rows();
    ASSERT_EQ(hist_conversations(h, collect, c), 0);
    ASSERT_EQ(c->n, 2);
    ASSERT_STR(c->v[0].peer, "bob");
    ASSERT_EQ(c->v[0].r.msg_id, 501);
    free(c);
    close_hist(h, &loop);
    remove_home();
}

static void test_schema1_upgrade(void) { upgrade_from(1); }
static void test_schema2_upgrade(void) { upgrade_from(2); }

TEST_MAIN(T(test_open_private), T(test_refuses_newer_schema), T(test_outbox_and_states),
          T(test_empty_history), T(test_received_once), T(test_conversations),
          T(test_one_commit_per_pass), T(test_text_bytes), T(test_survives_kill9),
          T(test_kill9_across_checkpoints), T(test_schema1_upgrade),
          T(test_schema2_upgrade))

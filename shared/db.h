/* db: one SQLite file on a libuv loop, with group commit.  Both programs
 * keep their durable state this way: the tracker's registry and mailboxes,
 * the peer's history and outbox.  This file owns the connection, the
 * schema migrations and the batch; the modules above it own their SQL.
 *
 * Writes are grouped: the first write of a loop pass opens a transaction
 * (BEGIN IMMEDIATE) and starts a check handle (plus an idle handle so the
 * loop cannot block in poll with a batch open); the check callback ends
 * the pass.  Reads share one read transaction per pass.  Never one fsync
 * per write, and never an fsync of the loop's own with a sync thread.
 * Three rhythms, chosen by the schema (db_schema.sync_thread):
 *
 *   DB_SYNC_LOOP (0, the default): the check callback commits with
 *   synchronous=FULL, one fsync of the -wal for the whole pass on the
 *   loop, then fires the waiters: they survive a power loss.
 *
 *   DB_SYNC_WAIT (the tracker's registry): the loop commits with synchronous=OFF (write()s of WAL
 *   frames only) and a thread of this db fdatasync()s the -wal file; the
 *   waiters of that commit fire on the loop once the fsync that covers it
 *   completed (they survive a power loss).  Meanwhile the loop goes on and
 *   its new writes gather in the next transaction, committed as soon as
 *   that fsync is back: one commit and one fsync per round trip to the
 *   disk, however many passes it spanned (PostgreSQL's WAL writer).
 *
 *   DB_SYNC_BEHIND (the peer's history): the loop commits with
 *   synchronous=OFF at the end of the pass and fires the waiters at once:
 *   the commit is in the kernel, so a SIGKILL at any instant loses none of
 *   it; the thread fsyncs what was committed within DB_SYNC_GAP_MS, which
 *   bounds what a power loss can take back (SQLite's synchronous=NORMAL
 *   leaves that unbounded, until a checkpoint).  While input is ready the
 *   pass's batch stays open a few passes more (a commit costs ~10 WAL pages
 *   whatever it holds).  Chosen by measurement: waiting for the disk on
 *   every hop of a chat message (four per echoed message in fig. 5) halves
 *   the message rate, bound by the fsync latency (0.1 to 4 ms here).
 *
 * With a sync thread the loop connection never checkpoints (with
 * synchronous=OFF a checkpoint would not sync the database file before
 * the -wal restarts): the thread does, on a second connection with
 * synchronous=FULL, and the loop waits for it only at the end, so that
 * the -wal restarts (request_sync in db.c).  A write marked as a hint
 * (db_begin_hint) asks for no commit of its own: it rides with the next
 * batch, or a lazy timer commits it. */
#ifndef PARLEY_DB_H
#define PARLEY_DB_H

#include "log.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct db db;

/* Fires from the loop once the batch it waited for is on disk (see
 * db_wait): status 0 once the batch committed and was synced (or when the
 * pass had no write), or a negative error when the commit or its fsync
 * failed (the batch's writes may be lost). */
typedef void (*db_done_cb)(int status, void *arg);

/* db_schema.sync_thread: when a waiter fires.
 *   DB_SYNC_LOOP    after the commit and its fsync, both in the loop;
 *   DB_SYNC_WAIT    after the fsync on the sync thread that covers its
 *                   commit (power loss loses nothing acknowledged);
 *   DB_SYNC_BEHIND  right after the commit (a SIGKILL loses nothing
 *                   acknowledged); the thread fsyncs what was committed at
 *                   most DB_SYNC_GAP_MS later (plus the fsync's own time),
 *                   which bounds what a power loss can take back. */
enum { DB_SYNC_LOOP, DB_SYNC_WAIT, DB_SYNC_BEHIND };
#define DB_SYNC_GAP_MS 5

typedef struct db_schema {
    /* Ordered migrations: entry i brings PRAGMA user_version from i to i+1
     * and ends by setting it.  Append only; never edit a released entry. */
    const char *const *migrations;
    int n;
    const char *what;    /* for messages: "tracker database", "history" */
    const char *hint;    /* what the user can do: "use --db to pick another file" */
    const char *at_open; /* optional SQL run in the migration transaction */
    /* Optional C run in that transaction after at_open, for what SQL cannot
     * compute (the tracker's name skeletons): SQLITE_OK, or an SQLite error
     * code with the whole message for the user in err. */
    int (*at_open_c)(sqlite3 *sq, void *arg, char *err, size_t errlen);
    void *at_open_arg;
    int private_file;    /* create mode 0600 and refuse a file group or others can read */
    int sync_thread;     /* DB_SYNC_LOOP (0), DB_SYNC_WAIT or DB_SYNC_BEHIND, below */
} db_schema;

/* Opens or creates path (WAL; synchronous=FULL, or OFF with the sync
 * thread, see above), applies the migrations the file lacks and runs
 * at_open and at_open_c, all in one transaction.  lg must outlive
 * the db.  0 with *out set, or a negative error with a message for the
 * user in err (a newer schema than this program knows: UV_EINVAL; a private
 * file others can read: UV_EACCES). */
int db_open(uv_loop_t *loop, const char *path, const db_schema *schema, const logger *lg, db **out,
            char *err, size_t errlen);

/* Commits what is pending, waits for its fsync and fires its waiters
 * (from inside this call), finalizes every statement
 * made with db_prepare, closes the connection and the loop handles; the
 * memory is freed once the loop ran the close callbacks.  NULL is a no-op. */
void db_close(db *d);

/* A statement kept for the db's life (finalized by db_close).  0 or a
 * negative error (logged). */
int db_prepare(db *d, const char *sql, sqlite3_stmt **st);

/* db_prepare for each of the n statements sql[i] into st[i] (a module's
 * table of them, made at open).  0, or a negative error with a message for
 * the user in err. */
int db_prepare_all(db *d, const char *const *sql, int n, sqlite3_stmt **st, char *err,
                   size_t errlen);

/* Steps st, which returns no rows, then resets it and clears its bindings.
 * 0 or a negative error (logged with the SQLite message). */
int db_run(db *d, sqlite3_stmt *st);

/* Resets st after reading rows from it and clears its bindings. */
void db_done(sqlite3_stmt *st);

/* Joins the pass's write batch, opening it if needed; every write goes
 * through here first (or through db_begin_hint).  0 or a negative error. */
int db_begin_write(db *d);

/* db_begin_write for a write nobody waits for and that is worth no commit
 * of its own (a state that only saves a resend): with the sync thread it
 * joins the open batch or opens one that the next db_begin_write, db_wait
 * or, at the latest, a lazy timer (DB_LAZY_MS) commits.  In the loop
 * rhythm it is db_begin_write. */
int db_begin_hint(db *d);
#define DB_LAZY_MS 100

/* Joins the pass's read transaction (or the write batch); reads of one
 * pass share it, so SQLite takes its WAL read lock once per pass.  It ends
 * with the pass; other processes are never blocked by it.  0 or an error. */
int db_begin_read(db *d);

/* Keeps the pass's end handle armed without a transaction (for a caller
 * with per-pass state to reset at batch end). */
void db_touch(db *d);

/* cb(status, arg) fires once this pass's batch (if any) committed and is
 * on disk, and after every earlier batch's waiters: at the end of this
 * pass in the loop rhythm, when the fsync covering the batch is back with
 * the sync thread; never from inside this call.  0 or UV_ENOMEM.  db_unwait
 * takes back the last waiter added (a caller that reserved one before a
 * write that then failed). */
int db_wait(db *d, db_done_cb cb, void *arg);
void db_unwait(db *d);

/* cb(arg, status) fires at the end of every pass that used the database,
 * after the waiters it fired, with the commit's status; with DB_SYNC_WAIT
 * also after the waiters an fsync's answer fired, with its status.  NULL
 * unsets. */
void db_on_batch_end(db *d, void (*cb)(void *arg, int status), void *arg);

/* cb(arg) fires just before each COMMIT of a write batch, inside its
 * transaction: the place for a module's per-batch rows (a summary kept in
 * memory while the batch gathered).  Whatever it fails to write, the batch
 * commits without (a failure that rolled the batch back fails the commit
 * as usual).  NULL unsets. */
void db_on_pre_commit(db *d, void (*cb)(void *arg), void *arg);

/* cb(arg, ns) fires after each COMMIT with how long it took on the loop
 * (with the sync thread: without the fsync).  NULL unsets. */
void db_on_commit(db *d, void (*cb)(void *arg, uint64_t ns), void *arg);

/* The connection, for sqlite3_changes, sqlite3_errmsg and the like;
 * statements are made with db_prepare. */
sqlite3 *db_sqlite(db *d);

/* Runs q (a PRAGMA answering one integer, like "PRAGMA user_version") on a
 * connection of any kind: SQLITE_OK with *out set, or an SQLite code. */
int db_int_pragma(sqlite3 *sq, const char *q, int *out);

/* An SQLite result code as a libuv error. */
int db_error(int rc);

#endif

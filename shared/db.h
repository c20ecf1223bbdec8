/* db: one SQLite file on a libuv loop, with group commit.  Both programs
 * keep their durable state this way: the tracker's registry and mailboxes,
 * the peer's history and outbox.  This file owns the connection, the
 * schema migrations and the batch; the modules above it own their SQL.
 *
 * Writes are grouped: the first write of a loop pass opens a transaction
 * (BEGIN IMMEDIATE) and starts a check handle (plus an idle handle so the
 * loop cannot block in poll with a batch open); the check callback commits
 * once (synchronous=FULL: one fsync for the whole pass) and only then fires
 * the batch's waiters, so whatever they acknowledge survives a crash
 * without one fsync per write.  Reads share one read transaction per pass. */
#ifndef PARLEY_DB_H
#define PARLEY_DB_H

#include "log.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct db db;

/* Fires from the loop at the end of the pass whose batch it waited for:
 * status 0 once the batch committed (or when the pass had no write), or a
 * negative error when the commit failed (the batch's writes are lost). */
typedef void (*db_done_cb)(int status, void *arg);

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
} db_schema;

/* Opens or creates path (WAL, synchronous=FULL), applies the migrations
 * the file lacks and runs at_open and at_open_c, all in one transaction.  lg must outlive
 * the db.  0 with *out set, or a negative error with a message for the
 * user in err (a newer schema than this program knows: UV_EINVAL; a private
 * file others can read: UV_EACCES). */
int db_open(uv_loop_t *loop, const char *path, const db_schema *schema, const logger *lg, db **out,
            char *err, size_t errlen);

/* Commits what is pending (firing its waiters), finalizes every statement
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
 * through here first.  0 or a negative error. */
int db_begin_write(db *d);

/* Joins the pass's read transaction (or the write batch); reads of one
 * pass share it, so SQLite takes its WAL read lock once per pass.  It ends
 * with the pass; other processes are never blocked by it.  0 or an error. */
int db_begin_read(db *d);

/* Keeps the pass's end handle armed without a transaction (for a caller
 * with per-pass state to reset at batch end). */
void db_touch(db *d);

/* cb(status, arg) fires at the end of this pass, after its batch (if any)
 * committed; never from inside this call.  0 or UV_ENOMEM.  db_unwait
 * takes back the last waiter added (a caller that reserved one before a
 * write that then failed). */
int db_wait(db *d, db_done_cb cb, void *arg);
void db_unwait(db *d);

/* cb(arg, status) fires at the end of every pass that used the database,
 * after the waiters, with the batch's status as they got it.  NULL unsets. */
void db_on_batch_end(db *d, void (*cb)(void *arg, int status), void *arg);

/* cb(arg, ns) fires after each COMMIT with how long it took.  NULL unsets. */
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

/* registry_pg: the users table in PostgreSQL (libpq), behind the registry
 * (registry.h) when the tracker runs with --registry CONNINFO, so that
 * several trackers share one registry.  registry.c decides what is stored
 * (endpoints joined, skeletons, list bounds) and calls in here for the SQL;
 * the only other user is mailbox_pg.c, whose statements run on the same
 * connection (rpg_add_statements and below).  This file owns the schema
 * of both (the migrations) and is the only one that speaks libpq.
 *
 * A lookup's read joins the write batch below (rpg_lookup_start: the
 * batch's lookups in one statement, after its writes), and so do list
 * pages, online queries and the mailbox's windows and acknowledgements
 * (rpg_queue_rows: their rows are handed over once the batch committed);
 * the other reads (rpg_lookup, rpg_query) are one blocking round trip on
 * the loop thread (a prepared statement), bounded by RPG_QUERY_MS on the
 * client side and a statement_timeout on the server side, because their
 * callers are synchronous (a mail_put's checks, the mailbox sweep, and
 * the few lookups outside requests).  A registration reads nothing on
 * its own: the name's owner and look-alike checks are subqueries of its
 * write (rpg_claim), so it costs only its share of a commit (0.27x to
 * 0.62x the SQLite tracker's rate when that went in).  Writes (claims,
 * presence) are queued and sent at the end of the loop pass as one
 * pipeline, an implicit transaction: one commit and one WAL flush for the
 * pass, however many it holds (the group commit SQLite's registry does
 * too).  The loop does not wait for it: the answers are read on the watch
 * as they come, and the callbacks fire then; what is queued meanwhile is
 * the next batch, sent once this one is answered (one commit in flight,
 * as PostgreSQL's own WAL writer), so the batch grows with the load and a
 * slow commit holds up only the writes, not the tracker.  A read waits
 * for the batch in flight first (drain: it sees those writes), and the
 * callbacks that batch answers then come from a timer, not from inside
 * the read.
 * While the connection is down every call answers REG_EUNAVAIL at once and
 * a timer reconnects with backoff (RPG_RETRY_MIN_MS doubling up to
 * RPG_RETRY_MAX_MS), each attempt made on the loop (PQconnectPoll on a
 * uv_poll, RPG_CONNECT_MS at most) so that a server that does not answer
 * never blocks it; an idle connection is watched too, so a server that
 * goes away is noticed without waiting for a query.  Only the first
 * connection, at open, blocks (the tracker is not serving yet). */
#ifndef PARLEY_REGISTRY_PG_H
#define PARLEY_REGISTRY_PG_H

#include "registry.h"

#define RPG_CONNECT_MS 2000 /* one connection attempt, at most */
#define RPG_QUERY_MS 3000   /* one round trip, at most (statement_timeout is 2 s) */
#define RPG_RETRY_MIN_MS 100
#define RPG_RETRY_MAX_MS 5000
#define RPG_SWEEP_MS 1000   /* how often the dead trackers' users are looked for */
/* Statements and parameter bytes in one batch at most (but one statement
 * however large: a mail box, 8 KB at most, or the names of a subscribe,
 * PRES_SUBS_MAX of them); more wait for the next.  Keeps
 * what a batch sends below what the sockets hold (the receiving side's
 * buffer alone starts at 128 KB on Linux), so that sending it does not
 * block the loop while the server does not read (a lock). */
#define RPG_BATCH_MAX 128
#define RPG_BATCH_BYTES (48 * 1024)

/* Each tracker LISTENs on its own channel, this prefix and its id, for the
 * messages other trackers send to its users (rpg_forward). */
#define RPG_CHANNEL "parley_to_"
/* PostgreSQL refuses a NOTIFY payload of 8000 bytes or more. */
#define RPG_PAYLOAD_MAX 8000

typedef struct reg_pg reg_pg;

/* Connects to conninfo (a libpq connection string or URI), holds a lease of
 * lease_s seconds (renewed every third of it; the users of a tracker whose
 * lease ran out are marked offline by the others), applies the
 * schema migrations under an advisory lock (safe when several trackers
 * start at once), prepares the statements and marks offline the users this
 * tracker (tracker_id, stable across its restarts) had left online: no
 * session survives a restart, but other trackers' users stay online.
 * 0 with *out set, or a negative error with a message for the user in err. */
int rpg_open(uv_loop_t *loop, const char *conninfo, const char *tracker_id, unsigned lease_s,
             const logger *lg, reg_pg **out, char *err, size_t errlen);

/* cb(arg) fires from the loop after a reconnection: this tracker's lease may
 * have run out meanwhile and its users been swept offline by the others,
 * so the caller writes its live users' presence again. */
void rpg_on_reconnected(reg_pg *p, void (*cb)(void *arg), void *arg);

/* cb(arg, name, folded, is_online) fires from the loop when a user of
 * another tracker on the database came online or went offline (LISTEN
 * parley_presence, announced by a trigger when the change commits).  NULL
 * unsets. */
typedef void (*rpg_presence_cb)(void *arg, const char *name, const char *folded, int is_online);
void rpg_on_presence(reg_pg *p, rpg_presence_cb cb, void *arg);

/* Queues payload (text, shorter than RPG_PAYLOAD_MAX) for the tracker whose
 * id is tracker, about its user folded, in the pass's batch: a NOTIFY on
 * that tracker's channel, heard there once the batch commits (and lost if
 * it fails: what is sent this way must be a request its sender can time
 * out).  0, REG_EUNAVAIL, UV_E2BIG or UV_ENOMEM. */
int rpg_forward(reg_pg *p, const char *tracker, const char *folded, const char *payload);

/* cb(arg, payload) fires from the loop for each message another tracker
 * sent to this one (the payload lives during the call).  NULL unsets. */
typedef void (*rpg_forward_cb)(void *arg, const char *payload);
void rpg_on_forward(reg_pg *p, rpg_forward_cb cb, void *arg);

/* This tracker's id, the one in parley_users.tracker for its users. */
const char *rpg_tracker_id(const reg_pg *p);

/* ---- the other tables on the same connection (mailbox_pg.c) ---- */

#define RPG_MAX_PARAMS 12 /* parameters of one statement, columns of one row */

/* Adds n statements (texts must outlive p), prepared now and at every
 * reconnection with the registry's own; their ids are *base + i.  Call once,
 * right after rpg_open.  0 or a negative error. */
int rpg_add_statements(reg_pg *p, const char *const *texts, int n, int *base);

/* One row of a result, in text (bytea in hex): vals[0..ncols) with their
 * lengths.  Return nonzero to stop. */
typedef int (*rpg_row_cb)(void *arg, const char *const *vals, const int *lens, int ncols);

/* Runs statement q now, one round trip (outside the pass's batch: a read,
 * or a write committed by itself), handing its rows to cb (may be NULL);
 * *affected (may be NULL) gets the rows it changed.  Parameters as for
 * the registry's statements (v[i] text, or binary where bin[i], of len[i]
 * bytes).  0, REG_EUNAVAIL or UV_EIO. */
int rpg_query(reg_pg *p, int q, int n, const char *const *v, const int *len, const int *bin,
              const char *what, rpg_row_cb cb, void *arg, uint64_t *affected);

/* Queues statement q for the next batch (the pass's, or, while one is in
 * flight, the one sent once it is answered; v[0], a folded name, orders
 * it among the batch's writes); cb (may be NULL) fires once it committed,
 * with its status.  0, REG_EUNAVAIL or UV_ENOMEM (no callback then). */
int rpg_queue(reg_pg *p, int q, int n, const char *const *v, const int *len, const int *bin,
              reg_done_cb cb, void *arg);

/* Queues statement q (a read, or a write with RETURNING) for the next
 * batch, at its place in the batch's order (as rpg_queue; v[0] orders
 * it): rows(rows_arg, ...) for each of its rows
 * once the batch committed (only the rows of the try that committed: a
 * batch sent again after a deadlock reads them again; none when it
 * failed), until rows returns nonzero, then cb(status, arg) (0,
 * REG_EUNAVAIL or UV_EIO).  0,
 * REG_EUNAVAIL or UV_ENOMEM now (no callback then). */
int rpg_queue_rows(reg_pg *p, int q, int n, const char *const *v, const int *len,
                   const int *bin, rpg_row_cb rows, void *rows_arg, reg_done_cb cb, void *arg);

/* cb(status, arg) fires once the batch holding what was queued so far
 * committed (0, as soon as no batch is in flight, when it holds no
 * write).  0 or UV_ENOMEM. */
int rpg_wait(reg_pg *p, reg_done_cb cb, void *arg);

/* Closes the connection and the handles; freed once the loop ran their
 * close callbacks.  NULL is a no-op. */
void rpg_close(reg_pg *p);

/* Reads one user but for the endpoints, which go to endpoints (cap bytes)
 * as stored, space-separated: 0, UV_ENOENT, REG_EUNAVAIL or another
 * negative error. */
int rpg_lookup(reg_pg *p, const char *folded, reg_user *u, char *endpoints, size_t cap);

/* rpg_lookup without waiting: the read joins the next batch (one statement
 * for all of its lookups, Q_GET_MANY, after the batch's writes, which it
 * sees), and
 * cb(status, arg) fires from the loop once the batch is answered: 0 with
 * u and endpoints (cap bytes) filled as rpg_lookup fills them, UV_ENOENT,
 * REG_EUNAVAIL or UV_EIO.  u and endpoints must stay valid until then.
 * REG_EUNAVAIL or UV_ENOMEM now: no callback. */
int rpg_lookup_start(reg_pg *p, const char *folded, reg_user *u, char *endpoints, size_t cap,
                     reg_done_cb cb, void *arg);

/* Which of folded[0..n) are online, without waiting: one statement in the
 * next batch (at its place in the batch's order, see reg_online_start);
 * rows(rows_arg, vals, lens, 3) for each online one (its name
 * as stored, its folded form, the id of the tracker holding it), then
 * cb(status, arg) once the batch is answered (0, REG_EUNAVAIL or UV_EIO).
 * 0, REG_EUNAVAIL or UV_ENOMEM now (no callback then). */
int rpg_online_start(reg_pg *p, const char *const *folded, size_t n, rpg_row_cb rows,
                     void *rows_arg, reg_done_cb cb, void *arg);

/* Queues a registration of folded (spelled name) with key, atomic across
 * trackers, in one statement of the next batch (no round trip of its
 * own): it binds a name nobody holds when no name of another key has the
 * same skeleton and name_ok (the name's scripts passed conf_check),
 * updates the endpoints of a name this key holds, and marks it online at
 * this tracker (a new name without a skeleton, NULL, is not bound: UV_EIO).
 * 0, and cb(status, arg) fires from the loop once that batch committed:
 * 0 with the name as
 * first bound in stored; UV_EEXIST when another key holds the name (or
 * another tracker bound it first); REG_ECONFUSABLE for a new name that
 * looks like another key's, that name in stored; REG_EBADNAME for a new
 * name when name_ok is 0; REG_EUNAVAIL or UV_EIO when the batch failed.
 * stored (NAME_BUFLEN bytes) must stay valid until cb fired.  REG_EUNAVAIL
 * or UV_ENOMEM now: no callback. */
int rpg_claim(reg_pg *p, const char *name, const char *folded, const unsigned char key[IDENT_PK],
              const char *endpoints, int64_t now, const char *skeleton, int name_ok,
              char stored[NAME_BUFLEN], reg_done_cb cb, void *arg);

/* cb(arg) fires after each batch's callbacks. */
void rpg_on_batch_done(reg_pg *p, void (*cb)(void *arg), void *arg);

/* Queues the presence of folded for the pass's batch, written if this
 * tracker holds its session (a user who registered again at another
 * tracker is that one's to clear).  An offline that cannot be written
 * while the server is away is kept and written after the reconnection.
 * 0, or a negative error. */
int rpg_presence(reg_pg *p, const char *folded, int is_online, int64_t last_seen);

/* Online users with from <= folded (from < folded when after) and
 * folded < upper, in byte order, at most limit + 1 of them (reg_list's
 * pager counts them), without waiting: one statement in the next batch;
 * rows(rows_arg, vals, lens, 2) for each (its name as stored, its folded
 * form) in that order, as rpg_queue_rows hands them over (once the batch
 * committed), then cb(status, arg) (0, REG_EUNAVAIL or UV_EIO).  0,
 * REG_EUNAVAIL or UV_ENOMEM now (no callback then). */
int rpg_list_start(reg_pg *p, const char *from, int after, const char *upper, size_t limit,
                   rpg_row_cb rows, void *rows_arg, reg_done_cb cb, void *arg);

#endif

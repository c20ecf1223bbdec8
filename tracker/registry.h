/* registry: the tracker's durable memory, one SQLite file (or, for the
 * users table, a PostgreSQL database several trackers share:
 * reg_open_shared, registry_pg.h).  It binds each
 * username (by its folded form) to the first Ed25519 key that registered it,
 * remembers the endpoints and last-seen time, and knows who is online so the
 * list can page through online users by folded name.
 *
 * Writes are grouped (shared/db.h): each one lands in an open transaction
 * that is committed once per loop pass, and only then do the callbacks of
 * that batch fire, so an acknowledged registration survives a crash without
 * one fsync per request.  Reads are synchronous indexed queries and see
 * queued writes.
 *
 * With PostgreSQL the users table lives there (registry_pg.h): every read
 * is one round trip, with no lookup cache (another tracker may have
 * changed any row), and sees the writes of the batch in flight but not
 * those still queued; the _start reads (lookup, list, online) instead join
 * the next batch and answer from its callback; the pass's writes go as one transaction at its end
 * (or, while a batch is in flight, with the next one), answered without
 * the loop waiting, and a claim's callback fires once PostgreSQL committed
 * it, with UV_EEXIST when another tracker bound the name first.  The
 * look-alike check is not atomic across trackers: two trackers binding two
 * look-alike names of two keys at the same instant may both succeed (the
 * name -> key binding itself is).  The mailbox
 * uses the same connection (mailbox_pg.c, reg_pg_conn); the SQLite file
 * keeps this tracker's id. */
#ifndef PARLEY_REGISTRY_H
#define PARLEY_REGISTRY_H

#include "addr.h"
#include "identity.h"
#include "log.h"
#include "name.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define REG_MAX_ENDPOINTS 16
#define REG_LIMIT_DEFAULT 100
#define REG_LIMIT_MAX 500
#define REG_HOME_BUFLEN 33 /* a tracker id: 32 hex digits */

/* The shared registry cannot be reached now (PostgreSQL down or not
 * answering); the tracker answers db_unavailable.  SQLite never says it. */
#define REG_EUNAVAIL UV_ENOTCONN
/* reg_claim's verdicts on a name nobody holds yet: it looks like a name of
 * another key; its scripts are refused (confusable.h). */
#define REG_ECONFUSABLE UV_EADDRINUSE
#define REG_EBADNAME UV_EILSEQ

typedef struct registry registry;

/* One user's record, a plain value. */
typedef struct reg_user {
    char name[NAME_BUFLEN];   /* as first registered */
    unsigned char key[IDENT_PK];
    char endpoints[REG_MAX_ENDPOINTS][ADDR_STRLEN];
    size_t nendpoints;
    int64_t last_seen;        /* unix seconds */
    int online;               /* the stored flag; the live session table is the truth */
    char home[REG_HOME_BUFLEN]; /* shared registry: the id of the tracker holding its
                                 * session (or last held it); "" on SQLite */
} reg_user;

/* Fires from the loop once the batch holding the write committed: status 0,
 * or a negative error when the commit failed (the write is lost). */
typedef void (*reg_done_cb)(int status, void *arg);

/* One online user in a list page: return nonzero to stop before the limit
 * (the page then reports more).  Strings live only during the call. */
typedef int (*reg_list_cb)(const char *name, const char *folded, void *arg);

/* Opens or creates the database at path (WAL, synchronous=FULL), runs the
 * schema migrations, marks everyone offline (no session survives a
 * restart) and computes the look-alike skeletons names lack.  lg must
 * outlive the registry.  0 with *out set, or a negative error with a
 * message for the user in err. */
int reg_open(uv_loop_t *loop, const char *path, const logger *lg, registry **out, char *err,
             size_t errlen);

/* reg_open, but the users table is the PostgreSQL one at conninfo (a libpq
 * connection string or URI), shared with the other trackers using it; path
 * holds the rest; lease_s is how long the others wait for this tracker's
 * heartbeat before they mark its users offline (its --ttl).  Fails when
 * PostgreSQL cannot be reached now (afterwards the registry reconnects by
 * itself). */
int reg_open_shared(uv_loop_t *loop, const char *path, const char *conninfo, unsigned lease_s,
                    const logger *lg, registry **out, char *err, size_t errlen);

/* With a shared registry, cb(arg) fires after a reconnection to it: the
 * other trackers may have marked this one's users offline meanwhile (its
 * lease ran out), so the caller records its live sessions online again
 * (reg_presence).  NULL unsets. */
void reg_on_reconnected(registry *r, void (*cb)(void *arg), void *arg);

/* Whether the users table is shared with other trackers (reg_open_shared):
 * then a user's stored online flag is the truth for users of other trackers. */
int reg_shared(const registry *r);

/* This tracker's id in a shared registry (reg_user.home of its users), or
 * "" on SQLite. */
const char *reg_home(const registry *r);

/* Whether u, just read, is online at another tracker of a shared registry:
 * a request for u then goes there (reg_forward). */
int reg_elsewhere(const registry *r, const reg_user *u);

/* With a shared registry: queues payload (text) for the tracker whose id is
 * home, about its user folded; sent with the pass's batch and heard there
 * once it committed (the cb of reg_on_forward fires at that tracker), lost
 * if the batch fails.  0; UV_ENOTSUP on SQLite; REG_EUNAVAIL; UV_E2BIG
 * (8000 bytes or more); UV_ENOMEM. */
int reg_forward(registry *r, const char *home, const char *folded, const char *payload);

/* cb(arg, payload) fires from the loop for each payload another tracker
 * sent here with reg_forward; the pass then ends like one that used the
 * database (reg_on_batch_end fires).  Never on SQLite.  NULL unsets. */
typedef void (*reg_forward_cb)(void *arg, const char *payload);
void reg_on_forward(registry *r, reg_forward_cb cb, void *arg);

/* Commits what is pending (firing its callbacks), closes the database and
 * the loop handles.  The memory is freed once the loop has run the close
 * callbacks.  NULL is a no-op. */
void reg_close(registry *r);

/* Registers name (valid, NUL-terminated; folded is its name_fold form) with
 * key and endpoints, at time now, in SQLite (a shared registry takes
 * reg_claim instead: UV_ENOTSUP).  The first registration binds the name to
 * key; later ones with the same key update endpoints and last_seen.  The
 * same write marks the user online (one write per registration); a caller
 * that then cannot serve the session clears it with reg_presence.  stored
 * gets the name as first registered.
 * Returns 0 and cb fires after the commit; UV_EEXIST when the name is bound
 * to another key; another negative error on database failure (no callback
 * in either case). */
int reg_bind(registry *r, const char *name, const char *folded, const unsigned char key[IDENT_PK],
             const char *const *endpoints, size_t nendpoints, int64_t now,
             char stored[NAME_BUFLEN], reg_done_cb cb, void *arg);

/* A registration on the shared registry: reg_bind with the checks a caller
 * makes first on SQLite (reg_lookup for the key that holds the name,
 * reg_lookalike and the scripts' verdict, name_ok, for a new one) made by
 * the database in the bind's own statement, so it costs no round trip of
 * its own, atomically across trackers.  0, and cb(status, arg) fires once
 * the batch holding it committed: 0 (stored holds the name as first
 * registered), UV_EEXIST (another key holds the name, or another tracker
 * bound it first), REG_ECONFUSABLE (a new name that looks like a name of
 * another key: stored holds that name), REG_EBADNAME (a new name, and
 * name_ok was 0), REG_EUNAVAIL or UV_EIO.  stored must stay valid until cb
 * fired.  A negative error now (UV_ENOTSUP on SQLite, UV_EINVAL,
 * REG_EUNAVAIL, UV_ENOMEM): no callback. */
int reg_claim(registry *r, const char *name, const char *folded, const unsigned char key[IDENT_PK],
              const char *const *endpoints, size_t nendpoints, int64_t now, int name_ok,
              char stored[NAME_BUFLEN], reg_done_cb cb, void *arg);

/* Whether a new name of this folded form would look like a name bound to
 * another key than key: the same TR39 skeleton (confusable.h), one index
 * probe.  0 with the first such name, as stored, in other; UV_ENOENT when
 * there is none; or a negative error (UV_ENOTSUP on a shared registry,
 * where reg_claim checks).  reg_bind stores the skeleton of the
 * names it binds; names bound before it was stored get theirs at open. */
int reg_lookalike(registry *r, const char *folded, const unsigned char key[IDENT_PK],
                  char other[NAME_BUFLEN]);

/* Records that folded came online or went offline at last_seen.  Batched
 * like reg_bind, without a callback.  0 or a negative error. */
int reg_presence(registry *r, const char *folded, int is_online, int64_t last_seen);

/* The database under the registry, for the other tables in it
 * (mailbox.c); owned by the registry. */
struct db;
struct db *reg_db(registry *r);

/* The shared registry's PostgreSQL connection, for the other tables there
 * (mailbox_pg.c), or NULL on SQLite; owned by the registry. */
struct reg_pg;
struct reg_pg *reg_pg_conn(registry *r);

/* cb(arg) fires at the end of every loop pass that used the database,
 * after the callbacks of a committed batch, so a caller can act once per
 * batch (the server sends the pass's presence pushes together).  NULL
 * unsets it. */
void reg_on_batch_end(registry *r, void (*cb)(void *arg), void *arg);

/* cb(arg) fires when the registry finds that another process committed to
 * the database (an operator's --release), before the read that found it:
 * the registry dropped its cache, and a module counting the file's rows in
 * memory recounts them (mailbox.c).  NULL unsets it. */
void reg_on_outside_write(registry *r, void (*cb)(void *arg), void *arg);

/* With a shared registry, cb(arg, name, folded, is_online) fires from the
 * loop when a user of another tracker on it came online or went offline,
 * and the pass then ends like one that used the database (reg_on_batch_end
 * fires), so what cb queued goes out.  Never fires on SQLite.  NULL unsets. */
typedef void (*reg_presence_cb)(void *arg, const char *name, const char *folded, int is_online);
void reg_on_remote_presence(registry *r, reg_presence_cb cb, void *arg);

/* cb(arg, ns) fires after each write batch's COMMIT with how long it took
 * (for the metrics).  NULL unsets it. */
void reg_on_commit(registry *r, void (*cb)(void *arg, uint64_t ns), void *arg);

/* Reads one user.  0, UV_ENOENT, or a negative error. */
int reg_lookup(registry *r, const char *folded, reg_user *u);

/* reg_lookup that does not wait for a shared registry: there the read
 * joins the next batch and cb(status, arg) fires from the loop once it
 * is answered (status as reg_lookup returns; u, which must stay valid
 * until then, filled on 0), and this returns REG_PENDING.  On SQLite it is
 * reg_lookup, answered now (cb never fires).  REG_PENDING, or what
 * reg_lookup returns (then no callback). */
#define REG_PENDING 1
int reg_lookup_start(registry *r, const char *folded, reg_user *u, reg_done_cb cb, void *arg);

/* Which of folded[0..n) another tracker of the shared registry holds
 * online, without waiting (one statement in the next batch): each(arg,
 * name as stored, folded) for every such user, then done(status, arg)
 * from the loop once the batch is answered (0, REG_EUNAVAIL or UV_EIO;
 * from inside reg_close for what is pending then); each fires only once
 * the batch committed, for the rows of the try that did (a batch sent
 * again after a deadlock reads them again).  The query runs at its place
 * in the batch's order, not after its writes.
 * The names are copied.  0, or a negative error now (UV_ENOTSUP on SQLite,
 * REG_EUNAVAIL, UV_ENOMEM): no callback then. */
typedef void (*reg_online_cb)(void *arg, const char *name, const char *folded);
int reg_online_start(registry *r, const char *const *folded, size_t n, reg_online_cb each,
                     reg_done_cb done, void *arg);

/* The lookup cache's figures, for --metrics: records held now, and lookups
 * of existing names answered from memory (hits) or from SQLite (misses). */
typedef struct reg_cache_stats {
    size_t records;
    uint64_t hits, misses;
} reg_cache_stats;

void reg_get_cache_stats(const registry *r, reg_cache_stats *out);

/* Calls cb for at most limit online users in folded order, those whose folded
 * name starts with prefix ("" for all) and sorts after cursor (NULL or "" for
 * the first page).  *more is set when further users follow the last one
 * handed to cb; pass that one's folded name as the next cursor.
 * 0 or a negative error; UV_ENOTSUP on a shared registry (reg_list_start). */
int reg_list(registry *r, const char *prefix, const char *cursor, size_t limit, reg_list_cb cb,
             void *arg, int *more);

/* reg_list that does not wait for a shared registry: there the page's
 * read joins the next batch, and once it is answered cb fires for its
 * users and *more is set (both must stay valid until then), then
 * done(status, done_arg) (0, REG_EUNAVAIL or UV_EIO), and this returns
 * REG_PENDING.  On SQLite it is reg_list, answered now (done never
 * fires).  REG_PENDING, or what reg_list returns (then no callback). */
int reg_list_start(registry *r, const char *prefix, const char *cursor, size_t limit,
                   reg_list_cb cb, void *arg, int *more, reg_done_cb done, void *done_arg);

#endif

/* registry_pg: the registry's users table in PostgreSQL (registry_pg.h).
 * Only this file speaks libpq.  The connection is UP or DOWN (one
 * transition function, set_state); DOWN arms the reconnect timer, UP the
 * watch on the socket.  Round trips of reads block the loop for at most
 * RPG_QUERY_MS (await), and a connection that fails one is dropped, so a
 * server that hangs stalls the tracker once, not on every request; a batch
 * of writes is answered on the watch (read_answers), with a deadline of
 * its own. */
#include "registry_pg.h"

#include "grow.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entry i brings parley_schema.version from i to i+1.  Append only.  Names
 * are prefixed: the database may be shared with other applications.
 * COLLATE "C" keeps folded names in byte order, as SQLite's BINARY, so
 * list pages and their cursors are the same on both backends. */
static const char *const migrations[] = {
    "CREATE TABLE parley_users ("
    " folded text COLLATE \"C\" PRIMARY KEY,"
    " name text NOT NULL,"
    " key bytea NOT NULL CHECK (length(key) = 32),"
    " endpoints text NOT NULL DEFAULT '',"
    " last_seen bigint NOT NULL DEFAULT 0,"
    " online boolean NOT NULL DEFAULT false,"
    " created bigint NOT NULL,"
    " skeleton text COLLATE \"C\","
    " tracker text NOT NULL DEFAULT ''" /* the tracker id holding the session */
    ");"
    "CREATE INDEX parley_users_online ON parley_users (folded) WHERE online;"
    "CREATE INDEX parley_users_skeleton ON parley_users (skeleton);"
    "CREATE INDEX parley_users_tracker ON parley_users (tracker) WHERE online;",

    /* 2: presence across trackers.  Every change of a user's online flag
     * is announced on the channel parley_presence when it commits, as
     * "ONLINE TRACKER FOLDED NAME" (1 or 0; names hold no spaces), and
     * every tracker LISTENs: its peers hear of the users of the others. */
    "CREATE FUNCTION parley_presence_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF TG_OP = 'INSERT' OR NEW.online IS DISTINCT FROM OLD.online THEN"
    "   PERFORM pg_notify('parley_presence', (CASE WHEN NEW.online THEN '1' ELSE '0' END)"
    "    || ' ' || NEW.tracker || ' ' || NEW.folded || ' ' || NEW.name);"
    "  END IF;"
    "  RETURN NULL;"
    " END $$;"
    "CREATE TRIGGER parley_users_presence AFTER INSERT OR UPDATE OF online ON parley_users"
    " FOR EACH ROW EXECUTE FUNCTION parley_presence_notify();",

    /* 3: leases.  Each tracker renews its row every third of its lease
     * (its --ttl); the users of a tracker silent longer than its lease are
     * marked offline by the others (a tracker killed for good). */
    "CREATE TABLE parley_trackers ("
    " id text PRIMARY KEY,"
    " seen timestamptz NOT NULL,"   /* the server's clock: no skew between trackers */
    " lease integer NOT NULL"       /* seconds */
    ");",

    /* 4: the mailbox (mailbox_pg.c), as SQLite's (schema.c) but shared:
     * mail left at one tracker is delivered by whichever tracker its
     * recipient registers with. */
    "CREATE TABLE parley_mail ("
    " mid bigserial PRIMARY KEY,"
    " recipient text COLLATE \"C\" NOT NULL,"  /* folded */
    " recipient_name text NOT NULL,"           /* as stored */
    " sender text COLLATE \"C\" NOT NULL,"
    " sender_name text NOT NULL,"
    " sender_key bytea NOT NULL,"
    " msg_id bigint NOT NULL,"                 /* the sender's uint64, bit for bit */
    " size integer NOT NULL,"
    " stored bigint NOT NULL,"
    " expires bigint NOT NULL,"
    " box bytea NOT NULL,"
    " UNIQUE (sender, recipient, msg_id)"
    ");"
    "CREATE INDEX parley_mail_recipient ON parley_mail (recipient, mid);"
    "CREATE INDEX parley_mail_expires ON parley_mail (expires);"
    "CREATE TABLE parley_receipts ("
    " rid bigserial PRIMARY KEY,"
    " sender text COLLATE \"C\" NOT NULL,"
    " recipient text NOT NULL,"                /* as stored */
    " msg_id bigint NOT NULL,"
    " status text NOT NULL,"
    " expires bigint NOT NULL"
    ");"
    "CREATE INDEX parley_receipts_sender ON parley_receipts (sender, rid);"
    "CREATE INDEX parley_receipts_msg ON parley_receipts (sender, msg_id);"
    "CREATE INDEX parley_receipts_expires ON parley_receipts (expires);",
};
#define NMIGRATIONS ((int)(sizeof migrations / sizeof *migrations))

/* pg_advisory_xact_lock's key for the migrations: "parley" in ASCII. */
#define MIGRATION_LOCK "112585675188601"

enum { Q_GET, Q_GET_MANY, Q_ONLINE_MANY, Q_CLAIM, Q_PRESENCE, Q_LIST_FROM, Q_LIST_AFTER, Q_OFFLINE_MINE,
       Q_HEARTBEAT, Q_SWEEP, Q_FORWARD, Q_COUNT };

#define LIST(op) "SELECT name, folded FROM parley_users WHERE online AND folded " op " $1" \
                 " AND folded < $2 ORDER BY folded LIMIT $3"

static const char *const sql[Q_COUNT] = {
    [Q_GET] = "SELECT name, key, endpoints, last_seen, online, tracker FROM parley_users"
              " WHERE folded = $1",
    /* The lookups of one batch in one statement (send_batch): one
     * executor start for all of them, their rows told apart by folded. */
    [Q_GET_MANY] = "SELECT name, key, endpoints, last_seen, online, tracker, folded"
                   " FROM parley_users WHERE folded = ANY ($1::text[]) ORDER BY folded",
    /* Which of these are online, and where (rpg_online_start). */
    [Q_ONLINE_MANY] = "SELECT name, folded, tracker FROM parley_users WHERE online"
                      " AND folded = ANY ($1::text[])",
    /* A registration in one statement of the pass's batch, so that it
     * costs no round trip of its own: the name's current key and a
     * look-alike of another key (the snapshot's), then the upsert, which
     * binds a new name only when no look-alike exists and its scripts
     * passed ($8), and updates an existing one only for the same key.  The
     * name -> key binding is decided by the primary key: of two trackers
     * racing for one name with two keys, one inserts and the other's
     * update is filtered out by the WHERE (no name returned: taken).
     * Answers (the name as bound or NULL, whether the name existed, the
     * look-alike or NULL); rpg_claim says what they mean. */
    [Q_CLAIM] = "WITH cur AS (SELECT key FROM parley_users WHERE folded = $1::text),"
                " la AS (SELECT name FROM parley_users WHERE skeleton = $6::text"
                " AND key <> $3::bytea AND folded <> $1::text LIMIT 1),"
                " up AS (INSERT INTO parley_users AS u (folded, name, key, endpoints, last_seen,"
                " online, created, skeleton, tracker) SELECT $1::text, $2::text, $3::bytea,"
                " $4::text, $5::bigint, true, $5::bigint, $6::text, $7::text"
                " WHERE EXISTS (SELECT 1 FROM cur WHERE key = $3::bytea) OR NOT EXISTS"
                " (SELECT 1 FROM cur) AND NOT EXISTS (SELECT 1 FROM la) AND $8::boolean"
                " AND $6::text IS NOT NULL"
                " ON CONFLICT (folded) DO UPDATE SET endpoints = EXCLUDED.endpoints,"
                " last_seen = EXCLUDED.last_seen, online = true, tracker = EXCLUDED.tracker"
                " WHERE u.key = EXCLUDED.key RETURNING u.name)"
                " SELECT (SELECT name FROM up), EXISTS (SELECT 1 FROM cur), (SELECT name FROM la)",
    [Q_PRESENCE] = "UPDATE parley_users SET online = $2, last_seen = $3"
                   " WHERE folded = $1 AND tracker = $4",
    [Q_LIST_FROM] = LIST(">="),
    [Q_LIST_AFTER] = LIST(">"),
    [Q_OFFLINE_MINE] = "UPDATE parley_users SET online = false WHERE tracker = $1 AND online",
    [Q_HEARTBEAT] = "INSERT INTO parley_trackers (id, seen, lease) VALUES ($1, now(), $2)"
                    " ON CONFLICT (id) DO UPDATE SET seen = now(), lease = EXCLUDED.lease",
    /* Online users of another tracker whose lease ran out: the dead
     * trackers first (a few rows), then their online users through
     * parley_users_tracker, so a sweep that finds nothing costs little. */
    [Q_SWEEP] = "UPDATE parley_users SET online = false WHERE folded IN (SELECT folded"
                " FROM parley_users WHERE online AND tracker <> $1"
                " AND tracker IN (SELECT id FROM parley_trackers"
                " WHERE seen < now() - lease * interval '1 second')"
                /* It rides in a batch: it never waits for a row another
                 * tracker's batch holds (a user moving over), which could
                 * deadlock the two; what it skips, the next tick sweeps. */
                " FOR UPDATE SKIP LOCKED)",
    /* A message for a user of another tracker, on that tracker's own
     * channel (rpg_forward); $1, the user, only orders the batch. */
    [Q_FORWARD] = "SELECT $1::text, pg_notify('" RPG_CHANNEL "' || $2, $3)",
};

/* DOWN: waiting out the backoff; CONNECTING: a connection being made on
 * the loop (PQconnectPoll on the watch, the retry timer as its deadline);
 * UP: serving; CLOSED: closing. */
typedef enum { RPG_DOWN, RPG_CONNECTING, RPG_UP, RPG_CLOSED } rpg_state;

/* An offline that could not be written while the server was away: written
 * once it is back, or the user would stay listed online everywhere. */
typedef struct owed_offline {
    char folded[NAME_BUFLEN];
    int64_t last_seen;
} owed_offline;

/* A statement waiting for the end of the loop pass (a write, or a read
 * that joins the batch): prepared statement q with its parameters copied
 * into text; v[0], the folded name (for Q_ONLINE_MANY the names' array),
 * orders it in the batch (write_order). */
typedef struct pg_write {
    int q, n;
    const char *v[RPG_MAX_PARAMS];
    int len[RPG_MAX_PARAMS], bin[RPG_MAX_PARAMS];
    char *text;
    uint64_t seq;      /* queue order, kept among the writes of one name */
    reg_done_cb cb;    /* claims and waits */
    void *arg;
    int status;        /* a claim's verdict (rpg_claim) */
    char *stored;      /* a claim's: the name as bound, or the look-alike */
    int name_ok;       /* a claim's: whether a new name passed the script rules */
    reg_user *u;       /* a lookup's (rpg_lookup_start): the record, */
    char *eps;         /* its endpoints as stored, */
    size_t epscap;     /* in this many bytes */
    int merged;        /* a lookup answered by the batch's Q_GET_MANY */
    rpg_row_cb rows;   /* a statement's rows go here (rpg_queue_rows), */
    void *rows_arg;
    PGresult *res;     /* from this result, kept until the batch is over */
    size_t bytes;      /* its parameters' */
} pg_write;

struct reg_pg {
    const logger *lg;
    uv_loop_t *loop;
    char *conninfo;
    char tracker_id[64];
    PGconn *conn;       /* NULL while DOWN */
    rpg_state state;
    uv_poll_t *watch;   /* on the socket while CONNECTING or UP; freed in its close cb */
    int watch_fd;
    PostgresPollingStatusType polling; /* what PQconnectPoll waits for */
    uv_timer_t retry;   /* armed while DOWN */
    unsigned backoff_ms;
    int first;          /* the first connection: reset our users' presence */
    uv_timer_t deliver; /* hands over notifications a query's read took in */
    PGnotify *stash;    /* the first of them */
    rpg_presence_cb presence;
    void *presence_arg;
    char channel[80];   /* ours: RPG_CHANNEL and our id */
    rpg_forward_cb forward;
    void *forward_arg;
    owed_offline *owed;
    size_t nowed, capowed;
    uv_check_t check;   /* ends the pass: the queued writes go as one transaction */
    uv_idle_t idle;     /* keeps poll from blocking while writes wait */
    pg_write *q;        /* queued for the end of the pass */
    size_t nq, capq;
    uint64_t seq;
    /* The batch sent and not answered yet: one at a time, so what is
     * queued meanwhile is the next (one commit in flight, as a WAL writer). */
    pg_write *fw;
    size_t fn;
    size_t fat;         /* the write whose results come next (fn: the sync's) */
    int fstatus;        /* its first failure, as take_result says */
    int fattempt;       /* sends of it so far, less one */
    int inflight;
    int many;           /* its lookups went as one Q_GET_MANY, after the rest */
    uv_timer_t answer;  /* its deadline, RPG_QUERY_MS */
    pg_write *dw;       /* answered inside a registry call: fired by the deliver timer */
    size_t ndw, capdw;
    void (*batch_done)(void *arg);
    void *batch_arg;
    int handles;        /* loop handles not closed yet; the last close frees */
    unsigned lease_s;
    uv_timer_t lease;   /* renews ours, sweeps the dead trackers' users */
    uint64_t renewed;   /* now_ms() of our last renewal */
    uint64_t renew_asked; /* when the renewal in a batch was queued */
    int renewing, sweeping; /* a renewal, a sweep, in a batch */
    void (*reconnected)(void *arg);
    void *reconnected_arg;
    const char *const *extra; /* rpg_add_statements: ids Q_COUNT.. */
    int nextra;
};

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

static void on_watch_closed(uv_handle_t *h) { free(h); }

static void on_closed(uv_handle_t *h) {
    reg_pg *p = h->data;
    if (--p->handles > 0)
        return;
    for (size_t i = 0; i < p->nq; i++) /* queued by the last callbacks: lost */
        free(p->q[i].text);
    free(p->q);
    for (size_t i = 0; i < p->ndw; i++) {
        PQclear(p->dw[i].res);
        free(p->dw[i].text);
    }
    free(p->dw);
    free(p->owed);
    free(p->conninfo);
    free(p);
}

/* One parley_presence notification: another tracker's user came or went. */
static void notified(reg_pg *p, PGnotify *n) {
    char online[2], tracker[64], folded[NAME_BUFLEN], name[NAME_BUFLEN];
    log_debug(p->lg, "PostgreSQL notification on %s: %s", n->relname, n->extra);
    if (strcmp(n->relname, p->channel) == 0) {
        if (p->forward)
            p->forward(p->forward_arg, n->extra);
    } else if (strcmp(n->relname, "parley_presence") == 0 &&
        sscanf(n->extra, "%1s %63s %128s %128s", online, tracker, folded, name) == 4 &&
        strcmp(tracker, p->tracker_id) != 0 && p->presence)
        p->presence(p->presence_arg, name, folded, online[0] == '1');
    PQfreemem(n);
}

/* Every notification waiting in libpq, from the loop (never from inside a
 * registry call, so the callback may do what it likes). */
static void fire_deferred(reg_pg *p);

static void deliver(reg_pg *p) {
    fire_deferred(p); /* the writes answered inside registry calls first */
    if (p->stash) {
        PGnotify *n = p->stash;
        p->stash = NULL;
        notified(p, n);
    }
    PGnotify *n;
    while (p->conn && (n = PQnotifies(p->conn)) != NULL)
        notified(p, n);
}

static void on_deliver(uv_timer_t *t) { deliver(t->data); }

static void on_retry(uv_timer_t *t);
static void on_answer(uv_timer_t *t);
static void on_watch(uv_poll_t *w, int status, int events);
static void abandon_batch(reg_pg *p);
static void read_answers(reg_pg *p, int block, uint64_t deadline);
static void drain(reg_pg *p);
static void on_connecting(uv_poll_t *w, int status, int events);

static void unwatch(reg_pg *p) {
    if (p->watch) {
        uv_poll_stop(p->watch); /* before PQfinish closes the fd it polls */
        uv_close((uv_handle_t *)p->watch, on_watch_closed);
        p->watch = NULL;
    }
}

/* Polls the connection's socket (a new watch when the socket changed, as
 * it may while PQconnectPoll tries the next address).  Unwatched when out
 * of memory: a lost server is then found by the next query, and a
 * connection attempt by its deadline. */
static void watch(reg_pg *p, int events, uv_poll_cb cb) {
    int fd = PQsocket(p->conn);
    if (p->watch && p->watch_fd != fd)
        unwatch(p);
    if (!p->watch && fd >= 0) {
        p->watch = malloc(sizeof *p->watch);
        if (!p->watch || uv_poll_init(p->loop, p->watch, fd) != 0) {
            free(p->watch);
            p->watch = NULL;
            return;
        }
        p->watch->data = p;
        p->watch_fd = fd;
        uv_unref((uv_handle_t *)p->watch); /* the registry never keeps the loop alive */
    }
    if (p->watch)
        uv_poll_start(p->watch, events, cb);
}

/* The one transition.  DOWN: forget the connection, reconnect after the
 * backoff.  CONNECTING: poll what PQconnectPoll asks for, until
 * RPG_CONNECT_MS.  UP: watch the idle socket, reset the backoff.  CLOSED:
 * none of it. */
static void set_state(reg_pg *p, rpg_state to) {
    if (to != RPG_CONNECTING)
        unwatch(p);
    if (to == RPG_DOWN || to == RPG_CLOSED)
        abandon_batch(p);
    if ((to == RPG_DOWN || to == RPG_CLOSED) && p->conn) {
        if (p->stash)
            PQfreemem(p->stash);
        p->stash = NULL;
        PQfinish(p->conn);
        p->conn = NULL;
    }
    p->state = to;
    if (to == RPG_DOWN) {
        uv_timer_start(&p->retry, on_retry, p->backoff_ms, 0);
        p->backoff_ms = p->backoff_ms * 2 > RPG_RETRY_MAX_MS ? RPG_RETRY_MAX_MS : p->backoff_ms * 2;
    } else if (to == RPG_CONNECTING) {
        uv_timer_start(&p->retry, on_retry, RPG_CONNECT_MS, 0);
        watch(p, p->polling == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE, on_connecting);
    } else if (to == RPG_UP) {
        p->backoff_ms = RPG_RETRY_MIN_MS;
        uv_timer_stop(&p->retry);
        watch(p, UV_READABLE | UV_DISCONNECT, on_watch);
    } else {
        uv_timer_stop(&p->retry);
    }
}

static void lost(reg_pg *p, const char *why) {
    log_warn(p->lg, "lost the PostgreSQL registry (%s); answering db_unavailable and "
             "reconnecting", why);
    set_state(p, RPG_DOWN);
}

/* The idle connection got input: a notice, or the server going away. */
static void on_watch(uv_poll_t *w, int status, int events) {
    reg_pg *p = w->data;
    if (status < 0 || !PQconsumeInput(p->conn) || PQstatus(p->conn) != CONNECTION_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", status < 0 ? uv_strerror(status)
                                                   : PQerrorMessage(p->conn));
        why[strcspn(why, "\n")] = '\0';
        lost(p, why);
        return;
    }
    read_answers(p, 0, 0); /* the batch in flight's, as far as they came */
    deliver(p);
}

/* Waits until deadline for fd to be ready for events: 1, 0 on timeout, -1. */
static int wait_fd(int fd, short events, uint64_t deadline) {
    for (;;) {
        uint64_t t = now_ms();
        if (t >= deadline)
            return 0;
        struct pollfd pf = {fd, events, 0};
        int n = poll(&pf, 1, (int)(deadline - t));
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -1 : n > 0;
    }
}

/* Whether an SQLSTATE says the server, not the statement, failed: a
 * connection exception (08), resources (53), operator intervention (57:
 * shutdown, statement_timeout). */
static int unavailable_state(const PGresult *res) {
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return !st || !strncmp(st, "08", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57", 2);
}

static int result_ok(const PGresult *r) {
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* The answer to what was just sent (sent: the PQsend* result), read until
 * RPG_QUERY_MS: 0 with the last result in *out (the first failing one if
 * any failed; the caller PQclears it), REG_EUNAVAIL after dropping the
 * connection, or UV_EIO for a statement the server refused (logged). */
/* The next result (NULL: the end of one statement's results), read until
 * deadline: 0, or -1 with the reason in why (the connection is then
 * useless). */
static int next_result(reg_pg *p, uint64_t deadline, PGresult **r, char why[256]) {
    *r = NULL;
    while (PQisBusy(p->conn)) {
        int n = wait_fd(PQsocket(p->conn), POLLIN, deadline);
        if (n == 0 || n < 0 || !PQconsumeInput(p->conn)) {
            if (n == 0)
                snprintf(why, 256, "no answer within %d ms", RPG_QUERY_MS);
            else
                snprintf(why, 256, "%s", PQerrorMessage(p->conn));
            return -1;
        }
    }
    *r = PQgetResult(p->conn);
    return 0;
}

static int await(reg_pg *p, int sent, const char *what, PGresult **out) {
    *out = NULL;
    char why[256] = "";
    if (!sent)
        snprintf(why, sizeof why, "%s", PQerrorMessage(p->conn));
    uint64_t deadline = now_ms() + RPG_QUERY_MS;
    PGresult *res = NULL;
    while (sent && !why[0]) {
        PGresult *r;
        if (next_result(p, deadline, &r, why) || !r)
            break;
        if (res && !result_ok(res)) {
            PQclear(r); /* keep the first failure */
        } else {
            PQclear(res);
            res = r;
        }
    }
    if (!why[0] && (!res || PQstatus(p->conn) != CONNECTION_OK))
        snprintf(why, sizeof why, "%s", PQerrorMessage(p->conn));
    if (!why[0]) {
        if (result_ok(res)) {
            *out = res;
            return 0;
        }
        snprintf(why, sizeof why, "%s", PQresultErrorMessage(res));
        why[strcspn(why, "\n")] = '\0';
        int down = unavailable_state(res);
        PQclear(res);
        if (!down) {
            log_error(p->lg, "PostgreSQL registry %s failed: %s", what, why);
            return UV_EIO;
        }
        log_warn(p->lg, "PostgreSQL registry %s failed: %s", what, why);
        return REG_EUNAVAIL;
    }
    PQclear(res);
    why[strcspn(why, "\n")] = '\0';
    if (p->state == RPG_UP)
        lost(p, why);
    return REG_EUNAVAIL;
}

/* One plain command (setup and migrations): 0 or a negative error. */
static int exec(reg_pg *p, const char *q, const char *what, PGresult **out) {
    PGresult *res;
    int e = await(p, PQsendQuery(p->conn, q), what, &res);
    if (out)
        *out = res;
    else
        PQclear(res);
    return e;
}

/* After a read of ours: the notifications it took in are handed over from
 * the loop soon, as the socket will not say they are there. */
static void take_notifies(reg_pg *p) {
    if (p->conn && !p->stash && (p->stash = PQnotifies(p->conn)) != NULL)
        uv_timer_start(&p->deliver, on_deliver, 0, 0);
}

/* Statement q's name on the connection. */
static void stmt_name(int q, char name[16]) { snprintf(name, 16, "q%d", q); }

/* Prepared statement q; params in text but for the binary ones (keys)
 * marked in bin with their lengths.  On a connection in its setup too. */
static int run_on(reg_pg *p, int q, int n, const char *const *v, const int *len, const int *bin,
                  const char *what, PGresult **out) {
    char name[16];
    stmt_name(q, name);
    return await(p, PQsendQueryPrepared(p->conn, name, n, v, len, bin, 0), what, out);
}

/* run_on for a request, on a connection that is UP. */
static int run(reg_pg *p, int q, int n, const char *const *v, const int *len, const int *bin,
               const char *what, PGresult **out) {
    *out = NULL;
    drain(p); /* the read sees the writes sent before it */
    if (p->state != RPG_UP)
        return REG_EUNAVAIL;
    int e = run_on(p, q, n, v, len, bin, what, out);
    take_notifies(p);
    return e;
}

/* The schema, in one transaction behind an advisory lock: of trackers
 * starting at once, one migrates and the others then find it done. */
static int migrate(reg_pg *p, char *err, size_t errlen) {
    PGresult *res = NULL;
    int e = exec(p, "BEGIN", "migration", NULL);
    if (e == 0)
        e = exec(p, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", "migration lock", NULL);
    if (e == 0)
        e = exec(p, "CREATE TABLE IF NOT EXISTS parley_schema (version integer NOT NULL)",
                 "migration", NULL);
    if (e == 0)
        e = exec(p, "SELECT coalesce(max(version), 0) FROM parley_schema", "migration", &res);
    int have = e == 0 && PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    if (e == 0 && have > NMIGRATIONS) {
        snprintf(err, errlen, "the PostgreSQL registry has schema version %d, newer than this "
                 "tracker knows (%d): upgrade parley-tracker", have, NMIGRATIONS);
        exec(p, "ROLLBACK", "migration", NULL);
        return UV_EINVAL;
    }
    for (int i = have; e == 0 && i < NMIGRATIONS; i++)
        e = exec(p, migrations[i], "migration", NULL);
    if (e == 0 && have < NMIGRATIONS) {
        char q[96];
        snprintf(q, sizeof q, "DELETE FROM parley_schema; INSERT INTO parley_schema VALUES (%d)",
                 NMIGRATIONS);
        e = exec(p, q, "migration", NULL);
    }
    if (e == 0)
        e = exec(p, "COMMIT", "migration", NULL);
    if (e == 0 && have < NMIGRATIONS)
        log_info(p->lg, "PostgreSQL registry schema brought from version %d to %d", have,
                 NMIGRATIONS);
    if (e)
        snprintf(err, errlen, "cannot set up the schema of the PostgreSQL registry: %s",
                 PQerrorMessage(p->conn));
    return e;
}

/* The server's notices (a NOTICE of a migration, the FATAL of a shutdown
 * that lost() reports anyway) go to the log, not straight to stderr. */
static void on_notice(void *arg, const char *message) {
    reg_pg *p = arg;
    char m[512];
    snprintf(m, sizeof m, "%s", message);
    m[strcspn(m, "\n")] = '\0';
    log_debug(p->lg, "PostgreSQL: %s", m);
}

static int setup(reg_pg *p, char *err, size_t errlen);

/* The first connection, at open (before the loop runs): blocking for at
 * most RPG_CONNECT_MS, then setup.  0 with p->conn set, or a negative
 * error with the reason in err. */
static int connect_now(reg_pg *p, char *err, size_t errlen) {
    PGconn *c = PQconnectStart(p->conninfo);
    if (!c) {
        snprintf(err, errlen, "out of memory connecting to PostgreSQL");
        return UV_ENOMEM;
    }
    PQsetNoticeProcessor(c, on_notice, p);
    uint64_t deadline = now_ms() + RPG_CONNECT_MS;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        int n = wait_fd(PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (n <= 0) {
            snprintf(err, errlen, "%s", n == 0 ? "connection timed out" : strerror(errno));
            PQfinish(c);
            return n == 0 ? UV_ETIMEDOUT : UV_EIO;
        }
        st = PQconnectPoll(c);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(c);
        return REG_EUNAVAIL;
    }
    p->conn = c;
    return setup(p, err, errlen);
}

/* A new connection's session settings, LISTEN, the schema and the
 * statements (blocking round trips, each bounded; the server answers at
 * once now that it is connected).  0, or a negative error with the reason
 * in err and the connection closed. */
static int setup(reg_pg *p, char *err, size_t errlen) {
    PGconn *c = p->conn;
    char q[200];
    snprintf(q, sizeof q, "SET statement_timeout = 2000; SET bytea_output = 'hex'; "
             "LISTEN parley_presence; LISTEN \"%s\"", p->channel);
    int e = exec(p, q, "setup", NULL);
    if (e == 0)
        e = migrate(p, err, errlen);
    for (int i = 0; e == 0 && i < Q_COUNT + p->nextra; i++) {
        char name[16];
        stmt_name(i, name);
        PGresult *res;
        e = await(p, PQsendPrepare(c, name, i < Q_COUNT ? sql[i] : p->extra[i - Q_COUNT], 0,
                                   NULL), "prepare", &res);
        PQclear(res);
        if (e)
            snprintf(err, errlen, "cannot prepare the registry statements: %s",
                     PQerrorMessage(c));
    }
    if (e == 0) { /* our lease first: then nobody sweeps what we are about to serve */
        char lease[16];
        snprintf(lease, sizeof lease, "%u", p->lease_s);
        const char *v[] = {p->tracker_id, lease};
        PGresult *res;
        e = run_on(p, Q_HEARTBEAT, 2, v, NULL, NULL, "lease", &res);
        PQclear(res);
        p->renewed = now_ms();
    }
    if (e == 0 && p->first) { /* no session of ours survived: ours are offline */
        const char *v[] = {p->tracker_id};
        PGresult *res;
        e = run_on(p, Q_OFFLINE_MINE, 1, v, NULL, NULL, "reset", &res);
        if (e == 0 && atoi(PQcmdTuples(res)) > 0)
            log_info(p->lg, "marked offline the users this tracker had left online: %s",
                     PQcmdTuples(res));
        PQclear(res);
        p->first = 0;
    }
    if (e && p->conn) {
        if (!err[0])
            snprintf(err, errlen, "%s", PQerrorMessage(c));
        PQfinish(p->conn);
        p->conn = NULL;
    }
    return e;
}

/* ---- the writes of a pass, one transaction ---- */

static void on_check(uv_check_t *h);
static void on_idle(uv_idle_t *h) { (void)h; }

/* Queues statement q for the end of the pass, its parameters copied.
 * 0 or UV_ENOMEM. */
static int enqueue(reg_pg *p, int q, int n, const char *const *v, const int *len, const int *bin,
                   reg_done_cb cb, void *arg) {
    if (n > RPG_MAX_PARAMS)
        return UV_EINVAL;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += !v[i] ? 0 : bin && bin[i] ? (size_t)len[i] : strlen(v[i]) + 1;
    pg_write *nq = grow(p->q, &p->capq, p->nq + 1, sizeof *nq, 64);
    if (!nq)
        return UV_ENOMEM;
    p->q = nq;
    pg_write *w = &p->q[p->nq];
    memset(w, 0, sizeof *w);
    if (!(w->text = malloc(total ? total : 1)))
        return UV_ENOMEM;
    char *o = w->text;
    for (int i = 0; i < n; i++) {
        w->bin[i] = bin ? bin[i] : 0;
        w->len[i] = w->bin[i] ? len[i] : 0;
        if (!v[i])
            continue;
        size_t k = w->bin[i] ? (size_t)len[i] : strlen(v[i]) + 1;
        memcpy(o, v[i], k);
        w->v[i] = o;
        o += k;
    }
    w->q = q;
    w->n = n;
    w->bytes = total;
    w->seq = p->seq++;
    w->cb = cb;
    w->arg = arg;
    p->nq++;
    uv_check_start(&p->check, on_check);
    uv_idle_start(&p->idle, on_idle);
    return 0;
}

/* By name, then in queue order: two trackers' batches then lock the rows
 * they share in the same order (no deadlock), and one user's writes keep
 * theirs. */
static int write_order(const void *a, const void *b) {
    const pg_write *x = a, *y = b;
    int c = strcmp(x->v[0], y->v[0]);
    return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void owe(reg_pg *p, const char *folded, int64_t last_seen) {
    owed_offline *o = grow(p->owed, &p->capowed, p->nowed + 1, sizeof *o, 16);
    if (!o) {
        log_error(p->lg, "out of memory: %s may stay listed online", folded);
        return;
    }
    p->owed = o;
    snprintf(o[p->nowed].folded, sizeof o[p->nowed].folded, "%s", folded);
    o[p->nowed++].last_seen = last_seen;
}

/* A bytea in hex output ("\\x0011..") into key: 0 or UV_EIO. */
static int hex_key(const char *s, unsigned char key[IDENT_PK]) {
    size_t n = 0;
    if (strncmp(s, "\\x", 2) != 0 ||
        sodium_hex2bin(key, IDENT_PK, s + 2, strlen(s + 2), NULL, &n, NULL) != 0 || n != IDENT_PK)
        return UV_EIO;
    return 0;
}

/* Row i of a Q_GET (or Q_GET_MANY) answer r for folded into u but for the
 * endpoints, which go to endpoints (cap bytes) as stored: 0, UV_ENOENT
 * (no such row) or UV_EIO. */
static int read_user(reg_pg *p, const char *folded, const PGresult *r, int i, reg_user *u,
                     char *endpoints, size_t cap) {
    if (i >= PQntuples(r))
        return UV_ENOENT;
    int e = 0;
    snprintf(u->name, sizeof u->name, "%s", PQgetvalue(r, i, 0));
    if (hex_key(PQgetvalue(r, i, 1), u->key)) {
        log_error(p->lg, "the PostgreSQL registry holds a malformed key for %s", folded);
        e = UV_EIO;
    }
    snprintf(endpoints, cap, "%s", PQgetvalue(r, i, 2));
    u->last_seen = strtoll(PQgetvalue(r, i, 3), NULL, 10);
    u->online = PQgetvalue(r, i, 4)[0] == 't';
    snprintf(u->home, sizeof u->home, "%s", PQgetvalue(r, i, 5));
    return e;
}

/* The batch's merged lookups from Q_GET_MANY's rows: each row to every
 * lookup of its name; a lookup no row names is UV_ENOENT.  One walk of
 * both: the batch is in byte order of v[0] (write_order) and so are the
 * rows (ORDER BY folded, a COLLATE "C" column). */
static void take_many(reg_pg *p, const PGresult *r) {
    for (size_t k = 0; k < p->fn; k++)
        if (p->fw[k].merged)
            p->fw[k].status = UV_ENOENT;
    size_t k = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *folded = PQgetvalue(r, i, 6);
        while (k < p->fn && strcmp(p->fw[k].v[0], folded) < 0)
            k++;
        for (size_t j = k; j < p->fn && strcmp(p->fw[j].v[0], folded) == 0; j++) {
            pg_write *w = &p->fw[j];
            if (w->merged)
                w->status = read_user(p, folded, r, i, w->u, w->eps, w->epscap);
        }
    }
}

/* v[0..n) (those with pick[i], or all when pick is NULL) as a text[]
 * literal ({"a","b"}, with " and \\ escaped), malloc'd: NULL when out of
 * memory. */
static char *text_array(const char *const *v, const int *pick, size_t n) {
    size_t cap = 3;
    for (size_t k = 0; k < n; k++)
        if (!pick || pick[k])
            cap += 2 * strlen(v[k]) + 3;
    char *a = malloc(cap), *o = a;
    if (!a)
        return NULL;
    *o++ = '{';
    for (size_t k = 0; k < n; k++) {
        if (pick && !pick[k])
            continue;
        if (o > a + 1)
            *o++ = ',';
        *o++ = '"';
        for (const char *c = v[k]; *c; c++) {
            if (*c == '"' || *c == '\\')
                *o++ = '\\';
            *o++ = *c;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return a;
}

/* The folded names of the batch's merged lookups as a text[] literal. */
static char *names_array(reg_pg *p) {
    const char **v = malloc((p->fn ? p->fn : 1) * sizeof *v);
    int *pick = malloc((p->fn ? p->fn : 1) * sizeof *pick);
    char *a = NULL;
    if (v && pick) {
        for (size_t k = 0; k < p->fn; k++) {
            v[k] = p->fw[k].v[0];
            pick[k] = p->fw[k].merged;
        }
        a = text_array(v, pick, p->fn);
    }
    free(v);
    free(pick);
    return a;
}

/* Each row of r to cb, its columns in text, until cb returns nonzero. */
static void give_rows(const PGresult *r, rpg_row_cb cb, void *arg) {
    int rows = PQntuples(r), cols = PQnfields(r);
    const char *vals[RPG_MAX_PARAMS];
    int lens[RPG_MAX_PARAMS];
    for (int i = 0; i < rows && cols <= RPG_MAX_PARAMS; i++) {
        for (int j = 0; j < cols; j++) {
            vals[j] = PQgetvalue(r, i, j);
            lens[j] = PQgetlength(r, i, j);
        }
        if (cb(arg, vals, lens, cols))
            break;
    }
}

/* What a claim's answer row means (Q_CLAIM), its name copied to the
 * claim's buffer: 0 bound (the name as bound), UV_EEXIST held by another
 * key (or bound by a racing tracker meanwhile), REG_ECONFUSABLE (the
 * look-alike), REG_EBADNAME. */
static int claimed(pg_write *w, const PGresult *r) {
    if (PQntuples(r) != 1 || PQnfields(r) != 3)
        return UV_EIO;
    if (!PQgetisnull(r, 0, 0)) {
        snprintf(w->stored, NAME_BUFLEN, "%s", PQgetvalue(r, 0, 0));
        return 0;
    }
    if (PQgetvalue(r, 0, 1)[0] == 't')
        return UV_EEXIST;
    if (!PQgetisnull(r, 0, 2)) {
        snprintf(w->stored, NAME_BUFLEN, "%s", PQgetvalue(r, 0, 2));
        return REG_ECONFUSABLE;
    }
    if (!w->name_ok)
        return REG_EBADNAME;
    /* A new name whose skeleton could not be computed: not checked, not bound. */
    return w->v[5] ? UV_EEXIST : UV_EIO;
}

static void pay_owed(reg_pg *p);

/* The callbacks of the writes w[0..n), each with its final status (set by
 * finish), then the batch's own; frees w. */
static void fire_writes(reg_pg *p, pg_write *w, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (w[i].res && w[i].status == 0)
            give_rows(w[i].res, w[i].rows, w[i].rows_arg); /* committed: now they count */
        PQclear(w[i].res);
        if (w[i].cb)
            w[i].cb(w[i].status, w[i].arg);
        free(w[i].text);
    }
    free(w);
    if (p->batch_done)
        p->batch_done(p->batch_arg);
}

/* The callbacks that wait for the deliver timer (fire_writes for each). */
static void fire_deferred(reg_pg *p) {
    while (p->ndw) {
        pg_write *w = p->dw;
        size_t n = p->ndw;
        p->dw = NULL;
        p->ndw = p->capdw = 0;
        fire_writes(p, w, n);
    }
}

/* A batch is over with status (0: each write's own): the final statuses,
 * the offlines owed when the server was away, then the callbacks, now or,
 * when defer (inside a registry call, or from set_state), from the deliver
 * timer.  Takes w.  The writes queued meanwhile go at this pass's end. */
static void finish(reg_pg *p, pg_write *w, size_t n, int status, int defer) {
    size_t owed = p->nowed;
    for (size_t i = 0; i < n; i++) {
        if (status == REG_EUNAVAIL && w[i].q == Q_PRESENCE && w[i].v[1][0] == 'f')
            owe(p, w[i].v[0], strtoll(w[i].v[2], NULL, 10));
        if (status)
            w[i].status = status;
    }
    if (p->nowed > owed && p->state == RPG_UP)
        pay_owed(p); /* the server failed the batch but is still there: the next one */
    pg_write *dw = defer ? grow(p->dw, &p->capdw, p->ndw + n, sizeof *dw, 64) : NULL;
    if (dw) {
        p->dw = dw;
        memcpy(dw + p->ndw, w, n * sizeof *w);
        p->ndw += n;
        free(w);
        uv_timer_start(&p->deliver, on_deliver, 0, 0);
    } else {
        if (defer) /* out of memory: now, rather than never */
            log_error(p->lg, "out of memory deferring the PostgreSQL registry's callbacks");
        fire_writes(p, w, n);
    }
    if (p->nq) {
        uv_check_start(&p->check, on_check);
        uv_idle_start(&p->idle, on_idle);
    }
}

/* The batch in flight failed with the connection (set_state, before the
 * connection goes): REG_EUNAVAIL for each write, from the deliver timer. */
static void abandon_batch(reg_pg *p) {
    if (!p->inflight)
        return;
    p->inflight = 0;
    uv_timer_stop(&p->answer);
    pg_write *w = p->fw;
    p->fw = NULL;
    finish(p, w, p->fn, REG_EUNAVAIL, 1);
}

/* Sends the batch p->fw in one pipeline, an implicit transaction that
 * commits at its sync (one commit, one WAL flush for the pass), and
 * starts its deadline; the answers are read as they come (read_answers).
 * A connection that cannot take it is lost (which ends the batch). */
static void send_batch(reg_pg *p) {
    PGconn *c = p->conn;
    size_t gets = 0;
    for (size_t i = 0; i < p->fn; i++)
        gets += p->fw[i].merged = p->fw[i].q == Q_GET && p->fw[i].u;
    /* One statement for the batch's lookups, after its writes, which it
     * sees, however many lookups there are. */
    char *names = gets ? names_array(p) : NULL;
    if (gets && !names)
        for (size_t i = 0; i < p->fn; i++)
            p->fw[i].merged = 0; /* out of memory: one statement each */
    p->many = names != NULL;
    int ok = PQenterPipelineMode(c);
    for (size_t i = 0; i < p->fn; i++) { /* a try before this one's rows are void */
        PQclear(p->fw[i].res);
        p->fw[i].res = NULL;
    }
    for (size_t i = 0; ok && i < p->fn; i++) {
        pg_write *w = &p->fw[i];
        w->status = 0;
        if (w->q < 0 || w->merged)
            continue; /* rpg_wait's: no statement; or in Q_GET_MANY */
        char name[16];
        stmt_name(w->q, name);
        ok = PQsendQueryPrepared(c, name, w->n, w->v, w->len, w->bin, 0);
    }
    if (ok && names) {
        char name[16];
        stmt_name(Q_GET_MANY, name);
        const char *v[] = {names};
        ok = PQsendQueryPrepared(c, name, 1, v, NULL, NULL, 0);
    }
    free(names);
    ok = ok && PQpipelineSync(c);
    if (!ok) {
        char why[256];
        snprintf(why, sizeof why, "%s", PQerrorMessage(c));
        why[strcspn(why, "\n")] = '\0';
        lost(p, why);
        return;
    }
    p->fat = 0;
    p->fstatus = 0;
    uv_timer_start(&p->answer, on_answer, RPG_QUERY_MS, 0);
}

/* One statement's result r for the batch's write w (NULL: the merged
 * lookups' Q_GET_MANY): a failure decides the
 * batch (the first: 1 for a deadlock or serialization failure worth one
 * more try, REG_EUNAVAIL, or UV_EIO); a claim's verdict is its own.  The
 * rows of an rpg_queue_rows statement are kept (w->res takes r: returns 1)
 * and handed over only once the batch committed, so nobody acts on what
 * a failed or retried try read (rows the batch's own uncommitted writes
 * made, or rows twice).  Else 0: the caller clears r. */
static int take_result(reg_pg *p, pg_write *w, PGresult *r) {
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_ABORTED) {
        /* skipped after an earlier failure, which decides */
    } else if (!result_ok(r)) {
        const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!p->fstatus) {
            char m[256];
            snprintf(m, sizeof m, "%s", PQresultErrorMessage(r));
            m[strcspn(m, "\n")] = '\0';
            p->fstatus = code && !strncmp(code, "40", 2) ? 1
                         : unavailable_state(r) ? REG_EUNAVAIL : UV_EIO;
            if (p->fstatus == UV_EIO)
                log_error(p->lg, "PostgreSQL registry batch failed: %s", m);
            else
                log_warn(p->lg, "PostgreSQL registry batch failed: %s", m);
        }
    } else if (w == NULL) {
        take_many(p, r);
    } else if (w->q == Q_SWEEP && atoi(PQcmdTuples((PGresult *)r)) > 0) {
        log_info(p->lg, "marked offline %s users of trackers whose lease ran out",
                 PQcmdTuples((PGresult *)r));
    } else if (w->q == Q_CLAIM) {
        w->status = claimed(w, r);
    } else if (w->q == Q_GET && w->u) {
        w->status = read_user(p, w->v[0], r, 0, w->u, w->eps, w->epscap);
    } else if (w->rows && !w->res) {
        w->res = r;
        return 1;
    }
    return 0;
}

/* The batch in flight is answered: sent again after a deadlock (three
 * tries), else finished (its callbacks deferred when defer). */
static void answered(reg_pg *p, int defer) {
    uv_timer_stop(&p->answer);
    int status = p->fstatus;
    if (status == 1 && ++p->fattempt < 3) {
        send_batch(p);
        return;
    }
    p->inflight = 0;
    pg_write *w = p->fw;
    p->fw = NULL;
    finish(p, w, p->fn, status == 1 ? UV_EIO : status, defer);
}

/* Reads what has come of the batch's answers; with block, waits for the
 * rest until deadline (inside a registry call: its callbacks are then
 * deferred).  Ends when the batch is answered, when (without block) more
 * input is needed, or when the connection is lost. */
static void read_answers(reg_pg *p, int block, uint64_t deadline) {
    while (p->inflight) {
        PGconn *c = p->conn;
        while (p->fat < p->fn && (p->fw[p->fat].q < 0 || p->fw[p->fat].merged))
            p->fat++; /* waits have no results; merged lookups come with Q_GET_MANY */
        if (PQisBusy(c)) {
            if (!block)
                return;
            int n = wait_fd(PQsocket(c), POLLIN, deadline);
            if (n <= 0 || !PQconsumeInput(c)) {
                char why[256];
                if (n == 0)
                    snprintf(why, sizeof why, "no answer within %d ms", RPG_QUERY_MS);
                else
                    snprintf(why, sizeof why, "%s", PQerrorMessage(c));
                why[strcspn(why, "\n")] = '\0';
                lost(p, why);
                return;
            }
            continue;
        }
        PGresult *r = PQgetResult(c);
        if (p->fat < p->fn || p->many) {
            if (r && take_result(p, p->fat < p->fn ? &p->fw[p->fat] : NULL, r))
                continue; /* kept */
            if (!r && p->fat < p->fn)
                p->fat++; /* the end of this statement's results */
            else if (!r)
                p->many = 0;
            PQclear(r);
            continue;
        }
        int synced = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (!synced || !PQexitPipelineMode(c)) {
            char why[300];
            snprintf(why, sizeof why, "the pipeline is out of step: %s", PQerrorMessage(c));
            why[strcspn(why, "\n")] = '\0';
            lost(p, why);
            return;
        }
        answered(p, block);
    }
}

/* Waits (blocking the loop, at most RPG_QUERY_MS) for the batch in flight,
 * before a round trip of a read: the read then sees its writes.  Its
 * callbacks come from the deliver timer. */
static void drain(reg_pg *p) {
    if (p->inflight && p->state == RPG_UP)
        read_answers(p, 1, now_ms() + RPG_QUERY_MS);
}

static void on_answer(uv_timer_t *t) {
    reg_pg *p = t->data;
    char why[64];
    snprintf(why, sizeof why, "no answer to a batch of writes within %d ms", RPG_QUERY_MS);
    lost(p, why);
}

/* The end of the pass: its writes go as one batch, unless one is still in
 * flight (then they are the next, sent once it is answered: one commit in
 * flight at a time, however many passes it spans).  A pass with waits
 * only answers them now; the callbacks come with the commit's status (a
 * claim gets its own verdict). */
static void flush(reg_pg *p) {
    uv_check_stop(&p->check);
    uv_idle_stop(&p->idle);
    if (p->inflight)
        return;
    pg_write *w = p->q;
    size_t n = p->nq;
    p->q = NULL;
    p->nq = p->capq = 0;
    if (!n)
        return;
    size_t take = 0, bytes = 0;
    while (take < n && take < RPG_BATCH_MAX &&
           (take == 0 || bytes + w[take].bytes <= RPG_BATCH_BYTES))
        bytes += w[take++].bytes;
    if (take < n) { /* the rest is the next batch */
        size_t rest = n - take;
        pg_write *nq = malloc(rest * sizeof *nq);
        if (nq) {
            memcpy(nq, w + take, rest * sizeof *nq);
            p->q = nq;
            p->nq = p->capq = rest;
            n = take;
        }
    }
    qsort(w, n, sizeof *w, write_order);
    size_t real = 0;
    for (size_t i = 0; i < n; i++)
        real += w[i].q >= 0;
    if (!real || p->state != RPG_UP) {
        finish(p, w, n, real ? REG_EUNAVAIL : 0, 0);
        return;
    }
    p->fw = w;
    p->fn = n;
    p->inflight = 1;
    p->fattempt = 0;
    send_batch(p);
}

static void on_check(uv_check_t *h) { flush(h->data); }

void rpg_on_batch_done(reg_pg *p, void (*cb)(void *arg), void *arg) {
    p->batch_done = cb;
    p->batch_arg = arg;
}

/* Queues the offlines owed since the connection was lost, in this pass's
 * batch (ahead of anything a new request queues); a batch that fails owes
 * them again. */
static void pay_owed(reg_pg *p) {
    size_t n = p->nowed, kept = 0;
    for (size_t i = 0; i < n; i++) {
        const char *v[] = {p->owed[i].folded, "f", NULL, p->tracker_id};
        char t[24];
        snprintf(t, sizeof t, "%" PRId64, p->owed[i].last_seen);
        v[2] = t;
        if (enqueue(p, Q_PRESENCE, 4, v, NULL, NULL, NULL, NULL))
            p->owed[kept++] = p->owed[i];
    }
    p->nowed = kept;
    if (n > kept)
        log_info(p->lg, "recorded %zu user%s who went offline while the PostgreSQL registry was "
                 "away", n - kept, n - kept == 1 ? "" : "s");
}

static void retry_later(reg_pg *p, const char *why) {
    char m[512];
    snprintf(m, sizeof m, "%s", why);
    m[strcspn(m, "\n")] = '\0';
    log_warn(p->lg, "cannot reach the PostgreSQL registry: %s; trying again in %u ms", m,
             p->backoff_ms);
    set_state(p, RPG_DOWN);
}

/* The backoff is over: a connection attempt on the loop; or, while
 * CONNECTING, its deadline. */
static void on_retry(uv_timer_t *t) {
    reg_pg *p = t->data;
    if (p->state == RPG_CONNECTING) {
        retry_later(p, "connection timed out");
        return;
    }
    p->conn = PQconnectStart(p->conninfo);
    if (!p->conn || PQstatus(p->conn) == CONNECTION_BAD) {
        retry_later(p, p->conn ? PQerrorMessage(p->conn) : "out of memory");
        return;
    }
    PQsetNoticeProcessor(p->conn, on_notice, p);
    p->polling = PGRES_POLLING_WRITING;
    set_state(p, RPG_CONNECTING);
}

/* The socket is ready for what PQconnectPoll waited for. */
static void on_connecting(uv_poll_t *w, int status, int events) {
    reg_pg *p = w->data;
    char err[512] = "";
    p->polling = status < 0 ? PGRES_POLLING_FAILED : PQconnectPoll(p->conn);
    if (p->polling == PGRES_POLLING_FAILED) {
        retry_later(p, status < 0 ? uv_strerror(status) : PQerrorMessage(p->conn));
        return;
    }
    if (p->polling != PGRES_POLLING_OK) {
        watch(p, p->polling == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE, on_connecting);
        return;
    }
    unwatch(p); /* setup closes the socket when it fails */
    if (setup(p, err, sizeof err) != 0) {
        retry_later(p, err);
        return;
    }
    log_info(p->lg, "reconnected to the PostgreSQL registry (%s:%s/%s)", PQhost(p->conn),
             PQport(p->conn), PQdb(p->conn));
    set_state(p, RPG_UP);
    take_notifies(p);
    pay_owed(p);
    /* Our lease may have run out meanwhile and our users been swept. */
    if (p->reconnected)
        p->reconnected(p->reconnected_arg);
}

static void on_renewed(int status, void *arg) {
    reg_pg *p = arg;
    p->renewing = 0;
    if (status) {
        log_warn(p->lg, "could not renew this tracker's lease in the PostgreSQL registry (%s); "
                 "trying again", uv_strerror(status));
        return;
    }
    int lapsed = p->renew_asked - p->renewed > p->lease_s * 1000u;
    p->renewed = p->renew_asked;
    if (lapsed) { /* the others may have swept our users meanwhile */
        log_warn(p->lg, "this tracker's lease in the PostgreSQL registry ran out before it was "
                 "renewed; recording its users' presence again");
        if (p->reconnected)
            p->reconnected(p->reconnected_arg);
    }
}

static void on_swept(int status, void *arg) {
    (void)status; /* a failure is logged with its batch; the next tick sweeps again */
    ((reg_pg *)arg)->sweeping = 0;
}

/* Every RPG_SWEEP_MS: renew our lease when a third of it passed, then
 * sweep the users of trackers whose lease ran out (their rows go offline,
 * and the trigger tells every tracker), so they show offline within the
 * dead tracker's lease plus a second. */
static void on_lease(uv_timer_t *t) {
    reg_pg *p = t->data;
    if (p->state != RPG_UP)
        return; /* the reconnection's setup renews it */
    char lease[16];
    snprintf(lease, sizeof lease, "%u", p->lease_s);
    const char *v[] = {p->tracker_id, lease};
    uint64_t now = now_ms();
    /* Both ride in the write batches, so the tick never waits for one (a
     * batch in flight, a slow commit) on the loop. */
    if (!p->renewing && now - p->renewed >= p->lease_s * 1000u / 3 &&
        enqueue(p, Q_HEARTBEAT, 2, v, NULL, NULL, on_renewed, p) == 0) {
        p->renewing = 1;
        p->renew_asked = now;
    }
    if (!p->sweeping && enqueue(p, Q_SWEEP, 1, v, NULL, NULL, on_swept, p) == 0)
        p->sweeping = 1;
}

void rpg_on_reconnected(reg_pg *p, void (*cb)(void *arg), void *arg) {
    p->reconnected = cb;
    p->reconnected_arg = arg;
}

int rpg_open(uv_loop_t *loop, const char *conninfo, const char *tracker_id, unsigned lease_s,
             const logger *lg, reg_pg **out, char *err, size_t errlen) {
    reg_pg *p = calloc(1, sizeof *p);
    if (!p || !(p->conninfo = strdup(conninfo))) {
        free(p);
        snprintf(err, errlen, "out of memory opening the PostgreSQL registry");
        return UV_ENOMEM;
    }
    p->lg = lg;
    p->loop = loop;
    p->backoff_ms = RPG_RETRY_MIN_MS;
    p->first = 1;
    p->lease_s = lease_s;
    snprintf(p->tracker_id, sizeof p->tracker_id, "%s", tracker_id);
    snprintf(p->channel, sizeof p->channel, RPG_CHANNEL "%s", tracker_id);
    char why[512] = "";
    int e = connect_now(p, why, sizeof why);
    if (e) {
        snprintf(err, errlen, "cannot use the PostgreSQL registry given with --registry: %s",
                 why[0] ? why : uv_strerror(e));
        free(p->conninfo);
        free(p);
        return e;
    }
    uv_timer_init(loop, &p->retry);
    uv_timer_init(loop, &p->deliver);
    uv_check_init(loop, &p->check);
    uv_idle_init(loop, &p->idle);
    uv_timer_init(loop, &p->lease);
    uv_timer_init(loop, &p->answer);
    uv_handle_t *hs[] = {(uv_handle_t *)&p->retry, (uv_handle_t *)&p->deliver,
                         (uv_handle_t *)&p->check, (uv_handle_t *)&p->idle,
                         (uv_handle_t *)&p->lease, (uv_handle_t *)&p->answer};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++) {
        uv_unref(hs[i]); /* the registry never keeps the loop alive */
        hs[i]->data = p;
        p->handles++;
    }
    set_state(p, RPG_UP);
    take_notifies(p);
    p->renewed = now_ms(); /* setup renewed it */
    /* Often enough to renew a lease of 1 s (--ttl 1) in time. */
    uint64_t tick = p->lease_s * 1000u / 3 < RPG_SWEEP_MS ? p->lease_s * 1000u / 3 : RPG_SWEEP_MS;
    uv_timer_start(&p->lease, on_lease, tick, tick);
    log_info(lg, "PostgreSQL registry %s:%s/%s (tracker id %s)", PQhost(p->conn),
             PQport(p->conn), PQdb(p->conn), p->tracker_id);
    *out = p;
    return 0;
}

void rpg_on_forward(reg_pg *p, rpg_forward_cb cb, void *arg) {
    p->forward = cb;
    p->forward_arg = arg;
}

int rpg_forward(reg_pg *p, const char *tracker, const char *folded, const char *payload) {
    if (p->state != RPG_UP)
        return REG_EUNAVAIL;
    if (strlen(payload) >= RPG_PAYLOAD_MAX)
        return UV_E2BIG;
    const char *v[] = {folded, tracker, payload};
    return enqueue(p, Q_FORWARD, 3, v, NULL, NULL, NULL, NULL);
}

const char *rpg_tracker_id(const reg_pg *p) { return p->tracker_id; }

void rpg_on_presence(reg_pg *p, rpg_presence_cb cb, void *arg) {
    p->presence = cb;
    p->presence_arg = arg;
}

void rpg_close(reg_pg *p) {
    if (!p)
        return;
    /* What is in flight and queued, and the offlines its callbacks queue
     * in turn, answered before the close. */
    for (int i = 0; i < 100000 && p->state == RPG_UP && (p->inflight || p->nq || p->ndw); i++) {
        drain(p);
        fire_deferred(p);
        flush(p);
    }
    set_state(p, RPG_CLOSED); /* what is still in flight (a server gone): REG_EUNAVAIL */
    fire_deferred(p);
    /* What could not be sent fails, so every callback fires once (those
     * it fires may queue more: bounded, as each round fails at once). */
    for (int i = 0; i < 16 && p->nq; i++) {
        pg_write *w = p->q;
        size_t n = p->nq;
        p->q = NULL;
        p->nq = p->capq = 0;
        finish(p, w, n, REG_EUNAVAIL, 0);
    }
    uv_timer_stop(&p->deliver);
    uv_close((uv_handle_t *)&p->retry, on_closed);
    uv_close((uv_handle_t *)&p->deliver, on_closed);
    uv_close((uv_handle_t *)&p->check, on_closed);
    uv_close((uv_handle_t *)&p->idle, on_closed);
    uv_close((uv_handle_t *)&p->lease, on_closed);
    uv_close((uv_handle_t *)&p->answer, on_closed);
}

int rpg_lookup(reg_pg *p, const char *folded, reg_user *u, char *endpoints, size_t cap) {
    const char *v[] = {folded};
    PGresult *res;
    int e = run(p, Q_GET, 1, v, NULL, NULL, "lookup", &res);
    if (e)
        return e;
    e = read_user(p, folded, res, 0, u, endpoints, cap);
    PQclear(res);
    return e;
}

int rpg_lookup_start(reg_pg *p, const char *folded, reg_user *u, char *endpoints, size_t cap,
                     reg_done_cb cb, void *arg) {
    if (p->state != RPG_UP)
        return REG_EUNAVAIL;
    const char *v[] = {folded};
    int e = enqueue(p, Q_GET, 1, v, NULL, NULL, cb, arg);
    if (e == 0) {
        pg_write *w = &p->q[p->nq - 1];
        w->u = u;
        w->eps = endpoints;
        w->epscap = cap;
    }
    return e;
}

int rpg_queue_rows(reg_pg *p, int q, int n, const char *const *v, const int *len,
                   const int *bin, rpg_row_cb rows, void *rows_arg, reg_done_cb cb, void *arg) {
    if (p->state != RPG_UP)
        return REG_EUNAVAIL;
    int e = enqueue(p, q, n, v, len, bin, cb, arg);
    if (e == 0) {
        p->q[p->nq - 1].rows = rows;
        p->q[p->nq - 1].rows_arg = rows_arg;
    }
    return e;
}

int rpg_online_start(reg_pg *p, const char *const *folded, size_t n, rpg_row_cb rows,
                     void *rows_arg, reg_done_cb cb, void *arg) {
    if (p->state != RPG_UP)
        return REG_EUNAVAIL;
    char *names = text_array(folded, NULL, n);
    if (!names)
        return UV_ENOMEM;
    const char *v[] = {names};
    int e = rpg_queue_rows(p, Q_ONLINE_MANY, 1, v, NULL, NULL, rows, rows_arg, cb, arg);
    free(names);
    return e;
}

int rpg_claim(reg_pg *p, const char *name, const char *folded, const unsigned char key[IDENT_PK],
              const char *endpoints, int64_t now, const char *skeleton, int name_ok,
              char stored[NAME_BUFLEN], reg_done_cb cb, void *arg) {
    if (p->state != RPG_UP)
        return REG_EUNAVAIL;
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, now);
    const char *v[] = {folded, name, (const char *)key, endpoints, t, skeleton, p->tracker_id,
                       name_ok ? "t" : "f"};
    const int len[] = {0, 0, IDENT_PK, 0, 0, 0, 0, 0};
    const int bin[] = {0, 0, 1, 0, 0, 0, 0, 0};
    int e = enqueue(p, Q_CLAIM, 8, v, len, bin, cb, arg);
    if (e == 0) {
        p->q[p->nq - 1].stored = stored;
        p->q[p->nq - 1].name_ok = name_ok;
    }
    return e;
}

int rpg_presence(reg_pg *p, const char *folded, int is_online, int64_t last_seen) {
    if (p->state != RPG_UP) {
        if (is_online)
            return REG_EUNAVAIL;
        owe(p, folded, last_seen); /* written once the server is back */
        return 0;
    }
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, last_seen);
    const char *v[] = {folded, is_online ? "t" : "f", t, p->tracker_id};
    return enqueue(p, Q_PRESENCE, 4, v, NULL, NULL, NULL, NULL);
}

int rpg_list_start(reg_pg *p, const char *from, int after, const char *upper, size_t limit,
                   rpg_row_cb rows, void *rows_arg, reg_done_cb cb, void *arg) {
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit + 1);
    const char *v[] = {from, upper, lim};
    return rpg_queue_rows(p, after ? Q_LIST_AFTER : Q_LIST_FROM, 3, v, NULL, NULL, rows,
                          rows_arg, cb, arg);
}

/* ---- for the other tables on this connection (mailbox_pg.c) ---- */

int rpg_add_statements(reg_pg *p, const char *const *texts, int n, int *base) {
    *base = Q_COUNT;
    p->extra = texts;
    p->nextra = n;
    for (int i = 0; i < n && p->state == RPG_UP; i++) {
        char name[16];
        stmt_name(Q_COUNT + i, name);
        PGresult *res;
        int e = await(p, PQsendPrepare(p->conn, name, texts[i], 0, NULL), "prepare", &res);
        PQclear(res);
        if (e)
            return e;
    }
    return p->state == RPG_UP ? 0 : REG_EUNAVAIL;
}

int rpg_query(reg_pg *p, int q, int n, const char *const *v, const int *len, const int *bin,
              const char *what, rpg_row_cb cb, void *arg, uint64_t *affected) {
    PGresult *res;
    int e = run(p, q, n, v, len, bin, what, &res);
    if (e)
        return e;
    if (cb)
        give_rows(res, cb, arg);
    if (affected)
        *affected = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

int rpg_queue(reg_pg *p, int q, int n, const char *const *v, const int *len, const int *bin,
              reg_done_cb cb, void *arg) {
    if (p->state != RPG_UP)
        return REG_EUNAVAIL;
    return enqueue(p, q, n, v, len, bin, cb, arg);
}

int rpg_wait(reg_pg *p, reg_done_cb cb, void *arg) {
    const char *v[] = {""};
    return enqueue(p, -1, 1, v, NULL, NULL, cb, arg);
}

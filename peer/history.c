/* history: the message tables of the peer's HOME/history.db (history.h):
 * sent and received, one per direction since schema 3.  Only this file
 * speaks its SQL; every statement is prepared once at open and bound per
 * call.  The connection, the migrations and the group commit are
 * shared/db.c's; the conversations table is written here once per batch
 * (conv_flush), not by a trigger per message. */
#include "history.h"

#include "db.h"
#include "grow.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The SQL below spells the states as numbers (a partial index is used only
 * when the query repeats its WHERE to the letter). */
_Static_assert(HIST_QUEUED == 0 && HIST_STORED == 1 && HIST_DELIVERED == 2 &&
                   HIST_EXPIRED == 3 && HIST_RECEIVED == 4,
               "the states are stored: their numbers are part of the file");

/* Entry i brings user_version from i to i+1 and ends by recording that.
 * Append only; never edit a released entry. */
static const char *const migrations[] = {
    "CREATE TABLE messages ("
    " id INTEGER PRIMARY KEY,"          /* insertion order: a conversation's order */
    " peer TEXT NOT NULL,"              /* the other side's folded name (name_fold) */
    " name TEXT NOT NULL,"              /* its spelling */
    " dir INTEGER NOT NULL CHECK (dir IN (0, 1)),"  /* 0 sent by us, 1 received */
    " sender_key BLOB"                  /* received: the sender's Ed25519 key; sent: NULL */
    "  CHECK (dir = 0 AND sender_key IS NULL OR dir = 1 AND length(sender_key) = 32),"
    " msg_id INTEGER NOT NULL,"         /* the sender's id: a uint64 as int64 bits */
    " seq INTEGER NOT NULL DEFAULT 0,"  /* sent: the conversation's \"#N\" */
    " ts INTEGER NOT NULL,"             /* the sender's clock, unix ms */
    " at INTEGER NOT NULL,"             /* when stored here, unix ms */
    " text BLOB NOT NULL,"              /* bytes: may hold NUL */
    " state INTEGER NOT NULL"           /* enum hist_state */
    "  CHECK (dir = 0 AND state BETWEEN 0 AND 3 OR dir = 1 AND state = 4)"
    ");"
    /* Exactly once: a received message is stored once per sender key and id. */
    "CREATE UNIQUE INDEX messages_received ON messages (sender_key, msg_id) WHERE dir = 1;"
    /* Our ids never repeat; hist_set_state and hist_max_id look them up. */
    "CREATE UNIQUE INDEX messages_sent ON messages (msg_id) WHERE dir = 0;"
    /* A conversation's messages in the senders' order (hist_last). */
    "CREATE INDEX messages_peer ON messages (peer, ts);"
    /* The outbox: sent and not yet delivered or given up, in send order. */
    "CREATE INDEX messages_outbox ON messages (id) WHERE dir = 0 AND state IN (0, 1);"
    /* One row per conversation, kept by the trigger: its latest message and
     * the largest seq sent in it, so neither needs a walk of its messages. */
    "CREATE TABLE conversations ("
    " peer TEXT PRIMARY KEY NOT NULL,"
    " last INTEGER NOT NULL,"           /* messages.id of the latest message */
    " seq INTEGER NOT NULL"             /* the largest seq sent */
    ") WITHOUT ROWID;"
    "CREATE TRIGGER messages_conversation AFTER INSERT ON messages BEGIN"
    " INSERT INTO conversations (peer, last, seq) VALUES (new.peer, new.id, new.seq)"
    " ON CONFLICT (peer) DO UPDATE SET last = excluded.last, seq = max(seq, excluded.seq);"
    " END;"
    "PRAGMA user_version = 1;",
    /* The trigger cost each insert a statement of its own (about a third
     * of the insert's time); history.c now writes conversations once per
     * batch and conversation, before the batch commits (conv_flush). */
    "DROP TRIGGER messages_conversation;"
    "PRAGMA user_version = 2;",
    /* One table per direction, each clustered on the key it is looked up
     * by, so a message costs its table and one index instead of a table
     * and three (and an acknowledgement one row with no index lookup):
     * sent is keyed by our id (acks, our ids' uniqueness and the largest
     * id are the table itself), received by (sender key, id), the dedupe
     * of exactly once, as a WITHOUT ROWID table.  id is still the
     * insertion order across both (history.c counts it on from the
     * largest conversations.last).  The old rows move over as they were;
     * a view named messages keeps the old shape for sqlite3 users. */
    "CREATE TABLE sent ("
    " msg_id INTEGER PRIMARY KEY,"      /* our id: a uint64 as int64 bits */
    " id INTEGER NOT NULL,"             /* insertion order, both tables */
    " peer TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"            /* the conversation's \"#N\" */
    " ts INTEGER NOT NULL,"
    " at INTEGER NOT NULL,"
    " text BLOB NOT NULL,"
    " state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 3)"
    ");"
    "CREATE TABLE received ("
    " sender_key BLOB NOT NULL CHECK (length(sender_key) = 32),"
    " msg_id INTEGER NOT NULL,"
    " id INTEGER NOT NULL,"
    " peer TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " ts INTEGER NOT NULL,"
    " at INTEGER NOT NULL,"
    " text BLOB NOT NULL,"
    " PRIMARY KEY (sender_key, msg_id)"
    ") WITHOUT ROWID;"
    "INSERT INTO sent (msg_id, id, peer, name, seq, ts, at, text, state)"
    " SELECT msg_id, id, peer, name, seq, ts, at, text, state FROM messages WHERE dir = 0;"
    "INSERT INTO received (sender_key, msg_id, id, peer, name, ts, at, text)"
    " SELECT sender_key, msg_id, id, peer, name, ts, at, text FROM messages WHERE dir = 1;"
    /* The latest message's ts, so the conversation list finds it through
     * the peer indexes below. */
    "ALTER TABLE conversations ADD COLUMN ts INTEGER NOT NULL DEFAULT 0;"
    "UPDATE conversations SET ts = coalesce((SELECT ts FROM messages WHERE id = last), 0);"
    "DROP TABLE messages;"
    /* A conversation's messages in the senders' order (hist_last). */
    "CREATE INDEX sent_peer ON sent (peer, ts, id);"
    "CREATE INDEX received_peer ON received (peer, ts, id);"
    /* The outbox: not yet delivered or given up, in send order. */
    "CREATE INDEX sent_outbox ON sent (id) WHERE state IN (0, 1);"
    "CREATE VIEW messages AS"
    " SELECT id, peer, name, 0 AS dir, NULL AS sender_key, msg_id, seq, ts, at, text, state"
    " FROM sent UNION ALL"
    " SELECT id, peer, name, 1, sender_key, msg_id, 0, ts, at, text, 4 FROM received;"
    "PRAGMA user_version = 3;",
};

static const db_schema history_schema = {
    .migrations = migrations,
    .n = (int)(sizeof migrations / sizeof *migrations),
    .what = "history",
    .hint = "use --home to pick another directory",
    .private_file = 1,
    .sync_thread = DB_SYNC_BEHIND,
};

/* The columns fill_row reads, in its order, and as each table gives them. */
#define ROW_COLS "peer, name, dir, sender_key, msg_id, seq, ts, at, text, state"
#define SENT_COLS "peer, name, 0 AS dir, NULL AS sender_key, msg_id, seq, ts, at, text, state"
#define RECEIVED_COLS "peer, name, 1 AS dir, sender_key, msg_id, 0 AS seq, ts, at, text, 4 AS state"

enum {
    ST_ADD_OUT, ST_ADD_IN, ST_SET_STATE, ST_SENT, ST_LAST, ST_OUTBOX, ST_CONVERSATIONS,
    ST_MAX_SEQ, ST_MAX_ID, ST_CONV, ST_NEXT_ID, ST_COUNT
};

static const char *const sql[ST_COUNT] = {
    /* Our id is the rowid: a repeat is the primary key's conflict. */
    [ST_ADD_OUT] = "INSERT INTO sent (peer, name, id, msg_id, seq, ts, at, text, state)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)",
    /* Only the primary key's conflict is "stored already": any other
     * constraint still fails the insert instead of passing for a dup. */
    [ST_ADD_IN] = "INSERT INTO received (peer, name, id, sender_key, msg_id, ts, at, text)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                  " ON CONFLICT (sender_key, msg_id) DO NOTHING",
    /* Forward only (history.h): QUEUED and STORED move up, EXPIRED only to
     * DELIVERED.  One rowid probe. */
    [ST_SET_STATE] = "UPDATE sent SET state = ?2 WHERE msg_id = ?1"
                     " AND (state IN (0, 1) AND state < ?2 OR state = 3 AND ?2 = 2)",
    [ST_SENT] = "SELECT count(*) FROM sent WHERE msg_id = ?1",
    /* In the senders' order, not arrival's: one sender's messages can come
     * by two paths at once (a link and the mailbox) and the first copy of
     * each is what is kept.  The senders' clocks (ms), then arrival: a
     * reply typed in the millisecond its message arrived comes after it
     * (the two senders' ids say nothing about each other).  The last ?2 of
     * each table (one walk back along its peer index each), then the last
     * ?2 of those. */
    [ST_LAST] = "SELECT " ROW_COLS " FROM ("
                "SELECT * FROM (SELECT id, " SENT_COLS " FROM sent WHERE peer = ?1"
                " ORDER BY ts DESC, id DESC LIMIT ?2)"
                " UNION ALL SELECT * FROM (SELECT id, " RECEIVED_COLS " FROM received"
                " WHERE peer = ?1 ORDER BY ts DESC, id DESC LIMIT ?2)"
                " ORDER BY ts DESC, id DESC LIMIT ?2) ORDER BY ts, id",
    [ST_OUTBOX] = "SELECT " SENT_COLS " FROM sent WHERE state IN (0, 1) ORDER BY id",
    /* Each conversation's latest message, found by its peer index: its
     * (peer, ts, id) is in conversations (CROSS JOIN: conversations is
     * the outer loop, never a walk of every message). */
    [ST_CONVERSATIONS] = "SELECT " ROW_COLS " FROM ("
                         "SELECT m.id, m.peer, m.name, 0 AS dir, NULL AS sender_key, m.msg_id,"
                         " m.seq, m.ts, m.at, m.text, m.state FROM conversations c"
                         " CROSS JOIN sent m WHERE m.peer = c.peer AND m.ts = c.ts"
                         " AND m.id = c.last"
                         " UNION ALL SELECT m.id, m.peer, m.name, 1, m.sender_key, m.msg_id, 0,"
                         " m.ts, m.at, m.text, 4 FROM conversations c CROSS JOIN received m"
                         " WHERE m.peer = c.peer AND m.ts = c.ts AND m.id = c.last)"
                         " ORDER BY id DESC",
    [ST_MAX_SEQ] = "SELECT seq FROM conversations WHERE peer = ?1",
    /* Ids are uint64 stored as int64: those with the top bit set are the
     * negative ones and the largest.  Each max is a rowid probe. */
    [ST_MAX_ID] = "SELECT coalesce((SELECT max(msg_id) FROM sent WHERE msg_id < 0),"
                  " (SELECT max(msg_id) FROM sent), 0)",
    /* What the trigger of schema 1 did, once per batch and conversation. */
    [ST_CONV] = "INSERT INTO conversations (peer, last, seq, ts) VALUES (?1, ?2, ?3, ?4)"
                " ON CONFLICT (peer) DO UPDATE SET"
                " ts = CASE WHEN excluded.last > last THEN excluded.ts ELSE ts END,"
                " last = max(last, excluded.last), seq = max(seq, excluded.seq)",
    /* Every message's id is at most its conversation's last. */
    [ST_NEXT_ID] = "SELECT coalesce(max(last), 0) + 1 FROM conversations",
};

/* A conversation's row as the open batch changed it, written by
 * conv_flush before the batch commits (or before a read of the table). */
typedef struct conv_note {
    char *peer;
    int64_t last; /* the id of its latest message */
    int64_t ts;   /* that message's ts */
    int64_t seq;  /* the largest seq sent in the batch */
} conv_note;

struct history {
    const logger *lg;
    db *d;
    sqlite3_stmt *st[ST_COUNT];
    conv_note *notes; /* the open batch's, one per conversation it touched */
    int64_t next_id;  /* the next message's id (insertion order) */
    size_t nnotes, capnotes;
};

/* A write's callback, waiting for its batch. */
typedef struct pending {
    hist_done_cb cb;
    void *arg;
    int dup;
} pending;

static void conv_flush(void *arg);
static int read_int(history *h, sqlite3_stmt *st, int64_t *v);

int hist_open(uv_loop_t *loop, const char *home, const logger *lg, history **out, char *err,
              size_t errlen) {
    char path[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/history.db", home) >= sizeof path) {
        snprintf(err, errlen, "home directory path is too long");
        return UV_ENAMETOOLONG;
    }
    history *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory opening the history");
        return UV_ENOMEM;
    }
    h->lg = lg;
    int e = db_open(loop, path, &history_schema, lg, &h->d, err, errlen);
    if (e == 0)
        e = db_prepare_all(h->d, sql, ST_COUNT, h->st, err, errlen);
    if (e == 0 && (e = read_int(h, h->st[ST_NEXT_ID], &h->next_id)) != 0)
        snprintf(err, errlen, "cannot read the history: %s", sqlite3_errmsg(db_sqlite(h->d)));
    if (e == 0)
        db_on_pre_commit(h->d, conv_flush, h);
    if (e) {
        db_close(h->d);
        free(h);
        return e;
    }
    *out = h;
    return 0;
}

void hist_close(history *h) {
    if (!h)
        return;
    db_close(h->d); /* its last commit wrote the notes */
    free(h->notes);
    free(h);
}

void hist_on_commit(history *h, void (*cb)(void *arg, uint64_t ns), void *arg) {
    db_on_commit(h->d, cb, arg);
}

void hist_on_batch_end(history *h, void (*cb)(void *arg, int status), void *arg) {
    db_on_batch_end(h->d, cb, arg);
}

/* Writes the batch's conversation rows (in its transaction, whose commit
 * makes them durable together with the messages they name). */
static void conv_flush(void *arg) {
    history *h = arg;
    sqlite3_stmt *st = h->st[ST_CONV];
    /* A batch an error rolled back: its messages are gone, and so go these. */
    int live = !sqlite3_get_autocommit(db_sqlite(h->d));
    for (size_t i = 0; i < h->nnotes; i++) {
        conv_note *n = &h->notes[i];
        if (live) {
            sqlite3_bind_text(st, 1, n->peer, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, n->last);
            sqlite3_bind_int64(st, 3, n->seq);
            sqlite3_bind_int64(st, 4, n->ts);
            db_run(h->d, st); /* logged; a failure that rolls back fails the commit */
        }
        free(n->peer);
    }
    h->nnotes = 0;
}

/* Notes message row id (seq for a sent one, else 0) for its conversation;
 * UV_ENOMEM when it cannot (the caller then writes the notes at once). */
static int conv_note_add(history *h, const char *peer, int64_t id, int64_t ts, int64_t seq) {
    for (size_t i = 0; i < h->nnotes; i++) {
        conv_note *n = &h->notes[i];
        if (strcmp(n->peer, peer) == 0) {
            n->last = id; /* ids only grow: the latest */
            n->ts = ts;
            if (seq > n->seq)
                n->seq = seq;
            return 0;
        }
    }
    conv_note *nn = grow(h->notes, &h->capnotes, h->nnotes + 1, sizeof *nn, 4);
    if (!nn)
        return UV_ENOMEM;
    h->notes = nn;
    char *copy = strdup(peer);
    if (!copy)
        return UV_ENOMEM;
    conv_note *n = &h->notes[h->nnotes++];
    n->peer = copy;
    n->last = id;
    n->ts = ts;
    n->seq = seq;
    return 0;
}

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Every statement is stepped and reset before the call that bound it
 * returns, so SQLite may read the caller's bytes in place (no copy). */
static void bind_str(sqlite3_stmt *st, int i, const char *s) {
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* The columns every insert shares: ?1 peer, ?2 name, ?3 the next id, ?7
 * at, ?8 text.  An empty text is bound from "" (a NULL pointer would bind
 * NULL). */
static void bind_common(history *h, sqlite3_stmt *st, const char *peer_fold, const char *peer_name,
                        const char *text, size_t len) {
    bind_str(st, 1, peer_fold);
    bind_str(st, 2, peer_name);
    sqlite3_bind_int64(st, 3, h->next_id);
    sqlite3_bind_int64(st, 7, now_ms());
    sqlite3_bind_blob(st, 8, len ? text : "", (int)len, SQLITE_STATIC);
}

static int bad_args(const char *peer_fold, const char *peer_name, const char *text, size_t len) {
    return !peer_fold || !*peer_fold || !peer_name || (!text && len) || len > INT_MAX;
}

static void on_committed(int status, void *arg) {
    pending *p = arg;
    hist_done_cb cb = p->cb;
    void *cb_arg = p->arg;
    int dup = status ? 0 : p->dup;
    free(p);
    cb(status, dup, cb_arg);
}

/* Runs the bound insert st (its id h->next_id) in the pass's batch, its
 * callback (if any) reserved first so nothing can fail after the row is
 * written.  A constraint failure is UV_EEXIST (the only one a valid call
 * can meet is a repeated id of ours). */
static int insert(history *h, sqlite3_stmt *st, const char *peer_fold, int64_t ts, int64_t seq,
                  hist_done_cb cb, void *arg) {
    pending *p = NULL;
    int e = 0;
    if (cb) {
        if (!(p = malloc(sizeof *p)))
            e = UV_ENOMEM;
        else if ((e = db_wait(h->d, on_committed, p)) != 0) {
            free(p);
            p = NULL;
        } else {
            *p = (pending){cb, arg, 0};
        }
    }
    if (e == 0 && (e = db_begin_write(h->d)) == 0 && (e = db_run(h->d, st)) != 0 &&
        sqlite3_errcode(db_sqlite(h->d)) == SQLITE_CONSTRAINT)
        e = UV_EEXIST;
    db_done(st); /* db_run did when it ran; an early failure leaves bindings */
    int stored = e == 0 && sqlite3_changes(db_sqlite(h->d)) > 0; /* else DO NOTHING: a dup */
    int64_t row = stored ? h->next_id++ : 0;
    if (stored && conv_note_add(h, peer_fold, row, ts, seq)) {
        conv_flush(h); /* no room to note it: write the rows we have, then this one */
        sqlite3_stmt *cs = h->st[ST_CONV];
        bind_str(cs, 1, peer_fold);
        sqlite3_bind_int64(cs, 2, row);
        sqlite3_bind_int64(cs, 3, seq);
        sqlite3_bind_int64(cs, 4, ts);
        db_run(h->d, cs);
    }
    if (e && p) {
        db_unwait(h->d);
        free(p);
    } else if (p) {
        p->dup = !stored;
    }
    return e;
}

int hist_add_out(history *h, const char *peer_fold, const char *peer_name, uint64_t msg_id,
                 uint64_t seq, int64_t ts, const char *text, size_t len, hist_done_cb cb,
                 void *arg) {
    if (bad_args(peer_fold, peer_name, text, len))
        return UV_EINVAL;
    sqlite3_stmt *st = h->st[ST_ADD_OUT];
    bind_common(h, st, peer_fold, peer_name, text, len);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)msg_id);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)seq);
    sqlite3_bind_int64(st, 6, ts);
    return insert(h, st, peer_fold, ts, (int64_t)seq, cb, arg);
}

int hist_add_in(history *h, const char *peer_fold, const char *peer_name,
                const unsigned char key[IDENT_PK], uint64_t msg_id, int64_t ts, const char *text,
                size_t len, hist_done_cb cb, void *arg) {
    if (bad_args(peer_fold, peer_name, text, len) || !key)
        return UV_EINVAL;
    sqlite3_stmt *st = h->st[ST_ADD_IN];
    bind_common(h, st, peer_fold, peer_name, text, len);
    sqlite3_bind_blob(st, 4, key, IDENT_PK, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)msg_id);
    sqlite3_bind_int64(st, 6, ts);
    return insert(h, st, peer_fold, ts, 0, cb, arg);
}

/* Steps st for its one integer: *v, or 0 when it gives no row (or NULL). */
static int read_int(history *h, sqlite3_stmt *st, int64_t *v) {
    int e = db_begin_read(h->d);
    int rc = e ? SQLITE_DONE : sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_error(h->lg, "history read failed: %s", sqlite3_errmsg(db_sqlite(h->d)));
        e = db_error(rc);
    }
    db_done(st);
    return e;
}

int hist_set_state(history *h, uint64_t msg_id, int state) {
    if (state != HIST_STORED && state != HIST_DELIVERED && state != HIST_EXPIRED)
        return UV_EINVAL;
    int e = db_begin_hint(h->d);
    if (e)
        return e;
    sqlite3_stmt *st = h->st[ST_SET_STATE];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)msg_id);
    sqlite3_bind_int(st, 2, state);
    if ((e = db_run(h->d, st)) != 0 || sqlite3_changes(db_sqlite(h->d)) > 0)
        return e;
    /* Nothing moved: say whether the message exists. */
    st = h->st[ST_SENT];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)msg_id);
    int64_t n;
    if ((e = read_int(h, st, &n)) != 0)
        return e;
    return n ? UV_EALREADY : UV_ENOENT;
}

static void fill_row(sqlite3_stmt *st, hist_row *r) {
    const char *peer = (const char *)sqlite3_column_text(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 1);
    r->peer = peer ? peer : "";
    r->name = name ? name : "";
    r->out = sqlite3_column_int(st, 2) == 0;
    r->sender_key = sqlite3_column_bytes(st, 3) == IDENT_PK ? sqlite3_column_blob(st, 3) : NULL;
    r->msg_id = (uint64_t)sqlite3_column_int64(st, 4);
    r->seq = (uint64_t)sqlite3_column_int64(st, 5);
    r->ts = sqlite3_column_int64(st, 6);
    r->at = sqlite3_column_int64(st, 7);
    const void *text = sqlite3_column_blob(st, 8);
    r->len = (size_t)sqlite3_column_bytes(st, 8);
    r->text = text ? text : ""; /* SQLite gives NULL for an empty blob */
    r->state = sqlite3_column_int(st, 9);
}

/* Hands every row of the bound st to cb until it stops. */
static int each_row(history *h, sqlite3_stmt *st, hist_row_cb cb, void *arg) {
    int e = db_begin_read(h->d);
    int rc = SQLITE_DONE;
    while (e == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        hist_row row;
        fill_row(st, &row);
        if (cb(&row, arg))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_error(h->lg, "history read failed: %s", sqlite3_errmsg(db_sqlite(h->d)));
        e = db_error(rc);
    }
    db_done(st);
    return e;
}

int hist_last(history *h, const char *peer_fold, size_t n, hist_row_cb cb, void *arg) {
    if (n == 0)
        return 0;
    sqlite3_stmt *st = h->st[ST_LAST];
    bind_str(st, 1, peer_fold);
    sqlite3_bind_int64(st, 2, n > INT64_MAX ? INT64_MAX : (sqlite3_int64)n);
    return each_row(h, st, cb, arg);
}

int hist_outbox(history *h, hist_row_cb cb, void *arg) {
    return each_row(h, h->st[ST_OUTBOX], cb, arg);
}

int hist_conversations(history *h, hist_row_cb cb, void *arg) {
    conv_flush(h); /* the open batch's rows, in its transaction */
    return each_row(h, h->st[ST_CONVERSATIONS], cb, arg);
}

int hist_max_seq(history *h, const char *peer_fold, uint64_t *seq) {
    conv_flush(h);
    sqlite3_stmt *st = h->st[ST_MAX_SEQ];
    bind_str(st, 1, peer_fold);
    int64_t v;
    int e = read_int(h, st, &v);
    *seq = e ? 0 : (uint64_t)v;
    return e;
}

int hist_max_id(history *h, uint64_t *id) {
    int64_t v;
    int e = read_int(h, h->st[ST_MAX_ID], &v);
    *id = e ? 0 : (uint64_t)v;
    return e;
}

/* mailbox: the mail and receipts tables of the tracker's database
 * (mailbox.h).  Only this file speaks their SQL; every statement is
 * prepared once at open on the registry's database and bound per call.
 * What waits in total is counted in memory (a limit and a gauge need it on
 * every put, and a full count would scan every box); a batch that fails
 * to commit recounts it, and so does a commit by another process (an
 * operator's --release deletes mail).  With a shared registry every call
 * goes to mailbox_pg.c instead: the mail then lives in PostgreSQL. */
#include "mailbox.h"

#include "db.h"
#include "mailbox_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    ST_KNOWN_MAIL, ST_KNOWN_RECEIPT, ST_RECIPIENT_USE, ST_SENDER_USE, ST_INSERT, ST_GET,
    ST_DELETE, ST_RECEIPT, ST_MAIL_UNACKED, ST_MAIL_AFTER, ST_RECEIPTS_UNACKED,
    ST_RECEIPTS_AFTER, ST_RECEIPT_ACK, ST_EXPIRED_SENDERS, ST_EXPIRE_RECEIPTS, ST_EXPIRE_MAIL,
    ST_EXPIRE_OLD_RECEIPTS, ST_TOTALS, ST_COUNT
};

/* Both windows walk their table alike (next_rows): what one user has at or
 * below the cursor, then the rows after it, the id first. */
#define UNACKED(table, who, id) \
    "SELECT count(*) FROM " table " WHERE " who " = ?1 AND " id " <= ?2"
#define AFTER(table, who, id, columns) \
    "SELECT " id ", " columns " FROM " table " WHERE " who " = ?1 AND " id " > ?2" \
    " ORDER BY " id " LIMIT ?3"

static const char *const sql[ST_COUNT] = {
    [ST_KNOWN_MAIL] = "SELECT 1 FROM mail WHERE sender = ?1 AND recipient = ?2 AND msg_id = ?3",
    [ST_KNOWN_RECEIPT] = "SELECT 1 FROM receipts WHERE sender = ?1 AND msg_id = ?3"
                         " AND recipient = ?2 LIMIT 1",
    /* kept by schema.c's triggers; no row: an empty mailbox */
    [ST_RECIPIENT_USE] = "SELECT msgs, bytes FROM mail_use WHERE recipient = ?1",
    [ST_SENDER_USE] = "SELECT count(*) FROM mail WHERE sender = ?1 AND recipient = ?2",
    [ST_INSERT] = "INSERT OR IGNORE INTO mail (recipient, recipient_name, sender, sender_name,"
                  " sender_key, msg_id, size, stored, expires, box)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_GET] = "SELECT sender, msg_id, size FROM mail WHERE mid = ?1 AND recipient = ?2",
    [ST_DELETE] = "DELETE FROM mail WHERE mid = ?1",
    [ST_RECEIPT] = "INSERT INTO receipts (sender, recipient, msg_id, status, expires)"
                   " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_MAIL_UNACKED] = UNACKED("mail", "recipient", "mid"),
    [ST_MAIL_AFTER] = AFTER("mail", "recipient", "mid", "sender_name, sender_key, stored, box"),
    [ST_RECEIPTS_UNACKED] = UNACKED("receipts", "sender", "rid"),
    [ST_RECEIPTS_AFTER] = AFTER("receipts", "sender", "rid", "recipient, msg_id, status"),
    [ST_RECEIPT_ACK] = "DELETE FROM receipts WHERE rid = ?1 AND sender = ?2",
    [ST_EXPIRED_SENDERS] = "SELECT sender, count(*), total(size) FROM mail WHERE expires <= ?1"
                           " GROUP BY sender",
    [ST_EXPIRE_RECEIPTS] = "INSERT INTO receipts (sender, recipient, msg_id, status, expires)"
                           " SELECT sender, recipient_name, msg_id, 'expired', ?2 FROM mail"
                           " WHERE expires <= ?1 ORDER BY mid",
    [ST_EXPIRE_MAIL] = "DELETE FROM mail WHERE expires <= ?1",
    [ST_EXPIRE_OLD_RECEIPTS] = "DELETE FROM receipts WHERE expires <= ?1",
    [ST_TOTALS] = "SELECT count(*), total(size) FROM mail",
};

struct mailbox {
    const logger *lg;
    db *d;
    sqlite3_stmt *st[ST_COUNT];
    mbox_totals totals;
    int waiting; /* on_batch is among this pass's waiters */
    mbox_pg *pg; /* the shared registry's mailbox, or NULL: this one */
};

static void bind_str(sqlite3_stmt *st, int i, const char *s) {
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

/* Ids are uint64 on the wire and int64 in SQLite: stored bit for bit. */
static void bind_u64(sqlite3_stmt *st, int i, uint64_t v) {
    sqlite3_bind_int64(st, i, (int64_t)v);
}

static uint64_t column_u64(sqlite3_stmt *st, int i) {
    return (uint64_t)sqlite3_column_int64(st, i);
}

static const char *column_str(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static int step_error(mailbox *mb, const char *what) {
    log_error(mb->lg, "database %s failed: %s", what, sqlite3_errmsg(db_sqlite(mb->d)));
    return db_error(sqlite3_errcode(db_sqlite(mb->d)));
}

/* Steps a bound statement that answers one row of integers (a count, a
 * sum): a[0..n) get them.  The statement is reset. */
static int read_ints(mailbox *mb, sqlite3_stmt *st, int64_t *a, int n) {
    int e = db_begin_read(mb->d);
    if (e) {
        db_done(st);
        return e;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        for (int i = 0; i < n; i++)
            a[i] = sqlite3_column_int64(st, i);
    else if (rc == SQLITE_DONE)
        memset(a, 0, sizeof *a * (size_t)n);
    else
        e = step_error(mb, "read of the mailbox");
    db_done(st);
    return e;
}

static int count_totals(mailbox *mb) {
    int64_t v[2];
    int e = read_ints(mb, mb->st[ST_TOTALS], v, 2);
    if (e == 0)
        mb->totals = (mbox_totals){(uint64_t)v[0], (uint64_t)v[1]};
    return e;
}

/* The pass's batch ended: a rolled-back one undid what the totals counted. */
static void on_batch(int status, void *arg) {
    mailbox *mb = arg;
    mb->waiting = 0;
    if (status && count_totals(mb))
        log_warn(mb->lg, "could not recount the mailbox after a failed commit");
}

static void on_outside_write(void *arg) {
    mailbox *mb = arg;
    if (count_totals(mb))
        log_warn(mb->lg, "could not recount the mailbox after another process changed it");
}

/* Every write joins the batch through here. */
static int begin_write(mailbox *mb) {
    int e = db_begin_write(mb->d);
    if (e == 0 && !mb->waiting && db_wait(mb->d, on_batch, mb) == 0)
        mb->waiting = 1;
    return e;
}

int mbox_open(registry *r, const logger *lg, mailbox **out, char *err, size_t errlen) {
    mailbox *mb = calloc(1, sizeof *mb);
    if (!mb) {
        snprintf(err, errlen, "out of memory opening the mailbox");
        return UV_ENOMEM;
    }
    mb->lg = lg;
    mb->d = reg_db(r);
    if (reg_pg_conn(r)) {
        int e = mpg_open(reg_pg_conn(r), lg, &mb->pg, err, errlen);
        if (e) {
            free(mb);
            return e;
        }
        *out = mb;
        return 0;
    }
    int e = 0;
    for (int i = 0; e == 0 && i < ST_COUNT; i++)
        e = db_prepare(mb->d, sql[i], &mb->st[i]);
    if (e == 0)
        e = count_totals(mb);
    if (e) {
        snprintf(err, errlen, "cannot set up the mailbox: %s", sqlite3_errmsg(db_sqlite(mb->d)));
        free(mb); /* the prepared statements are the database's to finalize */
        return e;
    }
    reg_on_outside_write(r, on_outside_write, mb);
    *out = mb;
    return 0;
}

void mbox_close(mailbox *mb) {
    if (mb)
        mpg_close(mb->pg);
    free(mb);
}

int mbox_wait(mailbox *mb, void (*cb)(int status, void *arg), void *arg) {
    return mb->pg ? mpg_wait(mb->pg, cb, arg) : db_wait(mb->d, cb, arg);
}

void mbox_get_totals(const mailbox *mb, mbox_totals *out) {
    if (mb->pg)
        mpg_get_totals(mb->pg, out);
    else
        *out = mb->totals;
}

/* 1 when the bound statement finds a row, 0 when not, or an error. */
static int exists(mailbox *mb, sqlite3_stmt *st) {
    int e = db_begin_read(mb->d);
    if (e) {
        db_done(st);
        return e;
    }
    int rc = sqlite3_step(st);
    e = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : step_error(mb, "read of the mailbox");
    db_done(st);
    return e;
}

int mbox_known(mailbox *mb, const char *sender, const char *recipient,
               const char *recipient_name, uint64_t msg_id) {
    if (mb->pg)
        return mpg_known(mb->pg, sender, recipient, recipient_name, msg_id);
    sqlite3_stmt *st = mb->st[ST_KNOWN_MAIL];
    bind_str(st, 1, sender);
    bind_str(st, 2, recipient);
    bind_u64(st, 3, msg_id);
    int r = exists(mb, st);
    if (r)
        return r;
    st = mb->st[ST_KNOWN_RECEIPT];
    bind_str(st, 1, sender);
    bind_str(st, 2, recipient_name);
    bind_u64(st, 3, msg_id);
    return exists(mb, st);
}

int mbox_room(mailbox *mb, const char *recipient, const char *sender, size_t size,
              const mbox_limits *lim, mbox_full *full) {
    int64_t use[3]; /* the recipient's messages and bytes, the sender's messages there */
    int e;
    mbox_totals all;
    mbox_get_totals(mb, &all);
    if (mb->pg) {
        if ((e = mpg_use(mb->pg, recipient, sender, use)) != 0)
            return e;
    } else {
        sqlite3_stmt *st = mb->st[ST_RECIPIENT_USE];
        bind_str(st, 1, recipient);
        if ((e = read_ints(mb, st, use, 2)) != 0)
            return e;
        st = mb->st[ST_SENDER_USE];
        bind_str(st, 1, sender);
        bind_str(st, 2, recipient);
        if ((e = read_ints(mb, st, use + 2, 1)) != 0)
            return e;
    }
    if ((uint64_t)use[0] >= lim->max_msgs)
        *full = MBOX_FULL_MSGS;
    else if ((uint64_t)use[1] + size > lim->max_bytes)
        *full = MBOX_FULL_BYTES;
    else if ((uint64_t)use[2] >= lim->per_sender)
        *full = MBOX_FULL_SENDER;
    else if (all.bytes + size > lim->total_bytes)
        *full = MBOX_FULL_TOTAL;
    else
        *full = MBOX_ROOM;
    return 0;
}

int mbox_put(mailbox *mb, const mbox_new *m) {
    if (mb->pg)
        return mpg_put(mb->pg, m);
    int e = begin_write(mb);
    if (e)
        return e;
    sqlite3_stmt *st = mb->st[ST_INSERT];
    bind_str(st, 1, m->recipient);
    bind_str(st, 2, m->recipient_name);
    bind_str(st, 3, m->sender);
    bind_str(st, 4, m->sender_name);
    sqlite3_bind_blob(st, 5, m->sender_key, IDENT_PK, SQLITE_TRANSIENT);
    bind_u64(st, 6, m->msg_id);
    sqlite3_bind_int64(st, 7, (int64_t)m->size);
    sqlite3_bind_int64(st, 8, m->stored);
    sqlite3_bind_int64(st, 9, m->expires);
    sqlite3_bind_blob(st, 10, m->box, (int)m->size, SQLITE_TRANSIENT);
    if ((e = db_run(mb->d, st)) != 0)
        return e;
    if (sqlite3_changes(db_sqlite(mb->d)) == 0)
        return UV_EEXIST;
    mb->totals.msgs++;
    mb->totals.bytes += m->size;
    return 0;
}

/* Statement which with ?1 = id and ?2 = a folded name bound: the
 * acknowledgements find their row by both. */
static sqlite3_stmt *by_id(mailbox *mb, int which, uint64_t id, const char *who) {
    sqlite3_stmt *st = mb->st[which];
    bind_u64(st, 1, id);
    bind_str(st, 2, who);
    return st;
}

static int add_receipt(mailbox *mb, const char *sender, const char *recipient_name,
                       uint64_t msg_id, const char *status, int64_t expires) {
    sqlite3_stmt *st = mb->st[ST_RECEIPT];
    bind_str(st, 1, sender);
    bind_str(st, 2, recipient_name);
    bind_u64(st, 3, msg_id);
    bind_str(st, 4, status);
    sqlite3_bind_int64(st, 5, expires);
    return db_run(mb->d, st);
}

int mbox_ack(mailbox *mb, const char *recipient, const char *recipient_name, uint64_t mid,
             const char *status, int64_t expires, char sender[NAME_BUFLEN]) {
    if (mb->pg)
        return UV_ENOTSUP;
    int e = begin_write(mb);
    if (e)
        return e;
    sqlite3_stmt *st = by_id(mb, ST_GET, mid, recipient);
    int rc = sqlite3_step(st);
    uint64_t msg_id = 0, size = 0;
    if (rc == SQLITE_ROW) {
        snprintf(sender, NAME_BUFLEN, "%s", column_str(st, 0));
        msg_id = column_u64(st, 1);
        size = column_u64(st, 2);
    } else {
        e = rc == SQLITE_DONE ? UV_ENOENT : step_error(mb, "read of the mailbox");
    }
    db_done(st);
    if (e)
        return e;
    st = mb->st[ST_DELETE];
    bind_u64(st, 1, mid);
    if ((e = db_run(mb->d, st)) != 0 ||
        (e = add_receipt(mb, sender, recipient_name, msg_id, status, expires)) != 0)
        return e;
    mb->totals.msgs--;
    mb->totals.bytes -= size;
    return 0;
}

int mbox_receipt_ack(mailbox *mb, const char *sender, uint64_t rid) {
    if (mb->pg)
        return UV_ENOTSUP;
    int e = begin_write(mb);
    if (e)
        return e;
    if ((e = db_run(mb->d, by_id(mb, ST_RECEIPT_ACK, rid, sender))) != 0)
        return e;
    return sqlite3_changes(db_sqlite(mb->d)) ? 0 : UV_ENOENT;
}

int mbox_ack_start(mailbox *mb, const char *recipient, const char *recipient_name, uint64_t mid,
                   const char *status, int64_t expires, char sender[NAME_BUFLEN],
                   void (*done)(int status, void *arg), void *done_arg) {
    if (mb->pg)
        return mpg_ack_start(mb->pg, recipient, recipient_name, mid, status, expires, sender,
                             done, done_arg);
    return mbox_ack(mb, recipient, recipient_name, mid, status, expires, sender);
}

int mbox_receipt_ack_start(mailbox *mb, const char *sender, uint64_t rid,
                           void (*done)(int status, void *arg), void *done_arg) {
    if (mb->pg)
        return mpg_receipt_ack_start(mb->pg, sender, rid, done, done_arg);
    return mbox_receipt_ack(mb, sender, rid);
}

/* ---- the windows: one walk for both tables ---- */

/* Hands one row of an _AFTER statement to the caller's callback; returns
 * its verdict. */
typedef int (*row_fn)(sqlite3_stmt *st, void *cb, void *arg);

static int mail_row(sqlite3_stmt *st, void *cb, void *arg) {
    static const unsigned char nokey[IDENT_PK];
    mbox_mail m = {
        .mid = column_u64(st, 0),
        .from = column_str(st, 1),
        .key = sqlite3_column_bytes(st, 2) == IDENT_PK ? sqlite3_column_blob(st, 2) : nokey,
        .stored = sqlite3_column_int64(st, 3),
        .box = sqlite3_column_blob(st, 4),
        .size = (size_t)sqlite3_column_bytes(st, 4),
    };
    return ((mbox_mail_cb)cb)(&m, arg);
}

static int receipt_row(sqlite3_stmt *st, void *cb, void *arg) {
    mbox_receipt r = {
        .rid = column_u64(st, 0),
        .to = column_str(st, 1),
        .msg_id = column_u64(st, 2),
        .status = column_str(st, 3),
    };
    return ((mbox_receipt_cb)cb)(&r, arg);
}

static int next_rows(mailbox *mb, int unacked, int after, const char *who, uint64_t *cursor,
                     size_t window, row_fn row, void *cb, void *arg) {
    int64_t n;
    sqlite3_stmt *st = mb->st[unacked];
    bind_str(st, 1, who);
    bind_u64(st, 2, *cursor);
    int e = read_ints(mb, st, &n, 1);
    if (e || (uint64_t)n >= window)
        return e;
    st = mb->st[after];
    bind_str(st, 1, who);
    bind_u64(st, 2, *cursor);
    sqlite3_bind_int64(st, 3, (int64_t)(window - (uint64_t)n));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *cursor = column_u64(st, 0);
        if (row(st, cb, arg))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        e = step_error(mb, "read of the mailbox");
    db_done(st);
    return e;
}

int mbox_next_mail(mailbox *mb, const char *recipient, uint64_t *cursor, size_t window,
                   mbox_mail_cb cb, void *arg) {
    if (mb->pg)
        return UV_ENOTSUP;
    return next_rows(mb, ST_MAIL_UNACKED, ST_MAIL_AFTER, recipient, cursor, window, mail_row,
                     (void *)cb, arg);
}

int mbox_next_receipts(mailbox *mb, const char *sender, uint64_t *cursor, size_t window,
                       mbox_receipt_cb cb, void *arg) {
    if (mb->pg)
        return UV_ENOTSUP;
    return next_rows(mb, ST_RECEIPTS_UNACKED, ST_RECEIPTS_AFTER, sender, cursor, window,
                     receipt_row, (void *)cb, arg);
}

int mbox_fill_start(mailbox *mb, const char *who, uint64_t *mail_cursor,
                    uint64_t *receipt_cursor, size_t window, mbox_mail_cb mail_cb,
                    mbox_receipt_cb receipt_cb, void *arg, void (*done)(int status, void *arg),
                    void *done_arg) {
    if (mb->pg)
        return mpg_fill_start(mb->pg, who, mail_cursor, receipt_cursor, window, mail_cb,
                              receipt_cb, arg, done, done_arg);
    int e = mbox_next_mail(mb, who, mail_cursor, window, mail_cb, arg);
    return e ? e : mbox_next_receipts(mb, who, receipt_cursor, window, receipt_cb, arg);
}

/* ---- the sweep ---- */

int mbox_expire(mailbox *mb, int64_t now, int64_t receipt_expires,
                void (*cb)(const char *sender, void *arg), void *arg, uint64_t *expired) {
    if (mb->pg)
        return mpg_expire(mb->pg, now, receipt_expires, cb, arg, expired);
    *expired = 0;
    int e = begin_write(mb);
    if (e)
        return e;
    uint64_t msgs = 0, bytes = 0;
    sqlite3_stmt *st = mb->st[ST_EXPIRED_SENDERS];
    sqlite3_bind_int64(st, 1, now);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        msgs += column_u64(st, 1);
        bytes += (uint64_t)sqlite3_column_int64(st, 2);
        if (cb)
            cb(column_str(st, 0), arg);
    }
    if (rc != SQLITE_DONE)
        e = step_error(mb, "sweep of the mailbox");
    db_done(st);
    if (e)
        return e;
    if (msgs) {
        st = mb->st[ST_EXPIRE_RECEIPTS];
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int64(st, 2, receipt_expires);
        if ((e = db_run(mb->d, st)) != 0)
            return e;
        st = mb->st[ST_EXPIRE_MAIL];
        sqlite3_bind_int64(st, 1, now);
        if ((e = db_run(mb->d, st)) != 0)
            return e;
        mb->totals.msgs -= msgs;
        mb->totals.bytes -= bytes;
    }
    st = mb->st[ST_EXPIRE_OLD_RECEIPTS];
    sqlite3_bind_int64(st, 1, now);
    if ((e = db_run(mb->d, st)) == 0)
        *expired = msgs;
    return e;
}

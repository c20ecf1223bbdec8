/* mailbox_pg: the mailbox's SQL for PostgreSQL (mailbox_pg.h).  Values go
 * as text (ids as the int64 they are stored as, bit for bit), keys and
 * boxes as binary parameters; bytea comes back in hex. */
#include "mailbox_pg.h"

#include "registry_pg.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { M_KNOWN_MAIL, M_KNOWN_RECEIPT, M_USE, M_INSERT, M_ACK, M_RECEIPT_ACK, M_MAIL_WINDOW, M_RECEIPTS_WINDOW, M_EXPIRE, M_EXPIRE_RECEIPTS, M_TOTALS,
       M_COUNT };

/* A window in one statement (mailbox.c's two): the rows after the cursor,
 * as many as the window has room for beside what one user has at or
 * below it (unacknowledged). */
#define WINDOW(table, who, id, columns) \
    "SELECT " id ", " columns " FROM " table " WHERE " who " = $1 AND " id " > $2" \
    " ORDER BY " id " LIMIT greatest(0, $3::bigint - (SELECT count(*) FROM " table \
    " WHERE " who " = $1 AND " id " <= $2))"

static const char *const sql[M_COUNT] = {
    [M_KNOWN_MAIL] = "SELECT 1 FROM parley_mail WHERE sender = $1 AND recipient = $2"
                     " AND msg_id = $3",
    [M_KNOWN_RECEIPT] = "SELECT 1 FROM parley_receipts WHERE sender = $1 AND recipient = $2"
                        " AND msg_id = $3 LIMIT 1",
    [M_USE] = "SELECT count(*), coalesce(sum(size), 0), count(*) FILTER (WHERE sender = $2)"
              " FROM parley_mail WHERE recipient = $1",
    [M_INSERT] = "INSERT INTO parley_mail (recipient, recipient_name, sender, sender_name,"
                 " sender_key, msg_id, size, stored, expires, box)"
                 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
    /* One statement, in the batch: of two acks of one message, the second
     * deletes nothing, so it adds no receipt and returns no row. */
    [M_ACK] = "WITH d AS (DELETE FROM parley_mail WHERE recipient = $1 AND mid = $2"
              " RETURNING sender, msg_id, size),"
              " r AS (INSERT INTO parley_receipts (sender, recipient, msg_id, status, expires)"
              " SELECT sender, $3::text, msg_id, $4::text, $5::bigint FROM d)"
              " SELECT sender, size FROM d",
    [M_RECEIPT_ACK] = "DELETE FROM parley_receipts WHERE sender = $1 AND rid = $2 RETURNING rid",
    [M_MAIL_WINDOW] = WINDOW("parley_mail", "recipient", "mid",
                             "sender_name, sender_key, stored, box"),
    [M_RECEIPTS_WINDOW] = WINDOW("parley_receipts", "sender", "rid",
                                 "recipient, msg_id, status"),
    /* Trackers sweeping at once each take the rows they deleted. */
    [M_EXPIRE] = "WITH d AS (DELETE FROM parley_mail WHERE expires <= $1"
                 " RETURNING mid, sender, recipient_name, msg_id, size),"
                 " r AS (INSERT INTO parley_receipts (sender, recipient, msg_id, status, expires)"
                 " SELECT sender, recipient_name, msg_id, 'expired', $2::bigint FROM d ORDER BY mid)"
                 " SELECT sender, count(*), sum(size) FROM d GROUP BY sender",
    [M_EXPIRE_RECEIPTS] = "DELETE FROM parley_receipts WHERE expires <= $1",
    [M_TOTALS] = "SELECT count(*), coalesce(sum(size), 0) FROM parley_mail",
};

struct mbox_pg {
    reg_pg *p;
    const logger *lg;
    int base; /* rpg_add_statements's */
    mbox_totals totals;
};

static int run(mbox_pg *m, int q, int n, const char *const *v, const int *len, const int *bin,
               rpg_row_cb cb, void *arg, uint64_t *affected) {
    return rpg_query(m->p, m->base + q, n, v, len, bin, "mailbox read", cb, arg, affected);
}

static int queue(mbox_pg *m, int q, int n, const char *const *v, const int *len,
                 const int *bin) {
    return rpg_queue(m->p, m->base + q, n, v, len, bin, NULL, NULL);
}

/* Up to 4 integers of the first row. */
typedef struct ints {
    int64_t v[4];
    int rows;
} ints;

static int int_row(void *arg, const char *const *vals, const int *lens, int ncols) {
    ints *r = arg;
    for (int i = 0; i < ncols && i < 4; i++)
        r->v[i] = strtoll(vals[i], NULL, 10);
    r->rows++;
    return 1;
}

static int read_ints(mbox_pg *m, int q, int n, const char *const *v, ints *out) {
    memset(out, 0, sizeof *out);
    return run(m, q, n, v, NULL, NULL, int_row, out, NULL);
}

static void u64_text(uint64_t v, char out[24]) { snprintf(out, 24, "%" PRId64, (int64_t)v); }

static int count_totals(mbox_pg *m) {
    ints r;
    int e = read_ints(m, M_TOTALS, 0, NULL, &r);
    if (e == 0)
        m->totals = (mbox_totals){(uint64_t)r.v[0], (uint64_t)r.v[1]};
    return e;
}

int mpg_open(reg_pg *p, const logger *lg, mbox_pg **out, char *err, size_t errlen) {
    mbox_pg *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory opening the mailbox");
        return UV_ENOMEM;
    }
    m->p = p;
    m->lg = lg;
    int e = rpg_add_statements(p, sql, M_COUNT, &m->base);
    if (e == 0)
        e = count_totals(m);
    if (e) {
        snprintf(err, errlen, "cannot set up the mailbox in the PostgreSQL registry: %s",
                 uv_strerror(e));
        free(m);
        return e;
    }
    *out = m;
    return 0;
}

void mpg_close(mbox_pg *m) { free(m); }

void mpg_get_totals(const mbox_pg *m, mbox_totals *out) { *out = m->totals; }

int mpg_wait(mbox_pg *m, void (*cb)(int status, void *arg), void *arg) {
    return rpg_wait(m->p, cb, arg);
}

int mpg_known(mbox_pg *m, const char *sender, const char *recipient, const char *recipient_name,
              uint64_t msg_id) {
    char id[24];
    u64_text(msg_id, id);
    const char *v[] = {sender, recipient, id};
    ints r;
    int e = read_ints(m, M_KNOWN_MAIL, 3, v, &r);
    if (e || r.rows)
        return e ? e : 1;
    v[1] = recipient_name;
    e = read_ints(m, M_KNOWN_RECEIPT, 3, v, &r);
    return e ? e : r.rows > 0;
}

int mpg_use(mbox_pg *m, const char *recipient, const char *sender, int64_t use[3]) {
    const char *v[] = {recipient, sender};
    ints r;
    int e = read_ints(m, M_USE, 2, v, &r);
    if (e == 0)
        memcpy(use, r.v, 3 * sizeof *use);
    return e;
}

int mpg_put(mbox_pg *m, const mbox_new *n) {
    char id[24], size[24], stored[24], expires[24];
    u64_text(n->msg_id, id);
    u64_text(n->size, size);
    snprintf(stored, sizeof stored, "%" PRId64, n->stored);
    snprintf(expires, sizeof expires, "%" PRId64, n->expires);
    const char *v[] = {n->recipient, n->recipient_name, n->sender, n->sender_name,
                       (const char *)n->sender_key, id, size, stored, expires,
                       (const char *)n->box};
    const int len[] = {0, 0, 0, 0, IDENT_PK, 0, 0, 0, 0, (int)n->size};
    const int bin[] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    int e = queue(m, M_INSERT, 10, v, len, bin);
    if (e == 0) {
        m->totals.msgs++;
        m->totals.bytes += n->size;
    }
    return e;
}

/* An acknowledgement in flight: what its statement's row says. */
typedef struct acking {
    mbox_pg *m;
    char *sender;  /* the mail's sender (NAME_BUFLEN), or NULL for a receipt */
    uint64_t size;
    int found;
    void (*done)(int status, void *arg);
    void *arg;
} acking;

static int acked_row(void *arg, const char *const *vals, const int *lens, int ncols) {
    acking *a = arg;
    a->found = 1;
    if (a->sender && ncols == 2) {
        snprintf(a->sender, NAME_BUFLEN, "%s", vals[0]);
        a->size = strtoull(vals[1], NULL, 10);
    }
    return 0;
}

static void on_acked(int status, void *arg) {
    acking *a = arg;
    if (status == 0 && !a->found)
        status = UV_ENOENT;
    if (status == 0 && a->sender) {
        a->m->totals.msgs--;
        a->m->totals.bytes -= a->size;
    }
    a->done(status, a->arg);
    free(a);
}

static int ack_start(mbox_pg *m, int q, int n, const char *const *v, char *sender,
                     void (*done)(int status, void *arg), void *arg) {
    acking *a = malloc(sizeof *a);
    if (!a)
        return UV_ENOMEM;
    *a = (acking){m, sender, 0, 0, done, arg};
    int e = rpg_queue_rows(m->p, m->base + q, n, v, NULL, NULL, acked_row, a, on_acked, a);
    if (e) {
        free(a);
        return e;
    }
    return MBOX_PENDING;
}

int mpg_ack_start(mbox_pg *m, const char *recipient, const char *recipient_name, uint64_t mid,
                  const char *status, int64_t expires, char sender[NAME_BUFLEN],
                  void (*done)(int status, void *arg), void *arg) {
    char id[24], exp[24];
    u64_text(mid, id);
    snprintf(exp, sizeof exp, "%" PRId64, expires);
    const char *v[] = {recipient, id, recipient_name, status, exp};
    return ack_start(m, M_ACK, 5, v, sender, done, arg);
}

int mpg_receipt_ack_start(mbox_pg *m, const char *sender, uint64_t rid,
                          void (*done)(int status, void *arg), void *arg) {
    char id[24];
    u64_text(rid, id);
    const char *v[] = {sender, id};
    return ack_start(m, M_RECEIPT_ACK, 2, v, NULL, done, arg);
}

/* ---- the windows ---- */

/* A bytea in hex ("\x..") into out (cap bytes): its length, or -1. */
static long unhex(const char *s, unsigned char *out, size_t cap) {
    size_t n = 0;
    if (strncmp(s, "\\x", 2) != 0 ||
        sodium_hex2bin(out, cap, s + 2, strlen(s + 2), NULL, &n, NULL) != 0)
        return -1;
    return (long)n;
}

/* Both windows of one user in flight (mpg_fill_start): each read's rows
 * go to the caller once the batch committed, the second read's answer
 * ends it. */
typedef struct fill {
    mbox_pg *m;
    uint64_t *mail_cursor, *receipt_cursor;
    mbox_mail_cb mail_cb;
    mbox_receipt_cb receipt_cb;
    void *arg;
    void (*done)(int status, void *arg);
    void *done_arg;
    int left, status;
} fill;

static int mail_row(void *arg, const char *const *vals, const int *lens, int ncols) {
    fill *f = arg;
    uint64_t mid = strtoull(vals[0], NULL, 10);
    if (mid <= *f->mail_cursor)
        return 0; /* handed out already (by a fill before this one) */
    unsigned char key[IDENT_PK], box[MBOX_BOX_MAX];
    long kn = unhex(vals[2], key, sizeof key), bn = unhex(vals[4], box, sizeof box);
    if (kn != IDENT_PK || bn < 0) {
        log_error(f->m->lg, "the PostgreSQL mailbox holds a malformed message (mid %s)",
                  vals[0]);
        f->status = UV_EIO;
        return 1;
    }
    *f->mail_cursor = mid;
    mbox_mail mm = {mid, vals[1], key, strtoll(vals[3], NULL, 10), box, (size_t)bn};
    return f->mail_cb(&mm, f->arg);
}

static int receipt_row(void *arg, const char *const *vals, const int *lens, int ncols) {
    fill *f = arg;
    uint64_t rid = strtoull(vals[0], NULL, 10);
    if (rid <= *f->receipt_cursor)
        return 0;
    *f->receipt_cursor = rid;
    mbox_receipt r = {rid, vals[1], (uint64_t)strtoll(vals[2], NULL, 10), vals[3]};
    return f->receipt_cb(&r, f->arg);
}

static void on_window(int status, void *arg) {
    fill *f = arg;
    if (status && !f->status)
        f->status = status;
    if (--f->left > 0)
        return;
    f->done(f->status, f->done_arg);
    free(f);
}

/* The read of one window into the batch. */
static int window(mbox_pg *m, int q, const char *who, uint64_t cursor, size_t size,
                  rpg_row_cb row, fill *f) {
    char cur[24], lim[24];
    u64_text(cursor, cur);
    snprintf(lim, sizeof lim, "%zu", size);
    const char *v[] = {who, cur, lim};
    int e = rpg_queue_rows(m->p, m->base + q, 3, v, NULL, NULL, row, f, on_window, f);
    f->left += e == 0;
    return e;
}

int mpg_fill_start(mbox_pg *m, const char *who, uint64_t *mail_cursor, uint64_t *receipt_cursor,
                   size_t size, mbox_mail_cb mail_cb, mbox_receipt_cb receipt_cb, void *arg,
                   void (*done)(int status, void *arg), void *done_arg) {
    fill *f = calloc(1, sizeof *f);
    if (!f)
        return UV_ENOMEM;
    *f = (fill){m, mail_cursor, receipt_cursor, mail_cb, receipt_cb, arg, done, done_arg, 0, 0};
    int e = window(m, M_MAIL_WINDOW, who, *mail_cursor, size, mail_row, f);
    int e2 = window(m, M_RECEIPTS_WINDOW, who, *receipt_cursor, size, receipt_row, f);
    if (f->left == 0) {
        free(f);
        return e;
    }
    f->status = e ? e : e2; /* one is queued: its answer reports the other's failure */
    return MBOX_PENDING;
}

/* ---- the sweep: one statement, committed by itself ---- */

typedef struct swept {
    void (*cb)(const char *sender, void *arg);
    void *arg;
    uint64_t msgs;
} swept;

static int swept_row(void *arg, const char *const *vals, const int *lens, int ncols) {
    swept *s = arg;
    s->msgs += strtoull(vals[1], NULL, 10);
    if (s->cb)
        s->cb(vals[0], s->arg);
    return 0;
}

int mpg_expire(mbox_pg *m, int64_t now, int64_t receipt_expires,
               void (*cb)(const char *sender, void *arg), void *arg, uint64_t *expired) {
    char t[24], rt[24];
    snprintf(t, sizeof t, "%" PRId64, now);
    snprintf(rt, sizeof rt, "%" PRId64, receipt_expires);
    const char *v[] = {t, rt};
    swept s = {cb, arg, 0};
    *expired = 0;
    int e = run(m, M_EXPIRE, 2, v, NULL, NULL, swept_row, &s, NULL);
    if (e == 0)
        e = run(m, M_EXPIRE_RECEIPTS, 1, v, NULL, NULL, NULL, NULL, NULL);
    if (e == 0) {
        *expired = s.msgs;
        if (count_totals(m)) /* the other trackers' puts and acks too */
            log_warn(m->lg, "could not recount the PostgreSQL mailbox");
    }
    return e;
}

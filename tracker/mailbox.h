/* mailbox: the tracker's offline mail, two tables in the registry's
 * database (schema.c, migration 2).  "mail" holds sealed boxes the tracker
 * cannot read, each waiting for its recipient to register and acknowledge
 * it; "receipts" holds what each sender is to be told about its mail
 * (delivered, refused, expired) until it acknowledges that in turn.  Only
 * this file speaks their SQL.  Writes join the registry's group commit
 * (shared/db.h), so whoever answers after a db_wait callback answers after
 * the write is on disk.  The frames and the windows are mail.c's.
 *
 * Names are passed folded (name_fold) where a table keys on them, and as
 * stored (the first registered spelling) where they are shown. */
#ifndef PARLEY_MAILBOX_H
#define PARLEY_MAILBOX_H

#include "identity.h"
#include "log.h"
#include "name.h"
#include "registry.h"

#include <stddef.h>
#include <stdint.h>

#define MBOX_BOX_MAX 8192 /* bytes of one box */
#define MBOX_PENDING 1    /* a _start call's answer comes from its callback */

typedef struct mailbox mailbox;

/* Opens the mailbox on r's database (the tables exist: reg_open migrated
 * it) and counts what waits.  0 with *out set, or a negative error with a
 * message in err. */
int mbox_open(registry *r, const logger *lg, mailbox **out, char *err, size_t errlen);

/* Frees the mailbox.  Call it after reg_close: its statements belong to the
 * database, and reg_close's last commit may still report to it.  NULL is a
 * no-op. */
void mbox_close(mailbox *mb);

/* One message as its recipient gets it.  Pointers live during the callback. */
typedef struct mbox_mail {
    uint64_t mid;
    const char *from;          /* the sender's name as stored */
    const unsigned char *key;  /* IDENT_PK bytes: the sender's key when it was stored */
    int64_t stored;            /* unix seconds */
    const unsigned char *box;
    size_t size;
} mbox_mail;

/* One receipt as its sender gets it. */
typedef struct mbox_receipt {
    uint64_t rid;
    const char *to;            /* the recipient's name as stored */
    uint64_t msg_id;
    const char *status;        /* "delivered", "refused" or "expired" */
} mbox_receipt;

/* Return nonzero to stop early (a window is full, a connection closed). */
typedef int (*mbox_mail_cb)(const mbox_mail *m, void *arg);
typedef int (*mbox_receipt_cb)(const mbox_receipt *r, void *arg);

/* 1 when sender already gave the tracker msg_id for recipient: the mail
 * still waits, or its receipt does (it was delivered, refused or expired
 * and the sender has not acknowledged that yet); 0 when not; or a
 * negative error. */
int mbox_known(mailbox *mb, const char *sender, const char *recipient,
               const char *recipient_name, uint64_t msg_id);

typedef struct mbox_limits {
    uint64_t max_msgs;     /* per recipient */
    uint64_t max_bytes;    /* per recipient, boxes only */
    uint64_t per_sender;   /* messages of one sender for one recipient */
    uint64_t total_bytes;  /* every box together */
} mbox_limits;

/* Which limit a new box of size bytes would cross, checked in this order. */
typedef enum mbox_full {
    MBOX_ROOM,             /* none: it may be stored */
    MBOX_FULL_MSGS,
    MBOX_FULL_BYTES,
    MBOX_FULL_SENDER,
    MBOX_FULL_TOTAL,
} mbox_full;

/* Sets *full for a new box from sender to recipient.  0 or a negative
 * error. */
int mbox_room(mailbox *mb, const char *recipient, const char *sender, size_t size,
              const mbox_limits *lim, mbox_full *full);

typedef struct mbox_new {
    const char *recipient, *recipient_name;
    const char *sender, *sender_name;
    const unsigned char *sender_key; /* IDENT_PK bytes */
    uint64_t msg_id;
    const unsigned char *box;
    size_t size;
    int64_t stored, expires;         /* unix seconds */
} mbox_new;

/* Stores one message in the pass's batch.  0, UV_EEXIST when (sender,
 * recipient, msg_id) is stored already (nothing written), or a negative
 * error. */
int mbox_put(mailbox *mb, const mbox_new *m);

/* The recipient acknowledged mid: deletes it and records a receipt with
 * status ("delivered" or "refused") for its sender, expiring at expires;
 * sender gets the sender's folded name.  0; UV_ENOENT when recipient has
 * no such message (nothing written); or a negative error.  Both acks
 * return UV_ENOTSUP on a shared registry (the _start forms below). */
int mbox_ack(mailbox *mb, const char *recipient, const char *recipient_name, uint64_t mid,
             const char *status, int64_t expires, char sender[NAME_BUFLEN]);

/* The sender acknowledged receipt rid: deletes it.  0, UV_ENOENT (not its
 * receipt, or none), or a negative error. */
int mbox_receipt_ack(mailbox *mb, const char *sender, uint64_t rid);

/* mbox_ack and mbox_receipt_ack without waiting for a shared registry:
 * there the acknowledgement is one statement of the next batch, done(status,
 * done_arg) fires once that batch committed (what mbox_ack returns; sender
 * filled on 0, so it must stay valid until then), and this returns
 * MBOX_PENDING.  On SQLite they are mbox_ack and mbox_receipt_ack, now
 * (done never fires).  A negative error now means no callback. */
int mbox_ack_start(mailbox *mb, const char *recipient, const char *recipient_name, uint64_t mid,
                   const char *status, int64_t expires, char sender[NAME_BUFLEN],
                   void (*done)(int status, void *arg), void *done_arg);
int mbox_receipt_ack_start(mailbox *mb, const char *sender, uint64_t rid,
                           void (*done)(int status, void *arg), void *done_arg);

/* The delivery windows.  *cursor is the highest mid (rid) already handed
 * out on one connection (0 at first); what is still stored at or below it
 * counts as unacknowledged.  Hands cb the next ones after it, oldest first,
 * until window of them are unacknowledged or none is left, advancing
 * *cursor past each.  0 or a negative error; UV_ENOTSUP on a shared
 * registry (mbox_fill_start). */
int mbox_next_mail(mailbox *mb, const char *recipient, uint64_t *cursor, size_t window,
                   mbox_mail_cb cb, void *arg);
int mbox_next_receipts(mailbox *mb, const char *sender, uint64_t *cursor, size_t window,
                       mbox_receipt_cb cb, void *arg);

/* Both windows of who (its mail as recipient with mail_cb, its receipts
 * as sender with receipt_cb, each advancing its cursor), without waiting
 * for a shared registry: there both reads join the next batch, the rows
 * go to the callbacks once it is answered (the cursors must stay valid
 * until then, and only one fill of a cursor may be in flight), then
 * done(status, done_arg), and this returns MBOX_PENDING.  On SQLite it is
 * mbox_next_mail and mbox_next_receipts, now (done never fires): 0 or a
 * negative error.  A negative error now means no callback. */
int mbox_fill_start(mailbox *mb, const char *who, uint64_t *mail_cursor,
                    uint64_t *receipt_cursor, size_t window, mbox_mail_cb mail_cb,
                    mbox_receipt_cb receipt_cb, void *arg, void (*done)(int status, void *arg),
                    void *done_arg);

/* The sweep: every message whose expiry is at or before now becomes an
 * "expired" receipt for its sender (expiring at receipt_expires) and is
 * deleted; receipts past their own expiry are deleted.  cb(sender folded,
 * arg) once for each sender that gets a receipt, before the writes (it
 * must not use the mailbox; after an error it was told in vain).
 * *expired gets the number of messages.  0 or a negative error. */
int mbox_expire(mailbox *mb, int64_t now, int64_t receipt_expires,
                void (*cb)(const char *sender, void *arg), void *arg, uint64_t *expired);

/* cb(status, arg) fires at the end of this loop pass, once its batch (the
 * writes above included) committed: status 0, or a negative error when the
 * commit failed.  Never from inside this call.  0 or UV_ENOMEM. */
int mbox_wait(mailbox *mb, void (*cb)(int status, void *arg), void *arg);

/* What waits now, for the limits and the metrics. */
typedef struct mbox_totals {
    uint64_t msgs, bytes;
} mbox_totals;

void mbox_get_totals(const mailbox *mb, mbox_totals *out);

#endif

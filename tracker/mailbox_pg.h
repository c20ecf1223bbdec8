/* mailbox_pg: the mailbox (mailbox.h) in the shared PostgreSQL registry,
 * behind mailbox.c when the tracker runs with one, so that mail left at
 * any tracker is delivered by whichever tracker its recipient registers
 * with.  The tables are parley_mail and parley_receipts (migration 4 of
 * registry_pg.c), the statements are this file's, run on the registry's
 * connection (registry_pg.h: rpg_query, rpg_queue).
 *
 * As with the users table: reads are one round trip each, but for the
 * windows (mbox_fill_start), which join the next batch; writes join the
 * pass's batch and are answered once it committed (mbox_wait, and the
 * acknowledgements' own callbacks: mbox_ack_start).  Unlike
 * SQLite's, a write does not know at once what it changed: mbox_put
 * stores nothing for a (sender, recipient, msg_id) already stored (mail.c
 * asked mbox_known first; a copy racing it in the same pass is the same
 * mail), and an acknowledgement is one statement of the batch that deletes
 * the row, adds the receipt and returns what it deleted, so a second ack
 * of it adds nothing and its answer says so.  The
 * totals are counted at open and at each sweep and kept up to date in
 * between with this tracker's own writes: the other trackers' show up at
 * the next sweep. */
#ifndef PARLEY_MAILBOX_PG_H
#define PARLEY_MAILBOX_PG_H

#include "mailbox.h"

typedef struct mbox_pg mbox_pg;

/* 0 with *out set, or a negative error with a message in err. */
int mpg_open(struct reg_pg *p, const logger *lg, mbox_pg **out, char *err, size_t errlen);
void mpg_close(mbox_pg *m); /* NULL is a no-op */

/* As the mbox_ functions of the same names. */
int mpg_known(mbox_pg *m, const char *sender, const char *recipient, const char *recipient_name,
              uint64_t msg_id);
/* What recipient's mailbox holds (use[0] messages, use[1] bytes, use[2]
 * of them from sender), for mailbox.c's mbox_room. */
int mpg_use(mbox_pg *m, const char *recipient, const char *sender, int64_t use[3]);
int mpg_put(mbox_pg *m, const mbox_new *n);
int mpg_ack_start(mbox_pg *m, const char *recipient, const char *recipient_name, uint64_t mid,
                  const char *status, int64_t expires, char sender[NAME_BUFLEN],
                  void (*done)(int status, void *arg), void *arg);
int mpg_receipt_ack_start(mbox_pg *m, const char *sender, uint64_t rid,
                          void (*done)(int status, void *arg), void *arg);
int mpg_fill_start(mbox_pg *m, const char *who, uint64_t *mail_cursor, uint64_t *receipt_cursor,
                   size_t size, mbox_mail_cb mail_cb, mbox_receipt_cb receipt_cb, void *arg,
                   void (*done)(int status, void *arg), void *done_arg);
int mpg_expire(mbox_pg *m, int64_t now, int64_t receipt_expires,
               void (*cb)(const char *sender, void *arg), void *arg, uint64_t *expired);
int mpg_wait(mbox_pg *m, void (*cb)(int status, void *arg), void *arg);
void mpg_get_totals(const mbox_pg *m, mbox_totals *out);

#endif

/* mail: the offline mailbox on the control connection (docs/PROTOCOL.md,
 * "Mailbox"), as the server sees it besides the handlers (handlers.h):
 * the windows that push waiting mail and receipts to a user who
 * registered, the pushes a commit makes due, and the sweep that expires
 * old mail.  The tables are mailbox.c's. */
#ifndef PARLEY_MAIL_H
#define PARLEY_MAIL_H

#include "session.h"

/* Messages (and, apart, receipts) pushed to one connection and not yet
 * acknowledged, at most. */
#define MAIL_WINDOW 32

/* Once, after the mailbox is open (ctx->mbox): the pass state and the
 * sweep, whose first run comes on the loop's first turn.  0 or UV_ENOMEM. */
int mail_open(tracker_ctx *ctx);

/* Stops the sweep; the state is freed once its timer has closed.
 * Idempotent; a no-op when mail_open never ran. */
void mail_stop(tracker_ctx *ctx);

/* s registered (its answer is out): pushes what waits for it, when its
 * register listed the "mailbox" feature. */
void mail_registered(session *s);

/* The registry's batch end (arg: the tracker_ctx): the pass's commits are
 * on disk, so the pushes they made due go out now.  With a shared
 * registry, a user they concern who is online at another tracker is told
 * there (remote.h, RMT_MAIL), which then calls mail_kick. */
void mail_flush(void *arg);

/* Another tracker committed mail or a receipt for folded, our user: its
 * windows are refilled at this pass's end (never passed on again). */
void mail_kick(tracker_ctx *ctx, const char *folded);

#endif

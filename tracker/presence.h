/* presence: the "presence" pushes that tell a registered user who came
 * online or went offline, and the subscriptions that decide who is told
 * (PROTOCOL.md, "subscribe").  A peer that listed "subscribe" in its
 * register hears only of the names it subscribed to (or of everyone, in
 * all mode); an older peer hears of everyone, as before.  An index from
 * folded name to its subscribers makes a change cost O(its subscribers
 * + the sessions in all mode), not O(online).  Pushes are gathered per
 * recipient over one loop pass and sent at the registry's batch end
 * (srv_open installs pres_flush there). */
#ifndef PARLEY_PRESENCE_H
#define PARLEY_PRESENCE_H

#include "session.h"

#include <stdbool.h>

/* Names one connection may subscribe to at once: a subscribe past it is
 * refused whole with too_many_subscriptions. */
#define PRES_SUBS_MAX 1000
/* subscribe all is refused (too_many_subscriptions) while more users than
 * this are online here: all mode costs O(online) per change.  When a
 * registration takes the tracker past it, the sessions that were granted
 * all mode leave it (a presence_mode push tells them). */
#define PRES_ALL_MAX_ONLINE 1000

/* The index (srv_open) and its end (srv_close; drops unsent pushes).
 * pres_open: 0 or UV_ENOMEM. */
int pres_open(tracker_ctx *ctx);
void pres_close(tracker_ctx *ctx);

/* s registered (it is in ctx->online): a session in all mode joins the
 * sessions told of everyone; past PRES_ALL_MAX_ONLINE online, all mode
 * ends for those that asked for it. */
void pres_registered(session *s);

/* s's connection closed: its subscriptions, its all mode and its unsent
 * pushes go. */
void pres_drop(session *s);

/* Tells the subscribers of the name (and the sessions in all mode), but
 * not except itself, that the name came or went. */
void pres_push(tracker_ctx *ctx, const session *except, const char *name, bool is_online);

/* A user of another tracker sharing the registry came or went
 * (reg_on_remote_presence; arg: the tracker_ctx): told to its local
 * subscribers, unless the user has a session here, which is the truth. */
void pres_push_remote(void *arg, const char *name, const char *folded, int is_online);

/* The registry's batch-end hook (arg: the tracker_ctx): sends each
 * recipient its pass's pushes in one write. */
void pres_flush(void *arg);

/* For the metrics: subscriptions held, names with a subscriber, sessions
 * in all mode. */
void pres_counts(const tracker_ctx *ctx, size_t *subs, size_t *names, size_t *all);

/* The subscribe and unsubscribe requests (server.c's table) and their
 * refusal before register. */
void pres_subscribe(void *owner, const msg_in *m);
void pres_unsubscribe(void *owner, const msg_in *m);
void pres_subscribe_unregistered(void *owner, const msg_in *m);

#endif

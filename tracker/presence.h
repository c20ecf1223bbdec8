/* presence: the "presence" pushes that tell every registered user who came
 * online or went offline.  They are gathered over one loop pass and sent at
 * the registry's batch end (srv_open installs pres_flush there). */
#ifndef PARLEY_PRESENCE_H
#define PARLEY_PRESENCE_H

#include "session.h"

#include <stdbool.h>

/* Tells every registered session but except that name came or went. */
void pres_push(tracker_ctx *ctx, const session *except, const char *name, bool is_online);

/* A user of another tracker sharing the registry came or went
 * (reg_on_remote_presence; arg: the tracker_ctx): told to every registered
 * session, unless the user has a session here, which is the truth. */
void pres_push_remote(void *arg, const char *name, const char *folded, int is_online);

/* The registry's batch-end hook (arg: the tracker_ctx): sends and empties
 * the pass's pushes. */
void pres_flush(void *arg);

/* Drops the pushes not sent yet (shutdown). */
void pres_free(tracker_ctx *ctx);

#endif

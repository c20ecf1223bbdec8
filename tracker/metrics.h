/* metrics: the operator's view of the tracker, as Prometheus text format
 * 0.0.4 on a separate address (--metrics HOST:PORT, off by default).  A
 * deliberately tiny responder on the tracker's loop: one GET /metrics per
 * connection, anything else 404 (or 405 for other methods), requests
 * bounded to MET_REQUEST_MAX bytes, idle connections closed after
 * MET_IDLE_MS.  The counters live in tracker_ctx.stats (tracker.h); the
 * modules bump them in place, this file only reads them. */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include "tracker.h"

#define MET_REQUEST_MAX 4096
#define MET_IDLE_MS 5000
#define MET_DEFAULT "127.0.0.1:9596" /* the documented suggestion */

/* Binds ctx->cfg.metrics (a numeric HOST:PORT) and logs "metrics on
 * HOST:PORT" with the port actually bound.  0, or a negative error after
 * logging what failed. */
int met_start(tracker_ctx *ctx);

/* Closes the listener and every open metrics connection (freed from their
 * close callbacks).  Idempotent; a no-op when never started. */
void met_stop(tracker_ctx *ctx);

/* Records one database commit that took ns nanoseconds (the registry's
 * commit hook; arg is the tracker_ctx). */
void met_commit_time(void *arg, uint64_t ns);

#endif

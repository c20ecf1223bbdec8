/* ratelimit: the per-connection frame rate (--rate-limit, --rate-burst), a
 * token bucket over every decoded frame of a control connection. */
#ifndef PARLEY_RATELIMIT_H
#define PARLEY_RATELIMIT_H

#include "session.h"

/* A full bucket, for a new connection. */
void rate_start(session *s);

/* Takes one frame's token.  0: m may go on.  1: over the rate, and m was
 * refused (a request with an id answered with rate_limited, the connection
 * kept; anything else, or a burst's worth of refused requests in a row,
 * failed); the caller drops it. */
int rate_admit(session *s, const msg_in *m);

#endif

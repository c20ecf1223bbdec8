/* username: which name the peer goes by when --user is not given.  The name
 * of the last run, kept in HOME/user once it registered, so that `parley`
 * alone comes back as the same user; else the login name ($USER).  The
 * caller says which it picked, so nobody is registered under a name they
 * did not see. */
#ifndef PARLEY_USERNAME_H
#define PARLEY_USERNAME_H

#include "log.h"

#include <stddef.h>
#include <uv.h>

/* Where a default name came from. */
typedef enum uname_source { UNAME_LAST_RUN, UNAME_LOGIN } uname_source;

/* Fills out (at least NAME_BUFLEN bytes) with the default name for home.
 * 0 with *src set; UV_ENOENT when there is none (no HOME/user and no usable
 * $USER); UV_EINVAL when HOME/user holds no valid name (err says so). */
int uname_default(const char *home, char *out, uname_source *src, char *err, size_t errlen);

/* Remembers name as HOME/user (mode 0600, written whole through a
 * temporary file) on the loop's threadpool, unless the file holds it
 * already; a failure is logged to lg when the work is done, and costs
 * nothing but the default next time.  0, or UV_ENOMEM / UV_ENAMETOOLONG
 * (nothing queued). */
int uname_remember(uv_loop_t *loop, const char *home, const char *name, const logger *lg);

#endif

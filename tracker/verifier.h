/* verifier: registration signatures checked off the event loop.  The one
 * Ed25519 verification a register needs (registration.c) is most of its
 * CPU time; here it runs on worker threads (--verify-threads), and the
 * result comes back to the loop through a uv_async, so every piece of
 * tracker state is still touched by the loop thread only.  A job carries
 * copies of everything it checks: the worker never sees a session, and a
 * session that closes meanwhile is the callback's business.
 *
 * The threads are named "parley-verify" (the bench pins them by that
 * name).  While a job is in flight the async handle keeps the loop alive,
 * so a stopping tracker's uv_run waits for the verifications it started. */
#ifndef PARLEY_VERIFIER_H
#define PARLEY_VERIFIER_H

#include "identity.h"
#include "name.h"

#include <stddef.h>
#include <uv.h>

#define VFY_MAX_THREADS 64

typedef struct verifier verifier;
typedef struct vfy_job vfy_job;

/* On the loop thread: result is 0 when the signature verifies, UV_EPERM
 * when it does not, UV_ECANCELED when the verifier closed first. */
typedef void (*vfy_cb)(vfy_job *job, int result);

/* The caller's memory, filled before vfy_submit and left alone until cb. */
struct vfy_job {
    unsigned char pk[IDENT_PK];
    unsigned char nonce[IDENT_NONCE];
    unsigned char sig[IDENT_SIG];
    char name[NAME_BUFLEN];
    size_t nlen;
    /* the verifier's */
    vfy_cb cb;
    int result;
    vfy_job *next;
};

/* Starts threads (1 to VFY_MAX_THREADS) worker threads: 0 or a negative
 * error (libuv's), with *out NULL then. */
int vfy_open(uv_loop_t *loop, unsigned threads, verifier **out);

/* Queues job; cb follows from the loop, never from inside this call.
 * Jobs finish in any order across threads. */
void vfy_submit(verifier *v, vfy_job *job, vfy_cb cb);

/* Stops and joins the threads; jobs still queued get cb with UV_ECANCELED
 * (from inside this call: the loop is being torn down).  The handle is
 * freed in its close callback, so the loop must run once more.  NULL: no-op. */
void vfy_close(verifier *v);

#endif

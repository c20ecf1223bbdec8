/* test_verifier: tracker/verifier.c, the threads that check register
 * signatures off the loop: every job comes back on the loop with its
 * verdict, a loop with jobs in flight keeps running until they are back
 * and stops by itself once they are, jobs still queued at close come back
 * cancelled, and nothing stays open (uv_loop_close == 0). */
#include "test.h"
#include "../../tracker/verifier.h"

#include <sodium.h>
#include <uv.h>

#define JOBS 200

typedef struct rec {
    vfy_job job; /* first: the callback gets the record from it */
    int want;    /* 0 or UV_EPERM */
    int got;
    int calls;
    uv_thread_t thread; /* the thread the callback ran on */
} rec;

static rec recs[JOBS];

static void on_job(vfy_job *j, int result) {
    rec *r = (rec *)j;
    r->got = result;
    r->calls++;
    r->thread = uv_thread_self();
}

/* Job i: signed by a key of its own over its name, or, for every third,
 * over another name. */
static void fill(rec *r, int i) {
    identity id;
    ASSERT_EQ(crypto_sign_keypair(id.pk, id.sk), 0);
    memcpy(r->job.pk, id.pk, IDENT_PK);
    randombytes_buf(r->job.nonce, IDENT_NONCE);
    r->job.nlen = (size_t)snprintf(r->job.name, sizeof r->job.name, "user%d", i);
    const char *signed_name = i % 3 == 0 ? "someone-else" : r->job.name;
    ident_sign_register(&id, r->job.nonce, signed_name, strlen(signed_name), r->job.sig);
    r->want = i % 3 == 0 ? UV_EPERM : 0;
    r->got = 1; /* neither verdict */
    r->calls = 0;
}

static void every_job_back_on_the_loop(void) {
    ASSERT(sodium_init() >= 0);
    uv_loop_t loop;
    ASSERT_EQ(uv_loop_init(&loop), 0);
    verifier *v;
    ASSERT_EQ(vfy_open(&loop, 3, &v), 0);
    uv_thread_t me = uv_thread_self();
    for (int i = 0; i < JOBS; i++) {
        fill(&recs[i], i);
        vfy_submit(v, &recs[i].job, on_job);
        ASSERT_EQ(recs[i].calls, 0); /* never from inside vfy_submit */
    }
    /* Only the jobs keep the loop alive: it returns once all are back. */
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < JOBS; i++) {
        ASSERT_EQ(recs[i].calls, 1);
        ASSERT_EQ(recs[i].got, recs[i].want);
        ASSERT(uv_thread_equal(&recs[i].thread, &me));
    }
    /* Idle, it does not keep a loop running. */
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    vfy_close(v);
    vfy_close(NULL);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

static void close_cancels_what_is_queued(void) {
    ASSERT(sodium_init() >= 0);
    uv_loop_t loop;
    ASSERT_EQ(uv_loop_init(&loop), 0);
    verifier *v;
    for (int i = 0; i < JOBS; i++)
        fill(&recs[i], i); /* signed before: submitting is then quick */
    ASSERT_EQ(vfy_open(&loop, 1, &v), 0);
    for (int i = 0; i < JOBS; i++)
        vfy_submit(v, &recs[i].job, on_job);
    vfy_close(v); /* without running the loop: most are still queued */
    int cancelled = 0;
    for (int i = 0; i < JOBS; i++) {
        ASSERT_EQ(recs[i].calls, 1);
        if (recs[i].got == UV_ECANCELED)
            cancelled++;
        else
            ASSERT_EQ(recs[i].got, recs[i].want); /* checked before the close */
    }
    ASSERT(cancelled > 0); /* one thread does not check 200 before it is told to stop */
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

static void thread_count_checked(void) {
    uv_loop_t loop;
    ASSERT_EQ(uv_loop_init(&loop), 0);
    verifier *v = (verifier *)1;
    ASSERT_EQ(vfy_open(&loop, 0, &v), UV_EINVAL);
    ASSERT(v == NULL);
    ASSERT_EQ(vfy_open(&loop, VFY_MAX_THREADS + 1, &v), UV_EINVAL);
    ASSERT(v == NULL);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

TEST_MAIN(T(every_job_back_on_the_loop), T(close_cancels_what_is_queued),
          T(thread_count_checked))

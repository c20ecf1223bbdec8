/* verifier: the signature-checking threads of the tracker (verifier.h).
 * Two FIFO lists under one mutex: todo (loop -> workers) and done
 * (workers -> loop).  A worker takes a job, verifies without the lock,
 * appends it to done and wakes the loop with uv_async_send, which
 * coalesces: one on_done may deliver many.  The loop side counts the jobs
 * in flight and refs the async handle only while there are some, so an
 * idle verifier never keeps a finished loop running. */
#include "verifier.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct verifier {
    uv_async_t async; /* first: the close callback gets the verifier from it */
    uv_mutex_t mu;
    uv_cond_t cv;
    vfy_job *todo, *todo_tail; /* under mu */
    vfy_job *done, *done_tail; /* under mu */
    int stop;                  /* under mu */
    size_t inflight;           /* loop thread only */
    unsigned nthreads;
    uv_thread_t thr[VFY_MAX_THREADS];
};

static void push(vfy_job **head, vfy_job **tail, vfy_job *j) {
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void worker(void *arg) {
    verifier *v = arg;
    pthread_setname_np(pthread_self(), "parley-verify");
    uv_mutex_lock(&v->mu);
    for (;;) {
        while (!v->stop && !v->todo)
            uv_cond_wait(&v->cv, &v->mu);
        if (v->stop)
            break;
        vfy_job *j = v->todo;
        v->todo = j->next;
        if (!v->todo)
            v->todo_tail = NULL;
        uv_mutex_unlock(&v->mu);
        j->result = ident_verify_register(j->pk, j->nonce, j->name, j->nlen, j->sig);
        uv_mutex_lock(&v->mu);
        push(&v->done, &v->done_tail, j);
        uv_async_send(&v->async);
    }
    uv_mutex_unlock(&v->mu);
}

/* Calls back every job of list, in order; the count of them. */
static size_t deliver(vfy_job *j, int cancel) {
    size_t n = 0;
    while (j) {
        vfy_job *next = j->next; /* cb may free j */
        j->cb(j, cancel ? UV_ECANCELED : j->result);
        j = next;
        n++;
    }
    return n;
}

static void settle(verifier *v, size_t n) {
    v->inflight -= n;
    if (v->inflight == 0)
        uv_unref((uv_handle_t *)&v->async);
}

/* At most DELIVER_MAX results a loop pass: in a reconnect storm the
 * thread gets ahead of the loop, and hundreds of registrations bound,
 * committed and answered in one pass would hold every other client's
 * frames back as long (the rest come on the next pass). */
#define DELIVER_MAX 64

static void on_done(uv_async_t *h) {
    verifier *v = (verifier *)h;
    uv_mutex_lock(&v->mu);
    vfy_job *j = v->done, *last = j;
    for (size_t n = 1; last && n < DELIVER_MAX; n++)
        last = last->next;
    if (last && last->next) {
        v->done = last->next; /* the rest: the next pass */
        last->next = NULL;
        uv_async_send(&v->async);
    } else {
        v->done = v->done_tail = NULL;
    }
    uv_mutex_unlock(&v->mu);
    if (j)
        settle(v, deliver(j, 0));
}

int vfy_open(uv_loop_t *loop, unsigned threads, verifier **out) {
    *out = NULL;
    if (threads < 1 || threads > VFY_MAX_THREADS)
        return UV_EINVAL;
    verifier *v = calloc(1, sizeof *v);
    if (!v)
        return UV_ENOMEM;
    int e = uv_mutex_init(&v->mu);
    if (e) {
        free(v);
        return e;
    }
    if ((e = uv_cond_init(&v->cv)) != 0) {
        uv_mutex_destroy(&v->mu);
        free(v);
        return e;
    }
    if ((e = uv_async_init(loop, &v->async, on_done)) != 0) {
        uv_cond_destroy(&v->cv);
        uv_mutex_destroy(&v->mu);
        free(v);
        return e;
    }
    uv_unref((uv_handle_t *)&v->async);
    for (; v->nthreads < threads; v->nthreads++)
        if ((e = uv_thread_create(&v->thr[v->nthreads], worker, v)) != 0)
            break;
    if (e) {
        vfy_close(v); /* joins the ones that started */
        return e;
    }
    *out = v;
    return 0;
}

void vfy_submit(verifier *v, vfy_job *job, vfy_cb cb) {
    job->cb = cb;
    job->result = UV_ECANCELED;
    if (v->inflight++ == 0)
        uv_ref((uv_handle_t *)&v->async);
    uv_mutex_lock(&v->mu);
    push(&v->todo, &v->todo_tail, job);
    uv_cond_signal(&v->cv);
    uv_mutex_unlock(&v->mu);
}

static void on_closed(uv_handle_t *h) {
    verifier *v = (verifier *)h;
    uv_cond_destroy(&v->cv);
    uv_mutex_destroy(&v->mu);
    free(v);
}

void vfy_close(verifier *v) {
    if (!v)
        return;
    uv_mutex_lock(&v->mu);
    v->stop = 1;
    uv_cond_broadcast(&v->cv);
    uv_mutex_unlock(&v->mu);
    for (unsigned i = 0; i < v->nthreads; i++)
        uv_thread_join(&v->thr[i]);
    /* The threads are gone: the lists are the loop's now.  Finished jobs
     * keep their result; the rest never ran. */
    vfy_job *done = v->done, *todo = v->todo;
    v->done = v->done_tail = v->todo = v->todo_tail = NULL;
    settle(v, deliver(done, 0) + deliver(todo, 1));
    uv_close((uv_handle_t *)&v->async, on_closed);
}

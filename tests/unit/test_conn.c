/* test_conn: shared/conn.c over a real loopback connection: write batching
 * (conn_set_batching) and what conn_fail and conn_close do with a batch;
 * how large raw-mode reads grow (conn_set_raw).
 * One side is a conn, the other a bare libuv stream that collects bytes. */
#include "conn.h"
#include "frame.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const logger lg = {LOG_WARN, "test"};

typedef struct fixture {
    uv_loop_t loop;
    uv_tcp_t server, client;
    uv_connect_t creq;
    uv_check_t done;  /* closes the conn once its bytes are written */
    int checks;       /* passes the check saw bytes still waiting */
    conn *c;          /* the accepted side */
    int closes;       /* conn close callbacks */
    int close_reason;
    char got[4096];   /* what the client side read */
    size_t ngot;
    int eof;
    int step;         /* what on_accepted does: see the tests */
} fixture;

static void on_conn_frame(conn *c, const char *p, size_t n) {}

static void on_conn_close(conn *c, int reason) {
    fixture *f = conn_data(c);
    f->closes++;
    f->close_reason = reason;
    f->c = NULL;
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    fixture *f = h->data;
    b->base = f->got + f->ngot;
    b->len = sizeof f->got - f->ngot;
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    fixture *f = s->data;
    if (n > 0)
        f->ngot += (size_t)n;
    else if (n < 0) {
        f->eof = 1;
        uv_close((uv_handle_t *)s, NULL);
    }
}

static void on_connected(uv_connect_t *r, int status) {
    ASSERT_EQ(status, 0);
    fixture *f = r->data;
    ASSERT_EQ(uv_read_start((uv_stream_t *)&f->client, on_alloc, on_client_read), 0);
}

static void send_text(conn *c, const char *text) {
    msg_out m;
    msg_out_init(&m, "msg", 1);
    msg_put_str(&m, "text", text);
    ASSERT_EQ(conn_send_msg(c, &m), 0);
}

static void on_done_check(uv_check_t *h) {
    fixture *f = h->data;
    if (f->c && conn_queued(f->c) > 0) {
        f->checks++;
        return;
    }
    if (f->c)
        conn_close(f->c, 0);
    uv_close((uv_handle_t *)h, NULL);
}

static void on_accept(uv_stream_t *srv, int status) {
    fixture *f = srv->data;
    ASSERT_EQ(status, 0);
    f->c = conn_new(&f->loop, FRAME_MAX_DEFAULT, &lg, on_conn_frame, on_conn_close, f);
    ASSERT(f->c != NULL);
    ASSERT_EQ(uv_accept(srv, (uv_stream_t *)conn_tcp(f->c)), 0);
    ASSERT_EQ(conn_start(f->c), 0);
    uv_close((uv_handle_t *)srv, NULL);
    if (f->step != 0)
        ASSERT_EQ(conn_set_batching(f->c, 1), 0);
    send_text(f->c, "one");
    send_text(f->c, "two");
    send_text(f->c, "three");
    if (f->step == 0) {
        ASSERT_EQ(conn_queued(f->c), 0); /* written at once */
    } else {
        ASSERT(conn_queued(f->c) > 0);   /* gathered until the pass ends */
    }
    if (f->step == 2)
        conn_fail(f->c, "bad_message", "test failure", 0);
    if (f->step == 3)
        conn_close(f->c, 0);
    if (f->step < 2) { /* close once everything is written */
        ASSERT_EQ(uv_check_init(&f->loop, &f->done), 0);
        f->done.data = f;
        ASSERT_EQ(uv_check_start(&f->done, on_done_check), 0);
    }
}

/* Runs loop until it is empty with server listening on a free loopback
 * port and client connecting to it; then checks the loop closes. */
static void run_pair(uv_loop_t *loop, uv_tcp_t *server, uv_tcp_t *client, uv_connect_t *creq,
                     void *data, uv_connection_cb on_conn, uv_connect_cb on_conned) {
    ASSERT_EQ(uv_tcp_init(loop, server), 0);
    ASSERT_EQ(uv_tcp_init(loop, client), 0);
    server->data = client->data = creq->data = data;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    ASSERT_EQ(uv_tcp_bind(server, (struct sockaddr *)&a, 0), 0);
    ASSERT_EQ(uv_listen((uv_stream_t *)server, 4, on_conn), 0);
    int len = sizeof a;
    ASSERT_EQ(uv_tcp_getsockname(server, (struct sockaddr *)&a, &len), 0);
    ASSERT_EQ(uv_tcp_connect(creq, client, (struct sockaddr *)&a, on_conned), 0);
    ASSERT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(loop), 0);
}

static void setup(fixture *f, int step) {
    memset(f, 0, sizeof *f);
    f->step = step;
    ASSERT_EQ(uv_loop_init(&f->loop), 0);
    f->loop.data = f;
    run_pair(&f->loop, &f->server, &f->client, &f->creq, f, on_accept, on_connected);
    ASSERT_EQ(f->closes, 1);
    ASSERT(f->eof);
}

/* How many frames of type t the client read, in order, and whether the
 * texts were one, two, three. */
static int count_msgs(fixture *f, int *error_frames) {
    size_t pos = 0;
    int n = 0;
    static const char *const want[] = {"one", "two", "three"};
    *error_frames = 0;
    while (pos + FRAME_HEADER <= f->ngot) {
        const unsigned char *h = (const unsigned char *)f->got + pos;
        size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
        ASSERT(pos + FRAME_HEADER + len <= f->ngot);
        msg_in m;
        ASSERT_EQ(msg_parse(&m, f->got + pos + FRAME_HEADER, len), 0);
        if (strcmp(m.type, "msg") == 0) {
            const char *s;
            size_t sl;
            ASSERT(n < 3);
            ASSERT_EQ(msg_str(&m, "text", &s, &sl), 0);
            ASSERT_EQ(sl, strlen(want[n]));
            ASSERT(memcmp(s, want[n], sl) == 0);
            ASSERT_EQ(*error_frames, 0); /* nothing after the error */
            n++;
        } else {
            ASSERT_STR(m.type, "error");
            (*error_frames)++;
        }
        msg_in_free(&m);
        pos += FRAME_HEADER + len;
    }
    ASSERT_EQ(pos, f->ngot);
    return n;
}

static void unbatched_sends_at_once(void) {
    fixture f;
    setup(&f, 0);
    int errs;
    ASSERT_EQ(count_msgs(&f, &errs), 3);
    ASSERT_EQ(errs, 0);
    ASSERT_EQ(f.checks, 0); /* nothing was waiting at the end of the pass */
}

/* Batched: nothing is written during the pass (the check after it still
 * sees the bytes waiting); the next pass writes all three, in order. */
static void batch_written_next_pass(void) {
    fixture f;
    setup(&f, 1);
    int errs;
    ASSERT_EQ(count_msgs(&f, &errs), 3);
    ASSERT_EQ(errs, 0);
    ASSERT_EQ(f.checks, 1);
}

/* conn_close right after sending drops the batch, as any pending write. */
static void batch_dropped_by_close(void) {
    fixture f;
    setup(&f, 3);
    int errs;
    ASSERT_EQ(count_msgs(&f, &errs), 0);
    ASSERT_EQ(errs, 0);
}

/* conn_fail writes the batch first, then its error frame, then closes. */
static void fail_writes_batch_first(void) {
    fixture f;
    setup(&f, 2);
    int errs;
    ASSERT_EQ(count_msgs(&f, &errs), 3);
    ASSERT_EQ(errs, 1);
    ASSERT_EQ(f.close_reason, UV_EPROTO);
}

/* ---- raw mode: reads grow with a bulk stream, up to read_max ---- */

#define RAW_TOTAL (4 * 1024 * 1024)

typedef struct rawfix {
    uv_loop_t loop;
    uv_tcp_t server, client;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    char *blob;
    size_t read_max;
    conn *c;
    size_t total, largest, chunks;
    int bad, closes, written;
} rawfix;

static void raw_bytes(conn *c, const char *p, size_t n) {
    rawfix *f = conn_data(c);
    for (size_t i = 0; i < n; i++)
        if (p[i] != f->blob[f->total + i])
            f->bad++;
    f->total += n;
    f->chunks++;
    if (n > f->largest)
        f->largest = n;
}

static void raw_closed(conn *c, int reason) {
    rawfix *f = conn_data(c);
    ASSERT_EQ(reason, UV_EOF);
    f->closes++;
}

static void raw_accept(uv_stream_t *srv, int status) {
    rawfix *f = srv->data;
    ASSERT_EQ(status, 0);
    f->c = conn_new(&f->loop, FRAME_MAX_DEFAULT, &lg, NULL, raw_closed, f);
    ASSERT(f->c != NULL);
    conn_set_raw(f->c, raw_bytes, f->read_max);
    ASSERT_EQ(uv_accept(srv, (uv_stream_t *)conn_tcp(f->c)), 0);
    ASSERT_EQ(conn_start(f->c), 0);
    uv_close((uv_handle_t *)srv, NULL);
}

static void raw_shut(uv_shutdown_t *r, int status) {
    ASSERT_EQ(status, 0);
    uv_close((uv_handle_t *)r->handle, NULL);
}

static void raw_written(uv_write_t *w, int status) {
    rawfix *f = w->data;
    ASSERT_EQ(status, 0);
    f->written++;
    f->sreq.data = f;
    ASSERT_EQ(uv_shutdown(&f->sreq, (uv_stream_t *)&f->client, raw_shut), 0);
}

static void raw_connected(uv_connect_t *r, int status) {
    rawfix *f = r->data;
    ASSERT_EQ(status, 0);
    uv_buf_t b = uv_buf_init(f->blob, RAW_TOTAL);
    f->wreq.data = f;
    ASSERT_EQ(uv_write(&f->wreq, (uv_stream_t *)&f->client, &b, 1, raw_written), 0);
}

static void raw_stream(rawfix *f, size_t read_max) {
    memset(f, 0, sizeof *f);
    f->read_max = read_max;
    f->blob = malloc(RAW_TOTAL);
    ASSERT(f->blob != NULL);
    for (size_t i = 0; i < RAW_TOTAL; i++)
        f->blob[i] = (char)(i * 7 + i / 4093);
    ASSERT_EQ(uv_loop_init(&f->loop), 0);
    run_pair(&f->loop, &f->server, &f->client, &f->creq, f, raw_accept, raw_connected);
    free(f->blob);
    ASSERT_EQ(f->written, 1);
    ASSERT_EQ(f->closes, 1);
    ASSERT_EQ(f->bad, 0);
    ASSERT_EQ(f->total, RAW_TOTAL);
}

/* A bulk stream: reads grow past the first 16 KiB, never past read_max. */
static void raw_reads_grow_to_max(void) {
    rawfix f;
    raw_stream(&f, 256 * 1024);
    ASSERT(f.largest > 16384);
    ASSERT(f.largest <= 256 * 1024);
}

/* A small read_max (a slow relay rate) keeps every chunk at 16 KiB. */
static void raw_reads_stay_small(void) {
    rawfix f;
    raw_stream(&f, 4096);
    ASSERT(f.largest <= 16384);
    ASSERT(f.chunks >= RAW_TOTAL / 16384);
}

TEST_MAIN(T(unbatched_sends_at_once), T(batch_written_next_pass), T(batch_dropped_by_close),
          T(fail_writes_batch_first), T(raw_reads_grow_to_max), T(raw_reads_stay_small))

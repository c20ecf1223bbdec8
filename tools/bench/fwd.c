/* fwd: the bare forwarding relay of figure 4, the yardstick for the
 * tracker's relay (tools/bench/bench.py).  It accepts on 127.0.0.1:LISTEN,
 * dials 127.0.0.1:TARGET for each connection and copies bytes both ways on
 * libuv, with the same back-pressure idea as the tracker (stop reading
 * while 256 KiB wait to be written).  Nothing else: no protocol, no limits.
 *   fwd LISTEN_PORT TARGET_PORT */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

typedef struct side {
    uv_tcp_t tcp;
    struct side *other;
} side;

static struct sockaddr_in target;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    (void)h, (void)hint;
    b->base = malloc(65536);
    b->len = b->base ? 65536 : 0;
}

static void on_closed(uv_handle_t *h) { free(h); }

static void close_both(side *s) {
    if (!uv_is_closing((uv_handle_t *)&s->tcp))
        uv_close((uv_handle_t *)&s->tcp, on_closed);
    if (s->other && !uv_is_closing((uv_handle_t *)&s->other->tcp))
        uv_close((uv_handle_t *)&s->other->tcp, on_closed);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

static void on_written(uv_write_t *w, int status) {
    side *to = (side *)w->handle; /* tcp is the first member */
    free(w->data);
    free(w);
    if (status == 0 && to->tcp.write_queue_size < 128 * 1024 &&
        !uv_is_closing((uv_handle_t *)&to->other->tcp))
        uv_read_start((uv_stream_t *)&to->other->tcp, on_alloc, on_read);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    side *s = (side *)st;
    if (n < 0) {
        free(b->base);
        close_both(s);
        return;
    }
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    w->data = b->base;
    if (n == 0 || uv_write(w, (uv_stream_t *)&s->other->tcp, &out, 1, on_written)) {
        free(b->base);
        free(w);
        return;
    }
    if (s->other->tcp.write_queue_size > 256 * 1024)
        uv_read_stop(st);
}

static void on_dialed(uv_connect_t *c, int status) {
    side *out = c->data;
    free(c);
    if (status) {
        close_both(out);
        return;
    }
    uv_read_start((uv_stream_t *)&out->tcp, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&out->other->tcp, on_alloc, on_read);
}

static void on_conn(uv_stream_t *l, int status) {
    side *in = calloc(1, sizeof *in), *out = calloc(1, sizeof *out);
    uv_connect_t *c = malloc(sizeof *c);
    if (status || !in || !out || !c)
        exit(1);
    uv_tcp_init(l->loop, &in->tcp);
    uv_tcp_init(l->loop, &out->tcp);
    in->other = out;
    out->other = in;
    uv_accept(l, (uv_stream_t *)&in->tcp);
    uv_tcp_nodelay(&in->tcp, 1);
    uv_tcp_nodelay(&out->tcp, 1);
    c->data = out;
    if (uv_tcp_connect(c, &out->tcp, (struct sockaddr *)&target, on_dialed))
        exit(1);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fwd LISTEN_PORT TARGET_PORT\n");
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t l;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &a);
    uv_ip4_addr("127.0.0.1", atoi(argv[2]), &target);
    uv_tcp_init(loop, &l);
    int r = uv_tcp_bind(&l, (struct sockaddr *)&a, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l, 16, on_conn);
    if (r) {
        fprintf(stderr, "fwd: cannot listen on port %s: %s\n", argv[1], uv_strerror(r));
        return 1;
    }
    fprintf(stderr, "fwd: listening on 127.0.0.1:%s\n", argv[1]);
    return uv_run(loop, UV_RUN_DEFAULT);
}

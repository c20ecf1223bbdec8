/* fuzz_io: the plumbing the in-process socket harnesses share.  The code
 * under test runs on a libuv loop; the harness plays the remote side with a
 * plain non-blocking socket on loopback and turns the loop by hand
 * (UV_RUN_NOWAIT), so one fuzz input is one short, deterministic
 * conversation with no threads and no sleeps. */
#ifndef PARLEY_FUZZ_IO_H
#define PARLEY_FUZZ_IO_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* What the remote side has received so far (the code under test's output). */
typedef struct fio_in {
    unsigned char *buf;
    size_t len, cap;
    int eof; /* the other side closed (EOF or reset) */
} fio_in;

/* Exits the process with a message: harness setup cannot fail quietly. */
void fio_die(const char *what, int err);

/* A uv listener on 127.0.0.1:0; returns the port. */
int fio_uv_listen(uv_loop_t *loop, uv_tcp_t *srv, uv_connection_cb cb, void *data);

/* A plain non-blocking listening socket on 127.0.0.1:0; *port gets its port. */
int fio_plain_listen(int *port);

/* A plain non-blocking socket connecting to 127.0.0.1:port (loopback
 * completes the handshake inside connect, or on the next loop turn). */
int fio_connect(int port);

/* Accepts on a plain listener, turning the loop until a connection is
 * there (at most `turns` turns).  -1 when none came. */
int fio_accept(uv_loop_t *loop, int lfd, int turns);

/* Turns the loop n times without blocking. */
void fio_pump(uv_loop_t *loop, int n);

/* Handles on the loop, closing ones included. */
size_t fio_handles(uv_loop_t *loop);

/* Turns the loop until fio_handles() <= want; aborts after ~5 s of loop
 * time (a handle that never closes is a bug worth a crash report). */
void fio_settle(uv_loop_t *loop, size_t want);

/* Reads whatever is available on fd into in (kept up to 256 KiB, the rest
 * discarded).  Returns bytes read. */
size_t fio_read(int fd, fio_in *in);
void fio_in_free(fio_in *in);

/* Writes data to fd in chunks of `chunk` bytes (0: all at once), turning
 * the loop between chunks and whenever the socket is full, and draining fd
 * into in.  Returns 0, or -1 when the other side closed first. */
int fio_send(uv_loop_t *loop, int fd, const void *data, size_t len, size_t chunk, fio_in *in);

/* Turns the loop (and drains fd) until the other side closes, at most
 * `turns` turns.  1 when it closed. */
int fio_wait_eof(uv_loop_t *loop, int fd, fio_in *in, int turns);

/* Turns the loop until a complete frame of type `type` has arrived in in
 * (searching from frame offset *off, which is advanced past it).  Returns
 * the payload offset into in->buf and sets *len, or -1 (closed, other
 * frames only, or `turns` exhausted). */
long fio_wait_frame(uv_loop_t *loop, int fd, fio_in *in, const char *type, size_t *off,
                    size_t *len, int turns);

/* A tiny deterministic byte source over the fuzz input. */
typedef struct fio_src {
    const uint8_t *p;
    size_t n;
} fio_src;
uint8_t fio_byte(fio_src *s);

#endif

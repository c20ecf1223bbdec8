/* msg: the message codec.  Every wire message is one msgpack map whose "t"
 * field names its type (docs/PROTOCOL.md lists them).  Encoding builds a
 * complete frame (length prefix included) in one buffer; decoding gives typed,
 * checked access to the fields of one received frame. */
#ifndef PARLEY_MSG_H
#define PARLEY_MSG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1

/* The longest start delay a punch or punch_result may carry
 * (PROTOCOL.md, "punch_request"): the tracker sends no more, a peer caps
 * a larger value to it. */
#define PUNCH_DELAY_MAX_MS 2000

/* ---- encoding ---- */

/* Most frames fit the inline buffer, so building one costs no allocation;
 * a larger one moves to the heap.  m->pk writes into m, so a msg_out stays
 * where msg_out_init put it. */
#define MSG_OUT_INLINE 512

typedef struct msg_out {
    msgpack_packer pk;
    char *data;   /* inl, or a heap buffer once it outgrew inl */
    size_t len, cap;
    int failed;   /* out of memory while encoding: the frame is incomplete */
    char inl[MSG_OUT_INLINE];
} msg_out;

/* Starts a frame holding a map of nfields fields besides "t". */
void msg_out_init(msg_out *m, const char *type, uint32_t nfields);
void msg_put_str(msg_out *m, const char *key, const char *s);
void msg_put_strn(msg_out *m, const char *key, const char *s, size_t n);
void msg_put_uint(msg_out *m, const char *key, uint64_t v);
void msg_put_int(msg_out *m, const char *key, int64_t v);
void msg_put_bool(msg_out *m, const char *key, bool v);
void msg_put_bin(msg_out *m, const char *key, const void *p, size_t n);
void msg_put_nil(msg_out *m, const char *key);
/* Writes the key only; the value follows through m->pk (arrays, maps). */
void msg_put_key(msg_out *m, const char *key);
void msg_pack_str(msg_out *m, const char *s, size_t n);

/* Finishes the frame.  On success the caller owns *buf (free()) holding
 * *len bytes, header included, and m is empty.  UV_E2BIG when the payload
 * exceeds max_payload, UV_ENOMEM when encoding ran out of memory (m is
 * released either way). */
int msg_out_finish(msg_out *m, size_t max_payload, char **buf, size_t *len);

/* Finishes the frame in place, without a copy: *buf points into m and
 * holds *len bytes, header included, until msg_out_discard(m), which the
 * caller must call whatever this returns.  UV_E2BIG or UV_ENOMEM as above. */
int msg_out_view(msg_out *m, size_t max_payload, const char **buf, size_t *len);

/* The encoded map alone, without the frame header, for a caller that
 * wraps it in another message (a sealed chat frame): *p holds *n bytes,
 * writable, until msg_out_wipe or msg_out_discard, one of which the caller
 * must call whatever this returns.  UV_E2BIG or UV_ENOMEM as above. */
int msg_out_payload(msg_out *m, size_t max_payload, unsigned char **p, size_t *n);

/* Releases what m holds.  Safe after msg_out_finish and msg_out_view. */
void msg_out_discard(msg_out *m);

/* Erases what m holds (plaintext that must not linger in memory), then
 * releases it. */
void msg_out_wipe(msg_out *m);

/* ---- decoding ---- */

/* A parsed frame's objects live in a zone whose first chunk is small
 * enough for malloc's per-thread cache: most frames need only that one. */
#define MSG_ZONE_CHUNK 960

typedef struct msg_in {
    msgpack_unpacked up; /* up.data is the frame; up.zone stays NULL */
    msgpack_zone zone;
    const msgpack_object_map *map;
    char type[24];
} msg_in;

/* Parses one frame payload.  0; UV_EPROTO when it is not exactly one msgpack
 * map with a string "t", UV_ENOMEM when out of memory (nothing to free in
 * either case).  On success call msg_in_free.  Strings and bins point into
 * payload, which must outlive m. */
int msg_parse(msg_in *m, const char *payload, size_t len);
void msg_in_free(msg_in *m);

/* Field accessors: 0; UV_ENOENT when the key is absent (or nil);
 * UV_EINVAL when it has the wrong type or size.  Pointers point into the
 * parsed frame and live as long as m. */
int msg_get(const msg_in *m, const char *key, const msgpack_object **o);
int msg_str(const msg_in *m, const char *key, const char **s, size_t *n);
int msg_uint(const msg_in *m, const char *key, uint64_t *v);
int msg_int(const msg_in *m, const char *key, int64_t *v);
int msg_bool(const msg_in *m, const char *key, bool *v);
/* Binary of exactly n bytes. */
int msg_bin(const msg_in *m, const char *key, const unsigned char **p, size_t n);
int msg_array(const msg_in *m, const char *key, const msgpack_object_array **a);

/* 1 when m's "features" array holds the string feature, else 0 (absent or
 * malformed: an older or odd sender simply has none). */
int msg_has_feature(const msg_in *m, const char *feature);

/* Copies a string object into out (NUL-terminated).  0 or UV_EINVAL when it
 * is not a string, holds a NUL, or does not fit. */
int msg_obj_cstr(const msgpack_object *o, char *out, size_t outlen);

/* The error a peer sent ("error" frames): fills code and text, best effort. */
void msg_error_fields(const msg_in *m, char *code, size_t codelen, char *text, size_t textlen);

/* Starts m as the hello a client opens a tracker connection with:
 * {t:"hello", v:PROTO_VERSION, role} (role "peer" for the control
 * connection, "relay" for a relay connection).  Complete as it is. */
void msg_tracker_hello(msg_out *m, const char *role);

/* Builds a complete "error" frame.  id is echoed when nonzero. */
int msg_error_frame(const char *code, const char *text, uint64_t id, char **buf, size_t *len);

#endif

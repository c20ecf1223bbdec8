/* msg: msgpack encoding and checked decoding of wire messages.  Nothing is
 * trusted: every accessor checks presence, type and size, so a dispatcher
 * can turn any malformed field into a clear error frame. */
#include "msg.h"

#include "frame.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Moves m to a buffer that holds n more bytes, then appends buf. */
static int out_grow(msg_out *m, const char *buf, size_t n) {
    if (m->failed)
        return -1;
    size_t ncap = m->cap * 2 > m->len + n ? m->cap * 2 : m->len + n;
    char *nd = m->data == m->inl ? malloc(ncap) : realloc(m->data, ncap);
    if (!nd) {
        m->failed = 1; /* view and finish report it */
        return -1;
    }
    if (m->data == m->inl)
        memcpy(nd, m->inl, m->len);
    m->data = nd;
    m->cap = ncap;
    memcpy(m->data + m->len, buf, n);
    m->len += n;
    return 0;
}

/* Appends n bytes; the common case (it fits, often one byte) inlines. */
static inline int out_append(msg_out *m, const char *buf, size_t n) {
    if (n > m->cap - m->len)
        return out_grow(m, buf, n);
    char *d = m->data + m->len;
    m->len += n;
    if (n == 1)
        *d = *buf;
    else
        memcpy(d, buf, n);
    return 0;
}

/* m->pk's writer, for callers that pack arrays and maps through it. */
static int out_write(void *data, const char *buf, size_t n) {
    return out_append(data, buf, n);
}

/* msgpack-c's encoder template once more, appending straight to a msg_out
 * (out_pack_str, out_pack_uint64...): the same encoding as msgpack_pack_*,
 * without an indirect call per type byte and per body.  The template
 * exists for this (msgpack/pack.h instantiates it the same way). */
#define msgpack_pack_inline_func(name) static inline int out_pack##name
#define msgpack_pack_inline_func_cint(name) static inline int out_pack##name
#define msgpack_pack_inline_func_fixint(name) static inline int out_pack_fix##name
#define msgpack_pack_user msg_out *
#define msgpack_pack_append_buffer(user, buf, len) return out_append(user, (const char *)(buf), len)
#include <msgpack/pack_template.h>

void msg_out_init(msg_out *m, const char *type, uint32_t nfields) {
    m->data = m->inl;
    m->cap = sizeof m->inl;
    m->len = FRAME_HEADER; /* the length prefix, written by view/finish */
    m->failed = 0;
    msgpack_packer_init(&m->pk, m, out_write);
    out_pack_map(m, nfields + 1);
    msg_pack_str(m, "t", 1);
    msg_pack_str(m, type, strlen(type));
}

void msg_pack_str(msg_out *m, const char *s, size_t n) {
    out_pack_str(m, n);
    out_pack_str_body(m, s, n);
}

void msg_put_key(msg_out *m, const char *key) {
    msg_pack_str(m, key, strlen(key));
}

void msg_put_str(msg_out *m, const char *key, const char *s) {
    msg_put_strn(m, key, s, strlen(s));
}

void msg_put_strn(msg_out *m, const char *key, const char *s, size_t n) {
    msg_put_key(m, key);
    msg_pack_str(m, s, n);
}

void msg_put_uint(msg_out *m, const char *key, uint64_t v) {
    msg_put_key(m, key);
    out_pack_uint64(m, v);
}

void msg_put_int(msg_out *m, const char *key, int64_t v) {
    msg_put_key(m, key);
    out_pack_int64(m, v);
}

void msg_put_bool(msg_out *m, const char *key, bool v) {
    msg_put_key(m, key);
    if (v)
        out_pack_true(m);
    else
        out_pack_false(m);
}

void msg_put_bin(msg_out *m, const char *key, const void *p, size_t n) {
    msg_put_key(m, key);
    out_pack_bin(m, n);
    out_pack_bin_body(m, p, n);
}

void msg_put_nil(msg_out *m, const char *key) {
    msg_put_key(m, key);
    out_pack_nil(m);
}

void msg_out_discard(msg_out *m) {
    if (m->data != m->inl)
        free(m->data);
    m->data = m->inl;
    m->len = 0;
}

int msg_out_view(msg_out *m, size_t max_payload, const char **buf, size_t *len) {
    if (m->failed)
        return UV_ENOMEM;
    size_t payload = m->len - FRAME_HEADER;
    if (payload > max_payload)
        return UV_E2BIG;
    frame_put_len(m->data, (uint32_t)payload);
    *buf = m->data;
    *len = m->len;
    return 0;
}

int msg_out_payload(msg_out *m, size_t max_payload, unsigned char **p, size_t *n) {
    if (m->failed)
        return UV_ENOMEM;
    if (m->len - FRAME_HEADER > max_payload)
        return UV_E2BIG;
    *p = (unsigned char *)m->data + FRAME_HEADER;
    *n = m->len - FRAME_HEADER;
    return 0;
}

void msg_out_wipe(msg_out *m) {
    sodium_memzero(m->data, m->len);
    msg_out_discard(m);
}

int msg_out_finish(msg_out *m, size_t max_payload, char **buf, size_t *len) {
    const char *p;
    int r = msg_out_view(m, max_payload, &p, len);
    if (r) {
        msg_out_discard(m);
        return r;
    }
    if (m->data == m->inl) {
        if (!(*buf = malloc(*len))) {
            msg_out_discard(m);
            return UV_ENOMEM;
        }
        memcpy(*buf, p, *len);
    } else {
        /* Give the growth slack back: a reply queued for a slow reader
         * would pin all of it. */
        char *fit = realloc(m->data, *len);
        *buf = fit ? fit : m->data;
        m->data = m->inl; /* the caller owns the heap buffer now */
    }
    msg_out_discard(m);
    return 0;
}

/* msgpack-c allocates a container's slots before reading them, so a 6-byte
 * payload announcing a 4-billion-entry map would cost gigabytes.  Walk the
 * headers first: every element takes at least one byte, so the elements still
 * owed can never exceed the bytes left. */
static int check_sizes(const unsigned char *p, size_t len) {
    size_t pos = 0, owed = 1;
    while (owed > 0) {
        if (pos >= len)
            return UV_EPROTO;
        unsigned c = p[pos++];
        owed--;
        size_t hdr = 0, body = 0, items = 0;
        /* The fix* forms first: nearly every byte of a wire message is one. */
        if (c <= 0x7f || c >= 0xe0) {
            continue; /* fixint: no more bytes */
        } else if (c <= 0x8f) {
            items = 2 * (size_t)(c & 0x0f); /* fixmap */
        } else if (c <= 0x9f) {
            items = c & 0x0f; /* fixarray */
        } else if (c <= 0xbf) {
            body = c & 0x1f; /* fixstr */
        } else {
            switch (c) {
            case 0xc0: case 0xc2: case 0xc3: continue;        /* nil, bool */
            case 0xc4: case 0xc7: case 0xd9: hdr = 1; break;   /* bin8, ext8, str8 */
            case 0xc5: case 0xc8: case 0xda: hdr = 2; break;   /* bin16, ext16, str16 */
            case 0xc6: case 0xc9: case 0xdb: hdr = 4; break;   /* bin32, ext32, str32 */
            case 0xcc: case 0xd0: body = 1; break;
            case 0xcd: case 0xd1: body = 2; break;
            case 0xca: case 0xce: case 0xd2: body = 4; break;
            case 0xcb: case 0xcf: case 0xd3: body = 8; break;
            case 0xd4: body = 2; break;  /* fixext 1..16: type byte + data */
            case 0xd5: body = 3; break;
            case 0xd6: body = 5; break;
            case 0xd7: body = 9; break;
            case 0xd8: body = 17; break;
            case 0xdc: case 0xde: hdr = 2; break; /* array16, map16 */
            case 0xdd: case 0xdf: hdr = 4; break; /* array32, map32 */
            default: return UV_EPROTO;           /* 0xc1: never used */
            }
        }
        if (hdr) {
            if (len - pos < hdr)
                return UV_EPROTO;
            size_t n = 0;
            for (size_t i = 0; i < hdr; i++)
                n = (n << 8) | p[pos + i];
            pos += hdr;
            if (c == 0xdc || c == 0xdd)
                items = n;
            else if (c == 0xde || c == 0xdf)
                items = 2 * n;
            else
                body = n + (c >= 0xc7 && c <= 0xc9); /* ext carries a type byte */
        }
        if (body > len - pos)
            return UV_EPROTO;
        pos += body;
        owed += items;
        if (owed > len - pos)
            return UV_EPROTO;
    }
    return pos == len ? 0 : UV_EPROTO;
}

int msg_parse(msg_in *m, const char *payload, size_t len) {
    m->map = NULL;
    if (check_sizes((const unsigned char *)payload, len))
        return UV_EPROTO;
    m->up.zone = NULL;
    if (!msgpack_zone_init(&m->zone, MSG_ZONE_CHUNK))
        return UV_ENOMEM;
    size_t off = 0;
    int r = msgpack_unpack(payload, len, &off, &m->zone, &m->up.data);
    if (r != MSGPACK_UNPACK_SUCCESS || off != len || m->up.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_zone_destroy(&m->zone);
        return UV_EPROTO;
    }
    m->map = &m->up.data.via.map;
    const char *t;
    size_t tn;
    if (msg_str(m, "t", &t, &tn) || tn == 0 || tn >= sizeof m->type || memchr(t, 0, tn)) {
        msgpack_zone_destroy(&m->zone);
        m->map = NULL;
        return UV_EPROTO;
    }
    memcpy(m->type, t, tn);
    m->type[tn] = '\0';
    return 0;
}

void msg_in_free(msg_in *m) {
    if (m->map)
        msgpack_zone_destroy(&m->zone);
    m->map = NULL;
}

int msg_get(const msg_in *m, const char *key, const msgpack_object **o) {
    size_t kn = strlen(key);
    for (uint32_t i = 0; i < m->map->size; i++) {
        const msgpack_object_kv *kv = &m->map->ptr[i];
        /* msgpack-c leaves ptr NULL for an empty string: no memcmp then. */
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == kn &&
            (kn == 0 || memcmp(kv->key.via.str.ptr, key, kn) == 0)) {
            if (kv->val.type == MSGPACK_OBJECT_NIL)
                return UV_ENOENT;
            *o = &kv->val;
            return 0;
        }
    }
    return UV_ENOENT;
}

int msg_str(const msg_in *m, const char *key, const char **s, size_t *n) {
    const msgpack_object *o;
    int r = msg_get(m, key, &o);
    if (r)
        return r;
    if (o->type != MSGPACK_OBJECT_STR)
        return UV_EINVAL;
    /* Never hand out NULL (msgpack-c's pointer for ""): callers pass it to
     * memchr and memcpy, where NULL is undefined even with length 0. */
    *s = o->via.str.size ? o->via.str.ptr : "";
    *n = o->via.str.size;
    return 0;
}

int msg_uint(const msg_in *m, const char *key, uint64_t *v) {
    const msgpack_object *o;
    int r = msg_get(m, key, &o);
    if (r)
        return r;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return UV_EINVAL;
    *v = o->via.u64;
    return 0;
}

int msg_int(const msg_in *m, const char *key, int64_t *v) {
    const msgpack_object *o;
    int r = msg_get(m, key, &o);
    if (r)
        return r;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *v = o->via.i64;
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        *v = (int64_t)o->via.u64;
    else
        return UV_EINVAL;
    return 0;
}

int msg_bool(const msg_in *m, const char *key, bool *v) {
    const msgpack_object *o;
    int r = msg_get(m, key, &o);
    if (r)
        return r;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return UV_EINVAL;
    *v = o->via.boolean;
    return 0;
}

int msg_bin(const msg_in *m, const char *key, const unsigned char **p, size_t n) {
    const msgpack_object *o;
    int r = msg_get(m, key, &o);
    if (r)
        return r;
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n)
        return UV_EINVAL;
    *p = (const unsigned char *)o->via.bin.ptr;
    return 0;
}

int msg_array(const msg_in *m, const char *key, const msgpack_object_array **a) {
    const msgpack_object *o;
    int r = msg_get(m, key, &o);
    if (r)
        return r;
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return UV_EINVAL;
    *a = &o->via.array;
    return 0;
}

int msg_has_feature(const msg_in *m, const char *feature) {
    const msgpack_object_array *a;
    size_t n = strlen(feature);
    if (msg_array(m, "features", &a))
        return 0;
    for (uint32_t i = 0; i < a->size; i++) {
        const msgpack_object *o = &a->ptr[i];
        if (o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
            memcmp(o->via.str.ptr, feature, n) == 0)
            return 1;
    }
    return 0;
}

int msg_obj_cstr(const msgpack_object *o, char *out, size_t outlen) {
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= outlen ||
        (o->via.str.size && memchr(o->via.str.ptr, 0, o->via.str.size)))
        return UV_EINVAL;
    if (o->via.str.size) /* ptr is NULL for "" */
        memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return 0;
}

static void copy_field(const msg_in *m, const char *key, char *out, size_t outlen) {
    const msgpack_object *o;
    out[0] = '\0';
    if (outlen == 0 || msg_get(m, key, &o) || o->type != MSGPACK_OBJECT_STR)
        return;
    size_t n = o->via.str.size < outlen - 1 ? o->via.str.size : outlen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)o->via.str.ptr[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c; /* never echo control bytes */
    }
    out[n] = '\0';
}

void msg_error_fields(const msg_in *m, char *code, size_t codelen, char *text, size_t textlen) {
    copy_field(m, "code", code, codelen);
    copy_field(m, "msg", text, textlen);
}

void msg_tracker_hello(msg_out *m, const char *role) {
    msg_out_init(m, "hello", 2);
    msg_put_uint(m, "v", PROTO_VERSION);
    msg_put_str(m, "role", role);
}

int msg_error_frame(const char *code, const char *text, uint64_t id, char **buf, size_t *len) {
    msg_out m;
    msg_out_init(&m, "error", id ? 3 : 2);
    msg_put_str(&m, "code", code);
    msg_put_str(&m, "msg", text);
    if (id)
        msg_put_uint(&m, "id", id);
    return msg_out_finish(&m, FRAME_MAX_DEFAULT, buf, len);
}

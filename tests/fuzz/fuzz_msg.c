/* fuzz_msg: the message decoder (shared/msg.c) and the value checkers every
 * handler applies to decoded fields (shared/name.c, shared/addr.c).  The
 * input is one frame payload: msg_parse it, then call every accessor for
 * every field name of the protocol, and run each string found through the
 * name and address checks.  A successful parse must also survive the
 * error-field copy and re-encoding. */
#include "addr.h"
#include "frame.h"
#include "msg.h"
#include "name.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define CHECK(x)                                                                              \
    do {                                                                                      \
        if (!(x)) {                                                                           \
            fprintf(stderr, "fuzz_msg: %s:%d: %s\n", __FILE__, __LINE__, #x);                 \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

static const char *const keys[] = {
    "t", "v", "role", "name", "key", "sig", "nonce", "to", "endpoints", "id", "prefix",
    "limit", "cursor", "users", "next", "online", "observed", "last_seen", "ttl", "code",
    "msg", "text", "ts", "", "\xff",
};

static void check_string(const char *s, size_t n) {
    const char *why = NULL;
    char fold[NAME_BUFLEN];
    int ok = name_check(s, n, &why) == 0;
    CHECK(ok || why != NULL);
    int fr = name_fold(s, n, fold);
    CHECK((fr == 0) == ok);
    if (ok) {
        size_t fl = strlen(fold);
        CHECK(fl > 0 && fl <= NAME_MAX_BYTES);
        /* Folding is idempotent and keeps the name valid. */
        char again[NAME_BUFLEN];
        CHECK(name_check(fold, fl, NULL) == 0);
        CHECK(name_fold(fold, fl, again) == 0 && strcmp(again, fold) == 0);
    }
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t l = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (l == 0)
            break;
        CHECK(l <= 4 && l <= n - i && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF));
        i += l;
    }
    char buf[ADDR_STRLEN + 8];
    if (n < sizeof buf && !memchr(s, 0, n)) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        char host[ADDR_STRLEN], port[8];
        addr_split(buf, NULL, host, sizeof host, port, sizeof port);
        addr_split(buf, "5960", host, sizeof host, port, sizeof port);
        struct sockaddr_storage ss;
        if (addr_parse_numeric(buf, &ss) == 0) {
            char out[ADDR_STRLEN];
            CHECK(addr_format((struct sockaddr *)&ss, out, sizeof out) == 0);
            struct sockaddr_storage ss2;
            CHECK(addr_parse_numeric(out, &ss2) == 0); /* what we print we can read back */
        }
    }
}

static void walk(const msgpack_object *o, int depth) {
    if (depth > 4)
        return;
    if (o->type == MSGPACK_OBJECT_STR) {
        check_string(o->via.str.size ? o->via.str.ptr : "", o->via.str.size); /* NULL for "" */
        char small[NAME_BUFLEN], big[ADDR_STRLEN];
        msg_obj_cstr(o, small, sizeof small);
        msg_obj_cstr(o, big, sizeof big);
    } else if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size && i < 64; i++)
            walk(&o->via.array.ptr[i], depth + 1);
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size && i < 64; i++) {
            walk(&o->via.map.ptr[i].key, depth + 1);
            walk(&o->via.map.ptr[i].val, depth + 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    msg_in m;
    if (msg_parse(&m, (const char *)data, size)) {
        CHECK(m.map == NULL);
        return 0;
    }
    CHECK(m.map != NULL && m.type[0] != '\0' && strlen(m.type) < sizeof m.type);
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const char *key = keys[k];
        const msgpack_object *o;
        const char *s;
        size_t n;
        uint64_t u;
        int64_t i;
        bool b;
        const unsigned char *p;
        const msgpack_object_array *a;
        int rg = msg_get(&m, key, &o);
        CHECK(rg == 0 || rg == UV_ENOENT);
        int rs = msg_str(&m, key, &s, &n);
        CHECK(rs == 0 || rs == UV_ENOENT || rs == UV_EINVAL);
        if (rs == 0)
            check_string(s, n);
        int ru = msg_uint(&m, key, &u);
        int ri = msg_int(&m, key, &i);
        if (ru == 0 && u <= INT64_MAX)
            CHECK(ri == 0 && (uint64_t)i == u);
        msg_bool(&m, key, &b);
        for (size_t len = 0; len <= 64; len += 32)
            if (msg_bin(&m, key, &p, len) == 0 && len)
                CHECK(p[len - 1] == p[len - 1]); /* readable: ASan checks the bytes */
        if (msg_array(&m, key, &a) == 0)
            for (uint32_t j = 0; j < a->size && j < 64; j++) {
                char ep[ADDR_STRLEN];
                msg_obj_cstr(&a->ptr[j], ep, sizeof ep);
            }
        if (rg == 0)
            walk(o, 0);
    }
    char code[32], text[300];
    msg_error_fields(&m, code, sizeof code, text, sizeof text);
    CHECK(strlen(code) < sizeof code && strlen(text) < sizeof text);
    for (const char *c = text; *c; c++)
        CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
    /* Re-encode the error we would answer with and read it back. */
    char *buf;
    size_t len;
    if (msg_error_frame(code[0] ? code : "bad_message", text, 7, &buf, &len) == 0) {
        msg_in back;
        CHECK(len > FRAME_HEADER);
        CHECK(msg_parse(&back, buf + FRAME_HEADER, len - FRAME_HEADER) == 0);
        CHECK(strcmp(back.type, "error") == 0);
        msg_in_free(&back);
        free(buf);
    }
    msg_in_free(&m);
    return 0;
}

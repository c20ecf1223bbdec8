/* dispatch: decode, look the type up, check state and sealing, call.  The
 * tables are a dozen entries, so a linear scan with strcmp is as fast as a
 * hash here and keeps each table readable as plain data. */
#include "dispatch.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

const disp_entry *disp_find(const disp_table *t, const char *type) {
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->entries[i].type, type) == 0)
            return &t->entries[i];
    return NULL;
}

/* The type as it may be echoed: never control bytes (a log line or a
 * terminal would show them). */
static void printable(const char *type, char *out, size_t outlen) {
    size_t i;
    for (i = 0; type[i] && i + 1 < outlen; i++)
        out[i] = (unsigned char)type[i] < 0x20 || type[i] == 0x7f ? '?' : type[i];
    out[i] = '\0';
}

static int refuse(const disp_table *t, void *owner, disp_why why, const char *code,
                  const char *text, const msg_in *m, unsigned state, unsigned flags) {
    disp_refusal r = {why, code, text, m, state, flags};
    t->refuse(owner, &r);
    return (int)why + 1;
}

int disp_frame(const disp_table *t, void *owner, unsigned state, unsigned flags,
               const char *payload, size_t len) {
    msg_in m;
    int err = msg_parse(&m, payload, len);
    if (err == UV_ENOMEM)
        return refuse(t, owner, DISP_NO_MEMORY, "internal", "out of memory decoding the frame",
                      NULL, state, flags);
    if (err)
        return refuse(t, owner, DISP_BAD_FRAME, "bad_frame",
                      flags & DISP_SEALED ? "the sealed frame holds no msgpack map with a string t"
                                          : "frame is not one msgpack map with a string field t",
                      NULL, state, flags);
    int ret = 0;
    if (t->admit && t->admit(owner, &m)) {
        msg_in_free(&m);
        return 0;
    }
    const disp_entry *e = disp_find(t, m.type);
    char type[sizeof m.type], text[160];
    if (!e || !(e->states & DISP_IN(state)) || (e->flags & DISP_SEALED) != (flags & DISP_SEALED))
        printable(m.type, type, sizeof type);
    if (!e) {
        snprintf(text, sizeof text, "unknown message type \"%s\"", type);
        ret = refuse(t, owner, DISP_UNKNOWN_TYPE, "unknown_type", text, &m, state, flags);
    } else if (!(e->states & DISP_IN(state))) {
        snprintf(text, sizeof text, "unexpected %s %s", type, t->where);
        ret = refuse(t, owner, DISP_WRONG_STATE, "bad_message", text, &m, state, flags);
    } else if ((e->flags & DISP_SEALED) != (flags & DISP_SEALED)) {
        snprintf(text, sizeof text, "%s must %sbe sealed", type, flags & DISP_SEALED ? "not " : "");
        ret = refuse(t, owner, DISP_WRONG_SEAL, "bad_message", text, &m, state, flags);
    } else {
        e->fn(owner, &m);
    }
    msg_in_free(&m);
    return ret;
}

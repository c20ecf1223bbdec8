/* config: reading the --config file (config.h).  The whole file is read
 * at once (it is small and read once, before the loop runs, so plain stdio
 * is fine here) and rewritten into argv words: each line's NAME becomes
 * "--NAME" so getopt_long in main.c can check it like a flag. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

void conf_free(conf_file *cf) {
    free(cf->text);
    free(cf->lines);
    memset(cf, 0, sizeof *cf);
}

int conf_read(const char *path, conf_file *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->path = path;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(e));
        return uv_translate_sys_error(e);
    }
    char *raw = malloc(CONF_MAX_BYTES + 1);
    size_t n = raw ? fread(raw, 1, CONF_MAX_BYTES + 1, f) : 0;
    int failed = raw ? ferror(f) : 0;
    fclose(f);
    if (!raw || failed || n > CONF_MAX_BYTES) {
        snprintf(err, errlen, "cannot read config file %s: %s", path,
                 !raw ? "out of memory" : failed ? "read error" : "larger than 1 MiB");
        free(raw);
        return !raw ? UV_ENOMEM : failed ? UV_EIO : UV_E2BIG;
    }
    if (memchr(raw, '\0', n)) {
        snprintf(err, errlen, "config file %s contains a NUL byte; it must be text", path);
        free(raw);
        return UV_EINVAL;
    }
    /* Each line grows by at most "--" and a NUL per word. */
    size_t maxlines = 1;
    for (size_t i = 0; i < n; i++)
        maxlines += raw[i] == '\n';
    out->text = malloc(n + maxlines * 4 + 1);
    out->lines = calloc(maxlines, sizeof *out->lines);
    if (!out->text || !out->lines) {
        snprintf(err, errlen, "cannot read config file %s: out of memory", path);
        free(raw);
        conf_free(out);
        return UV_ENOMEM;
    }
    char *o = out->text;
    size_t pos = 0;
    for (int lineno = 1; pos < n; lineno++) {
        size_t end = pos;
        while (end < n && raw[end] != '\n')
            end++;
        size_t s = pos, e = end;
        pos = end + 1;
        while (s < e && is_space(raw[s]))
            s++;
        while (e > s && is_space(raw[e - 1]))
            e--;
        if (s == e || raw[s] == '#')
            continue;
        size_t name_end = s;
        while (name_end < e && !is_space(raw[name_end]))
            name_end++;
        size_t v = name_end;
        while (v < e && is_space(raw[v]))
            v++;
        if (raw[s] == '-') {
            snprintf(err, errlen, "%s line %d: write flags without dashes (\"%.*s\" should be "
                     "\"%.*s\")", path, lineno, (int)(name_end - s), raw + s,
                     (int)(name_end - s - strspn(raw + s, "-")), raw + s + strspn(raw + s, "-"));
            free(raw);
            conf_free(out);
            return UV_EINVAL;
        }
        conf_line *l = &out->lines[out->nlines++];
        l->line = lineno;
        l->argv[0] = "parley-tracker";
        l->argv[1] = o;
        *o++ = '-';
        *o++ = '-';
        memcpy(o, raw + s, name_end - s);
        o += name_end - s;
        *o++ = '\0';
        l->argc = 2;
        if (v < e) { /* the value is the rest of the line, inner spaces kept */
            l->argv[2] = o;
            memcpy(o, raw + v, e - v);
            o += e - v;
            *o++ = '\0';
            l->argc = 3;
        }
        l->argv[l->argc] = NULL;
    }
    free(raw);
    return 0;
}

/* tui_text: how UTF-8 text occupies the screen.  Widths come from wcwidth
 * (the locale is set to UTF-8 when the terminal UI starts), so wide CJK
 * glyphs and emoji take two columns and combining marks none; anything
 * unprintable is escaped before it can reach the terminal. */
#include "tui_impl.h"

#include <stdlib.h>
#include <string.h>
#include <wchar.h>

size_t tui_char(const char *s, size_t n, unsigned *cp, int *w) {
    size_t k = utf8_decode((const unsigned char *)s, n, cp);
    if (k == 0) {
        *cp = 0xfffd;
        *w = 1;
        return 1;
    }
    int cw = wcwidth((wchar_t)*cp);
    if (cw < 0)
        cw = *cp < 0x20 ? 0 : 1; /* unknown to the locale: assume one column */
    *w = cw > 2 ? 2 : cw;
    return k;
}

int tui_width(const char *s, size_t n) {
    int cols = 0;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        int w;
        i += tui_char(s + i, n - i, &cp, &w);
        cols += w;
    }
    return cols;
}

size_t tui_fit(const char *s, size_t n, int cols) {
    size_t i = 0;
    int used = 0;
    while (i < n) {
        unsigned cp;
        int w;
        size_t k = tui_char(s + i, n - i, &cp, &w);
        if (used + w > cols)
            break;
        used += w;
        i += k;
    }
    return i;
}

char *tui_sanitize(const char *s, size_t n, int keep_nl) {
    static const char hex[] = "0123456789abcdef";
    char *o = malloc(n * 4 + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp;
        size_t k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (c == '\n' && keep_nl) {
            o[j++] = '\n';
            i++;
        } else if (c == '\t') {
            o[j++] = ' ';
            i++;
        } else if (k == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
            size_t m = k ? k : 1; /* an invalid byte, or the bytes of a control */
            for (size_t b = 0; b < m; b++) {
                unsigned char x = (unsigned char)s[i + b];
                o[j++] = '\\';
                o[j++] = 'x';
                o[j++] = hex[x >> 4];
                o[j++] = hex[x & 15];
            }
            i += m;
        } else {
            memcpy(o + j, s + i, k);
            j += k;
            i += k;
        }
    }
    o[j] = '\0';
    return o;
}

size_t tui_prev_char(const char *s, size_t cur) {
    if (cur == 0)
        return 0;
    size_t i = cur - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
        i--;
    return i;
}

size_t tui_next_char(const char *s, size_t len, size_t cur) {
    if (cur >= len)
        return len;
    unsigned cp;
    int w;
    return cur + tui_char(s + cur, len - cur, &cp, &w);
}

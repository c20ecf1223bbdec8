/* addr: parsing and printing of HOST:PORT; DNS itself is done by the callers
 * with uv_getaddrinfo so it never blocks the loop. */
#include "addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* 0 for a port number 0 to 65535, UV_ERANGE for digits beyond it, else
 * UV_EINVAL (empty, a sign, a service name). */
static int check_port(const char *p) {
    if (!*p)
        return UV_EINVAL;
    for (const char *c = p; *c; c++)
        if (*c < '0' || *c > '9')
            return UV_EINVAL;
    size_t n = strlen(p);
    while (n > 1 && *p == '0') { /* leading zeros do not make it larger */
        p++;
        n--;
    }
    return n > 5 || strtol(p, NULL, 10) > 65535 ? UV_ERANGE : 0;
}

int addr_split(const char *s, const char *default_port, char *host, size_t hostlen,
               char *port, size_t portlen) {
    const char *h, *hend, *p = NULL;
    if (s[0] == '[') {
        h = s + 1;
        hend = strchr(h, ']');
        if (!hend)
            return UV_EINVAL;
        if (hend[1] == ':')
            p = hend + 2;
        else if (hend[1] != '\0')
            return UV_EINVAL;
    } else {
        h = s;
        const char *colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon)
            return UV_EINVAL; /* a bare IPv6 literal needs brackets */
        hend = colon ? colon : s + strlen(s);
        if (colon)
            p = colon + 1;
    }
    if (!p)
        p = default_port;
    if (!p || hend == h)
        return UV_EINVAL;
    int r = check_port(p);
    if (r)
        return r;
    size_t hl = (size_t)(hend - h);
    if (hl + 1 > hostlen || strlen(p) + 1 > portlen)
        return UV_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, p);
    return 0;
}

const char *addr_split_error(int r) {
    return r == UV_ERANGE ? "the port is out of range (0 to 65535)"
                          : "not HOST:PORT (IPv6 literals in brackets, like [::1]:5960)";
}

int addr_format(const struct sockaddr *sa, char *out, size_t outlen) {
    char ip[64];
    int port, r;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        r = uv_ip4_name(in, ip, sizeof ip);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        r = uv_ip6_name(in6, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
    } else {
        return UV_EAFNOSUPPORT;
    }
    if (r)
        return r;
    int n = snprintf(out, outlen, sa->sa_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    return n < 0 || (size_t)n >= outlen ? UV_ENOBUFS : 0;
}

int addr_parse_numeric(const char *s, struct sockaddr_storage *ss) {
    char host[ADDR_STRLEN], port[8];
    int r = addr_split(s, NULL, host, sizeof host, port, sizeof port);
    if (r)
        return r;
    memset(ss, 0, sizeof *ss);
    int pn = atoi(port);
    if (uv_ip4_addr(host, pn, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, pn, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return UV_EINVAL;
}

/* The IPv4 address of a plain or IPv4-mapped IPv6 sockaddr (a dual-stack
 * [::] listener sees IPv4 clients as ::ffff:a.b.c.d); 0 when it has none. */
static int ipv4_of(const struct sockaddr_storage *s, uint32_t *ip) {
    if (s->ss_family == AF_INET) {
        *ip = ((const struct sockaddr_in *)s)->sin_addr.s_addr;
        return 1;
    }
    const struct in6_addr *a = &((const struct sockaddr_in6 *)s)->sin6_addr;
    if (s->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(a)) {
        memcpy(ip, a->s6_addr + 12, 4);
        return 1;
    }
    return 0;
}

int addr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    uint32_t ia = 0, ib = 0;
    int va = ipv4_of(a, &ia), vb = ipv4_of(b, &ib);
    if (va || vb)
        return va && vb && ia == ib;
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, 8) == 0;
    return 0;
}

void addr_host_key(const struct sockaddr_storage *s, char out[ADDR_HOSTKEY_LEN]) {
    uint32_t ip;
    out[0] = '\0';
    if (ipv4_of(s, &ip)) {
        const unsigned char *b = (const unsigned char *)&ip; /* network order */
        snprintf(out, ADDR_HOSTKEY_LEN, "4:%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
    } else if (s->ss_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)s)->sin6_addr.s6_addr;
        snprintf(out, ADDR_HOSTKEY_LEN, "6:%02x%02x%02x%02x%02x%02x%02x%02x", a[0], a[1], a[2],
                 a[3], a[4], a[5], a[6], a[7]);
    }
}

static uint16_t port_of(const struct sockaddr_storage *s) {
    return s->ss_family == AF_INET ? ((const struct sockaddr_in *)s)->sin_port
           : s->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)s)->sin6_port : 0;
}

void addr_set_port(struct sockaddr_storage *host, const struct sockaddr_storage *port_from) {
    if (host->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)host)->sin6_port = port_of(port_from);
    else
        ((struct sockaddr_in *)host)->sin_port = port_of(port_from);
}

int addr_same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    uint32_t ia = 0, ib = 0;
    int va = ipv4_of(a, &ia), vb = ipv4_of(b, &ib);
    if (port_of(a) != port_of(b) || !port_of(a))
        return 0;
    if (va || vb)
        return va && vb && ia == ib;
    return a->ss_family == AF_INET6 && b->ss_family == AF_INET6 &&
           memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

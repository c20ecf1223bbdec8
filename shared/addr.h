/* addr: HOST:PORT strings, the one address notation on the command line and
 * on the wire ("1.2.3.4:5960", "[::1]:5960", "example.org:5960"). */
#ifndef PARLEY_ADDR_H
#define PARLEY_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define ADDR_STRLEN 300 /* enough for a 255-byte hostname, brackets and port */

/* Splits "host:port", "[v6]:port" or, when default_port is given, a bare
 * host.  host gets the name without brackets.  0, UV_ERANGE (a port of
 * digits above 65535) or UV_EINVAL (anything else). */
int addr_split(const char *s, const char *default_port, char *host, size_t hostlen,
               char *port, size_t portlen);

/* What is wrong, for an addr_split error r: completes "--flag VALUE: ...". */
const char *addr_split_error(int r);

/* Formats a sockaddr as HOST:PORT with brackets for IPv6.  0 or a uv error. */
int addr_format(const struct sockaddr *sa, char *out, size_t outlen);

/* Parses a numeric HOST:PORT (no DNS) into *ss.  0, or addr_split's error
 * (UV_ERANGE, UV_EINVAL; UV_EINVAL too for a host that is not numeric). */
int addr_parse_numeric(const char *s, struct sockaddr_storage *ss);

/* 1 when a and b are the same IPv4 address or in the same IPv6 /64 (one
 * site's prefix: what a per-address connection limit should count as one
 * host), else 0; ports are ignored. */
int addr_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* The host of s as a short string (ADDR_HOSTKEY_LEN with its NUL), equal
 * for exactly the addresses addr_same_host takes for one host: an IPv4
 * address (also IPv4-mapped), or an IPv6 /64.  "" for another family. */
#define ADDR_HOSTKEY_LEN 20
void addr_host_key(const struct sockaddr_storage *s, char out[ADDR_HOSTKEY_LEN]);

/* *host with the port of port_from, both of host's family (the caller
 * checks): the observed address of a NATed peer with its listening port. */
void addr_set_port(struct sockaddr_storage *host, const struct sockaddr_storage *port_from);

/* 1 when a and b are the same address (IPv4-mapped IPv6 counting as its
 * IPv4 address) and the same nonzero port, else 0. */
int addr_same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif

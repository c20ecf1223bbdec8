/* test_addr: HOST:PORT parsing and printing (shared/addr.c), the notation of
 * the command line and of every address on the wire. */
#include "addr.h"
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

static int split(const char *s, const char *defport, char *host, char *port) {
    return addr_split(s, defport, host, ADDR_STRLEN, port, 8);
}

static void host_port(void) {
    char host[ADDR_STRLEN], port[8];
    ASSERT_EQ(split("127.0.0.1:5960", NULL, host, port), 0);
    ASSERT_STR(host, "127.0.0.1");
    ASSERT_STR(port, "5960");
    ASSERT_EQ(split("example.org:80", NULL, host, port), 0);
    ASSERT_STR(host, "example.org");
    ASSERT_STR(port, "80");
    ASSERT_EQ(split("localhost:0", NULL, host, port), 0);
    ASSERT_STR(host, "localhost");
    ASSERT_STR(port, "0");
    ASSERT_EQ(split("h:65535", NULL, host, port), 0);
    ASSERT_STR(port, "65535");
}

static void v6_port(void) {
    char host[ADDR_STRLEN], port[8];
    ASSERT_EQ(split("[::1]:5960", NULL, host, port), 0);
    ASSERT_STR(host, "::1");
    ASSERT_STR(port, "5960");
    ASSERT_EQ(split("[2001:db8::5]:40000", NULL, host, port), 0);
    ASSERT_STR(host, "2001:db8::5");
    ASSERT_STR(port, "40000");
    ASSERT_EQ(split("[::]:0", NULL, host, port), 0);
    ASSERT_STR(host, "::");
}

static void default_port(void) {
    char host[ADDR_STRLEN], port[8];
    ASSERT_EQ(split("tracker.example.org", "5960", host, port), 0);
    ASSERT_STR(host, "tracker.example.org");
    ASSERT_STR(port, "5960");
    ASSERT_EQ(split("[::1]", "5960", host, port), 0);
    ASSERT_STR(host, "::1");
    ASSERT_STR(port, "5960");
    ASSERT_EQ(split("h:1", "5960", host, port), 0); /* an explicit port wins */
    ASSERT_STR(port, "1");
    /* No port and no default. */
    ASSERT_EQ(split("tracker.example.org", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("[::1]", NULL, host, port), UV_EINVAL);
}

static void bare_v6_rejected(void) {
    char host[ADDR_STRLEN], port[8];
    ASSERT_EQ(split("::1", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("::1:5960", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("2001:db8::5:80", "5960", host, port), UV_EINVAL);
    ASSERT_EQ(split("::1", "5960", host, port), UV_EINVAL);
}

static void bad_ports(void) {
    char host[ADDR_STRLEN], port[8];
    /* Digits beyond 65535 are out of range (said so: addr_split_error). */
    ASSERT_EQ(split("h:65536", NULL, host, port), UV_ERANGE);
    ASSERT_EQ(split("h:99999", NULL, host, port), UV_ERANGE);
    ASSERT_EQ(split("h:123456", NULL, host, port), UV_ERANGE);
    ASSERT_EQ(split("[::1]:65536", NULL, host, port), UV_ERANGE);
    ASSERT_EQ(split("h:99999999999999999999", "5960", host, port), UV_ERANGE);
    ASSERT(strstr(addr_split_error(UV_ERANGE), "out of range") != NULL);
    ASSERT(strstr(addr_split_error(UV_EINVAL), "HOST:PORT") != NULL);
    ASSERT_EQ(split("h:00080", NULL, host, port), 0); /* leading zeros: still 80 */
    ASSERT_STR(port, "00080");
    ASSERT_EQ(split("h:-1", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("h:+1", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("h:", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("h:", "5960", host, port), UV_EINVAL);
    ASSERT_EQ(split("h:80x", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("h: 80", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("h:http", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("[::1]:", NULL, host, port), UV_EINVAL);
}

static void bad_hosts(void) {
    char host[ADDR_STRLEN], port[8];
    ASSERT_EQ(split(":80", NULL, host, port), UV_EINVAL);   /* empty host */
    ASSERT_EQ(split("[]:80", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("[::1:80", NULL, host, port), UV_EINVAL); /* unclosed */
    ASSERT_EQ(split("[::1]80", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("[::1]x:80", NULL, host, port), UV_EINVAL);
    ASSERT_EQ(split("", "5960", host, port), UV_EINVAL);
    /* A host longer than the buffer is refused, not truncated. */
    char small[4];
    ASSERT_EQ(addr_split("example.org:80", NULL, small, sizeof small, port, sizeof port),
              UV_EINVAL);
}

static void parse_numeric(void) {
    struct sockaddr_storage ss;
    ASSERT_EQ(addr_parse_numeric("127.0.0.1:5960", &ss), 0);
    ASSERT_EQ(ss.ss_family, AF_INET);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    ASSERT_EQ(ntohs(in->sin_port), 5960);
    ASSERT_EQ(ntohl(in->sin_addr.s_addr), 0x7f000001);
    ASSERT_EQ(addr_parse_numeric("[::1]:40000", &ss), 0);
    ASSERT_EQ(ss.ss_family, AF_INET6);
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    ASSERT_EQ(ntohs(in6->sin6_port), 40000);
    ASSERT(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
    /* Numeric only: no DNS, and no bare IPv6. */
    ASSERT_EQ(addr_parse_numeric("localhost:5960", &ss), UV_EINVAL);
    ASSERT_EQ(addr_parse_numeric("::1:5960", &ss), UV_EINVAL);
    ASSERT_EQ(addr_parse_numeric("1.2.3.4", &ss), UV_EINVAL);
    ASSERT_EQ(addr_parse_numeric("1.2.3.4:70000", &ss), UV_ERANGE);
    ASSERT_EQ(addr_parse_numeric("256.0.0.1:80", &ss), UV_EINVAL);
}

static void format_v4(void) {
    struct sockaddr_in in;
    ASSERT_EQ(uv_ip4_addr("203.0.113.5", 5960, &in), 0);
    char out[ADDR_STRLEN];
    ASSERT_EQ(addr_format((const struct sockaddr *)&in, out, sizeof out), 0);
    ASSERT_STR(out, "203.0.113.5:5960");
    ASSERT_EQ(uv_ip4_addr("0.0.0.0", 0, &in), 0);
    ASSERT_EQ(addr_format((const struct sockaddr *)&in, out, sizeof out), 0);
    ASSERT_STR(out, "0.0.0.0:0");
}

static void format_v6(void) {
    struct sockaddr_in6 in6;
    ASSERT_EQ(uv_ip6_addr("::1", 40000, &in6), 0);
    char out[ADDR_STRLEN];
    ASSERT_EQ(addr_format((const struct sockaddr *)&in6, out, sizeof out), 0);
    ASSERT_STR(out, "[::1]:40000");
    ASSERT_EQ(uv_ip6_addr("2001:db8::5", 65535, &in6), 0);
    ASSERT_EQ(addr_format((const struct sockaddr *)&in6, out, sizeof out), 0);
    ASSERT_STR(out, "[2001:db8::5]:65535");
}

/* What addr_format prints, addr_parse_numeric reads back. */
static void format_parse_round_trip(void) {
    const char *cases[] = {"10.1.2.3:1", "[fe80::1]:9", "[::ffff:1.2.3.4]:5960"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct sockaddr_storage ss;
        ASSERT_EQ(addr_parse_numeric(cases[i], &ss), 0);
        char out[ADDR_STRLEN];
        ASSERT_EQ(addr_format((const struct sockaddr *)&ss, out, sizeof out), 0);
        ASSERT_STR(out, cases[i]);
    }
}

static void format_small_buffer(void) {
    struct sockaddr_in6 in6;
    ASSERT_EQ(uv_ip6_addr("2001:db8::5", 65535, &in6), 0);
    char out[10];
    ASSERT(addr_format((const struct sockaddr *)&in6, out, sizeof out) < 0);
    struct sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNIX;
    ASSERT_EQ(addr_format(&sa, out, sizeof out), UV_EAFNOSUPPORT);
}

static void same_host(void) {
    struct sockaddr_storage a, b, c, m, m2, v6a, v6b, v6c;
    ASSERT_EQ(addr_parse_numeric("192.0.2.1:1", &a), 0);
    ASSERT_EQ(addr_parse_numeric("192.0.2.1:2", &b), 0);
    ASSERT_EQ(addr_parse_numeric("192.0.2.2:1", &c), 0);
    ASSERT_EQ(addr_parse_numeric("[::ffff:192.0.2.1]:3", &m), 0);
    ASSERT_EQ(addr_parse_numeric("[::ffff:192.0.2.2]:3", &m2), 0);
    ASSERT_EQ(addr_parse_numeric("[2001:db8:1:2::1]:1", &v6a), 0);
    ASSERT_EQ(addr_parse_numeric("[2001:db8:1:2::ffff]:9", &v6b), 0);
    ASSERT_EQ(addr_parse_numeric("[2001:db8:1:3::1]:1", &v6c), 0);
    ASSERT_EQ(addr_same_host(&a, &b), 1);   /* ports do not matter */
    ASSERT_EQ(addr_same_host(&a, &c), 0);
    /* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: each is
     * still its own host, the same as its plain IPv4 form. */
    ASSERT_EQ(addr_same_host(&m, &a), 1);
    ASSERT_EQ(addr_same_host(&m, &m2), 0);
    ASSERT_EQ(addr_same_host(&m2, &c), 1);
    ASSERT_EQ(addr_same_host(&v6a, &v6b), 1); /* one /64 */
    ASSERT_EQ(addr_same_host(&v6a, &v6c), 0);
    ASSERT_EQ(addr_same_host(&v6a, &a), 0);
    ASSERT_EQ(addr_same_host(&m, &v6a), 0);
    /* addr_host_key: equal exactly where addr_same_host says one host. */
    const struct sockaddr_storage *all[] = {&a, &b, &c, &m, &m2, &v6a, &v6b, &v6c};
    char ki[ADDR_HOSTKEY_LEN], kj[ADDR_HOSTKEY_LEN];
    for (size_t i = 0; i < 8; i++)
        for (size_t j = 0; j < 8; j++) {
            addr_host_key(all[i], ki);
            addr_host_key(all[j], kj);
            ASSERT(ki[0] != '\0');
            ASSERT_EQ(strcmp(ki, kj) == 0, addr_same_host(all[i], all[j]));
        }
    addr_host_key(&a, ki);
    ASSERT_STR(ki, "4:c0000201"); /* 192.0.2.1, its bytes in network order */
    struct sockaddr_storage un;
    memset(&un, 0, sizeof un);
    un.ss_family = AF_UNIX;
    addr_host_key(&un, ki);
    ASSERT_STR(ki, "");
}

TEST_MAIN(T(same_host), T(host_port), T(v6_port), T(default_port), T(bare_v6_rejected), T(bad_ports),
          T(bad_hosts), T(parse_numeric), T(format_v4), T(format_v6),
          T(format_parse_round_trip), T(format_small_buffer))

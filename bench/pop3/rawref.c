/* The raw pipelined POP3 reference client of the bench: logs in with
 * USER/PASS, sends every RETR in one write, reads in 256 KiB blocks and
 * counts bytes up to the last terminating line, then QUIT.  No parsing, no
 * unstuffing, no output: the floor a real client is measured against.
 *
 *   rawref HOST PORT plain|stls|pop3s USER PASS [CAFILE]
 * Prints "messages bytes" on stdout. */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fd = -1;
static SSL *ssl;
static char buf[256 * 1024];
static size_t have, pos;

static void die(const char *m)
{
    fprintf(stderr, "rawref: %s\n", m);
    exit(1);
}

static long rd(void *b, size_t n)
{
    if (ssl) {
        int r = SSL_read(ssl, b, (int)n);
        return r > 0 ? r : 0;
    }
    return read(fd, b, n);
}

static void wr(const char *s, size_t n)
{
    while (n) {
        long w = ssl ? SSL_write(ssl, s, (int)n) : write(fd, s, n);
        if (w <= 0) die("write failed");
        s += w;
        n -= (size_t)w;
    }
}

/* One status line (for the login phase). */
static void line(char *out, size_t cap)
{
    size_t k = 0;
    for (;;) {
        if (pos == have) {
            long r = rd(buf, sizeof buf);
            if (r <= 0) die("connection closed");
            have = (size_t)r;
            pos = 0;
        }
        char c = buf[pos++];
        if (c == '\n') break;
        if (k + 1 < cap && c != '\r') out[k++] = c;
    }
    out[k] = '\0';
}

static void cmd(const char *c, char *reply, size_t cap)
{
    char l[512];
    int n = snprintf(l, sizeof l, "%s\r\n", c);
    wr(l, (size_t)n);
    line(reply, cap);
    if (strncmp(reply, "+OK", 3)) die(reply);
}

static void tls_wrap(const char *host, const char *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ca) SSL_CTX_load_verify_locations(ctx, ca, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    if (SSL_connect(ssl) != 1) die("TLS handshake failed");
}

int main(int argc, char **argv)
{
    if (argc < 6) die("usage: rawref HOST PORT plain|stls|pop3s USER PASS [CAFILE]");
    const char *host = argv[1], *mode = argv[3], *ca = argc > 6 ? argv[6] : NULL;
    struct addrinfo hints = {0}, *ai;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, argv[2], &hints, &ai)) die("cannot resolve");
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen)) die("cannot connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!strcmp(mode, "pop3s")) tls_wrap(host, ca);
    char r[1024], c[600];
    line(r, sizeof r);
    if (!strcmp(mode, "stls")) {
        cmd("STLS", r, sizeof r);
        tls_wrap(host, ca);
    }
    snprintf(c, sizeof c, "USER %s", argv[4]);
    cmd(c, r, sizeof r);
    snprintf(c, sizeof c, "PASS %s", argv[5]);
    cmd(c, r, sizeof r);
    cmd("STAT", r, sizeof r);
    long count = atol(r + 4);
    /* Every RETR in one write. */
    size_t cap = (size_t)count * 24 + 1, k = 0;
    char *all = malloc(cap);
    for (long i = 1; i <= count; i++)
        k += (size_t)snprintf(all + k, cap - k, "RETR %ld\r\n", i);
    wr(all, k);
    free(all);
    /* Count terminators: a line that is exactly "." ends a reply. */
    long done = 0;
    unsigned long long bytes = 0;
    int bol = 1, dot = 0, dotcr = 0;
    while (done < count) {
        if (pos == have) {
            long n = rd(buf, sizeof buf);
            if (n <= 0) die("connection closed early");
            have = (size_t)n;
            pos = 0;
        }
        bytes += have - pos;
        for (; pos < have && done < count; pos++) {
            char ch = buf[pos];
            if (dotcr) {
                done += ch == '\n';
                dotcr = 0;
                bol = ch == '\n';
                continue;
            }
            if (dot) {
                dot = 0;
                if (ch == '\r') {
                    dotcr = 1;
                    continue;
                }
            } else if (bol && ch == '.') {
                dot = 1;
                bol = 0;
                continue;
            }
            bol = ch == '\n';
        }
        pos = have;
    }
    wr("QUIT\r\n", 6);
    line(r, sizeof r);
    printf("%ld %llu\n", count, bytes);
    return 0;
}

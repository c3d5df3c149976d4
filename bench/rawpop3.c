/* rawpop3 — the bench's reference POP3 client: the least work a client can
 * do.  It logs in with USER/PASS, sends every RETR at once, reads in 256 KiB
 * blocks and counts bytes up to the last terminator; it stores nothing.
 *
 *   rawpop3 HOST PORT USER PASS none|stls|implicit CAFILE
 *
 * Prints "messages bytes" on stdout.  Not part of mailwire: a yardstick. */
#define _GNU_SOURCE
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fd = -1;
static SSL *ssl;

static void die(const char *what)
{
    fprintf(stderr, "rawpop3: %s\n", what);
    exit(1);
}

static long rd(char *buf, size_t len)
{
    return ssl ? SSL_read(ssl, buf, (int)len) : read(fd, buf, len);
}

static void wr(const char *buf, size_t len)
{
    while (len) {
        long n = ssl ? SSL_write(ssl, buf, (int)len) : write(fd, buf, len);
        if (n <= 0)
            die("write failed");
        buf += n;
        len -= (size_t)n;
    }
}

/* Reads one status line (the greeting or a reply) byte by byte: only used
 * before the bulk transfer, where it costs nothing measurable. */
static void line(char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        char c;
        if (rd(&c, 1) != 1)
            die("connection closed");
        if (c == '\n')
            break;
        if (n + 1 < cap)
            out[n++] = c;
    }
    out[n] = 0;
    if (strncmp(out, "+OK", 3))
        die(out);
}

static void cmd(const char *c, char *reply, size_t cap)
{
    wr(c, strlen(c));
    line(reply, cap);
}

static void start_tls(const char *host, const char *cafile)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, cafile, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set1_host(ssl, host);
    if (SSL_connect(ssl) != 1)
        die("TLS handshake failed");
}

int main(int argc, char **argv)
{
    if (argc != 7)
        die("usage: rawpop3 HOST PORT USER PASS none|stls|implicit CAFILE");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(argv[1], argv[2], &hints, &ai))
        die("cannot resolve");
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen))
        die("cannot connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char l[1024], c[600];
    if (!strcmp(argv[5], "implicit"))
        start_tls(argv[1], argv[6]);
    line(l, sizeof l);
    if (!strcmp(argv[5], "stls")) {
        cmd("STLS\r\n", l, sizeof l);
        start_tls(argv[1], argv[6]);
    }
    snprintf(c, sizeof c, "USER %s\r\n", argv[3]);
    cmd(c, l, sizeof l);
    snprintf(c, sizeof c, "PASS %s\r\n", argv[4]);
    cmd(c, l, sizeof l);
    cmd("STAT\r\n", l, sizeof l);
    long count = strtol(l + 4, NULL, 10);

    /* Every RETR in one burst (the server reads them as it goes). */
    size_t cap = (size_t)count * 16 + 16, used = 0;
    char *all = malloc(cap);
    for (long i = 1; i <= count; i++)
        used += (size_t)snprintf(all + used, cap - used, "RETR %ld\r\n", i);
    wr(all, used);
    free(all);

    /* Count terminators "\r\n.\r\n": a dot-stuffed body never contains one.
     * The 4 bytes kept from the previous block catch a terminator split
     * across reads. */
    static char buf[4 + 262144];
    size_t keep = 0;
    long done = 0;
    unsigned long long bytes = 0;
    while (done < count) {
        long n = rd(buf + keep, sizeof buf - keep);
        if (n <= 0)
            die("connection closed during transfer");
        bytes += (unsigned long long)n;
        size_t len = keep + (size_t)n;
        for (char *p = buf; (p = memmem(p, (size_t)(buf + len - p), "\r\n.\r\n", 5)); p += 3)
            done++;
        keep = len < 4 ? len : 4;
        memmove(buf, buf + len - keep, keep);
    }
    /* QUIT only after the last reply (TLS pitfall in the servers notes). */
    cmd("QUIT\r\n", l, sizeof l);
    printf("%ld %llu\n", done, bytes);
    return 0;
}

/* Raw pipelined SMTP reference for the bench (not part of mailwire): the
 * least a client must do to hand N messages to a server over one
 * connection.  Per message: MAIL, RCPT and DATA in one write (RFC 2920),
 * their three replies, then the body with its final dot in one write, and
 * its reply.  The body is pre-encoded (CRLF, dot-stuffed).  TCP_NODELAY.
 *
 * With a fifth argument `x`, messages are pipelined across (RFC 2920
 * §3.1): the next MAIL, RCPT and DATA go in the same write as the body and
 * its dot, so one round trip per message — what `mailwire smtp send` does
 * by default, for an equal comparison.
 *
 *   rawsmtp HOST PORT COUNT FILE [x]  (FILE: the message, any line ends) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char rbuf[65536];
static size_t rlen;

/* Reads until `n` complete replies (last lines "ddd ") have arrived. */
static void replies(int fd, int n)
{
    while (n > 0) {
        char *nl;
        while ((nl = memchr(rbuf, '\n', rlen))) {
            size_t l = (size_t)(nl - rbuf) + 1;
            if (l >= 4 && rbuf[3] == ' ') {
                if (rbuf[0] != '2' && rbuf[0] != '3') {
                    fprintf(stderr, "rawsmtp: %.*s", (int)l, rbuf);
                    exit(1);
                }
                n--;
            }
            memmove(rbuf, rbuf + l, rlen - l);
            rlen -= l;
            if (n == 0) return;
        }
        ssize_t r = read(fd, rbuf + rlen, sizeof rbuf - rlen);
        if (r <= 0) {
            fprintf(stderr, "rawsmtp: connection closed\n");
            exit(1);
        }
        rlen += (size_t)r;
    }
}

static void put(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            perror("rawsmtp: write");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 6 && !strcmp(argv[5], "x"))) return 64;
    int cross = argc == 6;
    FILE *f = fopen(argv[4], "rb");
    if (!f) return 66;
    char *body = malloc(4 << 20), *in = malloc(2 << 20);
    size_t n = fread(in, 1, 2 << 20, f), o = 0;
    fclose(f);
    int bol = 1;
    for (size_t i = 0; i < n; i++) {
        if (bol && in[i] == '.') body[o++] = '.';
        bol = 0;
        if (in[i] == '\n') {
            body[o++] = '\r';
            bol = 1;
        }
        if (in[i] != '\r') body[o++] = in[i];
    }
    if (!bol) {
        body[o++] = '\r';
        body[o++] = '\n';
    }
    memcpy(body + o, ".\r\n", 3);
    o += 3;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("rawsmtp: connect");
        return 69;
    }
    replies(fd, 1);
    const char ehlo[] = "EHLO localhost\r\n";
    put(fd, ehlo, sizeof ehlo - 1);
    replies(fd, 1);
    const char env[] = "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n";
    if (cross) {
        /* body + dot + next envelope in one write */
        memcpy(body + o, env, sizeof env - 1);
        int n = atoi(argv[3]);
        if (n > 0) put(fd, env, sizeof env - 1);
        for (int i = n; i > 0; i--) {
            replies(fd, 3);
            put(fd, body, i > 1 ? o + sizeof env - 1 : o);
            replies(fd, 1);
        }
    } else {
        for (int i = atoi(argv[3]); i > 0; i--) {
            put(fd, env, sizeof env - 1);
            replies(fd, 3);
            put(fd, body, o);
            replies(fd, 1);
        }
    }
    put(fd, "QUIT\r\n", 6);
    replies(fd, 1);
    close(fd);
    return 0;
}

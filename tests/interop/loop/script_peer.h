/* A scripted SMTP/POP3 peer for the loop's tests over a socketpair
 * (test_loop_batch.c, test_loop_token.c): run in a thread of its own, it
 * waits on its socket (and gate), never on time. */
#ifndef MW_TEST_SCRIPT_PEER_H
#define MW_TEST_SCRIPT_PEER_H

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The peer: "C:text" a client line that must be text, "S:raw" written
 * (\n becomes CR LF), "G" waits for a byte on gate, "E" reads to the end
 * of the connection, "D" client lines to the lone dot, "X" shuts the
 * connection down.  Every client line goes into log. */
typedef struct peer {
    int fd, gate;
    const char *const *script;
    char in[8192];
    size_t len;
    int bad; /* the step where the client said something else, + 1 */
    char got[200];
    char log[4096];
    size_t loglen;
} peer;

static void log_line(peer *pp, const char *l)
{
    size_t n = strlen(l);
    if (n + 2 > sizeof pp->log - pp->loglen) return;
    memcpy(pp->log + pp->loglen, l, n);
    pp->loglen += n;
    pp->log[pp->loglen++] = '\n';
    pp->log[pp->loglen] = 0;
}

static int peer_line(peer *pp, char *line, size_t cap)
{
    for (;;) {
        char *nl = memchr(pp->in, '\n', pp->len);
        if (nl) {
            size_t l = (size_t)(nl - pp->in);
            size_t c = l && nl[-1] == '\r' ? l - 1 : l;
            if (c >= cap) c = cap - 1;
            memcpy(line, pp->in, c);
            line[c] = 0;
            memmove(pp->in, nl + 1, pp->len - l - 1);
            pp->len -= l + 1;
            log_line(pp, line);
            return 0;
        }
        if (pp->len == sizeof pp->in) return -1;
        ssize_t n = recv(pp->fd, pp->in + pp->len, sizeof pp->in - pp->len, 0);
        if (n <= 0) return -1;
        pp->len += (size_t)n;
    }
}

static void *peer_run(void *arg)
{
    peer *pp = arg;
    char line[1200];
    for (int k = 0; pp->script[k] && !pp->bad; k++) {
        const char *s = pp->script[k];
        if (s[0] == 'S') {
            char out[1024];
            size_t o = 0;
            for (const char *q = s + 2; *q && o + 2 < sizeof out; q++) {
                if (*q == '\n') out[o++] = '\r';
                out[o++] = *q;
            }
            if (send(pp->fd, out, o, MSG_NOSIGNAL) != (ssize_t)o) pp->bad = k + 1;
        } else if (s[0] == 'C') {
            if (peer_line(pp, line, sizeof line) || strcmp(line, s + 2)) {
                snprintf(pp->got, sizeof pp->got, "%.199s", line);
                pp->bad = k + 1;
            }
        } else if (s[0] == 'G') {
            char b;
            if (read(pp->gate, &b, 1) != 1) pp->bad = k + 1;
        } else if (s[0] == 'D') {
            do {
                if (peer_line(pp, line, sizeof line)) pp->bad = k + 1;
            } while (!pp->bad && strcmp(line, "."));
        } else if (s[0] == 'E') {
            while (peer_line(pp, line, sizeof line) == 0)
                ;
        } else if (s[0] == 'X') {
            shutdown(pp->fd, SHUT_RDWR);
        }
    }
    return NULL;
}

#endif

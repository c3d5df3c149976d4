/* Sessions in 8 threads at once: POP3 (AUTH PLAIN through GNU SASL, RETR,
 * QUIT) and SMTP (AUTH PLAIN, MAIL/RCPT/DATA, QUIT) against scripted peers
 * on socket pairs, and MIME parses, all through the public API.  Built with
 * -fsanitize=thread by scripts/test.sh (ThreadSanitizer reports any data
 * race and fails the run), and with the suite's ASan build as well.  TAP. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <mailwire/mime.h>
#include <mailwire/net.h>
#include <mailwire/pop3.h>
#include <mailwire/smtp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NTHREADS 8
#define ROUNDS   20

/* ---- a scripted peer: answers each line the client sends ------------------ */

typedef struct peer {
    int fd;
    int smtp; /* 0: POP3, 1: SMTP */
} peer;

static int send_all(int fd, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = write(fd, s + off, n - off);
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    return 0;
}

static const char *pop3_answer(const char *line)
{
    if (!strcmp(line, "CAPA")) return "+OK\r\nUSER\r\nSASL PLAIN\r\nUIDL\r\n.\r\n";
    if (!strncmp(line, "AUTH PLAIN", 10)) return "+OK welcome\r\n";
    if (!strcmp(line, "STAT")) return "+OK 1 64\r\n";
    if (!strcmp(line, "RETR 1"))
        return "+OK 64 octets\r\nSubject: t\r\n\r\n..a dot-stuffed line\r\nbody\r\n.\r\n";
    if (!strcmp(line, "QUIT")) return "+OK bye\r\n";
    return "-ERR unexpected\r\n";
}

static const char *smtp_answer(const char *line, int *in_data)
{
    if (*in_data) {
        if (!strcmp(line, ".")) {
            *in_data = 0;
            return "250 2.0.0 queued\r\n";
        }
        return "";
    }
    if (!strncmp(line, "EHLO", 4)) return "250-peer\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n";
    if (!strncmp(line, "AUTH PLAIN", 10)) return "235 2.7.0 ok\r\n";
    if (!strncmp(line, "MAIL FROM:", 10)) return "250 2.1.0 ok\r\n";
    if (!strncmp(line, "RCPT TO:", 8)) return "250 2.1.5 ok\r\n";
    if (!strcmp(line, "DATA")) {
        *in_data = 1;
        return "354 go\r\n";
    }
    if (!strcmp(line, "QUIT")) return "221 bye\r\n";
    return "500 unexpected\r\n";
}

static void *peer_main(void *arg)
{
    peer *p = arg;
    char buf[8192];
    size_t have = 0;
    int in_data = 0;
    send_all(p->fd, p->smtp ? "220 scripted ESMTP\r\n" : "+OK scripted\r\n");
    for (;;) {
        char *nl;
        while (!(nl = memchr(buf, '\n', have))) {
            if (have == sizeof buf) goto out;
            ssize_t r = read(p->fd, buf + have, sizeof buf - have);
            if (r <= 0) goto out;
            have += (size_t)r;
        }
        size_t len = (size_t)(nl - buf);
        if (len && buf[len - 1] == '\r') buf[len - 1] = '\0';
        buf[len] = '\0';
        const char *a = p->smtp ? smtp_answer(buf, &in_data) : pop3_answer(buf);
        int quit = !strcmp(buf, "QUIT");
        memmove(buf, nl + 1, have - len - 1);
        have -= len + 1;
        if (*a && send_all(p->fd, a)) break;
        if (quit) break;
    }
out:
    close(p->fd);
    return NULL;
}

static int start_peer(pthread_t *t, peer *p, int smtp, int *client_fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return -1;
    p->fd = sv[1];
    p->smtp = smtp;
    *client_fd = sv[0];
    return pthread_create(t, NULL, peer_main, p);
}

/* ---- the three kinds of work ------------------------------------------------ */

static int count_sink(const char *data, size_t len, void *ud)
{
    (void)data;
    *(size_t *)ud += len;
    return 0;
}

static int one_pop3(char *why, size_t whylen)
{
    pthread_t t;
    peer pr;
    int fd;
    if (start_peer(&t, &pr, 0, &fd)) return snprintf(why, whylen, "peer"), -1;
    mw_stream *s = NULL;
    mw_error err = {0};
    int rc = mw_stream_fd(&s, fd, fd, 1, NULL, &err);
    mw_pop3 *p = NULL;
    size_t got = 0;
    if (!rc) {
        mw_pop3_opts o = MW_POP3_OPTS_INIT;
        o.stream = s;
        o.tls = MW_TLS_NONE;
        o.allow_plaintext = 1;
        o.auth = MW_POP3_AUTH_SASL;
        o.sasl_mechs = "PLAIN";
        o.user = "u";
        o.password = "pw";
        rc = mw_pop3_open(&p, "localhost", &o, &err);
        if (!rc) rc = mw_pop3_retr(p, 1, count_sink, &got, NULL);
        if (!rc) rc = mw_pop3_quit(p, NULL);
        if (rc) snprintf(why, whylen, "pop3: %s", p ? mw_pop3_error(p)->message : err.message);
        mw_pop3_free(p);
    } else {
        close(fd);
        snprintf(why, whylen, "stream: %s", err.message);
    }
    pthread_join(t, NULL);
    if (!rc && got == 0) return snprintf(why, whylen, "pop3: empty body"), -1;
    return rc;
}

static int one_smtp(char *why, size_t whylen)
{
    pthread_t t;
    peer pr;
    int fd;
    if (start_peer(&t, &pr, 1, &fd)) return snprintf(why, whylen, "peer"), -1;
    mw_stream *s = NULL;
    mw_error err = {0};
    int rc = mw_stream_fd(&s, fd, fd, 1, NULL, &err);
    if (rc) {
        close(fd);
        pthread_join(t, NULL);
        return snprintf(why, whylen, "stream: %s", err.message), rc;
    }
    static const char *const servers[] = {"localhost"};
    mw_smtp_opts o = MW_SMTP_OPTS_INIT;
    o.servers = servers;
    o.nservers = 1;
    o.stream = s;
    o.tls = MW_TLS_NONE;
    o.allow_plaintext = 1;
    o.user = "u";
    o.password = "pw";
    mw_smtp *sm = NULL;
    rc = mw_smtp_open(&sm, &o, &err);
    if (!rc) {
        static const char msg[] = "From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\n\r\nbody\r\n";
        mw_smtp_msg m = MW_SMTP_MSG_INIT;
        m.data = msg;
        m.len = sizeof msg - 1;
        mw_smtp_result *r = NULL;
        rc = mw_smtp_send(sm, &m, &r);
        if (!rc && (!r || !r->sent)) rc = -1;
        if (rc) snprintf(why, whylen, "smtp send: %s", mw_smtp_error(sm)->message);
        mw_smtp_result_free(r);
        if (!rc) rc = mw_smtp_quit(sm);
        mw_smtp_free(sm);
    } else {
        snprintf(why, whylen, "smtp open: %s", err.message);
    }
    pthread_join(t, NULL);
    return rc;
}

static int one_mime(char *why, size_t whylen)
{
    static const char msg[] = "From: =?UTF-8?B?w6lsw6g=?= <a@x.test>\r\n"
                              "Subject: =?ISO-8859-1?Q?caf=E9?=\r\n"
                              "MIME-Version: 1.0\r\n"
                              "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
                              "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
                              "--b1\r\nContent-Type: application/octet-stream\r\n"
                              "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n"
                              "--b1--\r\n";
    mw_mime_part *root = NULL;
    mw_error err = {0};
    int rc = mw_mime_parse(&root, msg, sizeof msg - 1, NULL, &err);
    if (!rc && mw_mime_part_child_count(root) != 2) rc = -1;
    if (rc) snprintf(why, whylen, "mime: %s", err.message);
    mw_mime_part_free(root);
    return rc;
}

typedef struct job {
    int failures;
    char why[512];
} job;

static void *worker(void *arg)
{
    job *j = arg;
    for (int i = 0; i < ROUNDS; i++) {
        if (one_pop3(j->why, sizeof j->why)) j->failures++;
        if (one_smtp(j->why, sizeof j->why)) j->failures++;
        if (one_mime(j->why, sizeof j->why)) j->failures++;
    }
    return NULL;
}

int main(void)
{
    pthread_t t[NTHREADS];
    job jobs[NTHREADS];
    memset(jobs, 0, sizeof jobs);
    printf("1..1\n");
    for (int i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, worker, &jobs[i])) {
            printf("not ok 1 - cannot start thread %d\n", i);
            return 1;
        }
    int failures = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        if (jobs[i].failures) printf("# thread %d: %s\n", i, jobs[i].why);
        failures += jobs[i].failures;
    }
    printf("%s 1 - %d threads x %d rounds of a POP3 session, an SMTP session and a MIME parse: "
           "%d failures\n",
           failures ? "not ok" : "ok", NTHREADS, ROUNDS, failures);
    return failures ? 1 : 0;
}

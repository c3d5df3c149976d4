/* The loop's proxy phase (src/loop/lproxy.c) without a server: jobs over
 * socketpairs whose other end the test plays, first as the proxy, then as
 * the mail server.  The proxy's answers arrive one octet per loop step;
 * the server's greeting comes in the same write as the answer's last
 * octets and must reach the protocol (the proxy phase never reads past its
 * answer).  Hostile answers end the job with src/net's words.  TAP. */
#include "loop/loop_int.h"
#include "mailwire/loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

typedef struct res {
    int n, code;
    char msg[320];
} res;

static void done_cb(mw_loop_job *j, const mw_loop_result *r, void *ud)
{
    (void)j;
    res *t = ud;
    t->n++;
    t->code = r->code;
    snprintf(t->msg, sizeof t->msg, "%s", r->err->message);
}

static mw_store *g_store;

/* Runs one job through `proxy` (POP3 fetch, or SMTP send with smtp) to
 * the mail server 10.1.2.3, no TLS.  The peer sends answer[0..alen) one
 * octet per step, the last `tail` octets in one write, then closes once
 * the job waits for more.  The job's octets go into sent.  Returns the
 * job's result code (1: the job did not end exactly once). */
static int run(int smtp, const char *proxy, const char *answer, size_t alen, size_t tail,
               char *sent, size_t sentsz, res *r)
{
    mw_loop *loop = NULL;
    int sv[2];
    memset(r, 0, sizeof *r);
    if (mw_loop_new(&loop, NULL, NULL) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
        return 1;
    int rc;
    if (smtp) {
        static const char *const to[] = {"b@test.domain"};
        mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
        o.host = "10.1.2.3";
        o.tls = MW_TLS_NONE;
        o.from = "a@test.domain";
        o.rcpt = to;
        o.nrcpt = 1;
        o.message = "x\n";
        o.message_len = 2;
        o.proxy = proxy;
        rc = mwi_loop_add_smtp_send_fd(loop, NULL, &o, sv[0], done_cb, r, NULL);
    } else {
        mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
        o.host = "10.1.2.3";
        o.tls = MW_TLS_NONE;
        o.allow_plaintext = 1;
        o.user = "u";
        o.password = "p";
        o.store = g_store;
        o.proxy = proxy;
        rc = mwi_loop_add_pop3_fetch_fd(loop, NULL, &o, sv[0], done_cb, r, NULL);
    }
    size_t used = 0, fed = 0;
    for (int k = 0; !rc && mw_loop_running(loop) && k < 20000; k++) {
        size_t piece = fed + tail >= alen ? alen - fed : 1;
        if (piece && send(sv[1], answer + fed, piece, 0) == (ssize_t)piece) fed += piece;
        mw_loop_fd f;
        if (mw_loop_fds(loop, &f, 1) == 1) mw_loop_action(loop, f.fd, MW_LOOP_IN | MW_LOOP_OUT);
        ssize_t n = recv(sv[1], sent + used, sentsz - used - 1, MSG_DONTWAIT);
        if (n > 0) used += (size_t)n;
        sent[used] = 0;
        if (fed == alen && !piece) break; /* all said, the job had a step after it */
    }
    close(sv[1]);
    mw_loop_run(loop, mw_now_ms() + 60000, NULL); /* a bound against a hang */
    mw_loop_free(loop);
    return rc ? rc : r->n == 1 ? r->code : 1;
}

static void tunnels(void)
{
    char sent[4096];
    res r;
    /* SOCKS5: method 0, success with an IPv4 bound address; the greeting
     * in the same write as the port. */
    static const char s5[] = "\x05\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00-ERR tunnel ok\r\n";
    int rc = run(0, "socks5://127.0.0.1:1080", s5, sizeof s5 - 1, 18, sent, sizeof sent, &r);
    printf("# socks5: %d %s\n", rc, r.msg);
    ok(rc < 0 && strstr(r.msg, "tunnel ok") &&
           !memcmp(sent, "\x05\x01\x00\x05\x01\x00\x01\x0a\x01\x02\x03\x00\x6e", 13) &&
           strlen(sent + 13) == 0,
       "socks5 octet by octet: the CONNECT for 10.1.2.3:110, then the greeting reaches POP3");
    const char *ht = "HTTP/1.1 200 Connection established\r\nVia: t\r\n\r\n554 tunnel ok\r\n";
    rc = run(1, "http://u:p@127.0.0.1:3128", ht, strlen(ht), 16, sent, sizeof sent, &r);
    printf("# http: %d %s\n", rc, r.msg);
    /* After the CONNECT request, only what SMTP says to a 554 greeting
     * (RFC 5321 §3.1: QUIT), as the blocking session says it. */
    static const char conn[] = "CONNECT 10.1.2.3:587 HTTP/1.1\r\nHost: 10.1.2.3:587\r\n"
                               "Proxy-Authorization: Basic dTpw\r\n\r\n";
    ok(rc < 0 && strstr(r.msg, "tunnel ok") && !strncmp(sent, conn, sizeof conn - 1) &&
           (!sent[sizeof conn - 1] || !strcmp(sent + sizeof conn - 1, "QUIT\r\n")),
       "HTTP CONNECT octet by octet (SMTP job): the greeting after the empty line reaches SMTP");
}

static void hostile(void)
{
    char sent[4096];
    res r;
    static const char atyp[] = "\x05\x00\x05\x00\x00\x09\x00\x00";
    int rc = run(0, "socks5h://127.0.0.1", atyp, sizeof atyp - 1, 0, sent, sizeof sent, &r);
    ok(rc == MW_EPROTO && strstr(r.msg, "SOCKS5 reply with address type 9"),
       "a SOCKS5 reply with a bad address type: MW_EPROTO, src/net's words");
    static const char ver[] = "\x04\x5a garbage";
    rc = run(0, "socks5h://127.0.0.1", ver, sizeof ver - 1, 0, sent, sizeof sent, &r);
    ok(rc == MW_EPROTO && strstr(r.msg, "not a SOCKS5 proxy (version 4)"),
       "a SOCKS4 answer: not a SOCKS5 proxy");
    static const char cut[] = "\x05\x00\x05\x00";
    rc = run(0, "socks5h://127.0.0.1", cut, sizeof cut - 1, 0, sent, sizeof sent, &r);
    ok(rc == MW_EPROTO && strstr(r.msg, "the proxy closed the connection"),
       "a proxy closing mid-answer: the proxy closed the connection");
    size_t n = 9000;
    char *big = malloc(n);
    if (!big) return;
    memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
    for (size_t i = 17; i < n; i++)
        big[i] = i % 50 == 49 ? '\n' : i % 50 == 48 ? '\r' : 'h';
    rc = run(0, "http://127.0.0.1", big, n, n, sent, sizeof sent, &r);
    ok(rc == MW_EPROTO && strstr(r.msg, "over 8 KiB"),
       "an endless HTTP head in one write: refused at 8 KiB");
    free(big);
    rc = run(0, "gopher://127.0.0.1", "", 0, 0, sent, sizeof sent, &r);
    ok(rc == MW_EINVAL, "a bad proxy URL: refused when the job is added");
}

int main(void)
{
    printf("1..7\n");
    char dir[] = "/tmp/mw-lproxy-pair-XXXXXX";
    if (!mkdtemp(dir) || mw_store_open(&g_store, MW_STORE_MAILDIR, dir, NULL, NULL) != 0) {
        printf("Bail out! no store\n");
        return 1;
    }
    tunnels();
    hostile();
    mw_store_free(g_store);
    return failed;
}

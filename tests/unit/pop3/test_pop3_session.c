/* Unit tests of the POP3 session over an in-memory peer (a caller-supplied
 * stream, Tcllib's -socketcmd): what goes on the wire, pipelining windows,
 * retr modes, range keywords, draining after errors, trace masking, state
 * after fatal errors. */
#include "mwtest.h"

#include "mailwire/pop3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- The fake server ---------------------------------------------------------
 * A script of exchanges: when the client has sent line `expect`, `reply` is
 * queued for it to read.  Lines that arrive in one write call form a batch;
 * the largest batch shows how many commands were in flight at once. */
typedef struct step {
    const char *expect;
    const char *reply;
} step;

typedef struct peer {
    const step *steps;
    size_t nsteps, next;
    char out[1 << 18];
    size_t out_len, out_pos;
    char in[4096];
    size_t in_len;
    char log[1 << 14]; /* every client line, '|'-separated */
    size_t log_len;
    size_t max_batch;
    int mismatch;
    char mismatch_text[256];
    int raw_lf_seen;
    int closed;
    int trickle_ms;  /* >0: one byte per read, this long apart, forever once the script is out */
    size_t max_read; /* bytes per read at most; 0: 7 */
    int silent;      /* once the script is out: says nothing, a read waits for its deadline */
    int64_t seen_deadline; /* silent: the latest deadline a read was given */
} peer;

static void queue(peer *p, const char *s)
{
    size_t n = strlen(s);
    assert_true(n <= sizeof p->out - p->out_len);
    memcpy(p->out + p->out_len, s, n);
    p->out_len += n;
}

static long peer_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    peer *p = ud;
    if (p->trickle_ms > 0 && p->out_pos == p->out_len) {
        /* A server that keeps a reply alive with a byte now and then. */
        if (deadline != MW_NO_DEADLINE && mw_now_ms() + p->trickle_ms > deadline)
            return MW_ETIMEOUT;
        struct timespec ts = {0, (long)p->trickle_ms * 1000000L};
        nanosleep(&ts, NULL);
        *(char *)buf = 'x';
        return 1;
    }
    if (p->silent && p->out_pos == p->out_len) {
        if (deadline == MW_NO_DEADLINE) return MW_EPROTO; /* would wait forever: a finding */
        if (deadline > p->seen_deadline) p->seen_deadline = deadline;
        int64_t left = deadline - mw_now_ms();
        if (left > 10000) return MW_ETIMEOUT; /* the test looks at seen_deadline */
        if (left > 0) {
            struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        return MW_ETIMEOUT;
    }
    if (p->out_pos == p->out_len) return 0; /* the script ran out: the server hangs up */
    size_t n = p->out_len - p->out_pos;
    if (n > len) n = len;
    /* Small reads on purpose, so bodies cross chunk boundaries. */
    size_t cap = p->max_read ? p->max_read : 7;
    if (n > cap) n = cap;
    memcpy(buf, p->out + p->out_pos, n);
    p->out_pos += n;
    return (long)n;
}

static long peer_write(const void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)deadline;
    peer *p = ud;
    memcpy(p->in + p->in_len, buf, len);
    p->in_len += len;
    size_t batch = 0;
    char *nl;
    while ((nl = memchr(p->in, '\n', p->in_len))) {
        size_t ll = (size_t)(nl - p->in);
        int crlf = ll > 0 && p->in[ll - 1] == '\r';
        if (!crlf) p->raw_lf_seen = 1;
        size_t content = crlf ? ll - 1 : ll;
        memcpy(p->log + p->log_len, p->in, content);
        p->log_len += content;
        p->log[p->log_len++] = '|';
        p->log[p->log_len] = '\0';
        if (p->next < p->nsteps && strlen(p->steps[p->next].expect) == content &&
            !memcmp(p->steps[p->next].expect, p->in, content)) {
            queue(p, p->steps[p->next].reply);
            p->next++;
        } else if (!p->mismatch) {
            p->mismatch = 1;
            snprintf(p->mismatch_text, sizeof p->mismatch_text,
                     "step %zu: expected '%s', got '%.*s'", p->next,
                     p->next < p->nsteps ? p->steps[p->next].expect : "(end)", (int)content, p->in);
        }
        batch++;
        memmove(p->in, nl + 1, p->in_len - ll - 1);
        p->in_len -= ll + 1;
    }
    if (batch > p->max_batch) p->max_batch = batch;
    return (long)len;
}

static void peer_close(void *ud)
{
    ((peer *)ud)->closed = 1;
}

static const mw_stream_ops peer_ops = {peer_read, peer_write, peer_close};

static char trace_buf[1 << 14];
static size_t trace_len;

static void trace_fn(int dir, const char *line, size_t len, void *ud)
{
    (void)ud;
    const char *tag = dir == MW_TRACE_SEND ? "C:" : dir == MW_TRACE_RECV ? "S:" : "*:";
    trace_len += (size_t)snprintf(trace_buf + trace_len, sizeof trace_buf - trace_len, "%s%.*s\n",
                                  tag, (int)len, line);
}

#define GREETING   "+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n"
#define CAPA_PLAIN "+OK\r\nUSER\r\nTOP\r\nUIDL\r\n.\r\n"
#define CAPA_PIPE  "+OK\r\nUSER\r\nPIPELINING\r\n.\r\n"

static mw_error open_err; /* the last open_with's error */

/* A scripted peer that greets, then answers steps; o->stream is its stream. */
static void peer_start(peer *pr, const step *steps, size_t n, mw_pop3_opts *o)
{
    memset(pr, 0, sizeof *pr);
    pr->steps = steps;
    pr->nsteps = n;
    queue(pr, GREETING);
    mw_stream *s = NULL;
    assert_int_equal(mw_stream_callbacks(&s, &peer_ops, pr, NULL), 0);
    o->stream = s;
}

static mw_pop3 *open_with(peer *pr, const step *steps, size_t n, mw_pop3_opts *o, int *rc)
{
    peer_start(pr, steps, n, o);
    o->tls = MW_TLS_NONE; /* the scripted peer speaks no TLS */
    o->user = o->user ? o->user : "u";
    o->password = o->password ? o->password : "pw";
    o->allow_plaintext = 1;
    o->trace = trace_fn;
    trace_len = 0;
    trace_buf[0] = '\0';
    mw_pop3 *p = NULL;
    *rc = mw_pop3_open(&p, "localhost", o, &open_err);
    return p;
}

#define LOGIN_STEPS(capa)                                                                          \
    {"CAPA", capa}, {"USER u", "+OK\r\n"}, {"PASS pw", "+OK\r\n"},                                 \
    {                                                                                              \
        "STAT", "+OK 3 300\r\n"                                                                    \
    }

static void test_open_and_config(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN), {"QUIT", "+OK bye\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 5, &o, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(mw_pop3_count(p), 3);
    mw_pop3_config c;
    mw_pop3_config_get(p, &c);
    assert_string_equal(c.auth_used, "USER");
    assert_int_equal(c.limit, 3);
    assert_int_equal(c.pipelining, 0);
    assert_int_equal(c.window, 1);
    assert_int_equal(c.retr_mode, MW_POP3_RETR_RETR);
    assert_non_null(strstr(c.greeting, "<1896.697170952@dbc.mtview.ca.us>"));
    assert_true(mw_pop3_has_capa(p, "uidl"));
    assert_false(mw_pop3_has_capa(p, "PIPELINING"));
    /* The password never reaches the trace. */
    assert_non_null(strstr(trace_buf, "C:PASS ****\n"));
    assert_null(strstr(trace_buf, "PASS pw"));
    int confirmed = 0;
    assert_int_equal(mw_pop3_quit(p, &confirmed), 0);
    assert_int_equal(confirmed, 1);
    assert_int_equal(pr.mismatch, 0);
    assert_int_equal(pr.closed, 1); /* QUIT closes the connection */
    assert_int_equal(mw_pop3_noop(p), MW_ESTATE);
    mw_pop3_free(p);
}

static void test_apop_masked(void **state)
{
    (void)state;
    peer pr;
    step st[] = {{"CAPA", "-ERR\r\n"},
                 {"APOP mrose c4c9334bac560ecc979e58001b3e22fb", "+OK\r\n"},
                 {"STAT", "+OK 1 369\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.user = "mrose";
    o.password = "tanstaaf";
    o.auth = MW_POP3_AUTH_APOP;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 3, &o, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(pr.mismatch, 0);
    assert_non_null(strstr(trace_buf, "C:APOP mrose ****\n"));
    assert_null(strstr(trace_buf, "c4c9334b"));
    mw_pop3_free(p);
}

static void test_msex(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN), {"NOOP", "+OK\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.msex = 1;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 5, &o, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(mw_pop3_noop(p), 0);
    assert_int_equal(pr.raw_lf_seen, 1);
    mw_pop3_free(p);
}

/* Opens a session on a scripted peer with o as given (no test defaults). */
static int open_raw(peer *pr, const step *steps, size_t n, mw_pop3_opts *o)
{
    peer_start(pr, steps, n, o);
    mw_pop3 *p = NULL;
    mw_error e;
    int rc = mw_pop3_open(&p, "localhost", o, &e);
    if (rc) print_message("# open: %s\n", e.message);
    mw_pop3_free(p);
    return rc;
}

#define CAPA_SCRAM "+OK\r\nUSER\r\nSASL SCRAM-SHA-256 PLAIN\r\nUIDL\r\n.\r\n"

/* The library's defaults require TLS: a server offering no STLS gets CAPA
 * and nothing else, and the open fails with MW_ETLS. */
static void test_default_requires_tls(void **state)
{
    (void)state;
    peer pr;
    step st[] = {{"CAPA", CAPA_SCRAM}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.user = "u";
    o.password = "pw";
    assert_int_equal(open_raw(&pr, st, 1, &o), MW_ETLS);
    assert_string_equal(pr.log, "CAPA|");
    assert_int_equal(pr.mismatch, 0);
}

/* Offered, STLS is the only command after CAPA: the handshake with a peer
 * that speaks no TLS fails, and no login follows. */
static void test_default_stls_then_nothing(void **state)
{
    (void)state;
    peer pr;
    step st[] = {{"CAPA", "+OK\r\nSTLS\r\nUSER\r\nSASL SCRAM-SHA-256\r\n.\r\n"},
                 {"STLS", "+OK begin TLS\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.user = "u";
    o.password = "pw";
    int rc = open_raw(&pr, st, 2, &o);
    assert_int_equal(rc, MW_ETLS); /* the peer hangs up mid-handshake */
    /* After STLS only handshake bytes (binary, logged as whatever they hold). */
    assert_int_equal(strncmp(pr.log, "CAPA|STLS|", 10), 0);
    assert_null(strstr(pr.log, "USER"));
    assert_null(strstr(pr.log, "AUTH"));
}

/* Plain text on purpose: a login still needs allow_plaintext, whatever the
 * mechanism (SCRAM too), and nothing of it is sent without. */
static void test_plaintext_policy(void **state)
{
    (void)state;
    static const int auths[] = {MW_POP3_AUTH_AUTO, MW_POP3_AUTH_USER, MW_POP3_AUTH_SASL,
                                MW_POP3_AUTH_APOP};
    for (size_t i = 0; i < sizeof auths / sizeof auths[0]; i++) {
        peer pr;
        step st[] = {{"CAPA", CAPA_SCRAM}};
        mw_pop3_opts o = MW_POP3_OPTS_INIT;
        o.tls = MW_TLS_NONE;
        o.auth = auths[i];
        o.user = "u";
        o.password = "pw";
        assert_int_equal(open_raw(&pr, st, 1, &o), MW_EPOLICY);
        assert_string_equal(pr.log, "CAPA|");
    }
    /* Opportunistic TLS without STLS offered is plain text too. */
    peer pr;
    step st[] = {{"CAPA", CAPA_SCRAM}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.tls = MW_TLS_OPPORTUNISTIC;
    o.user = "u";
    o.password = "pw";
    assert_int_equal(open_raw(&pr, st, 1, &o), MW_EPOLICY);
    assert_string_equal(pr.log, "CAPA|");
}

static void test_injection_in_arguments(void **state)
{
    (void)state;
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.user = "u\r\nDELE 1";
    o.password = "pw";
    mw_pop3 *p = NULL;
    peer pr;
    memset(&pr, 0, sizeof pr);
    mw_stream *s = NULL;
    assert_int_equal(mw_stream_callbacks(&s, &peer_ops, &pr, NULL), 0);
    o.stream = s;
    assert_int_equal(mw_pop3_open(&p, "localhost", &o, NULL), MW_EINVAL);
    assert_int_equal(pr.log_len, 0);
    mw_pop3_free(p);
}

/* A login line past RFC 2449 §4's 255 octets is never sent: the field
 * too long for the line, or the line with its CR LF over the limit. */
static void test_login_line_limits(void **state)
{
    (void)state;
    static const struct {
        size_t user, pass;
        const char *words;
    } c[] = {
        {251, 2, "user name too long"},
        {249, 2, "command of 256 octets is over the 255-octet limit"},
        {1, 251, "password too long"},
    };
    for (size_t i = 0; i < 3; i++) {
        char user[300], pass[300];
        memset(user, 'u', c[i].user);
        user[c[i].user] = '\0';
        memset(pass, 'p', c[i].pass);
        pass[c[i].pass] = '\0';
        char uline[320];
        snprintf(uline, sizeof uline, "USER %s", user);
        step st[] = {{"CAPA", CAPA_PLAIN}, {uline, "+OK\r\n"}};
        peer pr;
        mw_pop3_opts o = MW_POP3_OPTS_INIT;
        o.user = user;
        o.password = pass;
        int rc;
        mw_pop3 *p = open_with(&pr, st, c[i].pass > 2 ? 2 : 1, &o, &rc);
        assert_int_equal(rc, MW_EINVAL);
        assert_null(p);
        assert_string_equal(open_err.message, c[i].words);
        assert_null(strstr(pr.log, "PASS"));
    }
}

typedef struct sink_acc {
    char data[4096];
    size_t len;
    int calls;
    int stop_after;
} sink_acc;

static int acc_sink(const char *d, size_t n, void *ud)
{
    sink_acc *a = ud;
    memcpy(a->data + a->len, d, n);
    a->len += n;
    a->calls++;
    return a->stop_after && a->calls >= a->stop_after ? 7
                                                      : 0; /* any value: it comes back unchanged */
}

static void test_retr_chunks_and_sink_stop(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN),
                 {"RETR 1", "+OK 30 octets\r\nline one\r\n..dot\r\nthe end here\r\n.\r\n"},
                 {"RETR 2", "+OK\r\nabcdefghijklmnopqrstuvwxyz\r\n.\r\n"},
                 {"NOOP", "+OK\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 7, &o, &rc);
    assert_int_equal(rc, 0);
    sink_acc a;
    memset(&a, 0, sizeof a);
    mw_pop3_retr_info info;
    assert_int_equal(mw_pop3_retr(p, 1, acc_sink, &a, &info), 0);
    assert_int_equal(a.len, 30);
    assert_memory_equal(a.data, "line one\r\n.dot\r\nthe end here\r\n", 30);
    assert_true(a.calls > 1); /* it came in chunks */
    assert_int_equal(info.size_known, 1);
    assert_int_equal(info.size_mismatch, 0);
    assert_int_equal(info.complete, 1);
    /* A sink that stops: the rest is drained, the session stays usable. */
    memset(&a, 0, sizeof a);
    a.stop_after = 1;
    assert_int_equal(mw_pop3_retr(p, 2, acc_sink, &a, NULL), 7);
    /* No size in the reply: Tcllib switches to LIST mode for good. */
    mw_pop3_config c;
    mw_pop3_config_get(p, &c);
    assert_int_equal(c.retr_mode, MW_POP3_RETR_LIST);
    assert_int_equal(mw_pop3_noop(p), 0);
    assert_int_equal(pr.mismatch, 0);
    mw_pop3_free(p);
}

static void test_retr_mode_list_fallback(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN),           {"LIST 1", "+OK 1 5\r\n"},
                 {"RETR 1", "+OK\r\nabc\r\n.\r\n"}, {"LIST 2", "-ERR no sizes here\r\n"},
                 {"RETR 2", "+OK\r\nx\r\n.\r\n"},   {"RETR 3", "+OK\r\ny\r\n.\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.retr_mode = MW_POP3_RETR_LIST;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 9, &o, &rc);
    assert_int_equal(rc, 0);
    sink_acc a;
    memset(&a, 0, sizeof a);
    mw_pop3_retr_info info;
    assert_int_equal(mw_pop3_retr(p, 1, acc_sink, &a, &info), 0);
    assert_int_equal(info.declared, 5);
    assert_int_equal(info.size_mismatch, 0);
    assert_int_equal(mw_pop3_retr(p, 2, acc_sink, &a, &info), 0);
    assert_int_equal(info.size_known, 0);
    mw_pop3_config c;
    mw_pop3_config_get(p, &c);
    assert_int_equal(c.retr_mode, MW_POP3_RETR_SLOW); /* for good: no LIST before RETR 3 */
    assert_int_equal(mw_pop3_retr(p, 3, acc_sink, &a, &info), 0);
    assert_int_equal(pr.mismatch, 0);
    mw_pop3_free(p);
}

typedef struct range_acc {
    uint64_t ends[16];
    size_t nends;
    size_t bytes;
} range_acc;

static int range_fn(uint64_t msg, const char *d, size_t n, const mw_pop3_retr_info *info, void *ud)
{
    (void)d;
    range_acc *r = ud;
    if (info) r->ends[r->nends++] = msg;
    r->bytes += n;
    return 0;
}

static void test_pipelined_range(void **state)
{
    (void)state;
    peer pr;
    step st[] = {{"CAPA", CAPA_PIPE},
                 {"USER u", "+OK\r\n"},
                 {"PASS pw", "+OK\r\n"},
                 {"STAT", "+OK 5 50\r\n"},
                 {"RETR 1", "+OK\r\na\r\n.\r\n"},
                 {"RETR 2", "+OK\r\nb\r\n.\r\n"},
                 {"RETR 3", "-ERR gone\r\n"},
                 {"RETR 4", "+OK\r\nd\r\n.\r\n"},
                 {"RETR 5", "+OK\r\ne\r\n.\r\n"},
                 {"NOOP", "+OK\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.window = 4;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 10, &o, &rc);
    assert_int_equal(rc, 0);
    range_acc r;
    memset(&r, 0, sizeof r);
    /* Window 4: RETR 1-4 go out in one write, RETR 5 as soon as RETR 1's
     * reply is read (the window is topped up after every reply).  RETR 3
     * fails: the replies in flight (4, 5) are read and dropped, no more is
     * sent. */
    rc = mw_pop3_retr_range(p, 1, 5, -1, range_fn, &r);
    assert_int_equal(rc, MW_ESERVER);
    assert_non_null(strstr(mw_pop3_error(p)->message, "RETR 3"));
    assert_string_equal(mw_pop3_error(p)->command, "RETR 3");
    assert_int_equal(pr.max_batch, 4);
    assert_int_equal(r.nends, 2);
    assert_non_null(strstr(pr.log, "RETR 4|RETR 5|"));
    assert_non_null(strstr(trace_buf, "C:RETR 4\nS:+OK\nC:RETR 5\nS:+OK\n"));
    /* The session is in step: the next command gets its own reply. */
    assert_int_equal(mw_pop3_noop(p), 0);
    assert_int_equal(pr.mismatch, 0);
    mw_pop3_free(p);
}

/* Bodies are un-stuffed in place in the connection's buffer, where the next
 * pipelined reply may already wait: every read size puts the chunk edges
 * (and the CR after a line-start dot, which the decoder must see with its
 * next byte) somewhere else; each message must come out exact and the
 * reply after it untouched. */
typedef struct msg_acc {
    char data[3][256];
    size_t len[3];
    size_t nends;
} msg_acc;

static int msg_fn(uint64_t msg, const char *d, size_t n, const mw_pop3_retr_info *info, void *ud)
{
    msg_acc *m = ud;
    assert_true(msg >= 1 && msg <= 3);
    assert_true(m->len[msg - 1] + n <= sizeof m->data[0]);
    if (n) memcpy(m->data[msg - 1] + m->len[msg - 1], d, n);
    m->len[msg - 1] += n;
    if (info) {
        assert_int_equal(info->complete, 1);
        assert_int_equal(info->octets, m->len[msg - 1]);
        m->nends++;
    }
    return 0;
}

static void test_pipelined_bodies_every_read_size(void **state)
{
    (void)state;
    static const char *wire[3] = {
        "+OK\r\n..a\r\n...\r\n.\rX\r\n..\r\nz\r\n.\r\n",
        "+OK\r\n.\r\n", /* empty message */
        "+OK\r\nbare lf\n..\n.x\r\nend\r\n.\r\n",
    };
    static const char *want[3] = {".a\r\n..\r\n\rX\r\n.\r\nz\r\n", "", "bare lf\n.\nx\r\nend\r\n"};
    for (size_t rs = 1; rs <= 64; rs++) {
        peer pr;
        step st[] = {{"CAPA", CAPA_PIPE},    {"USER u", "+OK\r\n"},
                     {"PASS pw", "+OK\r\n"}, {"STAT", "+OK 3 90\r\n"},
                     {"RETR 1", wire[0]},    {"RETR 2", wire[1]},
                     {"RETR 3", wire[2]},    {"NOOP", "+OK still here\r\n"}};
        mw_pop3_opts o = MW_POP3_OPTS_INIT;
        int rc;
        mw_pop3 *p = open_with(&pr, st, 8, &o, &rc);
        assert_int_equal(rc, 0);
        pr.max_read = rs;
        msg_acc m;
        memset(&m, 0, sizeof m);
        assert_int_equal(mw_pop3_retr_range(p, 1, 3, -1, msg_fn, &m), 0);
        assert_int_equal(m.nends, 3);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(m.len[i], strlen(want[i]));
            assert_memory_equal(m.data[i], want[i], m.len[i]);
        }
        assert_int_equal(mw_pop3_noop(p), 0);
        assert_int_equal(pr.mismatch, 0);
        mw_pop3_free(p);
    }
}

static void test_unpipelined_range_and_keywords(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN),         {"LAST", "+OK 1\r\n"},
                 {"RETR 2", "+OK\r\nb\r\n.\r\n"}, {"RETR 3", "+OK\r\nc\r\n.\r\n"},
                 {"DELE 2", "+OK\r\n"},           {"DELE 3", "+OK\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 9, &o, &rc);
    assert_int_equal(rc, 0);
    uint64_t a, b;
    assert_int_equal(mw_pop3_range(p, "next", "end", &a, &b), 0);
    assert_true(a == 2 && b == 3);
    assert_int_equal(mw_pop3_range(p, "start", "last", &a, &b), 0);
    assert_true(a == 1 && b == 3);
    assert_int_equal(mw_pop3_range(p, "0", "99", &a, &b), 0); /* 0 -> 1, clamped */
    assert_true(a == 1 && b == 3);
    assert_int_equal(mw_pop3_range(p, "end", NULL, &a, &b), 0);
    assert_true(a == 3 && b == 3);
    assert_int_equal(mw_pop3_range(p, "3", "1", &a, &b), 0); /* empty */
    assert_true(a > b);
    assert_int_equal(mw_pop3_range(p, "bogus", NULL, &a, &b), MW_EINVAL);
    assert_non_null(strstr(mw_pop3_error(p)->message, "bad start index 'bogus'"));
    range_acc r;
    memset(&r, 0, sizeof r);
    assert_int_equal(mw_pop3_retr_range(p, 2, 3, -1, range_fn, &r), 0);
    assert_int_equal(pr.max_batch, 1); /* one at a time without PIPELINING */
    assert_int_equal(r.nends, 2);
    assert_int_equal(mw_pop3_retr_range(p, 3, 2, -1, range_fn, &r), 0); /* sends nothing */
    assert_int_equal(mw_pop3_dele_range(p, 2, 3), 0);
    assert_int_equal(mw_pop3_retr_range(p, 1, 9, -1, range_fn, &r), MW_EINVAL);
    assert_int_equal(mw_pop3_dele(p, 4), MW_EINVAL);
    assert_int_equal(mw_pop3_dele(p, 0), MW_EINVAL);
    assert_int_equal(pr.mismatch, 0);
    mw_pop3_free(p);
}

static void test_fatal_then_state(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN), {"NOOP", "what?\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 5, &o, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(mw_pop3_noop(p), MW_EPROTO);
    assert_non_null(strstr(mw_pop3_error(p)->message, "neither +OK nor -ERR: 'what?'"));
    assert_int_equal(mw_pop3_noop(p), MW_ESTATE);
    assert_int_equal(mw_pop3_quit(p, NULL), MW_ESTATE);
    mw_pop3_free(p);
}

static void test_dropped_mid_retr(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN), {"RETR 1", "+OK 100 octets\r\npartial\r\nmore"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 5, &o, &rc);
    assert_int_equal(rc, 0);
    sink_acc a;
    memset(&a, 0, sizeof a);
    mw_pop3_retr_info info;
    assert_int_equal(mw_pop3_retr(p, 1, acc_sink, &a, &info), MW_ENET);
    assert_int_equal(info.complete, 0);
    assert_int_equal(info.octets, 13);
    assert_non_null(strstr(mw_pop3_error(p)->message, "incomplete"));
    mw_pop3_free(p);
}

static void test_retr_buf_limit(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN),
                 {"RETR 1", "+OK 24 octets\r\n0123456789\r\n0123456789\r\n.\r\n"},
                 {"RETR 2", "+OK 0 octets\r\n.\r\n"},
                 {"NOOP", "+OK\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 7, &o, &rc);
    assert_int_equal(rc, 0);
    char *d = NULL;
    size_t l = 0;
    assert_int_equal(mw_pop3_retr_buf(p, 1, &d, &l, 16, NULL), MW_ETOOBIG);
    assert_null(d);
    rc = mw_pop3_retr_buf(p, 2, &d, &l, 16, NULL);
    if (rc)
        print_message("%s / log %s / %s\n", mw_pop3_error(p)->message, pr.log, pr.mismatch_text);
    assert_int_equal(rc, 0);
    assert_non_null(d);
    assert_int_equal(l, 0);
    free(d);
    assert_int_equal(mw_pop3_noop(p), 0); /* drained, still in step */
    mw_pop3_free(p);
}

static void test_list_uidl_one(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN),
                 {"LIST 2", "+OK 2 200\r\n"},
                 {"UIDL 3", "+OK 3 abc-DEF\r\n"},
                 {"LIST 1", "+OK 7 200\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 7, &o, &rc);
    assert_int_equal(rc, 0);
    uint64_t sz = 0;
    assert_int_equal(mw_pop3_list_one(p, 2, &sz), 0);
    assert_int_equal(sz, 200);
    char uid[71];
    assert_int_equal(mw_pop3_uidl_one(p, 3, uid), 0);
    assert_string_equal(uid, "abc-DEF");
    /* The server answers for another message: not trusted. */
    assert_int_equal(mw_pop3_list_one(p, 1, &sz), MW_EPROTO);
    mw_pop3_free(p);
}

#define LOGIN_NO_STAT(capa)                                                                        \
    {"CAPA", capa}, {"USER u", "+OK\r\n"},                                                         \
    {                                                                                              \
        "PASS pw", "+OK\r\n"                                                                       \
    }
#define LIST3 "+OK\r\n1 100\r\n2 200\r\n3 300\r\n.\r\n"
#define UIDL3 "+OK\r\n1 u-1\r\n2 u-2\r\n3 u-3\r\n.\r\n"

/* With PIPELINING, LIST and UIDL leave in one write (RFC 2449 §6.6); with
 * skip_stat the count comes from LIST and bounds the UIDL entries. */
static void test_list_uidl_pipelined(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_NO_STAT(CAPA_PIPE), {"LIST", LIST3}, {"UIDL", UIDL3}, {"NOOP", "+OK\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.skip_stat = 1;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 6, &o, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(mw_pop3_count(p), 0);
    mw_pop3_listing *l = NULL;
    mw_pop3_uid *u = NULL;
    size_t nl = 0, nu = 0;
    int urc = -1;
    assert_int_equal(mw_pop3_list_uidl(p, &l, &nl, &u, &nu, &urc), 0);
    assert_int_equal(pr.max_batch, 2); /* both commands in one write */
    assert_non_null(strstr(trace_buf, "C:LIST\nC:UIDL\nS:+OK\nS:1 100\n"));
    assert_int_equal(urc, 0);
    assert_int_equal(nl, 3);
    assert_int_equal(l[2].msg, 3);
    assert_int_equal(l[2].size, 300);
    assert_int_equal(nu, 3);
    assert_string_equal(u[1].uid, "u-2");
    assert_int_equal(mw_pop3_count(p), 3); /* what STAT would have said */
    assert_int_equal(mw_pop3_noop(p), 0);
    assert_int_equal(pr.mismatch, 0);
    mw_pop3_list_free(l);
    mw_pop3_uidl_free(u);
    mw_pop3_free(p);
}

/* UIDL refused: LIST stands, the caller learns why; the session stays in
 * step.  LIST refused: UIDL's pipelined reply is read (and dropped), LIST's
 * error is the one reported. */
static void test_list_uidl_refusals(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_NO_STAT(CAPA_PIPE),
                 {"LIST", LIST3},
                 {"UIDL", "-ERR no UIDL here\r\n"},
                 {"LIST", "-ERR [SYS/TEMP] busy\r\n"},
                 {"UIDL", UIDL3},
                 {"NOOP", "+OK\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.skip_stat = 1;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 8, &o, &rc);
    assert_int_equal(rc, 0);
    mw_pop3_listing *l = NULL;
    mw_pop3_uid *u = NULL;
    size_t nl = 0, nu = 0;
    int urc = 0;
    assert_int_equal(mw_pop3_list_uidl(p, &l, &nl, &u, &nu, &urc), 0);
    assert_int_equal(urc, MW_ESERVER);
    assert_null(u);
    assert_int_equal(nu, 0);
    assert_int_equal(nl, 3);
    assert_string_equal(mw_pop3_error(p)->command, "UIDL");
    assert_non_null(strstr(mw_pop3_error(p)->message, "no UIDL here"));
    mw_pop3_list_free(l);
    rc = mw_pop3_list_uidl(p, &l, &nl, &u, &nu, &urc);
    assert_int_equal(rc, MW_ETEMP);
    assert_null(l);
    assert_null(u);
    assert_string_equal(mw_pop3_error(p)->command, "LIST");
    assert_non_null(strstr(mw_pop3_error(p)->message, "busy"));
    assert_int_equal(mw_pop3_noop(p), 0);
    assert_int_equal(pr.mismatch, 0);
    mw_pop3_free(p);
}

/* Without PIPELINING: LIST, its whole reply, then UIDL.  A UIDL entry for a
 * message over the count (here from STAT) ends the session. */
static void test_list_uidl_lockstep(void **state)
{
    (void)state;
    peer pr;
    step st[] = {
        LOGIN_STEPS(CAPA_PLAIN), {"LIST", LIST3}, {"UIDL", "+OK\r\n1 u-1\r\n4 u-4\r\n.\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 6, &o, &rc);
    assert_int_equal(rc, 0);
    mw_pop3_listing *l = NULL;
    mw_pop3_uid *u = NULL;
    size_t nl = 0, nu = 0;
    int urc = 0;
    assert_int_equal(mw_pop3_list_uidl(p, &l, &nl, &u, &nu, &urc), MW_EPROTO);
    assert_int_equal(pr.max_batch, 1);
    assert_non_null(strstr(trace_buf, "C:LIST\nS:+OK\nS:1 100\nS:2 200\nS:3 300\nS:.\nC:UIDL\n"));
    assert_null(l);
    assert_null(u);
    assert_non_null(strstr(mw_pop3_error(p)->message, "over the count"));
    assert_int_equal(mw_pop3_noop(p), MW_ESTATE);
    mw_pop3_free(p);
}

/* The byte window: RETRs go out while the sizes of those unanswered add up
 * to at most window_bytes (at least one), topped up after every reply. */
static void test_retr_msgs_byte_window(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PIPE),
                 {"RETR 1", "+OK\r\na\r\n.\r\n"},
                 {"RETR 2", "+OK\r\nb\r\n.\r\n"},
                 {"RETR 3", "+OK\r\nc\r\n.\r\n"},
                 {"RETR 5", "+OK\r\ne\r\n.\r\n"},
                 {"RETR 6", "+OK\r\nf\r\n.\r\n"},
                 {"NOOP", "+OK\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 10, &o, &rc);
    assert_int_equal(rc, 0);
    /* STAT said 3: message 5 is out of range; descending order is refused. */
    mw_pop3_listing bad[] = {{1, 10}, {5, 10}};
    range_acc r;
    memset(&r, 0, sizeof r);
    assert_int_equal(mw_pop3_retr_msgs(p, bad, 2, 0, range_fn, &r), MW_EINVAL);
    mw_pop3_listing down[] = {{2, 10}, {1, 10}};
    assert_int_equal(mw_pop3_retr_msgs(p, down, 2, 0, range_fn, &r), MW_EINVAL);
    assert_int_equal(pr.log_len, strlen("CAPA|USER u|PASS pw|STAT|"));
    mw_pop3_free(p);

    step st2[] = {{"CAPA", CAPA_PIPE},
                  {"USER u", "+OK\r\n"},
                  {"PASS pw", "+OK\r\n"},
                  {"STAT", "+OK 6 600\r\n"},
                  {"RETR 1", "+OK\r\na\r\n.\r\n"},
                  {"RETR 2", "+OK\r\nb\r\n.\r\n"},
                  {"RETR 3", "+OK\r\nc\r\n.\r\n"},
                  {"RETR 5", "+OK\r\ne\r\n.\r\n"},
                  {"RETR 6", "+OK\r\nf\r\n.\r\n"},
                  {"NOOP", "+OK\r\n"}};
    p = open_with(&pr, st2, 10, &o, &rc);
    assert_int_equal(rc, 0);
    /* 100 + 100 fit in 250, 300 more does not: two in the first write; RETR
     * 3 (300) alone once both are answered... */
    mw_pop3_listing want[] = {{1, 100}, {2, 100}, {3, 300}, {5, 1000}, {6, 10}};
    memset(&r, 0, sizeof r);
    assert_int_equal(mw_pop3_retr_msgs(p, want, 5, 250, range_fn, &r), 0);
    assert_int_equal(r.nends, 5);
    assert_int_equal(r.ends[3], 5);
    assert_int_equal(pr.max_batch, 2);
    /* (bodies are not traced, status lines are) */
    assert_non_null(strstr(trace_buf, "C:RETR 1\nC:RETR 2\nS:+OK\nS:+OK\nC:RETR 3\nS:+OK\n"
                                      /* ...and 1000 over the window goes alone */
                                      "C:RETR 5\nS:+OK\nC:RETR 6\nS:+OK\n"));
    assert_int_equal(mw_pop3_noop(p), 0);
    assert_int_equal(pr.mismatch, 0);
    mw_pop3_free(p);
}

/* Without PIPELINING mw_pop3_retr_msgs asks for one message at a time,
 * whatever the byte window. */
static void test_retr_msgs_unpipelined(void **state)
{
    (void)state;
    peer pr;
    step st[] = {
        LOGIN_STEPS(CAPA_PLAIN), {"RETR 1", "+OK\r\na\r\n.\r\n"}, {"RETR 3", "+OK\r\nc\r\n.\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 6, &o, &rc);
    assert_int_equal(rc, 0);
    mw_pop3_listing want[] = {{1, 10}, {3, 10}};
    range_acc r;
    memset(&r, 0, sizeof r);
    assert_int_equal(mw_pop3_retr_msgs(p, want, 2, 0, range_fn, &r), 0);
    assert_int_equal(r.nends, 2);
    assert_int_equal(r.ends[1], 3);
    assert_int_equal(pr.max_batch, 1);
    assert_non_null(strstr(trace_buf, "C:RETR 1\nS:+OK\nC:RETR 3\nS:+OK\n"));
    assert_int_equal(pr.mismatch, 0);
    mw_pop3_free(p);
}

/* mw_pop3_dele_msgs: pipelined, goes on after an -ERR, counts every +OK
 * (before and after the refusal) and names the refused DELE. */
static void test_dele_msgs_counts(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PIPE),
                 {"DELE 1", "+OK\r\n"},
                 {"DELE 2", "-ERR locked\r\n"},
                 {"DELE 3", "+OK\r\n"},
                 {"NOOP", "+OK\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 8, &o, &rc);
    assert_int_equal(rc, 0);
    uint64_t nums[] = {1, 2, 3};
    size_t done = 99;
    assert_int_equal(mw_pop3_dele_msgs(p, nums, 3, &done), MW_ESERVER);
    assert_int_equal(done, 2);
    assert_int_equal(pr.max_batch, 3);
    assert_string_equal(mw_pop3_error(p)->command, "DELE 2");
    assert_non_null(strstr(mw_pop3_error(p)->message, "locked"));
    assert_int_equal(mw_pop3_noop(p), 0);
    assert_int_equal(pr.mismatch, 0);
    mw_pop3_free(p);
}

static void test_auth_plain_ir_and_errors(void **state)
{
    (void)state;
    peer pr;
    /* "\0u\0pw" in base64 is AHUAcHc= */
    step st[] = {{"CAPA", "+OK\r\nSASL PLAIN\r\n.\r\n"},
                 {"AUTH PLAIN AHUAcHc=", "-ERR [SYS/TEMP] auth backend down\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 2, &o, &rc);
    assert_int_equal(rc, MW_ETEMP);
    assert_null(p); /* a failed open leaves no handle; the error is the caller's */
    const mw_error *e = &open_err;
    assert_string_equal(e->resp_code, "SYS/TEMP");
    assert_non_null(strstr(e->reply, "auth backend down"));
    assert_string_equal(e->command, "AUTH PLAIN ****");
    assert_non_null(strstr(trace_buf, "C:AUTH PLAIN ****\n"));
    assert_null(strstr(trace_buf, "AHUAcHc="));
    assert_int_equal(pr.mismatch, 0);
    mw_pop3_free(p);
}

static void test_bad_opts(void **state)
{
    (void)state;
    mw_pop3 *p = NULL;
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.version = 99;
    mw_error e;
    assert_int_equal(mw_pop3_open(&p, "localhost", &o, &e), MW_EINVAL);
    assert_null(p);
    assert_int_equal(e.code, MW_EINVAL);
    assert_non_null(strstr(e.message, "version"));
    assert_int_equal(mw_pop3_open(NULL, "localhost", &o, &e), MW_EINVAL);
    mw_pop3_opts o2 = MW_POP3_OPTS_INIT;
    assert_int_equal(mw_pop3_open(&p, NULL, &o2, NULL), MW_EINVAL);
    mw_pop3_free(p);
    mw_pop3_opts o3 = MW_POP3_OPTS_INIT;
    o3.window = 5000;
    assert_int_equal(mw_pop3_open(&p, "h", &o3, NULL), MW_EINVAL);
    mw_pop3_free(p);
}

static void test_command_deadline(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN), {"RETR 1", "+OK\r\nstart of a body that never ends"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.command_timeout_ms = 400;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 5, &o, &rc);
    assert_int_equal(rc, 0);
    pr.trickle_ms = 20; /* each read makes progress: only the whole-command limit ends it */
    sink_acc a;
    memset(&a, 0, sizeof a);
    int64_t t0 = mw_now_ms();
    rc = mw_pop3_retr(p, 1, acc_sink, &a, NULL);
    int64_t took = mw_now_ms() - t0;
    if (rc != MW_ETIMEOUT)
        print_message("%s (%lld ms)\n", mw_pop3_error(p)->message, (long long)took);
    assert_int_equal(rc, MW_ETIMEOUT);
    assert_true(took >= 350 && took < 60000); /* the body never ends: bounded by the limit */
    assert_non_null(strstr(mw_pop3_error(p)->message, "incomplete"));
    mw_pop3_free(p);
}

/* A server that stops answering: the held driver's io timeout ends the
 * command, in its words, and the session is unusable after. */
static void test_io_timeout(void **state)
{
    (void)state;
    peer pr;
    step st[] = {LOGIN_STEPS(CAPA_PLAIN), {"NOOP", ""}};
    mw_net_opts net = MW_NET_OPTS_INIT;
    net.io_timeout_ms = 300;
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.net = &net;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 5, &o, &rc);
    assert_int_equal(rc, 0);
    pr.silent = 1;
    int64_t t0 = mw_now_ms();
    assert_int_equal(mw_pop3_noop(p), MW_ETIMEOUT);
    int64_t took = mw_now_ms() - t0;
    assert_true(took >= 250 && took < 60000); /* waited for it, and bounded */
    assert_string_equal(mw_pop3_error(p)->message, "no progress for 300 ms while reading a line");
    assert_int_equal(mw_pop3_noop(p), MW_ESTATE);
    mw_pop3_free(p);
}

/* A server silent after its +OK to STLS: the handshake is bounded by
 * command_timeout_ms, not only by the far longer handshake_timeout_ms. */
static void test_stls_handshake_within_command_timeout(void **state)
{
    (void)state;
    peer pr;
    step st[] = {{"CAPA", "+OK\r\nSTLS\r\nUSER\r\n.\r\n"}, {"STLS", "+OK begin\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    peer_start(&pr, st, 2, &o);
    pr.silent = 1;
    mw_tls_opts t = MW_TLS_OPTS_INIT;
    t.handshake_timeout_ms = 60000;
    o.tls = MW_TLS_STARTTLS;
    o.tls_opts = &t;
    o.user = "u";
    o.password = "pw";
    o.command_timeout_ms = 300;
    mw_pop3 *p = NULL;
    mw_error e = {0};
    int rc = mw_pop3_open(&p, "localhost", &o, &e);
    int64_t after = mw_now_ms();
    print_message("# %s\n", e.message);
    assert_int_not_equal(rc, 0);
    assert_int_equal(pr.next, 2);                 /* STLS answered: the handshake began */
    assert_true(pr.seen_deadline != 0);           /* and read with a deadline */
    assert_true(pr.seen_deadline <= after + 300); /* the command's, not 60 s */
    mw_pop3_free(p);
}

/* Counts what a sink got, keeping nothing. */
static int count_sink(const char *d, size_t n, void *ud)
{
    (void)d;
    *(size_t *)ud += n;
    return 0;
}

/* "+OK 10 octets" then a body of `body` octets of 63-octet lines and ".". */
static const char *big_reply(size_t body)
{
    static char r[200 * 1024];
    size_t n = (size_t)snprintf(r, sizeof r, "+OK 10 octets\r\n");
    while (body >= 64) {
        memset(r + n, 'x', 62);
        memcpy(r + n + 62, "\r\n", 2);
        n += 64;
        body -= 64;
    }
    memset(r + n, 'y', body);
    n += body;
    memcpy(r + n, "\r\n.\r\n", 6); /* with its NUL */
    return r;
}

/* RETR is bounded by its announced size + max(size, 64 KiB): 10 + 65536
 * octets pass (the mismatch is reported), one octet more ends the session
 * with MW_ETOOBIG, and the rest of the reply is not read. */
static void test_retr_bound(void **state)
{
    (void)state;
    for (int over = 0; over < 2; over++) {
        peer pr;
        /* The message: 65546 octets (with its last CRLF) or 65547+. */
        size_t body = 10 + 65536 - 2 + (size_t)over * 64 * 1024;
        step st[] = {LOGIN_STEPS(CAPA_PLAIN), {"RETR 1", big_reply(body)}, {"NOOP", "+OK\r\n"}};
        mw_pop3_opts o = MW_POP3_OPTS_INIT;
        int rc;
        mw_pop3 *p = open_with(&pr, st, 6, &o, &rc);
        assert_int_equal(rc, 0);
        pr.max_read = 4096;
        size_t got = 0;
        mw_pop3_retr_info info;
        rc = mw_pop3_retr(p, 1, count_sink, &got, &info);
        if (!over) {
            assert_int_equal(rc, 0);
            assert_int_equal(got, 65546);
            assert_int_equal(info.complete, 1);
            assert_int_equal(info.size_mismatch, 1);
            assert_int_equal(mw_pop3_noop(p), 0);
        } else {
            assert_int_equal(rc, MW_ETOOBIG);
            assert_true(got <= 65546);
            assert_int_equal(info.complete, 0);
            assert_non_null(strstr(mw_pop3_error(p)->message,
                                   "RETR 1: the server sent over 65546 octets for a message "
                                   "announced as 10 octets"));
            /* Stopped: most of the reply was never read. */
            assert_true(pr.out_len - pr.out_pos > 50 * 1024);
            assert_int_equal(mw_pop3_noop(p), MW_ESTATE);
        }
        assert_int_equal(pr.mismatch, 0);
        mw_pop3_free(p);
    }
}

/* The LIST size given to mw_pop3_retr_msgs bounds the RETR too (the reply
 * here has no size). */
static void test_retr_msgs_bound_by_list(void **state)
{
    (void)state;
    peer pr;
    static char reply[100 * 1024];
    snprintf(reply, sizeof reply, "+OK\r\n");
    size_t n = strlen(reply);
    memset(reply + n, 'z', 80 * 1024);
    memcpy(reply + n + 80 * 1024, "\r\n.\r\n", 6); /* with its NUL */
    step st[] = {LOGIN_STEPS(CAPA_PLAIN), {"RETR 2", reply}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 5, &o, &rc);
    assert_int_equal(rc, 0);
    pr.max_read = 4096;
    mw_pop3_listing want[] = {{2, 60}};
    range_acc r;
    memset(&r, 0, sizeof r);
    assert_int_equal(mw_pop3_retr_msgs(p, want, 1, 0, range_fn, &r), MW_ETOOBIG);
    assert_non_null(strstr(mw_pop3_error(p)->message, "over 65596 octets"));
    assert_non_null(strstr(mw_pop3_error(p)->message, "announced as 60 octets"));
    assert_int_equal(mw_pop3_noop(p), MW_ESTATE);
    mw_pop3_free(p);
}

/* A listing stops at the count: the entry after it ends the session at
 * once, the rest of a reply that could go on for ever is not read. */
static void test_listing_stops_at_count(void **state)
{
    (void)state;
    static char reply[64 * 1024];
    size_t n = (size_t)snprintf(reply, sizeof reply, "+OK\r\n");
    for (int i = 0; n + 16 < 60 * 1024; i++)
        n += (size_t)snprintf(reply + n, sizeof reply - n, "%d 100\r\n", i % 3 + 1);
    for (int uidl = 0; uidl < 2; uidl++) {
        peer pr;
        step st[] = {LOGIN_STEPS(CAPA_PLAIN), {uidl ? "UIDL" : "LIST", reply}};
        mw_pop3_opts o = MW_POP3_OPTS_INIT;
        int rc;
        mw_pop3 *p = open_with(&pr, st, 5, &o, &rc);
        assert_int_equal(rc, 0);
        pr.max_read = 512;
        void *items = NULL;
        size_t ni = 0;
        rc = uidl ? mw_pop3_uidl(p, (mw_pop3_uid **)&items, &ni)
                  : mw_pop3_list(p, (mw_pop3_listing **)&items, &ni);
        assert_int_equal(rc, MW_EPROTO);
        assert_null(items);
        assert_non_null(strstr(mw_pop3_error(p)->message, "more entries than the 3 messages"));
        assert_true(pr.out_len - pr.out_pos > 50 * 1024);
        assert_int_equal(mw_pop3_noop(p), MW_ESTATE);
        mw_pop3_free(p);
    }
}

/* One UIDL line with a unique-id outside RFC 1939 §7 costs its message
 * only in mw_pop3_list_uidl (an entry with uid ""); mw_pop3_uidl stays
 * strict.  A line with no message number is still fatal. */
static void test_list_uidl_bad_uid_line(void **state)
{
    (void)state;
    peer pr;
    char uidl[600];
    char longuid[301];
    memset(longuid, 'u', 300);
    longuid[300] = '\0';
    snprintf(uidl, sizeof uidl, "+OK\r\n1 a b\r\n2 %s\r\n3 ok-3\r\n.\r\n", longuid);
    step st[] = {LOGIN_STEPS(CAPA_PLAIN),
                 {"LIST", LIST3},
                 {"UIDL", uidl},
                 {"UIDL", uidl},
                 {"NOOP", "+OK\r\n"}};
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int rc;
    mw_pop3 *p = open_with(&pr, st, 8, &o, &rc);
    assert_int_equal(rc, 0);
    mw_pop3_listing *l = NULL;
    mw_pop3_uid *u = NULL;
    size_t nl = 0, nu = 0;
    int urc = -1;
    assert_int_equal(mw_pop3_list_uidl(p, &l, &nl, &u, &nu, &urc), 0);
    assert_int_equal(urc, 0);
    assert_int_equal(nl, 3);
    assert_int_equal(nu, 3);
    assert_int_equal(u[0].msg, 1);
    assert_string_equal(u[0].uid, "");
    assert_int_equal(u[1].msg, 2);
    assert_string_equal(u[1].uid, "");
    assert_string_equal(u[2].uid, "ok-3");
    mw_pop3_list_free(l);
    mw_pop3_uidl_free(u);
    u = NULL;
    assert_int_equal(mw_pop3_uidl(p, &u, &nu), MW_EPROTO);
    assert_non_null(strstr(mw_pop3_error(p)->message, "bad UIDL line: '1 a b'"));
    assert_int_equal(mw_pop3_noop(p), MW_ESTATE);
    mw_pop3_free(p);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_open_and_config),
    cmocka_unit_test(test_apop_masked),
    cmocka_unit_test(test_msex),
    cmocka_unit_test(test_default_requires_tls),
    cmocka_unit_test(test_default_stls_then_nothing),
    cmocka_unit_test(test_plaintext_policy),
    cmocka_unit_test(test_injection_in_arguments),
    cmocka_unit_test(test_login_line_limits),
    cmocka_unit_test(test_retr_chunks_and_sink_stop),
    cmocka_unit_test(test_retr_mode_list_fallback),
    cmocka_unit_test(test_pipelined_range),
    cmocka_unit_test(test_pipelined_bodies_every_read_size),
    cmocka_unit_test(test_unpipelined_range_and_keywords),
    cmocka_unit_test(test_fatal_then_state),
    cmocka_unit_test(test_dropped_mid_retr),
    cmocka_unit_test(test_retr_buf_limit),
    cmocka_unit_test(test_list_uidl_one),
    cmocka_unit_test(test_list_uidl_pipelined),
    cmocka_unit_test(test_list_uidl_refusals),
    cmocka_unit_test(test_list_uidl_lockstep),
    cmocka_unit_test(test_retr_msgs_byte_window),
    cmocka_unit_test(test_retr_msgs_unpipelined),
    cmocka_unit_test(test_dele_msgs_counts),
    cmocka_unit_test(test_auth_plain_ir_and_errors),
    cmocka_unit_test(test_bad_opts),
    cmocka_unit_test(test_command_deadline),
    cmocka_unit_test(test_io_timeout),
    cmocka_unit_test(test_stls_handshake_within_command_timeout),
    cmocka_unit_test(test_retr_bound),
    cmocka_unit_test(test_retr_msgs_bound_by_list),
    cmocka_unit_test(test_listing_stops_at_count),
    cmocka_unit_test(test_list_uidl_bad_uid_line),
};

MW_TEST_MAIN(tests)

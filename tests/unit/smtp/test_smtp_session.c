/* Unit tests of the SMTP session over an in-memory stream (the server's
 * replies are queued up front; what the client writes is captured), and of
 * the envelope rules (addresses, originator, Bcc, Resent-). */
#include "mwtest.h"

#include "mailwire/mime.h"
#include "mailwire/smtp.h"
#include "smtp/envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct fake {
    const char *replies;
    size_t rlen, rpos;
    size_t step; /* bytes per read: exercises the reply reader's splits */
    char out[1 << 20];
    size_t olen;
    size_t mail_rpos[8]; /* reply bytes read when each MAIL was written */
    int nmail;
} fake;

static long fake_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)deadline;
    fake *f = ud;
    size_t n = f->rlen - f->rpos;
    if (n > len) n = len;
    if (n > f->step) n = f->step;
    memcpy(buf, f->replies + f->rpos, n);
    f->rpos += n;
    return (long)n;
}

static long fake_write(const void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)deadline;
    fake *f = ud;
    if (f->olen + len > sizeof f->out) return MW_ENET;
    if (f->nmail < 8 && memmem(buf, len, "MAIL FROM:", 10)) f->mail_rpos[f->nmail++] = f->rpos;
    memcpy(f->out + f->olen, buf, len);
    f->olen += len;
    return (long)len;
}

static const mw_stream_ops fake_ops = {fake_read, fake_write, NULL};

static mw_smtp *open_fake(fake *f, const char *replies, size_t step)
{
    memset(f, 0, sizeof *f);
    f->replies = replies;
    f->rlen = strlen(replies);
    f->step = step;
    mw_stream *st;
    mw_error err = {0};
    assert_int_equal(mw_stream_callbacks(&st, &fake_ops, f, &err), 0);
    mw_smtp_opts o = MW_SMTP_OPTS_INIT;
    static const char *const servers[] = {"127.0.0.1"};
    o.servers = servers;
    o.nservers = 1;
    o.tls = MW_TLS_NONE;
    o.stream = st;
    mw_smtp *s = NULL;
    int rc = mw_smtp_open(&s, &o, &err);
    if (rc) fail_msg("open: %s", err.message);
    return s;
}

/* ---- the TLS handshake within the open's deadline ---- */

static int64_t tls_seen_deadline; /* the latest deadline a read was given */

/* The replies, then silence: a read after them records its deadline and
 * times out at once (nothing waits on the clock). */
static long quiet_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    fake *f = ud;
    if (f->rpos < f->rlen) return fake_read(buf, len, deadline, ud);
    if (deadline == MW_NO_DEADLINE || deadline > tls_seen_deadline) tls_seen_deadline = deadline;
    return MW_ETIMEOUT;
}

static const mw_stream_ops quiet_ops = {quiet_read, fake_write, NULL};

/* A server silent after its 220 to STARTTLS: the handshake is bounded by
 * open_timeout_ms, not only by the far longer handshake_timeout_ms. */
static void starttls_handshake_within_open_timeout(void **state)
{
    (void)state;
    static fake f;
    memset(&f, 0, sizeof f);
    f.replies = "220 fake ESMTP\r\n250-fake\r\n250 STARTTLS\r\n220 go ahead\r\n";
    f.rlen = strlen(f.replies);
    f.step = 1; /* each reply after its command went out */
    mw_stream *st;
    mw_error err = {0};
    assert_int_equal(mw_stream_callbacks(&st, &quiet_ops, &f, &err), 0);
    mw_tls_opts t = MW_TLS_OPTS_INIT;
    t.handshake_timeout_ms = 60000;
    mw_smtp_opts o = MW_SMTP_OPTS_INIT;
    static const char *const servers[] = {"127.0.0.1"};
    o.servers = servers;
    o.nservers = 1;
    o.tls = MW_TLS_STARTTLS;
    o.tls_opts = &t;
    o.open_timeout_ms = 300;
    o.stream = st;
    tls_seen_deadline = 0;
    mw_smtp *s = NULL;
    int rc = mw_smtp_open(&s, &o, &err);
    int64_t after = mw_now_ms();
    assert_int_not_equal(rc, 0);
    assert_null(s);
    print_message("# %s\n", err.message);
    assert_non_null(memmem(f.out, f.olen, "STARTTLS\r\n", 10));
    assert_true(tls_seen_deadline != 0);              /* the handshake did read */
    assert_true(tls_seen_deadline != MW_NO_DEADLINE); /* with a deadline */
    assert_true(tls_seen_deadline <= after + 300);    /* the open's, not 60 s */
}

#define GREET "220 fake ESMTP\r\n250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
#define TX_OK "250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n"

typedef struct chunky {
    const char *p;
    size_t n, pos, step;
} chunky;

static long chunky_read(void *buf, size_t len, void *ud)
{
    chunky *c = ud;
    size_t n = c->n - c->pos;
    if (n > len) n = len;
    if (n > c->step) n = c->step;
    memcpy(buf, c->p + c->pos, n);
    c->pos += n;
    return (long)n;
}

/* The DATA part of the wire (after "DATA\r\n") must be the same whatever
 * sizes the message source hands out. */
static void callback_source_every_chunk_size(void **state)
{
    (void)state;
    static const char msg[] = "Date: x\nMessage-ID: <1@x>\nFrom: a@x.test\n\n.a\r\n.\n"
                              "b\r.\rc\r\n\r\n..\n.";
    static const char want[] = "DATA\r\nDate: x\r\nMessage-ID: <1@x>\r\nFrom: a@x.test\r\n\r\n"
                               "..a\r\n..\r\nb\r\n..\r\nc\r\n\r\n...\r\n..\r\n.\r\n";
    for (size_t step = 1; step <= 17; step++) {
        fake *f = malloc(sizeof *f);
        mw_smtp *s = open_fake(f, GREET TX_OK "221 bye\r\n", step);
        chunky c = {msg, sizeof msg - 1, 0, step};
        mw_smtp_msg m = MW_SMTP_MSG_INIT;
        m.read = chunky_read;
        m.read_userdata = &c;
        static const char *const rc_[] = {"b@y.test"};
        m.recipients = rc_;
        m.nrecipients = 1;
        m.atleastone = 1;
        mw_smtp_result *r = NULL;
        int rc = mw_smtp_send(s, &m, &r);
        if (rc) fail_msg("step %zu: %s", step, mw_smtp_error(s)->message);
        assert_true(r->sent);
        assert_int_equal(r->nrcpt, 1);
        assert_int_equal(r->rcpt[0].code, 250);
        assert_string_equal(r->originator, "a@x.test");
        f->out[f->olen] = '\0';
        const char *d = strstr(f->out, "DATA\r\n");
        assert_non_null(d);
        if (strcmp(d, want) != 0) fail_msg("step %zu: got \"%s\"", step, d);
        /* MAIL, RCPT and DATA went out together (RFC 2920); a stream
         * source may hold 8-bit data, so BODY=8BITMIME is declared. */
        assert_non_null(strstr(f->out, "MAIL FROM:<a@x.test> BODY=8BITMIME\r\nRCPT "
                                       "TO:<b@y.test>\r\nDATA\r\n"));
        mw_smtp_result_free(r);
        assert_int_equal(mw_smtp_quit(s), 0);
        mw_smtp_free(s);
        free(f);
    }
}

static void fd_source_bcc_removed(void **state)
{
    (void)state;
    char path[] = "/tmp/mw-smtp-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    const char msg[] = "From: A <a@x.test>\nTo: b@y.test\nBcc: Secret <h@z.test>,\n k@z.test\n"
                       "Subject: s\n\nbody\n";
    assert_int_equal(write(fd, msg, sizeof msg - 1), (ssize_t)(sizeof msg - 1));
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    fake *f = malloc(sizeof *f);
    mw_smtp *s =
        open_fake(f, GREET "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n", 5);
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    m.fd = fd;
    m.atleastone = 1;
    mw_smtp_result *r = NULL;
    assert_int_equal(mw_smtp_send(s, &m, &r), 0);
    assert_int_equal(r->nrcpt, 3);
    assert_string_equal(r->rcpt[1].address, "h@z.test");
    assert_string_equal(r->rcpt[2].address, "k@z.test");
    f->out[f->olen] = '\0';
    assert_non_null(strstr(f->out, "RCPT TO:<k@z.test>\r\n"));
    assert_null(strstr(f->out, "Bcc"));
    assert_null(strstr(f->out, "Secret"));
    assert_non_null(strstr(f->out, "\r\nSubject: s\r\nDate: "));
    assert_non_null(strstr(f->out, "\r\nMessage-ID: <"));
    assert_non_null(strstr(f->out, "\r\n\r\nbody\r\n.\r\n"));
    mw_smtp_result_free(r);
    mw_smtp_free(s);
    free(f);
    close(fd);
}

static void many_messages_one_connection(void **state)
{
    (void)state;
    fake *f = malloc(sizeof *f);
    mw_smtp *s = open_fake(f, GREET TX_OK TX_OK TX_OK "221 bye\r\n", 4096);
    for (int i = 0; i < 3; i++) {
        mw_smtp_msg m = MW_SMTP_MSG_INIT;
        m.data = "Subject: x\n\nhi\n";
        m.len = strlen(m.data);
        m.originator = "a@x.test";
        static const char *const rc_[] = {"b@y.test"};
        m.recipients = rc_;
        m.nrecipients = 1;
        m.atleastone = 1;
        assert_int_equal(mw_smtp_send(s, &m, NULL), 0);
    }
    assert_int_equal(mw_smtp_quit(s), 0);
    f->out[f->olen] = '\0';
    int mails = 0, ehlos = 0;
    for (const char *p = f->out; (p = strstr(p, "MAIL FROM:")); p++)
        mails++;
    for (const char *p = f->out; (p = strstr(p, "EHLO ")); p++)
        ehlos++;
    assert_int_equal(mails, 3);
    assert_int_equal(ehlos, 1);
    assert_null(strstr(f->out, "RSET")); /* none needed after a completed transaction */
    mw_smtp_free(s);
    free(f);
}

/* The default delivers to the accepted recipients (atleastone); each
 * recipient's result says whether the message went to them.  Tcllib's
 * all-or-nothing (atleastone 0) sends to nobody and says so with the
 * refusal's code and enhanced code. */
static void atleastone_default_and_delivered(void **state)
{
    (void)state;
    static const char *const rcpts[] = {"b@y.test", "bad@y.test", "c@y.test"};
    fake *f = malloc(sizeof *f);
    mw_smtp *s = open_fake(f,
                           GREET "250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n"
                                 "354 go\r\n250 2.0.0 queued\r\n",
                           4096);
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    m.data = "Subject: x\n\nhi\n";
    m.len = strlen(m.data);
    m.originator = "a@x.test";
    m.recipients = rcpts;
    m.nrecipients = 3;
    mw_smtp_result *r = NULL;
    assert_int_equal(mw_smtp_send(s, &m, &r), 0);
    assert_true(r->sent);
    assert_int_equal(r->nrejected, 1);
    assert_int_equal(r->rcpt[0].delivered, 1);
    assert_int_equal(r->rcpt[1].delivered, 0);
    assert_int_equal(r->rcpt[2].delivered, 1);
    assert_string_equal(r->rcpt[1].enhanced, "5.1.1");
    assert_int_equal(r->final_code, 250);
    mw_smtp_result_free(r);
    mw_smtp_free(s);
    free(f);

    f = malloc(sizeof *f);
    s = open_fake(f, GREET "250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n250 reset\r\n",
                  4096);
    m.atleastone = 0;
    r = NULL;
    assert_int_equal(mw_smtp_send(s, &m, &r), MW_ESERVER);
    assert_false(r->sent);
    for (size_t i = 0; i < r->nrcpt; i++)
        assert_int_equal(r->rcpt[i].delivered, 0);
    assert_int_equal(r->rcpt[0].accepted, 1); /* its RCPT was accepted, yet no mail */
    assert_int_equal(r->final_code, 550);
    assert_string_equal(r->final_text, "5.1.1 no such user");
    f->out[f->olen] = '\0';
    assert_null(strstr(f->out, "DATA"));
    assert_non_null(strstr(f->out, "RSET"));
    mw_smtp_result_free(r);
    mw_smtp_free(s);
    free(f);
}

/* Message-IDs come from a per-thread seed and a counter: each differs
 * from the last, and a forked child must not repeat the parent's next one. */
static void msgid_unique_and_fork_safe(void **state)
{
    (void)state;
    char a[200], b[200], c[200];
    assert_int_equal(mwi_smtp_make_msgid(a, sizeof a, "h.test", NULL), 0);
    assert_int_equal(mwi_smtp_make_msgid(b, sizeof b, "h.test", NULL), 0);
    assert_string_not_equal(a, b);
    assert_non_null(strstr(a, "@h.test>"));
    /* <time.SEED.counter@host>: SEED is 24 lowercase hex digits (12 random
     * octets), the same in both, and the counter goes up by one. */
    const char *d1 = strchr(a, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    assert_non_null(d2);
    assert_int_equal(d2 - d1 - 1, 24);
    for (const char *p = d1 + 1; p < d2; p++)
        assert_non_null(strchr("0123456789abcdef", *p));
    const char *e1 = strchr(b, '.');
    assert_non_null(e1);
    assert_memory_equal(d1, e1, 26);
    assert_int_equal(strtoull(e1 + 26, NULL, 16), strtoull(d2 + 1, NULL, 16) + 1);
    /* One maker: the MIME layer's Message-ID continues the same sequence. */
    char m2[200];
    assert_int_equal(mw_mime_unique_id(m2, sizeof m2, "h.test"), 0);
    const char *f1 = strchr(m2, '.');
    assert_non_null(f1);
    assert_memory_equal(f1, e1, 26);
    assert_int_equal(strtoull(f1 + 26, NULL, 16), strtoull(e1 + 26, NULL, 16) + 1);
    /* And the Date: the MIME layer's format in UTC. */
    char d[64], w1[MW_MIME_DATE_SIZE], w2[MW_MIME_DATE_SIZE];
    time_t before = time(NULL);
    mwi_smtp_make_date(d, sizeof d);
    time_t after = time(NULL);
    assert_int_equal(mw_mime_date_format(w1, sizeof w1, (int64_t)before, 0), 0);
    assert_int_equal(mw_mime_date_format(w2, sizeof w2, (int64_t)after, 0), 0);
    assert_true(strcmp(d, w1) == 0 || strcmp(d, w2) == 0);
    assert_non_null(strstr(d, " +0000"));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char m[200];
        mwi_smtp_make_msgid(m, sizeof m, "h.test", NULL);
        ssize_t w = write(fds[1], m, strlen(m) + 1);
        _exit(w > 0 ? 0 : 1);
    }
    close(fds[1]);
    memset(c, 0, sizeof c);
    ssize_t n = read(fds[0], c, sizeof c - 1);
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    assert_true(n > 0);
    char parent_next[200];
    assert_int_equal(mwi_smtp_make_msgid(parent_next, sizeof parent_next, "h.test", NULL), 0);
    assert_string_not_equal(c, parent_next);
    assert_string_not_equal(c, b);
}

/* A version-1 mw_smtp_msg (no header_recipients) is still accepted: its
 * recipients are used as given, the header's To is not added. */
static void msg_version_1_accepted(void **state)
{
    (void)state;
    fake *f = malloc(sizeof *f);
    mw_smtp *s = open_fake(f, GREET TX_OK "221 bye\r\n", 4096);
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    m.version = 1;
    m.header_recipients = 1; /* not part of version 1: must be ignored */
    m.data = "To: other@y.test\nSubject: x\n\nhi\n";
    m.len = strlen(m.data);
    m.originator = "a@x.test";
    static const char *const rc_[] = {"b@y.test"};
    m.recipients = rc_;
    m.nrecipients = 1;
    assert_int_equal(mw_smtp_send(s, &m, NULL), 0);
    f->out[f->olen] = '\0';
    assert_non_null(strstr(f->out, "RCPT TO:<b@y.test>\r\nDATA\r\n"));
    assert_null(strstr(f->out, "RCPT TO:<other@y.test>"));
    m.version = 99;
    assert_int_equal(mw_smtp_send(s, &m, NULL), MW_EINVAL);
    mw_smtp_free(s);
    free(f);
}

static void crlf_address_refused_before_sending(void **state)
{
    (void)state;
    const char *bad[] = {"b@y.test\r\nRCPT TO:<e@vil>", "b@y.test\n", "b\r@y", "a<b>@y", "b y@z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fake *f = malloc(sizeof *f);
        mw_smtp *s = open_fake(f, GREET TX_OK, 4096);
        size_t before = f->olen;
        mw_smtp_msg m = MW_SMTP_MSG_INIT;
        m.data = "Subject: x\n\nhi\n";
        m.len = strlen(m.data);
        m.originator = "a@x.test";
        const char *rc_[] = {"ok@y.test", bad[i]};
        m.recipients = rc_;
        m.nrecipients = 2;
        assert_int_equal(mw_smtp_send(s, &m, NULL), MW_EINVAL);
        assert_int_equal(f->olen, before); /* not one byte of MAIL */
        /* The same in the originator. */
        m.originator = bad[i];
        m.nrecipients = 1;
        assert_int_equal(mw_smtp_send(s, &m, NULL), MW_EINVAL);
        assert_int_equal(f->olen, before);
        mw_smtp_free(s);
        free(f);
    }
    /* ... and in the EHLO name and AUTH identity, before connecting. */
    mw_smtp_opts o = MW_SMTP_OPTS_INIT;
    mw_smtp *s = NULL;
    mw_error err = {0};
    o.client = "a\r\nMAIL FROM:<x>";
    assert_int_equal(mw_smtp_open(&s, &o, &err), MW_EINVAL);
    o.client = NULL;
    o.user = "u\nv";
    o.password = "p";
    assert_int_equal(mw_smtp_open(&s, &o, &err), MW_EINVAL);
    assert_null(s);
}

static void addresses(void **state)
{
    (void)state;
    struct {
        const char *in;
        const char *want[4];
    } cases[] = {
        {"a@b", {"a@b"}},
        {"A <a@b>, \"B, Jr.\" <b@c>", {"a@b", "b@c"}},
        {"group: x@y, (c) z@w;, last@q", {"x@y", "z@w", "last@q"}},
        {"<@route,@r2:real@dom>", {"real@dom"}},
        {"a@b (comment, with comma)", {"a@b"}},
        {"\"quoted local\"@dom", {"\"quoted local\"@dom"}},
        {"undisclosed-recipients:;", {NULL}},
        {"", {NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char **l = NULL;
        size_t n = 0;
        mw_error err = {0};
        assert_int_equal(mwi_smtp_parse_addresses(cases[i].in, strlen(cases[i].in), &l, &n, &err),
                         0);
        size_t k = 0;
        while (k < 4 && cases[i].want[k])
            k++;
        if (n != k) fail_msg("case %zu: %zu addresses, want %zu", i, n, k);
        for (size_t j = 0; j < n; j++) {
            assert_string_equal(l[j], cases[i].want[j]);
            free(l[j]);
        }
        free(l);
    }
}

/* mwi_smtp_parse_addresses takes a bare addr-spec without the list
 * parser: on random values near that shape (atext, dots, '@', 8-bit,
 * and octets that are not atext) it must give what the list parser
 * gives. */
static void addresses_plain_as_parser(void **state)
{
    (void)state;
    static const char alphabet[] = "ab.@@-+Z9\xc3\xa9 ,<>\"()[]:;\t";
    unsigned seed = 4242;
    char v[40];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(rand_r(&seed) % 16);
        for (size_t i = 0; i < n; i++) {
            int r = rand_r(&seed);
            v[i] = r % 4 ? alphabet[(r >> 8) % 8] : alphabet[(r >> 8) % (sizeof alphabet - 1)];
        }
        v[n] = '\0';
        char **l = NULL;
        size_t nl = 0;
        mw_error err = {0};
        int rc = mwi_smtp_parse_addresses(v, n, &l, &nl, &err);
        mw_mime_addrlist *ml = NULL;
        int mrc = mw_mime_addrlist_parse(&ml, v, n, &err);
        size_t want = 0;
        for (size_t j = 0; !mrc && j < mw_mime_addrlist_count(ml); j++) {
            const char *a = mw_mime_addrlist_at(ml, j)->address;
            /* As the envelope takes them: white space around dropped. */
            size_t al = a ? strlen(a) : 0;
            while (al > 0 && (*a == ' ' || *a == '\t')) {
                a++;
                al--;
            }
            while (al > 0 && (a[al - 1] == ' ' || a[al - 1] == '\t'))
                al--;
            if (al == 0) continue;
            if (rc || want >= nl || strlen(l[want]) != al || memcmp(l[want], a, al) != 0)
                fail_msg("round %d \"%s\": address %zu is \"%s\", the parser's \"%.*s\"", round, v,
                         want, !rc && want < nl ? l[want] : "(none)", (int)al, a);
            want++;
        }
        if (!rc && !mrc && nl != want)
            fail_msg("round %d \"%s\": %zu addresses, want %zu", round, v, nl, want);
        for (size_t j = 0; j < nl; j++)
            free(l[j]);
        free(l);
        mw_mime_addrlist_free(ml);
    }
}

static void originator_rules(void **state)
{
    (void)state;
    mw_smtp_env env;
    mw_error err = {0};
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    const char *h1 = "From: a@x, b@x\r\nSender: s@x\r\nTo: t@y\r\n\r\n";
    /* Several From mailboxes: the Sender is the originator. */
    assert_int_equal(mwi_smtp_env_build(&env, &m, h1, strlen(h1), "host", &err), 0);
    assert_string_equal(env.originator, "s@x");
    mwi_smtp_env_free(&env);
    /* Several From and no Sender: an error naming the problem. */
    const char *h2 = "From: a@x, b@x\r\nTo: t@y\r\n\r\n";
    assert_int_equal(mwi_smtp_env_build(&env, &m, h2, strlen(h2), "host", &err), MW_EFORMAT);
    assert_non_null(strstr(err.message, "too many mailboxes in From"));
    /* No From and no originator. */
    const char *h3 = "To: t@y\r\n\r\n";
    assert_int_equal(mwi_smtp_env_build(&env, &m, h3, strlen(h3), "host", &err), MW_EFORMAT);
    /* The null reverse-path. */
    m.originator = "";
    assert_int_equal(mwi_smtp_env_build(&env, &m, h3, strlen(h3), "host", &err), 0);
    assert_string_equal(env.originator, "");
    mwi_smtp_env_free(&env);
    /* An originator other than From: Sender added. */
    m.originator = "bounce@x";
    const char *h4 = "From: a@x\r\nTo: t@y\r\nDate: d\r\nMessage-ID: <m@x>\r\n\r\n";
    assert_int_equal(mwi_smtp_env_build(&env, &m, h4, strlen(h4), "host", &err), 0);
    assert_non_null(strstr(env.header.data, "\r\nSender: <bounce@x>\r\n"));
    assert_null(strstr(env.header.data, "\r\nDate: d\r\nDate:"));
    mwi_smtp_env_free(&env);
    /* Resent-: the envelope comes from the Resent- fields only. */
    m.originator = NULL;
    const char *h5 = "From: a@x\r\nTo: t@y\r\nResent-From: r@x\r\nResent-To: rt@y\r\n"
                     "Resent-Bcc: rb@y\r\n\r\n";
    assert_int_equal(mwi_smtp_env_build(&env, &m, h5, strlen(h5), "host", &err), 0);
    assert_string_equal(env.originator, "r@x");
    assert_int_equal(env.nrcpt, 2);
    assert_string_equal(env.rcpt[0], "rt@y");
    assert_string_equal(env.rcpt[1], "rb@y");
    assert_null(strstr(env.header.data, "Resent-Bcc"));
    assert_non_null(strstr(env.header.data, "Resent-Date: "));
    assert_non_null(strstr(env.header.data, "Resent-Message-ID: <"));
    mwi_smtp_env_free(&env);
    /* Header injection through an extra header is refused. */
    const char *extra[] = {"X-A: b\r\nBcc: e@vil"};
    m.headers = extra;
    m.nheaders = 1;
    assert_int_equal(mwi_smtp_env_build(&env, &m, h5, strlen(h5), "host", &err), MW_EINVAL);
}

typedef struct pol {
    int calls, code, answer;
    char reason[128];
} pol;

static int policy_cb(int code, const char *reason, void *ud)
{
    pol *p = ud;
    p->calls++;
    p->code = code;
    snprintf(p->reason, sizeof p->reason, "%s", reason);
    return p->answer;
}

static int open_policy(fake *f, const char *replies, pol *p, mw_smtp **out)
{
    memset(f, 0, sizeof *f);
    f->replies = replies;
    f->rlen = strlen(replies);
    f->step = 4096;
    mw_stream *st;
    mw_error err = {0};
    assert_int_equal(mw_stream_callbacks(&st, &fake_ops, f, &err), 0);
    mw_smtp_opts o = MW_SMTP_OPTS_INIT;
    o.tls = MW_TLS_STARTTLS;
    o.tlspolicy = policy_cb;
    o.tlspolicy_userdata = p;
    o.stream = st;
    return mw_smtp_open(out, &o, &err);
}

/* Tcllib's -tlspolicy: asked when STARTTLS is missing or refused; only its
 * explicit "insecure" answer lets the session go on in plain text. */
static void tlspolicy(void **state)
{
    (void)state;
    fake *f = malloc(sizeof *f);
    mw_smtp *s = NULL;
    pol p = {0, -1, MW_SMTP_TLSPOLICY_INSECURE, ""};
    assert_int_equal(open_policy(f, "220 x\r\n250 x\r\n", &p, &s), 0);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.code, 0);
    assert_false(mw_smtp_is_tls(s));
    mw_smtp_free(s);

    pol q = {0, -1, 0, ""};
    assert_int_equal(open_policy(f, "220 x\r\n250 x\r\n", &q, &s), MW_ETLS);
    assert_int_equal(q.calls, 1);
    assert_null(s);

    pol r = {0, -1, MW_SMTP_TLSPOLICY_INSECURE, ""};
    assert_int_equal(
        open_policy(f, "220 x\r\n250-x\r\n250 STARTTLS\r\n454 4.7.0 no TLS now\r\n", &r, &s), 0);
    assert_int_equal(r.code, 454);
    assert_non_null(strstr(r.reason, "no TLS now"));
    f->out[f->olen] = '\0';
    assert_non_null(strstr(f->out, "STARTTLS\r\n"));
    mw_smtp_free(s);

    pol t = {0, -1, 0, ""};
    assert_int_equal(open_policy(f, "220 x\r\n250-x\r\n250 STARTTLS\r\n454 4.7.0 no\r\n", &t, &s),
                     MW_ETLS);
    free(f);
}

static mw_smtp *open_auth(fake *f, const char *replies, const char *user, const char *pw,
                          const char *token, int no_ir, int *rc_out)
{
    memset(f, 0, sizeof *f);
    f->replies = replies;
    f->rlen = strlen(replies);
    f->step = 4096;
    mw_stream *st;
    mw_error err = {0};
    assert_int_equal(mw_stream_callbacks(&st, &fake_ops, f, &err), 0);
    mw_smtp_opts o = MW_SMTP_OPTS_INIT;
    o.tls = MW_TLS_NONE;
    o.allow_plaintext = 1;
    o.user = user;
    o.password = pw;
    o.token = token;
    o.sasl_ir = !no_ir;
    o.stream = st;
    mw_smtp *s = NULL;
    *rc_out = mw_smtp_open(&s, &o, &err);
    f->out[f->olen] = '\0';
    return s;
}

/* XOAUTH2 with a token: one initial response (user=..^Aauth=Bearer ..^A^A);
 * without the initial response the same message answers the empty 334. */
static void auth_token_and_initial_response(void **state)
{
    (void)state;
    fake *f = malloc(sizeof *f);
    int rc;
    mw_smtp *s = open_auth(f, "220 x\r\n250-x\r\n250 AUTH XOAUTH2 PLAIN\r\n235 ok\r\n", "u@x", NULL,
                           "tok", 0, &rc);
    assert_int_equal(rc, 0);
    /* base64("user=u@x\1auth=Bearer tok\1\1") */
    assert_non_null(strstr(f->out, "AUTH XOAUTH2 dXNlcj11QHgBYXV0aD1CZWFyZXIgdG9rAQE=\r\n"));
    assert_string_equal(mw_smtp_auth_mech(s), "XOAUTH2");
    mw_smtp_free(s);

    s = open_auth(f, "220 x\r\n250-x\r\n250 AUTH PLAIN\r\n334 \r\n235 ok\r\n", "u", "p", NULL, 1,
                  &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(f->out, "AUTH PLAIN\r\nAHUAcA==\r\n"));
    mw_smtp_free(s);

    /* A server that offers no AUTH while credentials are given: an error,
     * never a silent unauthenticated session. */
    s = open_auth(f, "220 x\r\n250 x\r\n", "u", "p", NULL, 0, &rc);
    assert_int_equal(rc, MW_EUNSUPPORTED);
    assert_null(s);
    free(f);
}

/* ---- mw_smtp_send_batch ---- */

typedef struct bt {
    int n;         /* messages next() gives */
    int fail_at;   /* next() returns MW_EIO at this index (-1: never) */
    int asked;     /* next() calls */
    int done_n;    /* done() calls */
    size_t idx[8]; /* done()'s indexes, in call order */
    int rc[8];     /* done()'s rc */
    char text[8][32];
} bt;

static int bt_next(size_t index, mw_smtp_msg *m, void *ud)
{
    bt *b = ud;
    b->asked++;
    if ((int)index == b->fail_at) return MW_EIO;
    if ((int)index >= b->n) return 0;
    static const char *const rcpt[] = {"b@y.test"};
    m->data = "Subject: x\n\nhi\n";
    m->len = strlen(m->data);
    m->originator = "a@x.test";
    m->recipients = rcpt;
    m->nrecipients = 1;
    m->atleastone = 1;
    return 1;
}

static void bt_done(size_t index, int rc, const mw_smtp_result *r, const mw_error *err, void *ud)
{
    bt *b = ud;
    assert_non_null(err);
    if (b->done_n < 8) {
        b->idx[b->done_n] = index;
        b->rc[b->done_n] = rc;
        snprintf(b->text[b->done_n], sizeof b->text[0], "%s",
                 r && r->final_text ? r->final_text : "");
    }
    b->done_n++;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

#define ENV_OK "250 ok\r\n250 ok\r\n354 go\r\n"

/* Three messages: done() once each, in order, with each one's own final
 * reply; with PIPELINING the next envelope follows the dot at once. */
static void batch_in_order_messages_pipelined(void **state)
{
    (void)state;
    fake *f = malloc(sizeof *f);
    mw_smtp *s = open_fake(f,
                           GREET ENV_OK "250 q1\r\n" ENV_OK "250 q2\r\n" ENV_OK "250 q3\r\n"
                                        "221 bye\r\n",
                           4096);
    bt b = {.n = 3, .fail_at = -1};
    assert_int_equal(mw_smtp_send_batch(s, bt_next, bt_done, &b), 0);
    assert_int_equal(b.done_n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b.idx[i], i);
        assert_int_equal(b.rc[i], 0);
        char want[8];
        snprintf(want, sizeof want, "q%d", i + 1);
        assert_string_equal(b.text[i], want);
    }
    assert_int_equal(b.asked, 4); /* the fourth said "no more" */
    assert_int_equal(mw_smtp_quit(s), 0);
    f->out[f->olen] = '\0';
    assert_int_equal(count(f->out, "MAIL FROM:"), 3);
    assert_int_equal(count(f->out, "\r\n.\r\nMAIL FROM:"), 2);
    assert_null(strstr(f->out, "RSET"));
    mw_smtp_free(s);

    /* Replies one byte per read, to see when each MAIL was written: the
     * second goes out with the first dot, before "250 q1" was read; with
     * message pipelining off, only after it. */
    static const char two[] = GREET ENV_OK "250 q1\r\n" ENV_OK "250 q2\r\n221 bye\r\n";
    size_t q1_at = strlen(GREET ENV_OK), q1_end = q1_at + strlen("250 q1\r\n");
    for (int on = 1; on >= 0; on--) {
        s = open_fake(f, two, 1);
        mw_smtp_set_message_pipelining(s, on);
        bt c = {.n = 2, .fail_at = -1};
        assert_int_equal(mw_smtp_send_batch(s, bt_next, bt_done, &c), 0);
        assert_int_equal(c.done_n, 2);
        assert_string_equal(c.text[1], "q2");
        assert_int_equal(f->nmail, 2);
        if (on)
            assert_true(f->mail_rpos[1] <= q1_at);
        else
            assert_true(f->mail_rpos[1] >= q1_end);
        assert_int_equal(mw_smtp_quit(s), 0);
        mw_smtp_free(s);
    }
    free(f);
}

/* next() failing ends the batch with its code; what came before is sent
 * and reported. */
static void batch_next_failure_returned(void **state)
{
    (void)state;
    fake *f = malloc(sizeof *f);
    mw_smtp *s = open_fake(f, GREET ENV_OK "250 q1\r\n221 bye\r\n", 4096);
    bt b = {.n = 3, .fail_at = 1};
    assert_int_equal(mw_smtp_send_batch(s, bt_next, bt_done, &b), MW_EIO);
    assert_int_equal(b.done_n, 1);
    assert_int_equal(b.rc[0], 0);
    assert_int_equal(b.asked, 2);
    assert_true(mw_smtp_alive(s));
    mw_smtp_free(s);
    free(f);
}

/* 421 to the first dot, after the second envelope went out with it: the
 * first is a temporary failure, the second (and one already taken) are
 * reported unsent, nothing more is asked for, the batch returns the 421. */
static void batch_session_death_reports_all(void **state)
{
    (void)state;
    fake *f = malloc(sizeof *f);
    mw_smtp *s = open_fake(f, GREET ENV_OK "421 4.3.2 going away\r\n", 4096);
    bt b = {.n = 5, .fail_at = -1};
    int rc = mw_smtp_send_batch(s, bt_next, bt_done, &b);
    assert_int_equal(rc, MW_ETEMP);
    assert_int_equal(b.rc[0], MW_ETEMP);
    assert_true(b.done_n >= 2);
    for (int i = 1; i < b.done_n; i++) {
        assert_int_equal(b.idx[i], i);
        assert_int_equal(b.rc[i], MW_ESTATE);
    }
    assert_int_equal(b.asked, b.done_n); /* every message taken was reported */
    assert_false(mw_smtp_alive(s));
    mw_smtp_free(s);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(callback_source_every_chunk_size),
        cmocka_unit_test(fd_source_bcc_removed),
        cmocka_unit_test(many_messages_one_connection),
        cmocka_unit_test(atleastone_default_and_delivered),
        cmocka_unit_test(crlf_address_refused_before_sending),
        cmocka_unit_test(msgid_unique_and_fork_safe),
        cmocka_unit_test(msg_version_1_accepted),
        cmocka_unit_test(addresses),
        cmocka_unit_test(originator_rules),
        cmocka_unit_test(tlspolicy),
        cmocka_unit_test(auth_token_and_initial_response),
        cmocka_unit_test(batch_in_order_messages_pipelined),
        cmocka_unit_test(batch_next_failure_returned),
        cmocka_unit_test(batch_session_death_reports_all),
        cmocka_unit_test(addresses_plain_as_parser),
        cmocka_unit_test(starttls_handshake_within_open_timeout),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* fetch_and_send — the example program of mailwire(3).
 *
 * It builds a small MIME message, sends it to USER@DOMAIN through an SMTP
 * submission server (STARTTLS and AUTH), waits until the message shows up
 * in USER's POP3 mailbox (STLS), retrieves it, checks its subject and text,
 * deletes it and quits.
 *
 *     MAILWIRE_PASSWORD=secret \
 *       fetch_and_send HOST SMTP_PORT POP3_PORT CAFILE USER DOMAIN
 *
 * CAFILE is the CA that signed the servers' certificates ("-" for the
 * system store).  The password comes from the environment rather than the
 * command line, where other users could see it in ps(1).  Exit status 0
 * when the message went round, 1 otherwise; Ctrl-C cancels cleanly.
 *
 * Only public headers are used: build with
 *     cc fetch_and_send.c $(pkg-config --cflags --libs mailwire) */
#define _POSIX_C_SOURCE 200809L /* sigaction, nanosleep */

#include <mailwire/error.h>
#include <mailwire/mime.h>
#include <mailwire/net.h>
#include <mailwire/pop3.h>
#include <mailwire/smtp.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h> /* getpid */

#define MAX_MESSAGE (1024 * 1024) /* what we accept to hold in memory */

static mw_cancel *cancel_token;

/* mw_cancel_request() is async-signal-safe: every blocking call watching the
 * token returns MW_ECANCELED soon after. */
static void on_sigint(int sig)
{
    (void)sig;
    mw_cancel_request(cancel_token);
}

static void report(const char *what, int rc, const mw_error *err)
{
    fprintf(stderr, "fetch_and_send: %s failed: %s (%s): %s\n", what, mw_strerror(rc),
            mw_error_category(rc), err && err->message[0] ? err->message : "");
    if (err && err->command[0]) fprintf(stderr, "  command: %s\n", err->command);
    if (err && err->reply[0]) fprintf(stderr, "  server said: %s\n", err->reply);
}

/* ---- 1. Build the message --------------------------------------------- */

static int build_message(char **out, size_t *len, const char *from, const char *to,
                         const char *subject_utf8, const char *text, mw_error *err)
{
    mw_mime_part *root = NULL;
    char *subject = NULL;
    int rc = mw_mime_part_new(&root, "text/plain", err);
    if (!rc) rc = mw_mime_part_set_param(root, "charset", "utf-8", err);
    if (!rc) rc = mw_mime_part_header(root, "From", from, MW_MIME_HDR_SET, err);
    if (!rc) rc = mw_mime_part_header(root, "To", to, MW_MIME_HDR_SET, err);
    /* Non-ASCII header text must become RFC 2047 encoded words first. */
    if (!rc) rc = mw_mime_encode_text(&subject, subject_utf8, NULL);
    if (!rc) rc = mw_mime_part_header(root, "Subject", subject, MW_MIME_HDR_SET, err);
    if (!rc) rc = mw_mime_part_set_body(root, text, strlen(text), err);
    /* The writer adds MIME-Version, Date and Message-ID and picks the
     * transfer encoding (base64 here: 8-bit UTF-8 text, as Tcllib does). */
    if (!rc) rc = mw_mime_part_to_buffer(root, out, len, err);
    free(subject);
    mw_mime_part_free(root);
    return rc;
}

/* ---- 2. Send it ----------------------------------------------------------- */

static int send_message(const char *host, unsigned port, const mw_tls_opts *tls,
                        const mw_net_opts *net, const char *user, const char *password,
                        const char *msg, size_t len)
{
    const char *servers[] = {host};
    unsigned ports[] = {port};
    mw_smtp_opts so = MW_SMTP_OPTS_INIT;
    so.servers = servers;
    so.nservers = 1;
    so.ports = ports;
    so.nports = 1;
    so.tls = MW_TLS_STARTTLS; /* the default: no STARTTLS is an error */
    so.tls_opts = tls;
    so.net = net;
    so.user = user;
    so.password = password;

    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    m.data = msg; /* envelope from the From and To fields */
    m.len = len;

    mw_smtp_result *r = NULL;
    mw_error err;
    mw_error_clear(&err);
    int rc = mw_smtp_sendmessage(&so, &m, 60000, &r, &err);
    if (rc) {
        report("SMTP send", rc, &err);
        if (r)
            for (size_t i = 0; i < r->nrcpt; i++)
                if (!r->rcpt[i].accepted)
                    fprintf(stderr, "  %s: %d %s\n", r->rcpt[i].address, r->rcpt[i].code,
                            r->rcpt[i].text ? r->rcpt[i].text : "");
    } else {
        printf("sent via %s:%u: %d %s\n", r->server, r->port, r->final_code,
               r->final_text ? r->final_text : "");
    }
    mw_smtp_result_free(r);
    return rc;
}

/* ---- 3. Find it over POP3, check it, delete it ----------------------------- */

struct membuf {
    char *data;
    size_t len, cap, max;
};

/* A retrieved message arrives in chunks, already dot-unstuffed.  A sink
 * returning non-zero stops the delivery; that value is returned by RETR. */
static int sink_to_memory(const char *data, size_t len, void *userdata)
{
    struct membuf *b = userdata;
    if (len > b->max - b->len) return MW_ETOOBIG; /* never grow without bound */
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return MW_ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

/* The parser hands over each leaf's body decoded (here from
 * quoted-printable), in chunks. */
static int on_body(mw_mime_part *part, const char *data, size_t len, void *userdata)
{
    (void)part;
    return sink_to_memory(data, len, userdata);
}

/* 1 when message `msg` has the subject we sent (decoded from RFC 2047). */
static int subject_matches(mw_pop3 *p, uint64_t msg, const char *want, int *rc)
{
    mw_mime_headers *h = NULL;
    int found = 0;
    *rc = mw_pop3_retrieve_headers(p, msg, &h); /* TOP msg 0 */
    if (*rc) return 0;
    const char *raw = mw_mime_headers_get(h, "Subject", 0);
    char *subject = NULL;
    size_t n = 0;
    if (raw && (*rc = mw_mime_decode_field(&subject, &n, raw, strlen(raw), NULL)) == 0)
        found = strcmp(subject, want) == 0;
    free(subject);
    mw_mime_headers_free(h);
    return found;
}

/* Returns 1 when the message was found, checked and deleted; 0 when it is
 * not there yet; -1 on failure. */
static int fetch_and_check(const char *host, const mw_pop3_opts *po, const char *subject,
                           const char *text)
{
    mw_pop3 *p = NULL;
    mw_error oerr;
    int rc = mw_pop3_open(&p, host, po, &oerr); /* connect, STLS, CAPA, login, STAT */
    if (rc) {
        report("POP3 login", rc, &oerr);
        return -1;
    }
    mw_pop3_uid *uids = NULL;
    size_t n = 0;
    int result = 0;
    if ((rc = mw_pop3_uidl(p, &uids, &n)) != 0) {
        report("UIDL", rc, mw_pop3_error(p));
        result = -1;
    }
    for (size_t i = 0; result == 0 && i < n; i++) {
        if (!subject_matches(p, uids[i].msg, subject, &rc)) {
            if (rc) {
                report("TOP", rc, mw_pop3_error(p));
                result = -1;
            }
            continue;
        }
        struct membuf raw = {NULL, 0, 0, MAX_MESSAGE}, body = {NULL, 0, 0, MAX_MESSAGE};
        mw_pop3_retr_info info;
        rc = mw_pop3_retr(p, uids[i].msg, sink_to_memory, &raw, &info);
        if (rc == 0 && !info.complete) rc = MW_EPROTO;
        if (rc) {
            report("RETR", rc, mw_pop3_error(p));
            result = -1;
        } else {
            mw_mime_parse_opts mo = MW_MIME_PARSE_OPTS_INIT;
            mo.keep_bodies = 0; /* we only want the decoded text */
            mo.on_body = on_body;
            mo.userdata = &body;
            mw_mime_part *root = NULL;
            mw_error err;
            mw_error_clear(&err);
            rc = mw_mime_parse(&root, raw.data, raw.len, &mo, &err);
            if (rc) {
                report("MIME parse", rc, &err);
                result = -1;
            } else if (strcmp(mw_mime_part_type(root), "text/plain") != 0 || !body.data ||
                       strstr(body.data, text) == NULL) {
                fprintf(stderr, "fetch_and_send: message %llu has the subject but not the text\n",
                        (unsigned long long)uids[i].msg);
                result = -1;
            } else {
                printf("fetched message %llu (UID %s, %llu octets, %s, %s)\n",
                       (unsigned long long)uids[i].msg, uids[i].uid,
                       (unsigned long long)info.octets, mw_mime_part_type(root),
                       mw_mime_encoding_name(mw_mime_part_encoding(root)));
                /* DELE only marks it; QUIT below makes the server remove it. */
                if ((rc = mw_pop3_dele(p, uids[i].msg)) != 0) {
                    report("DELE", rc, mw_pop3_error(p));
                    result = -1;
                } else {
                    result = 1;
                }
            }
            mw_mime_part_free(root);
        }
        free(raw.data);
        free(body.data);
    }
    mw_pop3_uidl_free(uids);
    int confirmed = 0;
    rc = mw_pop3_quit(p, &confirmed);
    if (result == 1 && (rc || !confirmed)) {
        report("QUIT (deletion not confirmed)", rc ? rc : MW_ESERVER, mw_pop3_error(p));
        result = -1;
    }
    mw_pop3_free(p);
    return result;
}

static int parse_port(const char *s, unsigned *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > 65535) return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned smtp_port, pop3_port;
    if (argc != 7 || parse_port(argv[2], &smtp_port) || parse_port(argv[3], &pop3_port)) {
        fprintf(stderr,
                "usage: MAILWIRE_PASSWORD=... %s HOST SMTP_PORT POP3_PORT CAFILE|- USER "
                "DOMAIN\n",
                argv[0]);
        return 2;
    }
    const char *host = argv[1], *cafile = argv[4], *user = argv[5], *domain = argv[6];
    const char *password = getenv("MAILWIRE_PASSWORD");
    if (!password || !*password) {
        fprintf(stderr, "fetch_and_send: set MAILWIRE_PASSWORD\n");
        return 2;
    }

    if (mw_cancel_new(&cancel_token, NULL) != 0) return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);

    /* One set of TLS and network options serves both protocols. */
    mw_tls_opts tls = MW_TLS_OPTS_INIT; /* certificates and host names verified */
    if (strcmp(cafile, "-") != 0) tls.ca_file = cafile;
    mw_net_opts net = MW_NET_OPTS_INIT;
    net.io_timeout_ms = 20000;
    net.cancel = cancel_token;

    /* A subject nobody else sends, so that we find our own message. */
    char address[320], subject[160], text[200];
    snprintf(address, sizeof address, "%s@%s", user, domain);
    snprintf(subject, sizeof subject, "mailwire example \xe2\x80\x94 %ld.%ld", (long)time(NULL),
             (long)getpid());
    snprintf(text, sizeof text, "Hello from mailwire %s: caf\xc3\xa9 \xe2\x82\xac.", mw_version());

    char *msg = NULL;
    size_t len = 0;
    mw_error err;
    mw_error_clear(&err);
    int rc = build_message(&msg, &len, address, address, subject, text, &err);
    if (rc) {
        report("building the message", rc, &err);
        sa.sa_handler = SIG_DFL;
        sigaction(SIGINT, &sa, NULL);
        mw_cancel_free(cancel_token);
        return 1;
    }
    printf("built a %zu-octet message, subject \"%s\"\n", len, subject);

    rc = send_message(host, smtp_port, &tls, &net, user, password, msg, len);
    free(msg);
    if (rc) {
        sa.sa_handler = SIG_DFL;
        sigaction(SIGINT, &sa, NULL);
        mw_cancel_free(cancel_token);
        return 1;
    }

    mw_pop3_opts po = MW_POP3_OPTS_INIT;
    po.port = pop3_port;
    po.tls = MW_TLS_STARTTLS; /* not offered or refused: MW_ETLS, never plain text */
    po.tls_opts = &tls;
    po.net = &net;
    po.user = user;
    po.password = password;

    /* Delivery takes a moment: look again for up to 30 seconds. */
    int64_t deadline = mw_now_ms() + 30000;
    int found = 0;
    while (found == 0 && mw_now_ms() < deadline && !mw_cancel_requested(cancel_token)) {
        found = fetch_and_check(host, &po, subject, text);
        if (found == 0) {
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (found == 0) fprintf(stderr, "fetch_and_send: the message did not arrive in 30 s\n");
    sa.sa_handler = SIG_DFL; /* no handler may see the token once it is freed */
    sigaction(SIGINT, &sa, NULL);
    mw_cancel_free(cancel_token);
    return found == 1 ? 0 : 1;
}

/* fetch_and_reply — a POP3 autoresponder (mailwire(3)).
 *
 * Logs in to USER's POP3 mailbox (STLS required), lists the messages and
 * retrieves each one, streaming its header through the MIME header parser
 * (the body is read and dropped, never held).  Each message gets a reply
 * to its Reply-To or From address through SMTP submission (STARTTLS and
 * AUTH), with "Re: <subject>", In-Reply-To, References and
 * "Auto-Submitted: auto-replied".  Messages that are themselves automatic
 * (Auto-Submitted, Precedence bulk/list/junk, from MAILER-DAEMON or a null
 * Return-Path) get no reply and stay in the mailbox.  A message is deleted
 * only once its reply was accepted, and the deletions take effect only at
 * a confirmed QUIT: the worst an interruption costs is a second reply.
 * Nothing is remembered on disk.
 *
 *     MAILWIRE_PASSWORD=secret \
 *       fetch_and_reply HOST SMTP_PORT POP3_PORT CAFILE|- USER DOMAIN
 *
 * USER logs in to both servers; replies come from USER@DOMAIN.  Exit status
 * 0 when every message was answered or skipped, 1 otherwise.
 *
 * Only public headers are used: build with
 *     cc fetch_and_reply.c $(pkg-config --cflags --libs mailwire) */
#define _POSIX_C_SOURCE 200809L /* sigaction, strncasecmp */

#include <mailwire/error.h>
#include <mailwire/mime.h>
#include <mailwire/net.h>
#include <mailwire/pop3.h>
#include <mailwire/smtp.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static mw_cancel *cancel_token; /* the signal flag: Ctrl-C cancels cleanly */

static void on_sigint(int sig)
{
    (void)sig;
    mw_cancel_request(cancel_token); /* async-signal-safe */
}

static void report(const char *what, int rc, const mw_error *err)
{
    fprintf(stderr, "fetch_and_reply: %s: %s (%s)\n", what,
            err && err->message[0] ? err->message : mw_strerror(rc), mw_error_category(rc));
    if (err && err->reply[0]) fprintf(stderr, "  server said: %s\n", err->reply);
}

/* RETR's sink: bytes go to the header parser until the empty line that
 * ends the header; the body after it is dropped. */
struct header_sink {
    mw_mime_headers *h;
    int ended;
};

static int feed_header(const char *data, size_t len, void *userdata)
{
    struct header_sink *s = userdata;
    if (s->ended) return 0;
    int rc = mw_mime_headers_feed(s->h, data, len, NULL);
    if (rc < 0) return rc; /* over a limit: the detail is in mw_mime_headers_error */
    s->ended = rc == 1;
    return 0;
}

/* 1 when the first word of field `name` is one of `words` (" a b c "). */
static int first_word_in(const mw_mime_headers *h, const char *name, const char *words)
{
    const char *v = mw_mime_headers_get(h, name, 0);
    char word[16];
    size_t n = v ? strcspn(v, " \t;(") : 0;
    if (n == 0 || n > sizeof word - 3) return 0;
    snprintf(word, sizeof word, " %.*s ", (int)n, v);
    for (char *c = word; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return strstr(words, word) != NULL;
}

/* Why a message must get no automatic reply (RFC 3834 §2), or NULL. */
static const char *no_reply_reason(const mw_mime_headers *h, const char *to)
{
    if (mw_mime_headers_get(h, "Auto-Submitted", 0) && !first_word_in(h, "Auto-Submitted", " no "))
        return "Auto-Submitted";
    if (first_word_in(h, "Precedence", " bulk list junk ")) return "Precedence";
    const char *rp = mw_mime_headers_get(h, "Return-Path", 0);
    if (rp && strcmp(rp, "<>") == 0) return "null Return-Path";
    if (strncasecmp(to, "mailer-daemon@", 14) == 0) return "from MAILER-DAEMON";
    return NULL;
}

/* The first valid address of Reply-To, else of From (RFC 5322 §3.6.2). */
static int reply_address(const mw_mime_headers *h, char *out, size_t size)
{
    const char *v = mw_mime_headers_get(h, "Reply-To", 0);
    if (!v) v = mw_mime_headers_get(h, "From", 0);
    mw_mime_addrlist *l = NULL;
    if (!v || mw_mime_addrlist_parse(&l, v, strlen(v), NULL) != 0) return -1;
    int found = -1;
    for (size_t i = 0; found && i < mw_mime_addrlist_count(l); i++) {
        const mw_mime_address *a = mw_mime_addrlist_at(l, i);
        if (!a->error && a->address && strlen(a->address) < size)
            found = snprintf(out, size, "%s", a->address) < 0;
    }
    mw_mime_addrlist_free(l);
    return found;
}

/* The reply: "Re: " + the decoded subject, threaded to the original
 * (RFC 5322 §3.6.4) and marked automatic (RFC 3834 §5). */
static int build_reply(char **out, size_t *len, const mw_mime_headers *h, const char *from,
                       const char *to, mw_error *err)
{
    const char *raw = mw_mime_headers_get(h, "Subject", 0);
    char *decoded = NULL, *subject = NULL, *line = NULL;
    size_t n = 0;
    int rc = mw_mime_decode_field(&decoded, &n, raw ? raw : "", raw ? strlen(raw) : 0, NULL);
    for (size_t i = 0; !rc && i < n; i++) /* encoded words may hide CR, LF or NUL */
        if ((unsigned char)decoded[i] < 0x20) decoded[i] = ' ';
    if (!rc && !(line = malloc(n + 5))) rc = MW_ENOMEM;
    if (!rc) {
        snprintf(line, n + 5, "%s%s", strncasecmp(decoded, "Re:", 3) ? "Re: " : "", decoded);
        rc = mw_mime_encode_text(&subject, line, NULL);
    }
    const char *id = mw_mime_headers_get(h, "Message-ID", 0);
    const char *refs = mw_mime_headers_get(h, "References", 0);
    size_t rlen = (refs ? strlen(refs) + 1 : 0) + (id ? strlen(id) : 0) + 1;
    char *references = malloc(rlen);
    if (!references)
        rc = MW_ENOMEM;
    else
        snprintf(references, rlen, "%s%s%s", refs ? refs : "", refs ? " " : "", id ? id : "");

    mw_mime_part *reply = NULL;
    if (!rc) rc = mw_mime_part_new(&reply, "text/plain", err);
    if (!rc) rc = mw_mime_part_set_param(reply, "charset", "utf-8", err);
    if (!rc) rc = mw_mime_part_header(reply, "From", from, MW_MIME_HDR_SET, err);
    if (!rc) rc = mw_mime_part_header(reply, "To", to, MW_MIME_HDR_SET, err);
    if (!rc) rc = mw_mime_part_header(reply, "Subject", subject, MW_MIME_HDR_SET, err);
    if (!rc && id) rc = mw_mime_part_header(reply, "In-Reply-To", id, MW_MIME_HDR_SET, err);
    if (!rc && id) rc = mw_mime_part_header(reply, "References", references, MW_MIME_HDR_SET, err);
    if (!rc)
        rc = mw_mime_part_header(reply, "Auto-Submitted", "auto-replied", MW_MIME_HDR_SET, err);
    static const char text[] = "Thank you for your message.  This is an automatic reply:\n"
                               "it has been received and will be read soon.\n";
    if (!rc) rc = mw_mime_part_set_body(reply, text, sizeof text - 1, err);
    if (!rc) rc = mw_mime_part_to_buffer(reply, out, len, err);
    mw_mime_part_free(reply);
    free(decoded);
    free(line);
    free(subject);
    free(references);
    return rc;
}

/* Sends one reply over the SMTP session, opened at the first reply.  The
 * reverse-path is null, so that no automatic answer comes back (RFC 3834
 * §3.3).  Returns 0 only when the server took it for the recipient (its
 * only one: a rejected RCPT fails the send). */
static int send_reply(mw_smtp **s, const mw_smtp_opts *so, const char *msg, size_t len,
                      const char *to)
{
    mw_error err;
    mw_error_clear(&err);
    int rc = *s ? 0 : mw_smtp_open(s, so, &err);
    if (rc) {
        report("SMTP login", rc, &err);
        return rc;
    }
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    m.data = msg;
    m.len = len;
    m.originator = "";
    m.recipients = &to;
    m.nrecipients = 1;
    mw_smtp_result *r = NULL;
    rc = mw_smtp_send(*s, &m, &r);
    if (rc) report("sending the reply", rc, mw_smtp_error(*s));
    mw_smtp_result_free(r);
    return rc;
}

/* Answers every message of the mailbox.  Returns 0 or 1 (exit status). */
static int respond(const char *host, const mw_pop3_opts *po, const mw_smtp_opts *so, const char *me)
{
    mw_pop3 *p = NULL;
    mw_error oerr;
    int rc = mw_pop3_open(&p, host, po, &oerr); /* connect, STLS, CAPA, login, STAT */
    if (rc) {
        report("POP3 login", rc, &oerr);
        return 1;
    }
    mw_pop3_uid *uids = NULL;
    size_t n = 0;
    int failed = 0, deleted = 0, stop = 0;
    if ((rc = mw_pop3_uidl(p, &uids, &n)) != 0) {
        report("UIDL", rc, mw_pop3_error(p));
        failed = 1;
    }
    mw_smtp *smtp = NULL;
    for (size_t i = 0; i < n && !stop && !mw_cancel_requested(cancel_token); i++) {
        struct header_sink hs = {NULL, 0};
        char to[320];
        if ((rc = mw_mime_headers_new(&hs.h, NULL, NULL)) != 0) {
            failed = 1;
            break;
        }
        rc = mw_pop3_retr(p, uids[i].msg, feed_header, &hs, NULL);
        if (rc == 0 && !hs.ended) rc = mw_mime_headers_finish(hs.h); /* no body */
        const char *skip = NULL;
        if (rc) {
            const mw_error *he = mw_mime_headers_error(hs.h);
            report("RETR", rc, he->code ? he : mw_pop3_error(p));
        } else if (reply_address(hs.h, to, sizeof to) != 0) {
            skip = "no sender address";
        } else if ((skip = no_reply_reason(hs.h, to)) == NULL) {
            char *reply = NULL;
            size_t len = 0;
            mw_error err;
            mw_error_clear(&err);
            rc = build_reply(&reply, &len, hs.h, me, to, &err);
            if (rc) report("building the reply", rc, &err);
            if (!rc) rc = send_reply(&smtp, so, reply, len, to);
            /* Only now may the message go: DELE marks it, QUIT applies. */
            if (!rc && (rc = mw_pop3_dele(p, uids[i].msg)) != 0)
                report("DELE", rc, mw_pop3_error(p));
            if (!rc) printf("message %s: replied to %s, deleted\n", uids[i].uid, to);
            deleted += rc == 0;
            free(reply);
            if (!smtp || !mw_smtp_alive(smtp)) stop = 1; /* cannot send any more */
        }
        if (skip) printf("message %s: no reply (%s), kept\n", uids[i].uid, skip);
        if (rc) printf("message %s: not answered (%s), kept\n", uids[i].uid, mw_strerror(rc));
        failed |= rc != 0;
        mw_mime_headers_free(hs.h);
        if (rc == MW_ESTATE) stop = 1; /* the POP3 session died on an earlier error */
    }
    if (smtp) mw_smtp_quit(smtp);
    mw_smtp_free(smtp);
    mw_pop3_uidl_free(uids);
    int confirmed = 0;
    rc = mw_pop3_quit(p, &confirmed);
    if (deleted && (rc || !confirmed)) {
        report("QUIT: deletions not confirmed", rc ? rc : MW_ESERVER, mw_pop3_error(p));
        failed = 1;
    }
    mw_pop3_free(p);
    return failed || mw_cancel_requested(cancel_token);
}

int main(int argc, char **argv)
{
    unsigned smtp_port = argc == 7 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;
    unsigned pop3_port = argc == 7 ? (unsigned)strtoul(argv[3], NULL, 10) : 0;
    const char *password = getenv("MAILWIRE_PASSWORD");
    if (argc != 7 || !smtp_port || smtp_port > 65535 || !pop3_port || pop3_port > 65535 ||
        !password) {
        fprintf(stderr, "usage: MAILWIRE_PASSWORD=... fetch_and_reply HOST SMTP_PORT "
                        "POP3_PORT CAFILE|- USER DOMAIN\n");
        return 1;
    }
    const char *host = argv[1], *user = argv[5];
    char me[320];
    snprintf(me, sizeof me, "%s@%s", user, argv[6]);

    if (mw_cancel_new(&cancel_token, NULL) != 0) return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);

    mw_tls_opts tls = MW_TLS_OPTS_INIT; /* certificates and host names verified */
    if (strcmp(argv[4], "-") != 0) tls.ca_file = argv[4];
    mw_net_opts net = MW_NET_OPTS_INIT;
    net.cancel = cancel_token; /* watched by both sessions */

    mw_pop3_opts po = MW_POP3_OPTS_INIT; /* tls: MW_TLS_STARTTLS, required */
    po.port = pop3_port;
    po.tls_opts = &tls;
    po.net = &net;
    po.user = user;
    po.password = password;

    const char *servers[] = {host};
    mw_smtp_opts so = MW_SMTP_OPTS_INIT; /* tls: MW_TLS_STARTTLS, required */
    so.servers = servers;
    so.nservers = 1;
    so.ports = &smtp_port;
    so.nports = 1;
    so.tls_opts = &tls;
    so.net = &net;
    so.user = user;
    so.password = password;

    int status = respond(host, &po, &so, me);
    sa.sa_handler = SIG_DFL; /* no handler may see the token once it is freed */
    sigaction(SIGINT, &sa, NULL);
    mw_cancel_free(cancel_token);
    return status;
}

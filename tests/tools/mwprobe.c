/* mwprobe — a small transport probe for scripted-server and interop tests.
 *
 *   mwprobe [options] HOST PORT ACTION...
 *   mwprobe [options] --command 'CMD' ACTION...
 *
 * Options:  --ca FILE  --capath DIR  --pin PIN  --servername NAME
 *           --cert FILE  --key FILE  --insecure  --tls13
 *           --connect-timeout MS  --io-timeout MS  --deadline MS
 *           --handshake-timeout MS  --family 4|6
 * The probe talks to the server over a mw_stream (mw_stream_tcp or
 * mw_stream_command, then mw_stream_tls) as the blocking sessions' drivers
 * do (src/loop/pop3_drive.c, smtp_held.c): --io-timeout is the stream's
 * io_timeout_ms, --deadline the deadline given to each read and write.
 * Lines are cut by tests/unit/lines.h (at most 8192 octets).
 * Actions, run in order:
 *   tls            wrap the connection in TLS now (implicit TLS)
 *   starttls       STARTTLS/STLS: wrap now; an error if bytes are buffered
 *                  (the machines' own check is tested in the pop3 and smtp
 *                  cases: pop3/stls-injection, smtp/starttls-injection)
 *   read           read one line and print it as "< LINE"
 *   read-until:T   read and print lines up to and including the line T
 *   read-all       read and print lines until the peer closes
 *   send:TEXT      send TEXT + CRLF (and print "> TEXT")
 *   peer           print the TLS peer: subject, issuer, verified, protocol
 *   cb:TYPE        print the channel binding of TYPE as hex
 *
 * Errors go to stderr as "mwprobe: CATEGORY: MESSAGE".  Exit codes by error
 * class: 0 ok, 2 usage, 10 network, 11 timeout, 12 tls, 13 certificate,
 * 14 protocol, 15 limit, 16 canceled, 17 unsupported, 1 anything else. */
#include "mailwire/net.h"
#include "lines.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int exit_code(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MW_ENET:
        return 10;
    case MW_ETIMEOUT:
        return 11;
    case MW_ETLS:
        return 12;
    case MW_ECERT:
        return 13;
    case MW_EPROTO:
        return 14;
    case MW_ETOOBIG:
        return 15;
    case MW_ECANCELED:
        return 16;
    case MW_EUNSUPPORTED:
        return 17;
    }
    return 1;
}

static int fail(int rc, const mw_error *err)
{
    fprintf(stderr, "mwprobe: %s: %s\n", mw_error_category(rc),
            err->message[0] ? err->message : mw_strerror(rc));
    return exit_code(rc);
}

static int usage(const char *why)
{
    fprintf(stderr, "mwprobe: usage: %s (see the comment at the top of mwprobe.c)\n", why);
    return 2;
}

static int num(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 1000000000) return -1;
    *out = v;
    return 0;
}

static void print_line(const char *line, size_t len)
{
    fputs("< ", stdout);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7F)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('\n');
}

int main(int argc, char **argv)
{
    mw_net_opts net = MW_NET_OPTS_INIT;
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    const char *command = NULL;
    long deadline = 0, v;
    net.io_timeout_ms = 10000;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *o = argv[i];
        const char *a = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(o, "--insecure"))
            tls.insecure = 1, takes = 0;
        else if (!strcmp(o, "--tls13"))
            tls.min_version = 13, takes = 0;
        else if (!a)
            return usage("option needs a value");
        else if (!strcmp(o, "--ca"))
            tls.ca_file = a;
        else if (!strcmp(o, "--capath"))
            tls.ca_dir = a;
        else if (!strcmp(o, "--pin"))
            tls.pin = a;
        else if (!strcmp(o, "--servername"))
            tls.servername = a;
        else if (!strcmp(o, "--cert"))
            tls.cert_file = a;
        else if (!strcmp(o, "--key"))
            tls.key_file = a;
        else if (!strcmp(o, "--command"))
            command = a;
        else if (num(a, &v) != 0)
            return usage("bad number");
        else if (!strcmp(o, "--connect-timeout"))
            net.connect_timeout_ms = (int)v;
        else if (!strcmp(o, "--io-timeout"))
            net.io_timeout_ms = (int)v;
        else if (!strcmp(o, "--deadline"))
            deadline = v;
        else if (!strcmp(o, "--handshake-timeout"))
            tls.handshake_timeout_ms = (int)v;
        else if (!strcmp(o, "--family"))
            net.family = (int)v;
        else
            return usage("unknown option");
        i += takes;
    }
    mw_error err = {0};
    mw_stream *s = NULL;
    int rc;
    if (command) {
        rc = mw_stream_command(&s, command, &net, &err);
    } else {
        if (argc - i < 2 || num(argv[i + 1], &v) != 0)
            return usage("mwprobe [options] HOST PORT ACTION...");
        rc = mw_stream_tcp(&s, argv[i], (unsigned)v, &net, &err);
        i += 2;
    }
    if (rc) return fail(rc, &err);
    tlines *c = malloc(sizeof *c);
    if (!c) {
        mw_stream_free(s);
        return fail(MW_ENOMEM, &err);
    }
    tl_init(c, s);
    if (deadline) c->deadline = mw_now_ms() + deadline;
    for (; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        const char *line;
        size_t len;
        fflush(stdout);
        if (!strcmp(a, "tls") || !strcmp(a, "starttls")) {
            /* Implicit TLS is STARTTLS at the very start. */
            if (tl_buffered(c)) {
                rc = MW_EPROTO;
                snprintf(err.message, sizeof err.message,
                         "%zu bytes received before the TLS handshake", tl_buffered(c));
                break;
            }
            mw_stream *t = NULL;
            rc = mw_stream_tls(&t, c->s, &tls, &err); /* owns c->s, also on failure */
            c->s = t;
        } else if (!strcmp(a, "read")) {
            if ((rc = tl_read(c, &line, &len, &err)) == 0) print_line(line, len);
        } else if (!strncmp(a, "read-until:", 11)) {
            const char *t = a + 11;
            do {
                if ((rc = tl_read(c, &line, &len, &err)) == 0) print_line(line, len);
            } while (rc == 0 && !(len == strlen(t) && !memcmp(line, t, len)));
        } else if (!strcmp(a, "read-all")) {
            while ((rc = tl_read(c, &line, &len, &err)) == 0)
                print_line(line, len);
            if (rc == MW_ENET && tl_buffered(c) == 0 && strstr(err.message, "closed"))
                rc = 0; /* the end we were waiting for */
        } else if (!strncmp(a, "send:", 5)) {
            if (strpbrk(a + 5, "\r\n")) return usage("send text with CR or LF");
            printf("> %s\n", a + 5);
            rc = tl_send(c, a + 5, &err);
        } else if (!strcmp(a, "peer")) {
            const mw_tls_peer *p = mw_stream_tls_peer(c->s);
            if (!p) {
                rc = MW_EUNSUPPORTED;
                snprintf(err.message, sizeof err.message, "not a TLS connection");
            } else {
                printf("subject: %s\nissuer: %s\nverified: %d\nprotocol: %s\ncipher: %s\n",
                       p->subject, p->issuer, p->verified, p->protocol, p->cipher);
            }
        } else if (!strncmp(a, "cb:", 3)) {
            unsigned char buf[64];
            size_t n = 0;
            rc = mw_stream_channel_binding(c->s, a + 3, buf, sizeof buf, &n);
            if (rc) snprintf(err.message, sizeof err.message, "no %s channel binding", a + 3);
            printf("%s:", a + 3);
            for (size_t k = 0; k < n; k++)
                printf("%02x", buf[k]);
            printf("\n");
        } else {
            mw_stream_free(c->s);
            free(c);
            return usage("unknown action");
        }
    }
    fflush(stdout);
    mw_stream_free(c->s);
    free(c);
    return rc ? fail(rc, &err) : 0;
}

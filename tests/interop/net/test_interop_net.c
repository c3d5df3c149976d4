/* The transport against the real servers of tests/servers/start.sh:
 * Dovecot POP3S and STLS, Postfix SMTPS and STARTTLS.  TAP output; without
 * MW_POP3S_PORT in the environment every case is reported skipped. */
#include "mailwire/net.h"
#include "lines.h"
#include "util/base64.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_tests, n_failed;

static void ok(int cond, const char *name, const char *diag)
{
    n_tests++;
    printf("%s %d - %s\n", cond ? "ok" : "not ok", n_tests, name);
    if (!cond) {
        n_failed++;
        if (diag && *diag) printf("# %s\n", diag);
    }
    fflush(stdout);
}

static unsigned env_port(const char *name)
{
    const char *v = getenv(name);
    return v ? (unsigned)strtoul(v, NULL, 10) : 0;
}

/* TLS over the connection now (implicit TLS, or after STLS / STARTTLS):
 * the stream wrapped as the blocking sessions' drivers wrap it. */
static int wrap(tlines *c, const mw_tls_opts *tls, mw_error *err)
{
    if (tl_buffered(c)) {
        snprintf(err->message, sizeof err->message, "%zu bytes before the TLS handshake",
                 tl_buffered(c));
        return MW_EPROTO;
    }
    mw_stream *t = NULL;
    int rc = mw_stream_tls(&t, c->s, tls, err); /* owns c->s, also on failure */
    c->s = t;
    return rc;
}

static void close_conn(tlines *c)
{
    if (!c) return;
    mw_stream_free(c->s);
    free(c);
}

/* Connects (TLS when implicit). */
static int open_conn(tlines **c, unsigned port, int implicit, const mw_tls_opts *tls, mw_error *err)
{
    mw_net_opts net = MW_NET_OPTS_INIT;
    net.connect_timeout_ms = 5000;
    net.io_timeout_ms = 10000;
    mw_stream *s = NULL;
    int rc = mw_stream_tcp(&s, "127.0.0.1", port, &net, err);
    if (rc) return rc;
    if (!(*c = malloc(sizeof **c))) {
        mw_stream_free(s);
        return MW_ENOMEM;
    }
    tl_init(*c, s);
    if (implicit && (rc = wrap(*c, tls, err))) {
        close_conn(*c);
        *c = NULL;
    }
    return rc;
}

static int read_line(tlines *c, char *out, size_t outlen, mw_error *err)
{
    const char *line;
    size_t len;
    int rc = tl_read(c, &line, &len, err);
    if (rc) return rc;
    if (len >= outlen) len = outlen - 1;
    memcpy(out, line, len);
    out[len] = '\0';
    return 0;
}

static int send_line(tlines *c, const char *text, mw_error *err)
{
    return tl_send(c, text, err);
}

/* "sha256:BASE64" of the SPKI of the certificate in a PEM file. */
static int spki_pin(const char *pem, char out[64])
{
    FILE *f = fopen(pem, "r");
    if (!f) return -1;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x) return -1;
    unsigned char *der = NULL, md[32];
    int l = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    unsigned mdl = 0;
    int good = l > 0 && EVP_Digest(der, (size_t)l, md, &mdl, EVP_sha256(), NULL);
    OPENSSL_free(der);
    X509_free(x);
    if (!good) return -1;
    memcpy(out, "sha256:", 7);
    mwi_base64_encode(out + 7, md, 32);
    return 0;
}

int main(void)
{
    const char *names[] = {
        "POP3S verifies with MW_CA_FILE and reads +OK",
        "POP3S without the test CA: certificate error naming CA not trusted",
        "POP3S with a wrong server name: host name mismatch",
        "POP3S with the SPKI pin of good.pem and no CA",
        "POP3S offers tls-exporter channel binding",
        "POP3 STLS wraps the plain connection, CAPA over TLS",
        "SMTPS verifies with MW_CA_FILE and reads 220",
        "submission STARTTLS wraps the plain connection, EHLO over TLS",
    };
    const int total = (int)(sizeof names / sizeof *names);
    unsigned pop3s = env_port("MW_POP3S_PORT"), pop3 = env_port("MW_POP3_PORT");
    unsigned smtps = env_port("MW_SMTPS_PORT"), smtp = env_port("MW_SMTP_PORT");
    const char *ca = getenv("MW_CA_FILE"), *certdir = getenv("MW_CERT_DIR");
    printf("1..%d\n", total);
    if (!pop3s || !pop3 || !smtps || !smtp || !ca || !certdir) {
        for (int i = 0; i < total; i++)
            printf("ok %d - %s # SKIP servers not running\n", i + 1, names[i]);
        return 0;
    }
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    tls.ca_file = ca;
    mw_error err = {0};
    tlines *c = NULL;
    char line[600];
    int rc;

    /* 1 */
    rc = open_conn(&c, pop3s, 1, &tls, &err);
    if (!rc) rc = read_line(c, line, sizeof line, &err);
    const mw_tls_peer *peer = c ? mw_stream_tls_peer(c->s) : NULL;
    ok(rc == 0 && !strncmp(line, "+OK", 3) && peer && peer->verified, names[0], err.message);
    if (peer) printf("# greeting: %s (%s, %s)\n", line, peer->protocol, peer->cipher);
    if (c) {
        send_line(c, "QUIT", &err);
        close_conn(c);
        c = NULL;
    }

    /* 2: the system store does not hold the test CA. */
    mw_tls_opts sys = MW_TLS_OPTS_INIT;
    memset(&err, 0, sizeof err);
    rc = open_conn(&c, pop3s, 1, &sys, &err);
    printf("# %s\n", err.message);
    ok(rc == MW_ECERT &&
           strstr(err.message, "unable to get local issuer certificate (CA not trusted)"),
       names[1], err.message);
    close_conn(c);
    c = NULL;

    /* 3 */
    mw_tls_opts wrong = MW_TLS_OPTS_INIT;
    wrong.ca_file = ca;
    wrong.servername = "mail.example";
    memset(&err, 0, sizeof err);
    rc = open_conn(&c, pop3s, 1, &wrong, &err);
    printf("# %s\n", err.message);
    ok(rc == MW_ECERT && strstr(err.message, "host name mismatch (certificate is for localhost"),
       names[2], err.message);
    close_conn(c);
    c = NULL;

    /* 4 */
    char pin[64] = "", good_pem[512];
    snprintf(good_pem, sizeof good_pem, "%s/good.pem", certdir);
    mw_tls_opts pinned = MW_TLS_OPTS_INIT;
    memset(&err, 0, sizeof err);
    if (spki_pin(good_pem, pin) == 0) {
        pinned.pin = pin;
        rc = open_conn(&c, pop3s, 1, &pinned, &err);
        if (!rc) rc = read_line(c, line, sizeof line, &err);
    } else {
        rc = -1;
        snprintf(err.message, sizeof err.message, "cannot read %.200s", good_pem);
    }
    ok(rc == 0 && !strncmp(line, "+OK", 3), names[3], err.message);
    /* 5 */
    unsigned char cb[64];
    size_t cbl = 0;
    int cbrc = c ? mw_stream_channel_binding(c->s, "tls-exporter", cb, sizeof cb, &cbl) : -1;
    ok(cbrc == 0 && cbl == 32, names[4], "no tls-exporter data");
    close_conn(c);
    c = NULL;

    /* 6: RFC 2595 §4 STLS */
    memset(&err, 0, sizeof err);
    rc = open_conn(&c, pop3, 0, &tls, &err);
    if (!rc) rc = read_line(c, line, sizeof line, &err);
    if (!rc) rc = send_line(c, "STLS", &err);
    if (!rc) rc = read_line(c, line, sizeof line, &err);
    if (!rc && strncmp(line, "+OK", 3))
        rc = -1, snprintf(err.message, sizeof err.message, "STLS answered: %.200s", line);
    if (!rc) rc = wrap(c, &tls, &err);
    int saw_user = 0;
    if (!rc) rc = send_line(c, "CAPA", &err);
    while (!rc && !(rc = read_line(c, line, sizeof line, &err)) && strcmp(line, "."))
        saw_user |= !strcmp(line, "USER");
    ok(rc == 0 && saw_user, names[5], err.message);
    close_conn(c);
    c = NULL;

    /* 7 */
    memset(&err, 0, sizeof err);
    rc = open_conn(&c, smtps, 1, &tls, &err);
    if (!rc) rc = read_line(c, line, sizeof line, &err);
    ok(rc == 0 && !strncmp(line, "220", 3), names[6], err.message);
    if (c) send_line(c, "QUIT", &err);
    close_conn(c);
    c = NULL;

    /* 8: RFC 3207 STARTTLS */
    memset(&err, 0, sizeof err);
    rc = open_conn(&c, smtp, 0, &tls, &err);
    if (!rc) rc = read_line(c, line, sizeof line, &err);
    if (!rc) rc = send_line(c, "EHLO probe.test", &err);
    while (!rc && !(rc = read_line(c, line, sizeof line, &err)) && !strncmp(line, "250-", 4)) {}
    if (!rc) rc = send_line(c, "STARTTLS", &err);
    if (!rc) rc = read_line(c, line, sizeof line, &err);
    if (!rc && strncmp(line, "220", 3))
        rc = -1, snprintf(err.message, sizeof err.message, "STARTTLS answered: %.200s", line);
    if (!rc) rc = wrap(c, &tls, &err);
    int saw_auth = 0;
    if (!rc) rc = send_line(c, "EHLO probe.test", &err);
    while (!rc && !(rc = read_line(c, line, sizeof line, &err))) {
        saw_auth |= !strncmp(line + 4, "AUTH", 4);
        if (strncmp(line, "250-", 4)) break;
    }
    ok(rc == 0 && saw_auth, names[7], err.message);
    if (c) send_line(c, "QUIT", &err);
    close_conn(c);
    return n_failed ? 1 : 0;
}

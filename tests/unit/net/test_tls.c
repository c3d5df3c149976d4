/* Unit tests of the TLS stream against an in-process OpenSSL server with a
 * test PKI made in memory (tlstest.c). */
#include "mwtest.h"

#include "lines.h"
#include "tlstest.h"

#include "mailwire/net.h"
#include "util/base64.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static struct test_pki pki;

static int setup(void **state)
{
    (void)state;
    /* The test server writes with OpenSSL's socket BIO (write(2)); a client
     * that has hung up must not kill the test program. */
    signal(SIGPIPE, SIG_IGN);
    pki_make(&pki);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pki_free(&pki);
    return 0;
}

/* Connects a TLS stream to a server presenting `cert`; returns the code. */
static int tls_to(struct test_server *srv, X509 *cert, const mw_tls_opts *o, mw_stream **out,
                  mw_error *err)
{
    memset(srv, 0, sizeof *srv);
    srv->cert = cert;
    srv->key = pki.key;
    return 0;
    (void)o;
    (void)out;
    (void)err;
}

static int run_tls(struct test_server *srv, const mw_tls_opts *o, mw_stream **out, mw_error *err)
{
    int fd = server_start(srv);
    mw_stream *s = NULL;
    assert_int_equal(mw_stream_fd(&s, fd, fd, 1, NULL, err), 0);
    return mw_stream_tls(out, s, o, err);
}

/* Reads the greeting, has one line echoed, closes; checks close_notify. */
static void talk_and_close(struct test_server *srv, mw_stream *t)
{
    mw_error err = {0};
    tlines c;
    tl_init(&c, t);
    c.deadline = mw_now_ms() + 30000;
    const char *line;
    size_t len;
    assert_int_equal(tl_read(&c, &line, &len, &err), 0);
    assert_int_equal(len, 18);
    assert_memory_equal(line, "+OK hello over TLS", 18);
    assert_int_equal(tl_send(&c, "NOOP", &err), 0);
    assert_int_equal(tl_read(&c, &line, &len, &err), 0);
    assert_memory_equal(line, "NOOP", 4);
    mw_stream_free(t);
    server_join(srv);
    assert_string_equal(srv->echoed, "NOOP\r\n");
    assert_true(srv->got_close_notify);
}

static void verifies_with_test_ca(void **state)
{
    (void)state;
    const char *names[] = {"localhost", "127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        struct test_server srv;
        tls_to(&srv, pki.good, NULL, NULL, NULL);
        mw_tls_opts o = MW_TLS_OPTS_INIT;
        o.ca_file = pki.ca_file;
        o.servername = names[i];
        mw_stream *t = NULL;
        mw_error err = {0};
        int rc = run_tls(&srv, &o, &t, &err);
        if (rc) printf("# %s\n", err.message);
        assert_int_equal(rc, 0);
        const mw_tls_peer *p = mw_stream_tls_peer(t);
        assert_non_null(p);
        assert_true(p->verified);
        assert_string_equal(p->verify_error, "");
        assert_string_equal(p->protocol, "TLSv1.3");
        assert_non_null(strstr(p->subject, "CN=localhost"));
        assert_non_null(strstr(p->issuer, "CN=mailwire test CA"));
        talk_and_close(&srv, t);
    }
}

static void expect_cert_error(X509 *cert, const char *ca_file, const char *servername,
                              const char *want)
{
    struct test_server srv;
    tls_to(&srv, cert, NULL, NULL, NULL);
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.ca_file = ca_file;
    o.servername = servername;
    mw_stream *t = NULL;
    mw_error err = {0};
    assert_int_equal(run_tls(&srv, &o, &t, &err), MW_ECERT);
    assert_null(t);
    printf("# %s\n", err.message);
    if (!strstr(err.message, want)) fail_msg("message \"%s\" lacks \"%s\"", err.message, want);
    server_join(&srv);
    assert_false(srv.accepted); /* the handshake was aborted by the client */
}

static void expired_certificate_is_named(void **state)
{
    (void)state;
    expect_cert_error(pki.expired, pki.ca_file, "localhost", "certificate has expired");
}

static void self_signed_certificate_is_named(void **state)
{
    (void)state;
    expect_cert_error(pki.selfsigned, pki.ca_file, "localhost", "self-signed certificate");
}

static void wrong_host_is_named(void **state)
{
    (void)state;
    expect_cert_error(pki.wronghost, pki.ca_file, "localhost",
                      "host name mismatch (certificate is for wrong.example)");
    expect_cert_error(pki.wronghost, pki.ca_file, "127.0.0.1",
                      "host name mismatch (certificate is for wrong.example)");
    /* The good certificate is not for another name either. */
    expect_cert_error(pki.good, pki.ca_file, "mail.example",
                      "host name mismatch (certificate is for localhost, 127.0.0.1)");
}

static void untrusted_ca_with_system_store(void **state)
{
    (void)state;
    expect_cert_error(pki.good, NULL, "localhost",
                      "unable to get local issuer certificate (CA not trusted)");
}

/* The system store path (no ca_file/ca_dir) trusts what OpenSSL's defaults
 * trust: the hashed directory first, the bundle only when needed.  The
 * test points OpenSSL's own overrides (SSL_CERT_DIR / SSL_CERT_FILE, read
 * by OpenSSL, not by mailwire) at the test CA, once as a bundle, once as a
 * hashed directory. */
static void system_store_dir_then_bundle(void **state)
{
    (void)state;
    char dir[128], empty[128], link[200];
    snprintf(empty, sizeof empty, "%s/empty", pki.dir);
    snprintf(dir, sizeof dir, "%s/hashed", pki.dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(link, sizeof link, "%s/%08lx.0", dir, X509_subject_name_hash(pki.ca));
    assert_int_equal(symlink(pki.ca_file, link), 0);
    const char *cases[][2] = {
        {empty, pki.ca_file},             /* only the bundle has it */
        {dir, "/nonexistent/bundle.pem"}, /* only the directory has it */
    };
    for (int i = 0; i < 2; i++) {
        setenv("SSL_CERT_DIR", cases[i][0], 1);
        setenv("SSL_CERT_FILE", cases[i][1], 1);
        struct test_server srv;
        tls_to(&srv, pki.good, NULL, NULL, NULL);
        mw_tls_opts o = MW_TLS_OPTS_INIT;
        o.servername = "localhost";
        mw_stream *t = NULL;
        mw_error err = {0};
        int rc = run_tls(&srv, &o, &t, &err);
        if (rc) printf("# %s\n", err.message);
        assert_int_equal(rc, 0);
        assert_true(mw_stream_tls_peer(t)->verified);
        talk_and_close(&srv, t);
    }
    /* A bundle holding another CA of the same name (another key): the right
     * one is found whichever comes first. */
    char twin[200];
    snprintf(twin, sizeof twin, "%s/twin.pem", pki.dir);
    for (int first = 0; first < 2; first++) {
        pki_write_twin_bundle(&pki, twin, first);
        setenv("SSL_CERT_DIR", empty, 1);
        setenv("SSL_CERT_FILE", twin, 1);
        struct test_server srv;
        tls_to(&srv, pki.good, NULL, NULL, NULL);
        mw_tls_opts o = MW_TLS_OPTS_INIT;
        o.servername = "localhost";
        mw_stream *t = NULL;
        mw_error err = {0};
        int rc = run_tls(&srv, &o, &t, &err);
        if (rc) printf("# twin CA first=%d: %s\n", first, err.message);
        assert_int_equal(rc, 0);
        talk_and_close(&srv, t);
    }
    unlink(twin);
    /* Neither has it: CA not trusted. */
    setenv("SSL_CERT_DIR", empty, 1);
    setenv("SSL_CERT_FILE", "/nonexistent/bundle.pem", 1);
    expect_cert_error(pki.good, NULL, "localhost",
                      "unable to get local issuer certificate (CA not trusted)");
    unsetenv("SSL_CERT_DIR");
    unsetenv("SSL_CERT_FILE");
    unlink(link);
    rmdir(dir);
    rmdir(empty);
}

static void pin_text(const unsigned char d[32], char *out)
{
    memcpy(out, "sha256:", 7);
    mwi_base64_encode(out + 7, d, 32);
}

static void pins_match_and_mismatch(void **state)
{
    (void)state;
    /* Learn the digests from a verified connection. */
    struct test_server srv;
    tls_to(&srv, pki.selfsigned, NULL, NULL, NULL);
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.insecure = 1;
    o.servername = "localhost";
    mw_stream *t = NULL;
    mw_error err = {0};
    assert_int_equal(run_tls(&srv, &o, &t, &err), 0);
    const mw_tls_peer *p = mw_stream_tls_peer(t);
    assert_false(p->verified);
    assert_string_equal(p->verify_error, "self-signed certificate");
    char cert_pin[64], spki_pin[64];
    pin_text(p->cert_sha256, cert_pin);
    pin_text(p->spki_sha256, spki_pin);
    talk_and_close(&srv, t);

    /* A matching pin is enough, even for a self-signed certificate and
     * with no CA; both kinds of pin work. */
    const char *good[] = {cert_pin, spki_pin};
    for (int i = 0; i < 2; i++) {
        tls_to(&srv, pki.selfsigned, NULL, NULL, NULL);
        mw_tls_opts po = MW_TLS_OPTS_INIT;
        po.pin = good[i];
        po.servername = "localhost";
        assert_int_equal(run_tls(&srv, &po, &t, &err), 0);
        talk_and_close(&srv, t);
    }
    /* A pin that does not match fails even when the chain verifies. */
    char other[64];
    unsigned char zero[32] = {0};
    pin_text(zero, other);
    tls_to(&srv, pki.good, NULL, NULL, NULL);
    mw_tls_opts mo = MW_TLS_OPTS_INIT;
    mo.pin = other;
    mo.ca_file = pki.ca_file;
    mo.servername = "localhost";
    assert_int_equal(run_tls(&srv, &mo, &t, &err), MW_ECERT);
    printf("# %s\n", err.message);
    char want[160];
    snprintf(want, sizeof want, "pin mismatch: expected %s, got ", other);
    assert_non_null(strstr(err.message, want));
    assert_non_null(strstr(err.message, spki_pin)); /* same key as the self-signed one */
    server_join(&srv);
    /* Malformed pins are refused before any byte is sent. */
    mw_stream *s = NULL;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 1, NULL, &err), 0);
    mo.pin = "sha256:tooshort";
    assert_int_equal(mw_stream_tls(&t, s, &mo, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "invalid pin"));
    close(sv[1]);
}

struct policy_seen {
    int calls;
    int verified;
    char verify_error[200];
    char subject[200];
    int answer;
};

static int policy(const mw_tls_peer *p, void *ud)
{
    struct policy_seen *s = ud;
    s->calls++;
    s->verified = p->verified;
    snprintf(s->verify_error, sizeof s->verify_error, "%s", p->verify_error);
    snprintf(s->subject, sizeof s->subject, "%s", p->subject);
    assert_true(p->der_len > 100);
    return s->answer;
}

static void policy_can_refuse_and_accept(void **state)
{
    (void)state;
    struct test_server srv;
    mw_stream *t = NULL;
    mw_error err = {0};
    /* Refuses a verified peer. */
    struct policy_seen seen = {0};
    seen.answer = 1;
    tls_to(&srv, pki.good, NULL, NULL, NULL);
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.ca_file = pki.ca_file;
    o.servername = "localhost";
    o.policy = policy;
    o.policy_userdata = &seen;
    assert_int_equal(run_tls(&srv, &o, &t, &err), MW_ECERT);
    assert_non_null(strstr(err.message, "refused by the caller's policy"));
    assert_int_equal(seen.calls, 1);
    assert_true(seen.verified);
    server_join(&srv);
    /* Refuses an unverified peer, and the message says why it was. */
    memset(&seen, 0, sizeof seen);
    seen.answer = 1;
    tls_to(&srv, pki.selfsigned, NULL, NULL, NULL);
    assert_int_equal(run_tls(&srv, &o, &t, &err), MW_ECERT);
    assert_non_null(strstr(err.message, "refused by the caller's policy (not verified: "
                                        "self-signed certificate)"));
    server_join(&srv);
    /* Accepts an unverified (self-signed) peer, knowing why it is. */
    memset(&seen, 0, sizeof seen);
    tls_to(&srv, pki.selfsigned, NULL, NULL, NULL);
    assert_int_equal(run_tls(&srv, &o, &t, &err), 0);
    assert_int_equal(seen.calls, 1);
    assert_false(seen.verified);
    assert_string_equal(seen.verify_error, "self-signed certificate");
    assert_non_null(strstr(seen.subject, "CN=localhost"));
    talk_and_close(&srv, t);
}

/* STLS as the blocking drivers do it: the plain stream read up to the
 * reply, then wrapped (src/loop/pop3_drive.c drive_tls). */
static void starttls_over_a_plain_stream(void **state)
{
    (void)state;
    struct test_server srv;
    tls_to(&srv, pki.good, NULL, NULL, NULL);
    srv.plain_first = "+OK Begin TLS negotiation\r\n";
    srv.plain_wait_line = 1;
    int fd = server_start(&srv);
    mw_stream *s = NULL, *t = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_fd(&s, fd, fd, 1, NULL, &err), 0);
    tlines c;
    tl_init(&c, s);
    c.deadline = mw_now_ms() + 30000;
    assert_int_equal(tl_send(&c, "STLS", &err), 0);
    const char *line;
    size_t len;
    assert_int_equal(tl_read(&c, &line, &len, &err), 0);
    assert_memory_equal(line, "+OK", 3);
    assert_int_equal(tl_buffered(&c), 0);
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.ca_file = pki.ca_file;
    o.servername = "localhost";
    assert_int_equal(mw_stream_tls(&t, s, &o, &err), 0);
    assert_non_null(mw_stream_tls_peer(t));
    c.s = t;
    assert_int_equal(tl_read(&c, &line, &len, &err), 0);
    assert_memory_equal(line, "+OK hello over TLS", 18);
    mw_stream_free(t);
    server_join(&srv);
    assert_true(srv.got_close_notify);
}

static void channel_binding_matches_server(void **state)
{
    (void)state;
    for (int v = 0; v < 2; v++) {
        struct test_server srv;
        tls_to(&srv, pki.good, NULL, NULL, NULL);
        srv.max_version = v ? TLS1_2_VERSION : 0;
        mw_tls_opts o = MW_TLS_OPTS_INIT;
        o.ca_file = pki.ca_file;
        o.servername = "localhost";
        mw_stream *t = NULL;
        mw_error err = {0};
        assert_int_equal(run_tls(&srv, &o, &t, &err), 0);
        unsigned char cb[64];
        size_t n = 0;
        assert_int_equal(mw_stream_channel_binding(t, "tls-exporter", cb, sizeof cb, &n), 0);
        assert_int_equal(n, 32);
        int unique = mw_stream_channel_binding(t, "tls-unique", cb + 32, 32, &n);
        unsigned char uniq[32];
        size_t un = n;
        memcpy(uniq, cb + 32, n);
        assert_int_equal(mw_stream_channel_binding(t, "tls-exporter", cb, 16, &n), MW_ETOOBIG);
        assert_int_equal(mw_stream_channel_binding(t, "bogus", cb, 64, &n), MW_EINVAL);
        assert_string_equal(mw_stream_tls_peer(t)->protocol, v ? "TLSv1.2" : "TLSv1.3");
        talk_and_close(&srv, t);
        unsigned char exp2[32];
        assert_int_equal(mw_stream_channel_binding(NULL, "tls-exporter", exp2, 32, &n), MW_EINVAL);
        assert_memory_equal(cb, srv.exporter, 32);
        if (v == 0) {
            assert_int_equal(unique, MW_EUNSUPPORTED); /* RFC 9266: not with TLS 1.3 */
        } else {
            /* The client's Finished, as the server received it. */
            assert_int_equal(unique, 0);
            assert_int_equal(un, srv.peer_finished_len);
            assert_memory_equal(uniq, srv.peer_finished, un);
        }
    }
}

static void min_version_13_refuses_tls12_server(void **state)
{
    (void)state;
    struct test_server srv;
    tls_to(&srv, pki.good, NULL, NULL, NULL);
    srv.max_version = TLS1_2_VERSION;
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.ca_file = pki.ca_file;
    o.servername = "localhost";
    o.min_version = 13;
    mw_stream *t = NULL;
    mw_error err = {0};
    assert_int_equal(run_tls(&srv, &o, &t, &err), MW_ETLS);
    printf("# %s\n", err.message);
    server_join(&srv);
}

static void client_certificate(void **state)
{
    (void)state;
    for (int with = 0; with < 2; with++) {
        struct test_server srv;
        tls_to(&srv, pki.good, NULL, NULL, NULL);
        srv.client_ca = pki.ca;
        mw_tls_opts o = MW_TLS_OPTS_INIT;
        o.ca_file = pki.ca_file;
        o.servername = "localhost";
        if (with) {
            o.cert_file = pki.client_crt;
            o.key_file = pki.client_keyfile;
        }
        mw_stream *t = NULL;
        mw_error err = {0};
        int rc = run_tls(&srv, &o, &t, &err);
        if (with) {
            assert_int_equal(rc, 0);
            talk_and_close(&srv, t);
            assert_true(srv.accepted);
        } else {
            /* TLS 1.3: the server's refusal arrives with the first read. */
            if (rc == 0) {
                char buf[64];
                size_t got = 0;
                rc = mw_stream_read(t, buf, sizeof buf, &got, mw_now_ms() + 5000, &err);
                mw_stream_free(t);
            }
            assert_int_equal(rc, MW_ETLS);
            printf("# without a client certificate: %s\n", err.message);
            server_join(&srv);
            assert_false(srv.accepted);
        }
    }
    /* A key that does not load is a clear error. */
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.cert_file = pki.client_crt;
    o.key_file = "/nonexistent/key.pem";
    o.servername = "localhost";
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mw_stream *s = NULL, *t = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 1, NULL, &err), 0);
    assert_int_equal(mw_stream_tls(&t, s, &o, &err), MW_ETLS);
    assert_non_null(strstr(err.message, "cannot load client key /nonexistent/key.pem"));
    close(sv[1]);
}

static void handshake_deadline(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    mw_stream *s = NULL, *t = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 1, NULL, &err), 0);
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.servername = "localhost";
    o.ca_file = pki.ca_file; /* time the wait, not loading the system store */
    o.handshake_timeout_ms = 300;
    int64_t t0 = mw_now_ms();
    assert_int_equal(mw_stream_tls(&t, s, &o, &err), MW_ETIMEOUT);
    int64_t took = mw_now_ms() - t0;
    printf("# silent server: handshake gave up after %lld ms (deadline 300 ms)\n", (long long)took);
    assert_true(took >= 290 && took < 30000); /* the server never answers: bounded */
    assert_non_null(strstr(err.message, "TLS handshake with localhost"));
    close(sv[1]);
}

static void plain_text_peer_is_a_tls_error(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[1], "+OK POP3 ready in clear\r\n", 25), 25);
    mw_stream *s = NULL, *t = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 1, NULL, &err), 0);
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.servername = "localhost";
    assert_int_equal(mw_stream_tls(&t, s, &o, &err), MW_ETLS);
    printf("# %s\n", err.message);
    assert_non_null(strstr(err.message, "TLS handshake with localhost failed: "));
    close(sv[1]);
}

/* A large body over TLS arrives intact through mw_stream_read in large
 * blocks (the drivers read into the job's input buffer so), and the
 * server's close_notify ends it. */
static void bulk_body_over_tls(void **state)
{
    (void)state;
    struct test_server srv;
    tls_to(&srv, pki.good, NULL, NULL, NULL);
    srv.bulk = 8 * 1024 * 1024 + 13;
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.ca_file = pki.ca_file;
    o.servername = "localhost";
    mw_stream *t = NULL;
    mw_error err = {0};
    assert_int_equal(run_tls(&srv, &o, &t, &err), 0);
    tlines c;
    tl_init(&c, t);
    c.deadline = mw_now_ms() + 60000;
    const char *line;
    size_t len, total = 0, calls = 0;
    assert_int_equal(tl_read(&c, &line, &len, &err), 0);
    static char d[64 * 1024];
    size_t n = tl_buffered(&c); /* what came with the first line */
    memcpy(d, c.buf + c.off, n);
    for (;;) {
        for (size_t i = 0; i < n; i++)
            if (d[i] != (char)('a' + (total + i) % 26)) fail_msg("byte %zu differs", total + i);
        total += n;
        calls++;
        assert_int_equal(mw_stream_read(t, d, sizeof d, &n, c.deadline, &err), 0);
        if (!n) break; /* close_notify */
    }
    printf("# %zu bytes over TLS in %zu reads\n", total, calls);
    assert_int_equal(total, srv.bulk);
    assert_true(calls < srv.bulk / 4096); /* blocks, not lines or small records */
    mw_stream_free(t);
    server_join(&srv);
}

/* One read hands over every record OpenSSL has already read ahead, not one
 * record per call (servers send small records: Dovecot ~3.4 KB), and never
 * waits for more to do so; a record that fails to decrypt after good ones
 * is reported on the next read, after the good data. */
static void small_records_in_one_read(void **state)
{
    (void)state;
    for (int garbage = 0; garbage <= 1; garbage++) {
        struct test_server srv;
        tls_to(&srv, pki.good, NULL, NULL, NULL);
        srv.records = 20;
        srv.record_size = 100;
        srv.garbage_after = garbage;
        int fd = server_start(&srv);
        mw_stream *s = NULL, *t = NULL;
        mw_error err = {0};
        assert_int_equal(mw_stream_fd(&s, fd, fd, 1, NULL, &err), 0);
        mw_tls_opts o = MW_TLS_OPTS_INIT;
        o.ca_file = pki.ca_file;
        o.servername = "localhost";
        o.min_version = 13;
        assert_int_equal(mw_stream_tls(&t, s, &o, &err), 0);
        tlines c;
        tl_init(&c, t);
        c.deadline = mw_now_ms() + 30000;
        const char *line;
        size_t len;
        assert_int_equal(tl_read(&c, &line, &len, &err), 0);
        assert_int_equal(tl_buffered(&c), 0);
        assert_int_equal(tl_send(&c, "GO", &err), 0);
        /* Wait until every record is in the socket: 5 + 100 + 1 + 16
         * (TLS 1.3 header, data, content type, AEAD tag) bytes each. */
        size_t want = (size_t)srv.records * (5 + srv.record_size + 1 + 16) + (garbage ? 45 : 0);
        for (int i = 0; i < 500; i++) {
            int queued = 0;
            assert_int_equal(ioctl(fd, FIONREAD, &queued), 0);
            if ((size_t)queued >= want) break;
            usleep(10000);
        }
        static char d[64 * 1024];
        size_t n = 0;
        assert_int_equal(mw_stream_read(t, d, sizeof d, &n, c.deadline, &err), 0);
        assert_int_equal(n, (size_t)srv.records * srv.record_size);
        for (size_t i = 0; i < n; i++)
            if (d[i] != (char)('A' + (int)(i / srv.record_size) % 26))
                fail_msg("byte %zu differs", i);
        if (garbage) {
            assert_int_equal(mw_stream_read(t, d, sizeof d, &n, c.deadline, &err), MW_ETLS);
            assert_non_null(strstr(err.message, "TLS read failed"));
            /* and the stream stays unusable */
            assert_int_equal(mw_stream_read(t, d, sizeof d, &n, c.deadline, &err), MW_ETLS);
            assert_string_equal(err.message, "TLS connection unusable after an earlier error");
            assert_int_equal(mw_stream_write(t, "x", 1, c.deadline, &err), MW_ETLS);
        }
        mw_stream_free(t);
        server_join(&srv);
    }
}

/* TLS wraps any stream: here a caller's callbacks stream. */
struct fdio {
    int fd;
};
static long fdio_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)deadline;
    return (long)read(((struct fdio *)ud)->fd, buf, len);
}
static long fdio_write(const void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)deadline;
    return (long)write(((struct fdio *)ud)->fd, buf, len);
}
static void fdio_close(void *ud)
{
    close(((struct fdio *)ud)->fd);
}

static void tls_over_callbacks_stream(void **state)
{
    (void)state;
    struct test_server srv;
    tls_to(&srv, pki.good, NULL, NULL, NULL);
    struct fdio io = {server_start(&srv)};
    mw_stream_ops ops = {fdio_read, fdio_write, fdio_close};
    mw_stream *s = NULL, *t = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_callbacks(&s, &ops, &io, &err), 0);
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.ca_file = pki.ca_file;
    o.servername = "localhost";
    assert_int_equal(mw_stream_tls(&t, s, &o, &err), 0);
    talk_and_close(&srv, t);
}

static void no_name_to_check_is_refused(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    mw_stream *s = NULL, *t = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 1, NULL, &err), 0);
    assert_int_equal(mw_stream_tls(&t, s, NULL, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "no host name"));
    close(sv[1]);
}

/* A caller built against version 1 of mw_tls_opts passes a shorter struct:
 * only that much is read (ASan would catch a read past it), the new field
 * gets its default; an unknown version is refused. */
static void tls_opts_version_1_copied(void **state)
{
    (void)state;
    size_t v1 = offsetof(mw_tls_opts, crl_file);
    mw_tls_opts full = MW_TLS_OPTS_INIT;
    full.version = 1;
    full.ca_file = "ca.pem";
    full.min_version = 13;
    char *old = malloc(v1);
    assert_non_null(old);
    memcpy(old, &full, v1);
    mw_tls_opts got;
    assert_int_equal(mw_tls_opts_copy(&got, (const mw_tls_opts *)(void *)old), 0);
    assert_int_equal(got.version, MW_TLS_OPTS_VERSION);
    assert_string_equal(got.ca_file, "ca.pem");
    assert_int_equal(got.min_version, 13);
    assert_null(got.crl_file);
    free(old);
    full.version = 7;
    assert_int_equal(mw_tls_opts_copy(&got, &full), MW_EINVAL);
    assert_int_equal(mw_tls_opts_copy(&got, NULL), 0);
    assert_int_equal(got.handshake_timeout_ms, 30000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_opts_version_1_copied),
        cmocka_unit_test(verifies_with_test_ca),
        cmocka_unit_test(expired_certificate_is_named),
        cmocka_unit_test(self_signed_certificate_is_named),
        cmocka_unit_test(wrong_host_is_named),
        cmocka_unit_test(untrusted_ca_with_system_store),
        cmocka_unit_test(system_store_dir_then_bundle),
        cmocka_unit_test(pins_match_and_mismatch),
        cmocka_unit_test(policy_can_refuse_and_accept),
        cmocka_unit_test(starttls_over_a_plain_stream),
        cmocka_unit_test(channel_binding_matches_server),
        cmocka_unit_test(min_version_13_refuses_tls12_server),
        cmocka_unit_test(client_certificate),
        cmocka_unit_test(handshake_deadline),
        cmocka_unit_test(plain_text_peer_is_a_tls_error),
        cmocka_unit_test(tls_over_callbacks_stream),
        cmocka_unit_test(bulk_body_over_tls),
        cmocka_unit_test(small_records_in_one_read),
        cmocka_unit_test(no_name_to_check_is_refused),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, setup, teardown);
}

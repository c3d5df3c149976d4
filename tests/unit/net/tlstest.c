#include "tlstest.h"
#include "mwtest.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for `cn` with `san` (may be NULL), valid from now+from_s to
 * now+to_s, signed by issuer/ikey, or self-signed when issuer is NULL. */
static X509 *make_cert(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey,
                       long from_s, long to_s, int is_ca)
{
    static long serial = 1;
    X509 *c = X509_new();
    assert_non_null(c);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), from_s);
    X509_gmtime_adj(X509_getm_notAfter(c), to_s);
    X509_set_pubkey(c, key);
    X509_NAME *n = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"mailwire tests", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : n);
    X509 *signer = issuer ? issuer : c;
    if (is_ca) {
        add_ext(c, signer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(c, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(c, signer, NID_basic_constraints, "CA:FALSE");
    }
    add_ext(c, signer, NID_subject_key_identifier, "hash");
    /* As real CAs do: lets the chain builder tell same-name issuers apart. */
    if (issuer) add_ext(c, signer, NID_authority_key_identifier, "keyid:always");
    if (san) add_ext(c, signer, NID_subject_alt_name, san);
    assert_true(X509_sign(c, issuer ? ikey : key, EVP_sha256()) > 0);
    return c;
}

static void write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (cert) assert_int_equal(PEM_write_X509(f, cert), 1);
    if (key) assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

void pki_make(struct test_pki *p)
{
    memset(p, 0, sizeof *p);
    p->ca_key = new_key();
    p->key = new_key();
    p->client_key = new_key();
    const long day = 86400;
    p->ca = make_cert("mailwire test CA", NULL, p->ca_key, NULL, NULL, -day, 30 * day, 1);
    const char *san = "DNS:localhost,IP:127.0.0.1";
    p->good = make_cert("localhost", san, p->key, p->ca, p->ca_key, -day, 30 * day, 0);
    p->expired = make_cert("localhost", san, p->key, p->ca, p->ca_key, -30 * day, -day, 0);
    p->wronghost = make_cert("wrong.example", "DNS:wrong.example", p->key, p->ca, p->ca_key, -day,
                             30 * day, 0);
    p->selfsigned = make_cert("localhost", san, p->key, NULL, NULL, -day, 30 * day, 0);
    p->client = make_cert("client", NULL, p->client_key, p->ca, p->ca_key, -day, 30 * day, 0);
    snprintf(p->dir, sizeof p->dir, "/tmp/mw-tlstest.XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->ca_file, sizeof p->ca_file, "%s/ca.pem", p->dir);
    snprintf(p->client_crt, sizeof p->client_crt, "%s/client.pem", p->dir);
    snprintf(p->client_keyfile, sizeof p->client_keyfile, "%s/client.key", p->dir);
    write_pem(p->ca_file, p->ca, NULL);
    write_pem(p->client_crt, p->client, NULL);
    write_pem(p->client_keyfile, NULL, p->client_key);
}

void pki_write_twin_bundle(struct test_pki *p, const char *path, int other_first)
{
    EVP_PKEY *k = new_key();
    const long day = 86400;
    X509 *twin = make_cert("mailwire test CA", NULL, k, NULL, NULL, -day, 30 * day, 1);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, other_first ? twin : p->ca), 1);
    assert_int_equal(PEM_write_X509(f, other_first ? p->ca : twin), 1);
    fclose(f);
    X509_free(twin);
    EVP_PKEY_free(k);
}

void pki_free(struct test_pki *p)
{
    unlink(p->ca_file);
    unlink(p->client_crt);
    unlink(p->client_keyfile);
    rmdir(p->dir);
    X509 *certs[] = {p->ca, p->good, p->expired, p->wronghost, p->selfsigned, p->client};
    for (size_t i = 0; i < sizeof certs / sizeof *certs; i++)
        X509_free(certs[i]);
    EVP_PKEY_free(p->ca_key);
    EVP_PKEY_free(p->key);
    EVP_PKEY_free(p->client_key);
}

static void read_plain_line(int fd)
{
    char c;
    while (read(fd, &c, 1) == 1 && c != '\n') {}
}

static void *server_main(void *arg)
{
    struct test_server *s = arg;
    if (s->plain_wait_line) read_plain_line(s->fd);
    if (s->plain_first && write(s->fd, s->plain_first, strlen(s->plain_first)) < 0) return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, s->cert);
    SSL_CTX_use_PrivateKey(ctx, s->key);
    if (s->max_version) SSL_CTX_set_max_proto_version(ctx, s->max_version);
    if (s->client_ca) {
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), s->client_ca);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, s->fd);
    if (SSL_accept(ssl) == 1) {
        s->accepted = 1;
        SSL_export_keying_material(ssl, s->exporter, 32, "EXPORTER-Channel-Binding", 24,
                                   (const unsigned char *)"", 0, 1);
        s->peer_finished_len =
            SSL_get_peer_finished(ssl, s->peer_finished, sizeof s->peer_finished);
        SSL_write(ssl, "+OK hello over TLS\r\n", 20);
        if (s->records) {
            char go[64];
            if (SSL_read(ssl, go, sizeof go) > 0) {
                char block[4096];
                for (int r = 0; r < s->records; r++) {
                    memset(block, 'A' + r % 26, s->record_size);
                    if (SSL_write(ssl, block, (int)s->record_size) <= 0) break;
                }
                if (s->garbage_after) {
                    /* TLS 1.3 application data (RFC 8446 §5.2) whose tag
                     * cannot match: the client must fail on it. */
                    unsigned char junk[5 + 40] = {0x17, 0x03, 0x03, 0x00, 40};
                    memset(junk + 5, 0x5a, 40);
                    if (write(s->fd, junk, sizeof junk) < 0) {}
                }
                char c;
                while (read(s->fd, &c, 1) > 0) {}
            }
            SSL_free(ssl);
            SSL_CTX_free(ctx);
            close(s->fd);
            return NULL;
        }
        if (s->bulk) {
            /* 'a'..'z' repeated, in writes of odd sizes across records. */
            char block[7001];
            size_t sent = 0;
            while (sent < s->bulk) {
                size_t n = s->bulk - sent < sizeof block ? s->bulk - sent : sizeof block;
                for (size_t i = 0; i < n; i++)
                    block[i] = (char)('a' + (sent + i) % 26);
                if (SSL_write(ssl, block, (int)n) <= 0) break;
                sent += n;
            }
            SSL_shutdown(ssl);
            SSL_free(ssl);
            SSL_CTX_free(ctx);
            close(s->fd);
            return NULL;
        }
        /* Echo one line back, then wait for the client's close_notify. */
        char buf[128];
        size_t used = 0;
        for (;;) {
            int n = SSL_read(ssl, buf + used, (int)(sizeof buf - 1 - used));
            if (n <= 0) {
                if (SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN) s->got_close_notify = 1;
                break;
            }
            used += (size_t)n;
            buf[used] = '\0';
            char *lf = strchr(buf, '\n');
            if (lf && !s->echoed[0]) {
                memcpy(s->echoed, buf, (size_t)(lf - buf) + 1);
                SSL_write(ssl, buf, (int)(lf - buf + 1));
                used = 0;
            }
            if (used == sizeof buf - 1) used = 0;
        }
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(s->fd);
    return NULL;
}

int server_start(struct test_server *s)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    s->fd = sv[1];
    assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
    return sv[0];
}

void server_join(struct test_server *s)
{
    pthread_join(s->th, NULL);
}

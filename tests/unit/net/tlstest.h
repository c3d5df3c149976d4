/* Test PKI made in memory with OpenSSL (a CA; good, expired, wrong-host and
 * self-signed server certificates; a client certificate) and an in-process
 * TLS server running in a thread over one end of a socketpair. */
#ifndef MW_TLSTEST_H
#define MW_TLSTEST_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>

struct test_pki {
    EVP_PKEY *ca_key, *key, *client_key;
    X509 *ca, *good, *expired, *wronghost, *selfsigned, *client;
    char dir[64];
    char ca_file[96];        /* the CA certificate, PEM */
    char client_crt[96];     /* client certificate, PEM */
    char client_keyfile[96]; /* its key, PEM */
};

/* Makes the PKI (fails the test on error). */
void pki_make(struct test_pki *p);
void pki_free(struct test_pki *p);
/* Writes a PEM bundle to path: a CA with the SAME name as the test CA but
 * another key (first when other_first), and the test CA. */
void pki_write_twin_bundle(struct test_pki *p, const char *path, int other_first);

struct test_server {
    int fd; /* server end of the socketpair */
    X509 *cert;
    EVP_PKEY *key;
    int max_version;         /* 0 or TLS1_2_VERSION */
    const char *plain_first; /* sent in clear before the handshake (STARTTLS) */
    int plain_wait_line;     /* read one line in clear before the handshake */
    X509 *client_ca;         /* require a client certificate from this CA */
    size_t bulk;             /* after the greeting: send this many pattern bytes, then close */
    /* after the greeting and one line from the client: `records` records of
     * record_size bytes ('A', 'B', ... one letter per record), then (with
     * garbage_after) a forged application-data record that cannot decrypt;
     * then waits for the client to hang up */
    int records;
    size_t record_size;
    int garbage_after;
    /* results */
    int accepted;
    int got_close_notify;
    char echoed[128];
    unsigned char exporter[32];
    unsigned char peer_finished[64];
    size_t peer_finished_len;
    pthread_t th;
};

/* Starts the server thread; returns the client end of the socketpair. */
int server_start(struct test_server *s);
/* Joins the thread. */
void server_join(struct test_server *s);

#endif

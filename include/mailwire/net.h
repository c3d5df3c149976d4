/* mailwire — transport: streams (TCP, TLS, fd, callbacks, command), TLS
 * options, cancellation.
 *
 * A stream is a connected byte pipe with deadlines.  Sessions (POP3, SMTP)
 * run over any stream; TLS is a stream that wraps another stream, so
 * STARTTLS/STLS is "wrap the connected stream". */
#ifndef MAILWIRE_NET_H
#define MAILWIRE_NET_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Cancellation ------------------------------------------------------
 * A cancel token can be shared by any number of streams and sessions.
 * mw_cancel_request() is safe to call from another thread or from a signal
 * handler; every blocking call watching the token returns MW_ECANCELED. */
typedef struct mw_cancel mw_cancel;
/* Returns 0, MW_ENOMEM or MW_EIO. */
MW_EXTERN int mw_cancel_new(mw_cancel **out, mw_error *err);
MW_EXTERN void mw_cancel_request(mw_cancel *c); /* async-signal-safe */
MW_EXTERN int mw_cancel_requested(const mw_cancel *c);
MW_EXTERN void mw_cancel_reset(mw_cancel *c);
MW_EXTERN void mw_cancel_free(mw_cancel *c);

/* ---- Network options ---------------------------------------------------- */
#define MW_NET_OPTS_VERSION 3 /* 3 added the session limits, 2 proxy; 1 and 2 still accepted */
typedef struct mw_net_opts {
    unsigned version;
    int connect_timeout_ms; /* the whole connect (every address raced); default 30000 */
    int io_timeout_ms;      /* each read or write; default 60000 */
    int family;             /* 0 any, 4 IPv4 only, 6 IPv6 only */
    mw_cancel *cancel;      /* optional */
    /* (version 2) Connect through a proxy: "socks5://[USER[:PASS]@]HOST[:PORT]"
     * (names resolved here), "socks5h://…" (names resolved by the proxy),
     * or "http://…" (HTTP CONNECT); default ports 1080 / 8080; USER and
     * PASS percent-decoded.  TLS is still end to end and verifies the
     * target host, never the proxy.  NULL: direct. */
    const char *proxy;
    /* (version 3) Whole-session limits of a stream made by mw_stream_tcp,
     * mw_stream_fd or mw_stream_command (and of a TLS stream over it),
     * counted from its creation, the connect included.  (NULL options:
     * the defaults for TCP; no timeout and no limits for fd and command
     * streams, as before version 3.)  Every wait of a
     * read or write ends at the earliest of its own deadline, now +
     * io_timeout_ms, the max_time_ms deadline and the end of the current
     * rate window.  Both end the session with MW_ETIMEOUT and a message
     * naming the limit ("session exceeded its max-time of 5 s", "transfer
     * slower than 10 bytes/s over 20 s (7 bytes moved)").
     * max_time_ms: the whole session; 0 (default): no limit.
     * speed_limit / speed_time_ms: a floor on the transfer rate, as curl's
     * --speed-limit/--speed-time: fewer than speed_limit bytes per second
     * (both directions together) averaged over speed_time_ms of waiting
     * is an error.  Only time spent waiting for the peer counts (not the
     * caller's time between calls).  speed_limit 0: no floor.  Default 1
     * byte/s over 300000 ms: a server that trickles bytes to keep each read
     * within io_timeout_ms is ended within about 5 minutes, while any
     * transfer that makes real progress never is. */
    int max_time_ms;
    unsigned speed_limit;
    int speed_time_ms;
} mw_net_opts;
#define MW_NET_OPTS_INIT                                                                           \
    {                                                                                              \
        MW_NET_OPTS_VERSION, 30000, 60000, 0, NULL, NULL, 0, 1, 300000                             \
    }
/* The defaults of the version 3 fields. */
#define MW_NET_DEFAULT_SPEED_LIMIT   1
#define MW_NET_DEFAULT_SPEED_TIME_MS 300000
/* Copies a caller's mw_net_opts of any supported version into the current
 * one (fields a version lacks get their defaults).  Returns 0 or MW_EINVAL. */
MW_EXTERN int mw_net_opts_copy(mw_net_opts *dst, const mw_net_opts *src);

/* ---- TLS ----------------------------------------------------------------- */

/* What a policy callback learns of the peer. Valid only during the call. */
typedef struct mw_tls_peer {
    const char *subject;      /* one-line subject name */
    const char *issuer;       /* one-line issuer name */
    const unsigned char *der; /* the leaf certificate, DER */
    size_t der_len;
    unsigned char cert_sha256[32]; /* SHA-256 of the DER certificate */
    unsigned char spki_sha256[32]; /* SHA-256 of its SubjectPublicKeyInfo */
    int verified;                  /* 1 when chain and host name verified */
    const char *verify_error;      /* why not, or "" when verified */
    const char *protocol;          /* "TLSv1.3" */
    const char *cipher;
} mw_tls_peer;

/* Decides whether to go on with a peer: return 0 to accept, anything else to
 * refuse (the connection then fails with MW_ECERT).  Called after OpenSSL's
 * verification, whatever its result: a policy may accept an unverified peer
 * (its own decision) or refuse a verified one. Without a policy, an
 * unverified peer is refused. */
typedef int (*mw_tls_policy_fn)(const mw_tls_peer *peer, void *userdata);

/* How a session protects its connection: one enum for POP3 and SMTP.  The
 * zero value, the default, requires TLS. */
enum mw_tls_mode {
    MW_TLS_STARTTLS = 0,      /* STLS (RFC 2595) / STARTTLS (RFC 3207) required: not offered,
                                 refused or failed = MW_ETLS, never plain text */
    MW_TLS_OPPORTUNISTIC = 1, /* upgrade when offered, else go on in plain text (where a
                                 login then still needs allow_plaintext) */
    MW_TLS_NONE = 2,          /* plain text, on purpose */
    MW_TLS_IMPLICIT = 3,      /* TLS from the first byte (POP3S 995, submissions 465; RFC 8314) */
};

#define MW_TLS_OPTS_VERSION 2 /* 2 added crl_file; 1 is still accepted */
typedef struct mw_tls_opts {
    unsigned version;
    const char *ca_file; /* trust these CAs instead of the system store */
    const char *ca_dir;
    const char *pin;          /* "sha256:BASE64" of the certificate or its public key
                                 (SubjectPublicKeyInfo), several separated by ';';
                                 when set, a match is required (and enough) */
    const char *cert_file;    /* client certificate (PEM) */
    const char *key_file;     /* its key (PEM); default: cert_file */
    const char *servername;   /* SNI and name checked; default: the host connected to */
    int min_version;          /* 0 = TLS 1.2; 13 = TLS 1.3 */
    int handshake_timeout_ms; /* default 30000 */
    int insecure;             /* 1: skip verification (explicit, never default) */
    mw_tls_policy_fn policy;
    void *policy_userdata;
    /* PEM CRLs (version 2): a certificate they revoke is refused, and every
     * certificate of the chain but the trust anchor must be covered by one
     * (OpenSSL's CRL_CHECK_ALL, as curl --crlfile) — a missing or expired
     * CRL is an error, never a silent pass. */
    const char *crl_file;
} mw_tls_opts;
#define MW_TLS_OPTS_INIT                                                                           \
    {                                                                                              \
        MW_TLS_OPTS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, 0, 30000, 0, NULL, NULL, NULL     \
    }

/* Copies a caller's mw_tls_opts of any supported version into the current
 * one (fields a version lacks get their defaults).  Returns 0, or MW_EINVAL
 * for an unknown version (dst then holds the defaults). */
MW_EXTERN int mw_tls_opts_copy(mw_tls_opts *dst, const mw_tls_opts *src);

/* ---- Streams --------------------------------------------------------------- */
typedef struct mw_stream mw_stream;

/* Callbacks for a caller-made stream (the C face of Tcllib's -socketcmd).
 * read/write return the number of bytes moved (read: 0 = end of stream) or
 * a negative MW_E… code; they must give up by `deadline_ms` (MW_NO_DEADLINE
 * = no limit) with MW_ETIMEOUT. close may be NULL. */
typedef struct mw_stream_ops {
    long (*read)(void *buf, size_t len, int64_t deadline_ms, void *userdata);
    long (*write)(const void *buf, size_t len, int64_t deadline_ms, void *userdata);
    void (*close)(void *userdata);
} mw_stream_ops;

/* Connects to host (name or address literal; an IPv6 literal may be given in
 * brackets) and port.  The resolved addresses are raced as Happy Eyeballs
 * does (RFC 8305): families alternating, a new attempt every 250 ms (at once
 * when one fails) while earlier ones keep going, the first to connect wins;
 * a black-holed IPv6 route costs 250 ms, not a timeout.  connect_timeout_ms
 * bounds the name lookup and, separately, the whole race; both watch the
 * cancel token.  TCP_NODELAY is set.  Returns 0, MW_ENET, MW_ETIMEOUT,
 * MW_ECANCELED, MW_EINVAL, MW_ENOMEM. */
MW_EXTERN int mw_stream_tcp(mw_stream **out, const char *host, unsigned port,
                            const mw_net_opts *opts, mw_error *err);
/* Wraps already-connected descriptors (rfd may equal wfd). With own=1 they are
 * closed by mw_stream_free.  The descriptors are switched to O_NONBLOCK (so no
 * system call outlives a deadline).  Writing to a pipe whose reader is gone
 * is MW_ENET, never a SIGPIPE.  Returns 0, MW_EINVAL, MW_ENOMEM. */
MW_EXTERN int mw_stream_fd(mw_stream **out, int rfd, int wfd, int own, const mw_net_opts *opts,
                           mw_error *err);
/* A stream whose I/O is done by the caller's callbacks.  A cancel token
 * (set on a session using this stream) is checked before each callback, not
 * during one: a callback that may block long should watch its own deadline.
 * A callback returning more bytes than asked for is MW_EINVAL. */
MW_EXTERN int mw_stream_callbacks(mw_stream **out, const mw_stream_ops *ops, void *userdata,
                                  mw_error *err);
/* Runs `command` with /bin/sh -c; its stdin and stdout are the connection
 * (a tunnel such as "ssh host nc localhost 110"); its stderr is the caller's;
 * no other descriptor of the caller reaches it.  mw_stream_free closes the
 * connection (EOF for the command) and reaps the child: up to 1 s to exit,
 * then SIGTERM, 0.5 s later SIGKILL — never a zombie, never a long hang.
 * Returns 0, MW_EIO, MW_ENOMEM, MW_EINVAL. */
MW_EXTERN int mw_stream_command(mw_stream **out, const char *command, const mw_net_opts *opts,
                                mw_error *err);
/* Runs a TLS client handshake over `inner` and returns a stream that
 * encrypts.  `inner` is owned by the new stream from then on (freed with it,
 * or on failure).  The host name checked is opts->servername, else the host
 * `inner` was connected to by mw_stream_tcp.  Returns 0, MW_ETLS, MW_ECERT,
 * MW_ETIMEOUT, MW_ENET, MW_ECANCELED, MW_ENOMEM, MW_EINVAL. */
MW_EXTERN int mw_stream_tls(mw_stream **out, mw_stream *inner, const mw_tls_opts *opts,
                            mw_error *err);
/* Reads up to len bytes; *got = 0 means the peer closed. */
MW_EXTERN int mw_stream_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline_ms,
                             mw_error *err);
/* Writes all len bytes or fails. */
MW_EXTERN int mw_stream_write(mw_stream *s, const void *buf, size_t len, int64_t deadline_ms,
                              mw_error *err);
/* For TLS streams: the peer as seen at the handshake; NULL otherwise. */
MW_EXTERN const mw_tls_peer *mw_stream_tls_peer(const mw_stream *s);
/* For TLS streams: the channel binding data for SCRAM-PLUS.  `type` is
 * "tls-unique" (RFC 5929 §3; TLS 1.2 only, 12 bytes) or "tls-exporter"
 * (RFC 9266; 32 bytes; TLS 1.3, or 1.2 with extended master secret).
 * Copies the data to buf and sets *out_len.  Returns 0; MW_EUNSUPPORTED when
 * the stream is not TLS or the type does not exist for the TLS version in use
 * (*out_len = 0; a SCRAM-PLUS client then picks the other type or plain
 * SCRAM); MW_ETOOBIG when len is too small; MW_EINVAL for an unknown type. */
MW_EXTERN int mw_stream_channel_binding(mw_stream *s, const char *type, unsigned char *buf,
                                        size_t len, size_t *out_len);
MW_EXTERN void mw_stream_free(mw_stream *s);

/* ---- TLS session details ----------------------------------------------------
 * What `mailwire pop3|smtp serverinfo` shows of a TLS session: copied into a
 * caller's struct (no allocation, nothing to free).  Every string is
 * NUL-terminated, printable ASCII (other bytes escaped or '?'), truncated to
 * its field. */
typedef struct mw_tls_info {
    char protocol[32];      /* "TLSv1.3" */
    char cipher[64];        /* "TLS_AES_256_GCM_SHA384" */
    char subject[512];      /* of the server's certificate, RFC 2253 ("CN=localhost,O=x") */
    char issuer[512];       /* the same for its issuer */
    char not_before[32];    /* validity, UTC, "2026-01-31T12:00:00Z" */
    char not_after[32];     /* (ISO 8601 / RFC 3339) */
    char sha256[96];        /* SHA-256 of the DER certificate: "AB:CD:...", as
                               `openssl x509 -fingerprint -sha256` prints it */
    char cert_pin[52];      /* the same as mw_tls_opts.pin takes: "sha256:BASE64" */
    char spki_pin[52];      /* "sha256:BASE64" of its SubjectPublicKeyInfo */
    int verified;           /* 1 when chain and host name were verified */
    char verify_error[320]; /* why not, or "" */
} mw_tls_info;
/* Fills *out for a TLS stream.  Returns 0, MW_EUNSUPPORTED (not a TLS
 * stream, or no handshake done: *out is then zeroed), MW_EINVAL (NULL). */
MW_EXTERN int mw_stream_tls_info(const mw_stream *s, mw_tls_info *out);

#ifdef __cplusplus
}
#endif
#endif

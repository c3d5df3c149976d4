/* mailwire — POP3 client (RFC 1939, RFC 2449 CAPA/PIPELINING/response
 * codes, RFC 5034 AUTH, RFC 2595 STLS, RFC 3206 codes).
 *
 * The C face of Tcllib pop3 and scsh pop3: one handle per session.
 *
 *     mw_pop3_opts o = MW_POP3_OPTS_INIT;   // STLS required by default
 *     o.user = "me"; o.password = pw;
 *     mw_pop3 *p;
 *     mw_error err;
 *     int rc = mw_pop3_open(&p, "pop.example.org", &o, &err);
 *     if (rc) { puts(err.message); return; }  // p is NULL
 *     ... mw_pop3_retr(p, 1, sink, ud, NULL); ...
 *     mw_pop3_quit(p, &confirmed); mw_pop3_free(p);
 *
 * Every function returns 0 or a negative MW_E… code (the codes each can
 * return are listed with it); the detail is in mw_pop3_error(p): what went
 * wrong in words, the server's text, its RFC 2449/3206 response code, and
 * the command that failed (secrets masked).  After a network, timeout,
 * TLS or protocol error the session is unusable: later calls return
 * MW_ESTATE.  A server -ERR leaves it usable.
 *
 * Server -ERR replies map to codes by their response code: [IN-USE],
 * [LOGIN-DELAY], [SYS/TEMP] -> MW_ETEMP; [AUTH] or any -ERR to a login
 * command -> MW_EAUTH; otherwise MW_ESERVER. */
#ifndef MAILWIRE_POP3_H
#define MAILWIRE_POP3_H

#include "common.h"
#include "error.h"
#include "mime.h"
#include "net.h"
#include "token.h"
#include "trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mw_pop3 mw_pop3;

enum mw_pop3_auth_method {
    MW_POP3_AUTH_AUTO = 0, /* the strongest SASL mechanism offered, else USER/PASS */
    MW_POP3_AUTH_USER = 1, /* USER/PASS (RFC 1939 §7) */
    MW_POP3_AUTH_APOP = 2, /* APOP (RFC 1939 §7): MD5, only when asked for */
    MW_POP3_AUTH_SASL = 3, /* AUTH (RFC 5034) with sasl_mechs (NULL: strongest offered) */
    MW_POP3_AUTH_NONE = 4, /* do not log in (the caller sends nothing more, or
                              the stream is pre-authenticated) */
};

/* Tcllib -retr-mode: how a message's size is learned.  The body is always
 * read to its terminating line, whatever the mode; a size that disagrees
 * with the data is reported in mw_pop3_retr_info. */
enum mw_pop3_retr_mode {
    MW_POP3_RETR_RETR = 0, /* from "+OK 120 octets"; none there: switch to LIST for good */
    MW_POP3_RETR_LIST = 1, /* from LIST n first; none there: switch to SLOW for good */
    MW_POP3_RETR_SLOW = 2, /* not learned */
};

#define MW_POP3_OPTS_VERSION 2 /* 2 added token_fn, token_userdata; 1 is still accepted */
typedef struct mw_pop3_opts {
    unsigned version;
    unsigned port;               /* 0: 110, or 995 with implicit TLS */
    int tls;                     /* enum mw_tls_mode; default MW_TLS_STARTTLS (required) */
    const mw_tls_opts *tls_opts; /* NULL: verify against the system store */
    const mw_net_opts *net;      /* timeouts, limits, cancel token; NULL: defaults */

    const char *user;
    const char *password;
    const char *authzid;    /* SASL authorization identity, optional */
    const char *token;      /* OAuth 2.0 bearer token (XOAUTH2, OAUTHBEARER) */
    int auth;               /* enum mw_pop3_auth_method */
    const char *sasl_mechs; /* "SCRAM-SHA-256 PLAIN": wanted mechanisms, in order */
    int allow_plaintext;    /* 1: a login (any mechanism) may go over an unencrypted link */
    int sasl_ir;            /* 1 (default): send a SASL initial response */

    int msex;               /* Tcllib -msex: end commands in a bare LF */
    int retr_mode;          /* enum mw_pop3_retr_mode */
    int pipelining;         /* 1 (default): use a command window when CAPA says PIPELINING */
    unsigned window;        /* commands in flight when pipelining (default 32, max 1024);
                               refilled after every reply */
    size_t max_line;        /* longest reply line accepted (default 8192, min 512) */
    int skip_stat;          /* 1: no STAT after login (the count is then learned lazily,
                               or from mw_pop3_list_uidl) */
    int command_timeout_ms; /* whole-command limit (a reply that never ends); 0 = none */

    mw_trace_fn trace; /* each line sent and received; secrets masked */
    void *trace_userdata;
    int trace_secrets; /* 1: do not mask PASS, APOP digests, AUTH exchanges */

    /* Tcllib -socketcmd: a connected stream to use instead of connecting to
     * host (owned by the session from mw_pop3_open on, even on failure).
     * With implicit TLS it is wrapped; host is then only the name checked. */
    mw_stream *stream;

    /* Version 2: without `token`, XOAUTH2/OAUTHBEARER ask token_fn for one
     * (token.h), and once more with refused = 1 when the server refuses it
     * (then AUTH is tried again in the same session). */
    mw_token_fn token_fn;
    void *token_userdata;
} mw_pop3_opts;
#define MW_POP3_OPTS_INIT                                                                          \
    {                                                                                              \
        MW_POP3_OPTS_VERSION, 0, MW_TLS_STARTTLS, NULL, NULL, NULL, NULL, NULL, NULL,              \
            MW_POP3_AUTH_AUTO, NULL, 0, 1, 0, MW_POP3_RETR_RETR, 1, 32, 8192, 0, 0, NULL, NULL, 0, \
            NULL, NULL, NULL                                                                       \
    }

/* Connects, reads the greeting, asks CAPA, does STLS when asked (CAPA again
 * over TLS, the old list forgotten), logs in, then STAT (the count is kept
 * for ranges, as Tcllib's "limit").  On success *out is the session (free
 * it with mw_pop3_free); on failure *out is NULL and err (may be NULL) says
 * why.  opts->stream is the session's from the call on, also on failure.
 * Returns 0, MW_EINVAL (bad option, CR/LF/NUL in user or password),
 * MW_ENET, MW_ETIMEOUT, MW_ECANCELED, MW_ETLS (STLS missing or refused,
 * handshake), MW_ECERT, MW_EPROTO (not POP3, bytes injected after STLS),
 * MW_ETOOBIG (line over max_line), MW_ESERVER (-ERR greeting), MW_ETEMP,
 * MW_EAUTH, MW_EPOLICY (a login over plain text without allow_plaintext), MW_EUNSUPPORTED
 * (APOP without a valid timestamp, a wanted SASL mechanism not offered),
 * MW_ENOMEM. */
MW_EXTERN int mw_pop3_open(mw_pop3 **out, const char *host, const mw_pop3_opts *opts,
                           mw_error *err);
/* Closes without QUIT (the server then keeps the messages marked deleted)
 * and frees the handle.  NULL is fine. */
MW_EXTERN void mw_pop3_free(mw_pop3 *p);
/* The detail of the last error.  Never NULL for a handle. */
MW_EXTERN const mw_error *mw_pop3_error(const mw_pop3 *p);

/* STAT (RFC 1939 §5).  Also refreshes the count used for ranges.
 * Returns 0, MW_ESERVER, MW_ETEMP, MW_EPROTO, MW_ENET, MW_ETIMEOUT, MW_ESTATE. */
MW_EXTERN int mw_pop3_stat(mw_pop3 *p, uint64_t *count, uint64_t *octets);
/* The message count learned at login (or the last STAT, or — without a
 * STAT — from mw_pop3_list_uidl's listing); 0 if none. */
MW_EXTERN uint64_t mw_pop3_count(const mw_pop3 *p);

typedef struct mw_pop3_listing {
    uint64_t msg;
    uint64_t size;
} mw_pop3_listing;
typedef struct mw_pop3_uid {
    uint64_t msg;
    char uid[71]; /* 1-70 octets of 0x21-0x7E (RFC 1939 §7), NUL-terminated */
} mw_pop3_uid;

/* LIST of all messages: *items (free with mw_pop3_list_free) has *n
 * entries.  Returns the codes of mw_pop3_stat, MW_ETOOBIG (over 1 million
 * entries, whatever the count), MW_ENOMEM.  A listing
 * (here and in the UIDL calls) that runs past the count or the cap ends
 * the session at once: the rest of the reply is not read. */
MW_EXTERN int mw_pop3_list(mw_pop3 *p, mw_pop3_listing **items, size_t *n);
/* LIST and UIDL of all messages together (what a fetch needs before its
 * first RETR).  When the server offers PIPELINING (RFC 2449 §6.6) and it is
 * in use, both commands go out in one write and both replies are read:
 * one round trip instead of two.  Without it: LIST, then UIDL, in turn.
 * items and n as mw_pop3_list, uids and nuids as mw_pop3_uidl, with the same
 * checks and caps.  When no count is known (opened with skip_stat) and the
 * listing is numbered 1..n, n becomes the count (STAT would have said it:
 * RFC 1939 §5) and bounds the UIDL entries.
 * UIDL refused (-ERR) or failing without breaking the session: the LIST
 * result stands, *uids is NULL, *uidl_rc gets the code (MW_ESERVER,
 * MW_ETEMP, MW_ETOOBIG, MW_ENOMEM; 0 when UIDL succeeded) and
 * mw_pop3_error(p) says why — the caller can fall back to LAST.
 * Returns 0 (LIST read), or LIST's error (after a pipelined UIDL's reply
 * was read, so the session stays usable after an -ERR): MW_ESERVER,
 * MW_ETEMP, MW_ETOOBIG, MW_ENOMEM, or one that ends the session:
 * MW_EPROTO (a bad LIST or UIDL line), MW_ENET, MW_ETIMEOUT, MW_ESTATE.
 * One exception to the checks: a UIDL line whose number is good but whose
 * uid breaks RFC 1939 §7 (a space, over 70 octets, octets outside
 * 0x21-0x7E) gives an entry with uid "" and the rest is read (one bad line
 * costs one message; mw_fetch_account leaves that message on the server).
 * Free with mw_pop3_list_free and mw_pop3_uidl_free. */
MW_EXTERN int mw_pop3_list_uidl(mw_pop3 *p, mw_pop3_listing **items, size_t *n, mw_pop3_uid **uids,
                                size_t *nuids, int *uidl_rc);
/* LIST msg.  msg is checked against the count (MW_EINVAL). */
MW_EXTERN int mw_pop3_list_one(mw_pop3 *p, uint64_t msg, uint64_t *size);
MW_EXTERN void mw_pop3_list_free(mw_pop3_listing *items);
/* UIDL of all messages / of one (RFC 1939 §7); every uid is checked
 * (MW_EPROTO on a bad one).  Free with mw_pop3_uidl_free. */
MW_EXTERN int mw_pop3_uidl(mw_pop3 *p, mw_pop3_uid **items, size_t *n);
MW_EXTERN int mw_pop3_uidl_one(mw_pop3 *p, uint64_t msg, char uid[71]);
MW_EXTERN void mw_pop3_uidl_free(mw_pop3_uid *items);

/* Receives a message in chunks, dot-unstuffed, exactly as the server holds
 * it (line ends as sent, CRLF).  Return 0 to go on; anything else stops the
 * delivery (the rest of the reply is read and dropped so the session stays
 * usable) and is returned by the call. */
typedef int (*mw_pop3_sink_fn)(const char *data, size_t len, void *userdata);

typedef struct mw_pop3_retr_info {
    uint64_t msg;
    uint64_t octets;   /* delivered (unstuffed) */
    uint64_t declared; /* size from the RETR reply or LIST, if known */
    int size_known;    /* 1 when declared is set */
    int size_mismatch; /* 1 when declared != octets (reported, not an error) */
    int complete;      /* 1 when the terminating line was read */
} mw_pop3_retr_info;

/* A RETR is read up to its announced size + max(size, 64 KiB) octets, the
 * size being the smallest known (mw_pop3_retr_msgs' msgs[i].size, the LIST
 * n of MW_POP3_RETR_LIST, the "+OK n octets" of the reply); past that it
 * fails with MW_ETOOBIG, info->complete = 0, and the session is unusable
 * (the rest of the reply is never read).  No size known: no bound.
 *
 * RETR msg, streamed to sink.  info may be NULL.  Returns 0, MW_EINVAL
 * (msg 0 or over the count), MW_ESERVER, MW_ETEMP, MW_ENET (dropped: the
 * message is incomplete, info->complete = 0), MW_ETIMEOUT, MW_EPROTO,
 * MW_ESTATE, or the sink's own code. */
MW_EXTERN int mw_pop3_retr(mw_pop3 *p, uint64_t msg, mw_pop3_sink_fn sink, void *userdata,
                           mw_pop3_retr_info *info);
/* RETR into a fresh buffer (mw_free()), NUL-terminated; MW_ETOOBIG when the
 * message is over max bytes (0 = 64 MiB). */
MW_EXTERN int mw_pop3_retr_buf(mw_pop3 *p, uint64_t msg, char **data, size_t *len, size_t max,
                               mw_pop3_retr_info *info);
/* TOP msg lines (RFC 1939 §7): the headers, the empty line, and up to
 * `lines` lines of the body. */
MW_EXTERN int mw_pop3_top(mw_pop3 *p, uint64_t msg, uint64_t lines, mw_pop3_sink_fn sink,
                          void *userdata);

/* DELE, RSET, NOOP (RFC 1939 §5-6).  Return 0, MW_EINVAL, MW_ESERVER,
 * MW_ETEMP, MW_ENET, MW_ETIMEOUT, MW_EPROTO, MW_ESTATE. */
MW_EXTERN int mw_pop3_dele(mw_pop3 *p, uint64_t msg);
MW_EXTERN int mw_pop3_rset(mw_pop3 *p);
MW_EXTERN int mw_pop3_noop(mw_pop3 *p);
/* LAST (RFC 1460; removed from RFC 1939): the highest message number
 * accessed.  A server without it gives MW_EUNSUPPORTED ("server has no
 * LAST command: <its text>"). */
MW_EXTERN int mw_pop3_last(mw_pop3 *p, uint64_t *last);

/* CAPA (RFC 2449 §5) again; the list is kept.  MW_EUNSUPPORTED when the
 * server answers -ERR. */
MW_EXTERN int mw_pop3_capa(mw_pop3 *p);
/* The capability lines known now (from open or the last mw_pop3_capa),
 * e.g. "SASL PLAIN SCRAM-SHA-256"; valid until the next call on p. */
MW_EXTERN size_t mw_pop3_capa_count(const mw_pop3 *p);
MW_EXTERN const char *mw_pop3_capa_line(const mw_pop3 *p, size_t i);
/* 1 when a capability with this keyword (case-insensitive) is listed. */
MW_EXTERN int mw_pop3_has_capa(const mw_pop3 *p, const char *keyword);

/* QUIT (RFC 1939 §6): the server applies the deletions.  *confirmed (may be
 * NULL) is 1 only when it answered +OK; the connection is closed either
 * way.  Returns 0, MW_ESERVER (-ERR: "some deleted messages not removed"),
 * MW_ENET, MW_ETIMEOUT, MW_EPROTO, MW_ESTATE. */
MW_EXTERN int mw_pop3_quit(mw_pop3 *p, int *confirmed);

/* Tcllib ::pop3::config: the options in effect. Strings live as long as p. */
typedef struct mw_pop3_config {
    const char *host;
    unsigned port;
    int tls; /* enum mw_tls_mode */
    int msex;
    int retr_mode;  /* the current one (it may have fallen back) */
    uint64_t limit; /* the message count used for ranges */
    int pipelining; /* 1 when a command window is in use */
    unsigned window;
    const char *auth_used; /* "USER", "APOP", "SASL PLAIN", "" */
    const char *greeting;  /* the greeting text */
} mw_pop3_config;
MW_EXTERN void mw_pop3_config_get(const mw_pop3 *p, mw_pop3_config *out);

/* ---- Ranges (Tcllib retrieve/delete) ----------------------------------------
 * start: a number, "start" (1), "next" (LAST + 1; 1 when LAST fails), "end"
 * (the count).  end: NULL (only start), a number, "end" or "last" (the count).
 * end is clamped to the count; start 0 becomes 1.  *first > *last means an
 * empty range (nothing is sent).  Returns 0 or MW_EINVAL ("bad start index X"),
 * or the codes of mw_pop3_last. */
MW_EXTERN int mw_pop3_range(mw_pop3 *p, const char *start, const char *end, uint64_t *first,
                            uint64_t *last);

/* Receives the messages of a range: data chunks (info == NULL), then once
 * per message a final call with data == NULL, len 0 and info set.  A
 * nonzero return stops the range after draining what is in flight. */
typedef int (*mw_pop3_msg_fn)(uint64_t msg, const char *data, size_t len,
                              const mw_pop3_retr_info *info, void *userdata);
/* RETR (top_lines < 0) or TOP msg top_lines, first..last, with a window of
 * commands in flight when the server offers PIPELINING (RFC 2449 §6.6).
 * Stops at the first failure (after reading the replies in flight). */
MW_EXTERN int mw_pop3_retr_range(mw_pop3 *p, uint64_t first, uint64_t last, long top_lines,
                                 mw_pop3_msg_fn fn, void *userdata);
/* DELE first..last (pipelined when offered); stops at the first failure. */
MW_EXTERN int mw_pop3_dele_range(mw_pop3 *p, uint64_t first, uint64_t last);

/* The most commands mw_pop3_opts.window allows, and the cap on commands in
 * flight for mw_pop3_retr_msgs. */
#define MW_POP3_WINDOW_MAX 1024
/* mw_pop3_retr_msgs' default window in bytes (window_bytes 0): enough to
 * keep about 1 Gbit/s busy over a 100 ms round trip; also the most a stop
 * after a failure has to read and drop.  Measured through a +50 ms proxy
 * (bench/fetch/README.md): 1 MiB took 1.26x the time of 4 MiB, 4 MiB
 * 1.1-1.5x that of 16 MiB. */
#define MW_POP3_WINDOW_BYTES ((uint64_t)16 * 1024 * 1024)
/* RETR each of msgs[0..n-1] (message numbers strictly ascending, each
 * within the count: MW_EINVAL otherwise), delivered to fn as by
 * mw_pop3_retr_range.  When PIPELINING is in use the window is counted in
 * bytes: RETRs are sent, and topped up after every reply, while the sizes
 * (msgs[i].size, e.g. from LIST) of those not yet answered add up to at
 * most window_bytes (0: MW_POP3_WINDOW_BYTES); always at least one, at most
 * MW_POP3_WINDOW_MAX commands (mw_pop3_opts.window is not used: small
 * messages then fill a high-latency link, large ones do not pile up).
 * What a stop after a failure still has to read is bounded the same way.
 * The sizes steer the window and bound each RETR (see mw_pop3_retr); the
 * declared size is learned as by mw_pop3_retr (retr_mode).  Without
 * PIPELINING one at a time.  Stops at the first failure (after reading the
 * replies in flight).  Returns the codes of mw_pop3_retr_range. */
MW_EXTERN int mw_pop3_retr_msgs(mw_pop3 *p, const mw_pop3_listing *msgs, size_t n,
                                uint64_t window_bytes, mw_pop3_msg_fn fn, void *userdata);
/* DELE each of msgs[0..n-1] (strictly ascending, within the count:
 * MW_EINVAL), pipelined with mw_pop3_opts.window when offered.  Unlike
 * mw_pop3_dele_range it goes on after an -ERR (one message refused does
 * not keep the others).  *deleted (may be NULL) is set to how many were
 * answered +OK, also when the call fails part-way (applied by the server
 * only after a confirmed QUIT).  Returns 0, the first -ERR's code
 * (MW_ESERVER, MW_ETEMP; mw_pop3_error names that DELE), or MW_EINVAL,
 * MW_ENET, MW_ETIMEOUT, MW_EPROTO, MW_ESTATE. */
MW_EXTERN int mw_pop3_dele_msgs(mw_pop3 *p, const uint64_t *msgs, size_t n, size_t *deleted);

/* ---- scsh retrieve-message / retrieve-headers --------------------------------
 * The headers as an ordered list of (name, value) pairs — repeated fields
 * kept, folding undone — through the mw_mime_headers accessors
 * (mw_mime_headers_at: name/value).  Free with mw_mime_headers_free. */
/* TOP msg 0: the headers only. */
MW_EXTERN int mw_pop3_retrieve_headers(mw_pop3 *p, uint64_t msg, mw_mime_headers **headers);
/* RETR msg: headers plus the body bytes after the empty line (a fresh
 * NUL-terminated buffer for mw_free(); MW_ETOOBIG over max, 0 = 64 MiB). */
MW_EXTERN int mw_pop3_retrieve_message(mw_pop3 *p, uint64_t msg, mw_mime_headers **headers,
                                       char **body, size_t *body_len, size_t max);
/* The same with the body as lines (scsh's "a list of strings, each string
 * representing a line"): *lines is a NULL-terminated array of *nlines
 * NUL-terminated strings, line ends (CRLF or LF) removed, dot-stuffing
 * undone; one allocation, freed with a single mw_free().  A line holding a
 * NUL is cut there (the count stays right).  Returns as
 * mw_pop3_retrieve_message. */
MW_EXTERN int mw_pop3_retrieve_message_lines(mw_pop3 *p, uint64_t msg, mw_mime_headers **headers,
                                             char ***lines, size_t *nlines, size_t max);

/* The TLS details of the session (STLS or implicit TLS) into *out, as
 * mw_stream_tls_info.  Returns 0, MW_EUNSUPPORTED (not over TLS, or the
 * connection is gone), MW_EINVAL. */
MW_EXTERN int mw_pop3_tls_info(const mw_pop3 *p, mw_tls_info *out);

#ifdef __cplusplus
}
#endif
#endif

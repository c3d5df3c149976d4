/* mailwire — SMTP client (RFC 5321) for message submission: the C face of
 * Tcllib's smtp::sendmessage, with what modern submission needs (STARTTLS,
 * AUTH, PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN, CHUNKING).
 *
 *     mw_smtp *s;
 *     mw_smtp_opts o = MW_SMTP_OPTS_INIT;  ... set servers, username ...
 *     if (mw_smtp_open(&s, &o, &err) == 0) {
 *         mw_smtp_msg m = MW_SMTP_MSG_INIT; m.data = text; m.len = n;
 *         mw_smtp_result *r;
 *         rc = mw_smtp_send(s, &m, &r);   // as many times as you like
 *         ... r->rcpt[i] ...; mw_smtp_result_free(r);
 *         mw_smtp_quit(s);
 *         mw_smtp_free(s);
 *     }
 *
 * mw_smtp_sendmessage() does all of that for one message. */
#ifndef MAILWIRE_SMTP_H
#define MAILWIRE_SMTP_H

#include "common.h"
#include "error.h"
#include "net.h"
#include "token.h"
#include "trace.h"

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mw_smtp mw_smtp;

/* How TLS is used: enum mw_tls_mode of <mailwire/net.h>; MW_TLS_OPPORTUNISTIC
 * is Tcllib's -usetls 1 (see tlspolicy below). */

/* Tcllib's -tlspolicy: called when STARTTLS is wanted but the server does not
 * offer it (code 0) or refuses it (code = the reply code; reason = its
 * text).  Return MW_SMTP_TLSPOLICY_INSECURE to go on in plain text, anything
 * else to give up on this server (the next server/port is tried).  Never
 * called after a failed handshake: that connection is unusable. */
#define MW_SMTP_TLSPOLICY_INSECURE 1
typedef int (*mw_smtp_tlspolicy_fn)(int code, const char *reason, void *userdata);

#define MW_SMTP_OPTS_VERSION 2 /* 2 added token_fn, token_userdata; 1 is still accepted */
typedef struct mw_smtp_opts {
    unsigned version;
    /* Servers × ports: every port of a server is tried before the next
     * server.  A refused connection, a greeting other than 220 (421, 4xx,
     * 5xx), a failed EHLO and HELO, or a TLS failure move on; an AUTH
     * failure does not (the same credentials would fail everywhere).
     * Defaults: {"localhost"}; ports {465} with implicit TLS, else {587}. */
    const char *const *servers;
    size_t nservers;
    const unsigned *ports;
    size_t nports;
    /* EHLO name; default "localhost" when the server is localhost or a
     * loopback address, else this host's name (gethostname). */
    const char *client;
    int tls;                        /* enum mw_tls_mode; default MW_TLS_STARTTLS (required) */
    const mw_tls_opts *tls_opts;    /* CA, pin, client certificate...; NULL = defaults */
    mw_smtp_tlspolicy_fn tlspolicy; /* NULL: no fall back to plain text */
    void *tlspolicy_userdata;
    const mw_net_opts *net; /* timeouts, cancel; NULL = defaults */
    /* AUTH (RFC 4954), done when user or token is set. */
    const char *user;
    const char *password;
    const char *token;   /* OAuth 2.0 bearer token (XOAUTH2 / OAUTHBEARER) */
    const char *authzid; /* act as this user; optional */
    /* SASL mechanisms wanted, in order ("SCRAM-SHA-256 PLAIN"); NULL = the
     * strongest offered (as mw_pop3_opts.sasl_mechs). */
    const char *sasl_mechs;
    int allow_plaintext; /* 1: a login (any mechanism) may go over an unencrypted link */
    int sasl_ir;         /* 1 (default): send a SASL initial response on the AUTH line */
    int queue;           /* Tcllib -queue: send QUED when the server offers XQUE */
    /* Trace of the conversation (Tcllib -debug); AUTH exchanges are masked
     * unless trace_secrets is 1. */
    mw_trace_fn trace;
    void *trace_userdata;
    int trace_secrets;
    /* Deadline for mw_smtp_open as a whole, in ms (0 = only the per-I/O
     * timeouts of `net`). */
    int open_timeout_ms;
    /* Caller-made connection (Tcllib -socketcmd): used instead of connecting;
     * owned by the session from then on (also on failure).  servers[0] is
     * then only the name for TLS checks and the EHLO default. */
    mw_stream *stream;
    /* Version 2: without `token`, XOAUTH2/OAUTHBEARER ask token_fn for one
     * (token.h), and once more with refused = 1 when the server refuses it
     * (then AUTH is tried again on the same connection). */
    mw_token_fn token_fn;
    void *token_userdata;
} mw_smtp_opts;
#define MW_SMTP_OPTS_INIT                                                                          \
    {                                                                                              \
        MW_SMTP_OPTS_VERSION, NULL, 0, NULL, 0, NULL, MW_TLS_STARTTLS, NULL, NULL, NULL, NULL,     \
            NULL, NULL, NULL, NULL, NULL, 0, 1, 0, NULL, NULL, 0, 0, NULL, NULL, NULL              \
    }

/* Reads up to len bytes of the message into buf: returns the number read, 0
 * at the end, or a negative MW_E… code (which aborts the transaction). */
typedef long (*mw_smtp_read_fn)(void *buf, size_t len, void *userdata);

#define MW_SMTP_REWRITE_SENDMAIL 2

/* BINARYMIME (RFC 3030 §3): the body goes as it is, in BDAT chunks (no
 * line end repaired, no line limit); only to a server offering CHUNKING
 * and BINARYMIME, else MW_EUNSUPPORTED before MAIL. */
enum mw_smtp_body {
    MW_SMTP_BODY_AUTO = 0,
    MW_SMTP_BODY_7BIT = 1,
    MW_SMTP_BODY_8BITMIME = 2,
    MW_SMTP_BODY_BINARYMIME = 3
};

#define MW_SMTP_MSG_VERSION 2 /* 2 added header_recipients; 1 is still accepted */
typedef struct mw_smtp_msg {
    unsigned version;
    /* The message (RFC 5322 header and body; any line ends): exactly one of
     * data/len, fd (>= 0; read to its end, not closed), or read. */
    const char *data;
    size_t len;
    int fd;
    mw_smtp_read_fn read;
    void *read_userdata;
    /* Envelope.  originator NULL: from Resent-From / From (Sender when
     * present); "" means the null reverse-path <>.  recipients NULL: To, Cc
     * and Bcc (their Resent- forms when the message has Resent- fields). */
    const char *originator;
    const char *const *recipients;
    size_t nrecipients;
    /* Extra header fields, "Name: value" each, put before the message's own. */
    const char *const *headers;
    size_t nheaders;
    /* 1 (default, as sendmail, msmtp and Python's smtplib): deliver to the
     * accepted recipients even when others are rejected (rcpt[].delivered
     * tells who got it).  0 (Tcllib's default, -atleastone 0): any rejected
     * recipient aborts the transaction (RSET) and nobody gets the message. */
    int atleastone;
    /* 1 (default): remove Bcc/Resent-Bcc, add Date and Message-ID when
     * missing, From when missing, Sender when the originator differs from
     * From.  0: send the message bytes as they are (normalised).
     * MW_SMTP_REWRITE_SENDMAIL: as 1 but never adds Sender (what sendmail
     * programs do; Tcllib's Sender rule is only for 1). */
    int rewrite_headers;
    int body;           /* enum mw_smtp_body: BODY= (RFC 6152) */
    int use_chunking;   /* 1 (default): BDAT when CHUNKING is offered (RFC 3030) */
    uint64_t size_hint; /* SIZE= for fd/read sources; 0 = unknown (fstat for files) */
    /* DSN (RFC 3461), sent only when the server offers DSN. */
    const char *dsn_notify; /* "NEVER" or "SUCCESS,FAILURE,DELAY" subsets; NULL = none */
    const char *dsn_ret;    /* "FULL" or "HDRS"; NULL = none */
    const char *dsn_envid;  /* ENVID (xtext-encoded for you); NULL = none */
    int dsn_orcpt;          /* 1: ORCPT=rfc822;<address> on each RCPT */
    /* Tcllib's way with Bcc (memory messages, envelope from the header):
     * the Bcc recipients are left out of the main transaction and get a
     * second one, whose message is a multipart/digest ("Subject: [Bcc] …")
     * holding the message as sent.  Their results follow the others in the
     * result.  0 (default): Bcc recipients get the message without Bcc. */
    int bcc_digest;
    /* 1: the recipients are those given in `recipients` PLUS those of To,
     * Cc and Bcc (sendmail -t with recipient arguments, as Postfix's
     * sendmail and msmtp do); an address already found in the header is
     * not added twice.  0 (default): `recipients` when given, else the
     * header's.  (Version 2 of this struct.) */
    int header_recipients;
} mw_smtp_msg;
#define MW_SMTP_MSG_INIT                                                                           \
    {                                                                                              \
        MW_SMTP_MSG_VERSION, NULL, 0, -1, NULL, NULL, NULL, NULL, 0, NULL, 0, 1, 1,                \
            MW_SMTP_BODY_AUTO, 1, 0, NULL, NULL, NULL, 0, 0, 0                                     \
    }

/* The outcome for one recipient. */
typedef struct mw_smtp_rcpt {
    char *address;
    int code;          /* the RCPT reply code (0 when never answered) */
    char enhanced[16]; /* "5.1.1" or "" */
    char *text;        /* the reply text (printable), without the enhanced code */
    int accepted;      /* the RCPT was accepted (250/251) */
    int permanent;     /* 5xx (else temporary when not accepted) */
    int delivered;     /* 1: the server took the message for this recipient (its RCPT
                          accepted and the data too); 0 whenever it did not go to them */
} mw_smtp_rcpt;

typedef struct mw_smtp_result {
    int sent; /* 1 when the server said 2xx to the end of data */
    size_t nrcpt;
    mw_smtp_rcpt *rcpt; /* every recipient, in envelope order */
    size_t nrejected;   /* Tcllib's list: the rcpt[] entries with accepted == 0 */
    char *originator;   /* the reverse-path used */
    char *server;       /* the server that took the connection */
    unsigned port;
    int final_code;   /* reply to the end of data, or to the failing command (the first
                         rejected RCPT when atleastone is 0) */
    char *final_text; /* that reply's text with its enhanced code, e.g. "2.0.0 Ok: queued
                         as 4Xk..." or "5.1.1 <x@y>: Recipient address rejected" */
    int chunking;     /* 1 when BDAT was used */
    uint64_t octets;  /* message octets sent on the wire */
} mw_smtp_result;
MW_EXTERN void mw_smtp_result_free(mw_smtp_result *r);

/* Connects (servers × ports), reads the greeting, EHLO (HELO on 5xx),
 * STARTTLS per opts->tls (EHLO again over TLS, old capabilities dropped),
 * QUED, AUTH.  On success *out is a session ready for mw_smtp_send; on
 * failure *out is NULL and err says why (the last server's failure, its
 * message prefixed with "HOST port N: ").
 * Returns 0, MW_EINVAL (bad option: CR/LF/NUL in the EHLO name or identity),
 * MW_ENET, MW_ETIMEOUT, MW_ETLS (STARTTLS missing or refused, handshake
 * failed), MW_ECERT, MW_EAUTH (credentials or every mechanism refused), MW_EPOLICY
 * (password would go in clear), MW_EUNSUPPORTED (credentials given, no AUTH
 * offered), MW_ETEMP (421/4xx), MW_ESERVER (5xx), MW_EPROTO (not SMTP,
 * mixed codes, a reply over the line/line-count/size caps, bytes injected
 * after STARTTLS), MW_ECANCELED, MW_ENOMEM. */
MW_EXTERN int mw_smtp_open(mw_smtp **out, const mw_smtp_opts *opts, mw_error *err);

/* One transaction: MAIL, RCPT…, DATA or BDAT.  *result (may be NULL; free
 * with mw_smtp_result_free) is set whenever the transaction got as far as
 * the envelope.  Returns 0 when the message was accepted (with atleastone,
 * some recipients may still be rejected: see result->nrejected), else
 *   MW_ESERVER / MW_ETEMP  MAIL, all RCPT (or one without atleastone), or the
 *                          data were refused (permanent / temporary);
 *   MW_EFORMAT  the message: no originator or recipient found, bad header;
 *   MW_ETOOBIG  a line over 998 octets, or over the server's SIZE;
 *   MW_EUNSUPPORTED  8-bit data or UTF-8 addresses the server cannot take;
 *   MW_EINVAL   CR/LF/NUL or a bad character in an address (nothing sent);
 *   MW_ENET, MW_ETIMEOUT, MW_ECANCELED, MW_EIO (reading the source), MW_ENOMEM,
 *   MW_EPROTO, MW_ESTATE (the session is dead after an earlier failure).
 * With PIPELINING, DATA joins MAIL and RCPT in one write only when
 * atleastone is set (otherwise a rejected recipient could not stop a 354);
 * the end of the body and the final dot always go out in one write.
 * A failed transaction is reset (RSET) before the next one. */
MW_EXTERN int mw_smtp_send(mw_smtp *s, const mw_smtp_msg *msg, mw_smtp_result **result);
/* A batch of messages over the session, each sent as by mw_smtp_send:
 * they are taken from `next` one at a time and each outcome goes to
 * `done`.  While the server is answering the end of one message, the next
 * is already asked for and prepared (its header read ahead, its envelope
 * built), so a batch of files costs little more than its round trips.
 *
 * next(ud, index, msg): fill *msg (it arrives set to MW_SMTP_MSG_INIT)
 *   and return 1; return 0 when there are no more; a negative mw_code
 *   ends the batch and is returned.  What msg points to (data, fd,
 *   addresses) must stay valid until done() has been called for it.
 * done(ud, index, rc, result, err): exactly once for every message next
 *   gave, in order, with what mw_smtp_send would have returned for it;
 *   result (NULL when the transaction never reached the envelope) and err
 *   are valid only during the call.
 * Returns 0 when every message was tried, next's negative code, or, when
 * a failure left the session unusable, that failure's code: no more
 * messages are asked for then, and those already taken (up to two beyond
 * the one in flight) are reported to done with MW_ESTATE. */
/* With PIPELINING, a batch also sends the next message's envelope (MAIL,
 * RCPT… and DATA) in the same write as the end of a message's data (RFC
 * 2920 §3.1 allows message content first in a group): one round trip per
 * message instead of two.  Not after BDAT, nor before a Bcc digest.
 * mw_smtp_set_message_pipelining(s, 0) turns that off (each message then
 * waits for the previous one's final reply); on by default. */
MW_EXTERN void mw_smtp_set_message_pipelining(mw_smtp *s, int on);
typedef int (*mw_smtp_next_fn)(size_t index, mw_smtp_msg *msg, void *userdata);
typedef void (*mw_smtp_done_fn)(size_t index, int rc, const mw_smtp_result *result,
                                const mw_error *err, void *userdata);
MW_EXTERN int mw_smtp_send_batch(mw_smtp *s, mw_smtp_next_fn next, mw_smtp_done_fn done, void *ud);
/* Deadline for the next transactions, ms from the start of each
 * mw_smtp_send (Tcllib -maxsecs); 0 = none. */
MW_EXTERN void mw_smtp_set_maxtime(mw_smtp *s, int ms);

/* QUIT; returns 0 when the server answered 221. */
MW_EXTERN int mw_smtp_quit(mw_smtp *s);
MW_EXTERN void mw_smtp_free(mw_smtp *s);
MW_EXTERN const mw_error *mw_smtp_error(const mw_smtp *s);

/* The EHLO reply text (lines joined by '\n', without codes) before TLS
 * (which = 0) and after it (which = 1; "" when TLS was not started after
 * the greeting).  Valid until mw_smtp_free. */
MW_EXTERN const char *mw_smtp_ehlo_text(const mw_smtp *s, int which);
/* The server and port the session is connected to; whether it is TLS;
 * the SASL mechanism used ("" when none). */
MW_EXTERN const char *mw_smtp_server(const mw_smtp *s, unsigned *port);
MW_EXTERN int mw_smtp_is_tls(const mw_smtp *s);
/* 1 while the session can take another mw_smtp_send (not dead, not quit). */
MW_EXTERN int mw_smtp_alive(const mw_smtp *s);
MW_EXTERN const char *mw_smtp_auth_mech(const mw_smtp *s);

/* Tcllib's sendmessage: open, send one message, quit.  *result as in
 * mw_smtp_send (may be NULL).  Returns what mw_smtp_open or mw_smtp_send do;
 * `maxtime_ms` bounds the transaction (0 = none). */
MW_EXTERN int mw_smtp_sendmessage(const mw_smtp_opts *opts, const mw_smtp_msg *msg, int maxtime_ms,
                                  mw_smtp_result **result, mw_error *err);

/* The server's 220 greeting (lines joined by '\n', without codes).  Valid
 * until mw_smtp_free. */
MW_EXTERN const char *mw_smtp_greeting(const mw_smtp *s);
/* 1 when the server answered EHLO (RFC 5321 §4.1.1.1), 0 when it refused
 * EHLO and the session went on with HELO (no extensions). */
MW_EXTERN int mw_smtp_esmtp(const mw_smtp *s);
/* The TLS details of the session into *out, as mw_stream_tls_info.  Returns
 * 0, MW_EUNSUPPORTED (not over TLS, or the connection is gone), MW_EINVAL. */
MW_EXTERN int mw_smtp_tls_info(const mw_smtp *s, mw_tls_info *out);

/* The message data[0..len) made 7-bit, for a server that does not offer
 * BINARYMIME (or 8BITMIME): every MIME entity whose body is not 7-bit
 * (RFC 2045 §2.7) gets a base64 body and Content-Transfer-Encoding:
 * base64; multiparts (their delimiters, preamble and epilogue kept) and
 * message/rfc822 are walked; MIME-Version is added when missing.  *out is
 * malloc'd (send it with body MW_SMTP_BODY_7BIT).  Returns 0, MW_EFORMAT
 * (what cannot be re-encoded this way: an 8-bit header field, preamble or
 * epilogue, a line over 998 octets there, parts nested over 32 deep),
 * MW_ENOMEM, MW_EINVAL. */
MW_EXTERN int mw_smtp_downgrade_7bit(const char *data, size_t len, char **out, size_t *out_len,
                                     mw_error *err);

#ifdef __cplusplus
}
#endif
#endif

/* Internal: a buffered, line-aware connection over a mw_stream, used by the
 * POP3 and SMTP sessions.  It owns the stream, keeps the read buffer (so it
 * can refuse STARTTLS while bytes from before the handshake are buffered),
 * applies the per-I/O timeout and the whole-operation deadline, watches the
 * cancel token, and feeds the trace hook.
 *
 * Time: every read/write waits at most until the earlier of (now +
 * io_timeout) and the operation deadline; MW_ETIMEOUT's message says which
 * ("no progress for N ms while reading a line" / "operation deadline passed
 * while sending").  Large writes go out in 64 KiB blocks, each with a fresh
 * io timeout.
 *
 * Errors: after a timeout, a network error, an oversize line, a failed
 * write (even a cancelled one) or a failed STARTTLS, the connection is
 * broken: every later call returns MW_ESTATE ("connection unusable after an
 * earlier ... error").  A cancelled READ is not fatal: nothing was lost, and
 * after mw_cancel_reset() the caller may go on (plain streams only — a TLS
 * stream is unusable after any failed read or write).
 *
 * Reading: the buffer is at least 64 KiB and reads ask for all free space,
 * so a body costs one system call per block, not per line.  Lines are cut
 * in memory; NUL and lone CR inside a line are passed through. */
#ifndef MW_NET_CONN_H
#define MW_NET_CONN_H

#include "mailwire/error.h"
#include "mailwire/net.h"
#include "mailwire/trace.h"
#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mw_conn mw_conn;

#define MW_CONN_DEFAULT_MAX_LINE 8192

/* Takes ownership of `s` (freed by mwi_conn_free, also on failure). */
int mwi_conn_new(mw_conn **out, mw_stream *s, mw_error *err);
void mwi_conn_free(mw_conn *c);

/* Limits and time: io_timeout_ms bounds each read/write (0 = none);
 * mwi_conn_set_deadline bounds everything until reset (MW_NO_DEADLINE). */
void mwi_conn_set_io_timeout(mw_conn *c, int io_timeout_ms);
void mwi_conn_set_deadline(mw_conn *c, int64_t deadline_ms);
void mwi_conn_set_max_line(mw_conn *c, size_t max_line);
void mwi_conn_set_cancel(mw_conn *c, mw_cancel *cancel);
void mwi_conn_set_trace(mw_conn *c, mw_trace_fn fn, void *userdata);
/* Feeds one line to the trace hook, if any (the caller masks secrets). */
void mwi_conn_trace(mw_conn *c, int dir, const char *line, size_t len);
/* The stream underneath (TLS peer info, channel binding). */
mw_stream *mwi_conn_stream(mw_conn *c);

/* Reads one line.  On success *line points into the conn's buffer (valid
 * until the next read call) and *len excludes the line end; CRLF and bare LF
 * both end a line.  A line longer than max_line is MW_ETOOBIG (and the
 * connection is unusable after).  The peer closing before a line end is
 * MW_ENET.  Received lines are NOT traced here; callers trace them. */
int mwi_conn_read_line(mw_conn *c, const char **line, size_t *len, mw_error *err);

/* Bulk access for bodies: makes at least one byte available (reading if the
 * buffer is empty) and points *data at everything buffered.  The caller then
 * mwi_conn_consume()s what it used.  Peer closed: MW_ENET. */
int mwi_conn_peek(mw_conn *c, const char **data, size_t *len, mw_error *err);
void mwi_conn_consume(mw_conn *c, size_t n);
/* The same, for decoders that work in place (POP3 dot-unstuffing): makes at
 * least `min` bytes available (1 <= min <= 64 KiB; reading as often as
 * needed) and points *data at everything buffered, writable.  The caller
 * may change only bytes it then consumes: the rest is the peer's data still
 * to come.  Saves copying every body byte into a second buffer.  min out of
 * range: MW_EINVAL. */
int mwi_conn_peek_mut(mw_conn *c, size_t min, char **data, size_t *len, mw_error *err);
/* Bytes received but not consumed yet. */
size_t mwi_conn_buffered(const mw_conn *c);
/* Puts bytes received by another reader of the stream (a driver's) in
 * front of what comes; only while nothing is buffered (MW_EINVAL). */
int mwi_conn_unread(mw_conn *c, const char *data, size_t len, mw_error *err);

/* Queues bytes; they go out on mwi_conn_flush (or when the queue reaches
 * 64 KiB).  A write of 64 KiB or more goes out at once, after the queue,
 * and so does one of 4 KiB or more when nothing is queued (a message
 * body): there is nothing to join it with, and the copy is saved. */
int mwi_conn_write(mw_conn *c, const void *data, size_t len, mw_error *err);
int mwi_conn_flush(mw_conn *c, mw_error *err);
/* Queues bytes whatever their size, sent only by mwi_conn_flush: for data
 * that must leave in one write with what follows it (SMTP: the end of a
 * message and the next envelope, so that the server answers both at once). */
int mwi_conn_queue(mw_conn *c, const void *data, size_t len, mw_error *err);
/* The same for a whole buffer, without a copy when nothing is queued. */
int mwi_conn_queue_buf(mw_conn *c, mw_buf *b, mw_error *err);

/* Wraps the stream in TLS (STARTTLS/STLS).  Refused with MW_EPROTO "N bytes
 * received before the TLS handshake (possible injection)" when bytes from
 * before the handshake are buffered (RFC 3207 §4.1 / RFC 2595 §4: the client
 * must discard them; we refuse, as they may be an injection), and the
 * connection is then broken.  Queued writes are flushed first.  The
 * handshake is bounded by opts->handshake_timeout_ms and the operation
 * deadline.  The host name checked is opts->servername, else the host given
 * to mw_stream_tcp.  On failure (MW_ETLS, MW_ECERT, MW_ETIMEOUT, ...) the
 * stream is gone and the connection broken.  The same call does implicit
 * TLS (POP3S/SMTPS) when made before anything is read. */
int mwi_conn_starttls(mw_conn *c, const mw_tls_opts *opts, mw_error *err);

#endif

/* alert_attachment — an alert mail with a file attached (mailwire(3)).
 *
 * Builds a multipart/mixed message (RFC 2046 §5.1.3): a text part and FILE
 * as an attachment, and sends it through SMTP submission (STARTTLS
 * required, AUTH).  The message is streamed: the SMTP session pulls it
 * from a reader over the built parts, which encodes the file in base64 as
 * it is read, so a file of any size costs the same small memory.
 *
 *     MAILWIRE_USER=me MAILWIRE_PASSWORD=secret \
 *       alert_attachment HOST PORT CAFILE|- FROM TO SUBJECT TEXT FILE
 *
 * CAFILE is the CA that signed the server's certificate ("-" for the system
 * store).  Exit status 0 when the server accepted the message, 1 otherwise.
 *
 * Only public headers are used: build with
 *     cc alert_attachment.c $(pkg-config --cflags --libs mailwire) */
#define _POSIX_C_SOURCE 200809L /* sigaction */

#include <mailwire/error.h>
#include <mailwire/mime.h>
#include <mailwire/net.h>
#include <mailwire/smtp.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mw_cancel *cancel_token; /* the signal flag: Ctrl-C cancels cleanly */

static void on_sigint(int sig)
{
    (void)sig;
    mw_cancel_request(cancel_token); /* async-signal-safe */
}

static int fail(const char *what, int rc, const mw_error *err)
{
    fprintf(stderr, "alert_attachment: %s: %s (%s)\n", what,
            err && err->message[0] ? err->message : mw_strerror(rc), mw_error_category(rc));
    if (err && err->reply[0]) fprintf(stderr, "  server said: %s\n", err->reply);
    return 1;
}

/* From, To, Subject, then the two parts.  The attachment's body is only
 * named here: it is read when the message is sent. */
static int build_alert(mw_mime_part **out, char **argv, mw_error *err)
{
    const char *from = argv[4], *to = argv[5], *text = argv[7], *path = argv[8];
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    mw_mime_part *root = NULL, *body = NULL, *file = NULL;
    char *subject = NULL;
    int rc = mw_mime_part_new(&root, "multipart/mixed", err);
    if (!rc) rc = mw_mime_part_header(root, "From", from, MW_MIME_HDR_SET, err);
    if (!rc) rc = mw_mime_part_header(root, "To", to, MW_MIME_HDR_SET, err);
    if (!rc) rc = mw_mime_encode_text(&subject, argv[6], NULL); /* RFC 2047 when not ASCII */
    if (!rc) rc = mw_mime_part_header(root, "Subject", subject, MW_MIME_HDR_SET, err);

    if (!rc) rc = mw_mime_part_new(&body, "text/plain", err);
    if (!rc) rc = mw_mime_part_set_param(body, "charset", "utf-8", err);
    if (!rc) rc = mw_mime_part_set_body(body, text, strlen(text), err);
    if (!rc && (rc = mw_mime_part_add(root, body, err)) == 0) body = NULL;

    if (!rc) rc = mw_mime_part_new(&file, "application/octet-stream", err);
    if (!rc) rc = mw_mime_part_set_disposition(file, "attachment", name, err); /* RFC 2183 */
    if (!rc) rc = mw_mime_part_set_body_file(file, path, err);
    if (!rc && (rc = mw_mime_part_add(root, file, err)) == 0) file = NULL;

    free(subject);
    mw_mime_part_free(body); /* parts not added to the root are still ours */
    mw_mime_part_free(file);
    if (rc) {
        mw_mime_part_free(root);
        root = NULL;
    }
    *out = root;
    return rc;
}

/* Sends the message the reader produces: SMTP pulls it in pieces. */
static int send_alert(char **argv, unsigned port, mw_mime_reader *reader)
{
    if (mw_cancel_new(&cancel_token, NULL) != 0) return fail("cancel token", MW_ENOMEM, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);

    mw_tls_opts tls = MW_TLS_OPTS_INIT; /* certificates and host names verified */
    if (strcmp(argv[3], "-") != 0) tls.ca_file = argv[3];
    mw_net_opts net = MW_NET_OPTS_INIT;
    net.cancel = cancel_token;
    const char *servers[] = {argv[1]};
    mw_smtp_opts so = MW_SMTP_OPTS_INIT; /* tls: MW_TLS_STARTTLS, required */
    so.servers = servers;
    so.nservers = 1;
    so.ports = &port;
    so.nports = 1;
    so.tls_opts = &tls;
    so.net = &net;
    so.user = getenv("MAILWIRE_USER");
    so.password = getenv("MAILWIRE_PASSWORD");

    mw_smtp_msg m = MW_SMTP_MSG_INIT; /* envelope from the From and To fields */
    m.read = mw_mime_reader_read;
    m.read_userdata = reader;
    mw_smtp_result *r = NULL;
    mw_error err;
    mw_error_clear(&err);
    int rc = mw_smtp_sendmessage(&so, &m, 0, &r, &err);
    if (rc == MW_EIO && mw_mime_reader_error(reader)->code) /* the file, not the server */
        fail("reading the attachment", rc, mw_mime_reader_error(reader));
    else if (rc)
        fail("sending", rc, &err);
    else
        printf("sent %llu octets via %s:%u: %d %s\n", (unsigned long long)r->octets, r->server,
               r->port, r->final_code, r->final_text);
    mw_smtp_result_free(r);
    sa.sa_handler = SIG_DFL; /* no handler may see the token once it is freed */
    sigaction(SIGINT, &sa, NULL);
    mw_cancel_free(cancel_token);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned port = argc == 9 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;
    if (argc != 9 || port == 0 || port > 65535) {
        fprintf(stderr, "usage: MAILWIRE_USER=... MAILWIRE_PASSWORD=... alert_attachment "
                        "HOST PORT CAFILE|- FROM TO SUBJECT TEXT FILE\n");
        return 1;
    }
    mw_error err;
    mw_error_clear(&err);
    mw_mime_part *msg = NULL;
    mw_mime_reader *reader = NULL;
    int rc = build_alert(&msg, argv, &err);
    if (rc) fail("building the message", rc, &err);
    /* The reader lays out the headers and boundaries now; the bodies are
     * encoded as the SMTP session asks for bytes. */
    else if ((rc = mw_mime_reader_new(&reader, msg, &err)) != 0)
        fail("preparing the message", rc, &err);
    else
        rc = send_alert(argv, port, reader);
    mw_mime_reader_free(reader);
    mw_mime_part_free(msg);
    return rc ? 1 : 0;
}

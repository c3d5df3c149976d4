/* send_batch — sending many messages over one SMTP connection with
 * mw_smtp_send_batch (mailwire(3)).
 *
 * Each FILE is a message (RFC 5322, any line ends).  The library asks for
 * the next message while the server is still answering the previous one,
 * and with PIPELINING the next envelope goes out with the end of the
 * previous message: one round trip per message.  Every message's outcome
 * comes back to a callback, in order.
 *
 *     send_batch HOST PORT CAFILE|none FROM TO FILE...
 *
 * CAFILE: STARTTLS is required and the server's certificate verified
 * against it ("-" for the system store); "none": no TLS (a local relay).
 * With MAILWIRE_USER and MAILWIRE_PASSWORD in the environment it logs in.
 * Exit status 0 when every message was accepted, 1 otherwise.
 *
 * Only public headers are used: build with
 *     cc send_batch.c $(pkg-config --cflags --libs mailwire) */
#define _POSIX_C_SOURCE 200809L

#include <mailwire/error.h>
#include <mailwire/smtp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct batch {
    char **files;
    int nfiles, next_file;
    int fds[64]; /* a few messages are in hand at once: fds[index % 64] */
    const char *from, *to;
    int sent, failed;
};

/* Called for each message in turn, while the previous one is still on its
 * way: open the next file and describe the message.  Return 1 with *m
 * filled, 0 when there are no more. */
static int next_message(size_t index, mw_smtp_msg *m, void *ud)
{
    struct batch *b = ud;
    while (b->next_file < b->nfiles) {
        const char *path = b->files[b->next_file++];
        int fd = open(path, O_RDONLY);
        if (fd < 0) {
            fprintf(stderr, "send_batch: %s: %s\n", path, strerror(errno));
            b->failed++;
            continue;
        }
        b->fds[index % 64] = fd;
        m->fd = fd; /* streamed from the file: its size costs no memory */
        m->originator = b->from;
        m->recipients = &b->to;
        m->nrecipients = 1;
        m->atleastone = 1;
        return 1;
    }
    return 0;
}

/* Called once per message, in order, with what mw_smtp_send would have
 * returned; result and err are valid only during the call. */
static void message_done(size_t index, int rc, const mw_smtp_result *r, const mw_error *err,
                         void *ud)
{
    struct batch *b = ud;
    close(b->fds[index % 64]);
    if (rc == 0) {
        b->sent++;
        printf("message %zu: %d %s\n", index + 1, r->final_code, r->final_text);
    } else {
        b->failed++;
        printf("message %zu: not sent: %s (%s)\n", index + 1, err->message, mw_error_category(rc));
    }
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: send_batch HOST PORT CAFILE|none FROM TO FILE...\n");
        return 2;
    }
    static const char *servers[1];
    servers[0] = argv[1];
    unsigned ports[1] = {(unsigned)atoi(argv[2])};
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    mw_smtp_opts o = MW_SMTP_OPTS_INIT;
    o.servers = servers;
    o.nservers = 1;
    o.ports = ports;
    o.nports = 1;
    if (!strcmp(argv[3], "none")) {
        o.tls = MW_TLS_NONE;
    } else {
        o.tls = MW_TLS_STARTTLS; /* the default: never falls back to plain text */
        if (strcmp(argv[3], "-")) tls.ca_file = argv[3];
        o.tls_opts = &tls;
    }
    o.user = getenv("MAILWIRE_USER");
    o.password = getenv("MAILWIRE_PASSWORD");

    mw_error err;
    mw_smtp *s = NULL;
    int rc = mw_smtp_open(&s, &o, &err);
    if (rc) {
        fprintf(stderr, "send_batch: cannot open the session: %s\n", err.message);
        return 1;
    }
    struct batch b = {.files = argv + 6, .nfiles = argc - 6, .from = argv[4], .to = argv[5]};
    rc = mw_smtp_send_batch(s, next_message, message_done, &b);
    if (rc) fprintf(stderr, "send_batch: the batch ended early: %s\n", mw_strerror(rc));
    mw_smtp_quit(s);
    mw_smtp_free(s);
    printf("%d sent, %d failed\n", b.sent, b.failed);
    return rc || b.failed ? 1 : 0;
}

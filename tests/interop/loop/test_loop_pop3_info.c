/* A POP3 job's facts before its login (loop.h: mw_loop_pop3_greeting,
 * _capa_known, _capa_count, _capa_line, _tls_info) and
 * MW_LOOP_POP3_CAPA_IF_NONE, over socketpairs whose other end the test
 * plays: what the job read, what it sent, and what it did not send.  TAP. */
#include "loop/loop_int.h"
#include "mailwire/loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

/* What the reply callback saw of the job, at the command's END. */
typedef struct seen {
    int ends, status_value, lines;
    char status[64];
    char greeting[128];
    int capa_known, tls_rc;
    size_t ncapa;
    char capa[4][64];
    int done, code;
    int done_greeting_null;
    char message[400];
} seen;

static int on_reply(mw_loop_job *job, const mw_loop_pop3_reply *r, void *ud)
{
    seen *s = ud;
    if (r->kind == MW_LOOP_POP3_STATUS) {
        s->status_value = (int)r->value;
        snprintf(s->status, sizeof s->status, "%.*s", (int)r->len, r->data ? r->data : "");
    }
    if (r->kind == MW_LOOP_POP3_LINE) s->lines++;
    if (r->kind != MW_LOOP_POP3_END) return 0;
    s->ends++;
    const char *g = mw_loop_pop3_greeting(job);
    snprintf(s->greeting, sizeof s->greeting, "%s", g ? g : "(null)");
    s->capa_known = mw_loop_pop3_capa_known(job);
    s->ncapa = mw_loop_pop3_capa_count(job);
    for (size_t i = 0; i < s->ncapa && i < 4; i++)
        snprintf(s->capa[i], sizeof s->capa[i], "%s", mw_loop_pop3_capa_line(job, i));
    mw_tls_info ti;
    s->tls_rc = mw_loop_pop3_tls_info(job, &ti);
    return 0;
}

static void on_done(mw_loop_job *job, const mw_loop_result *r, void *ud)
{
    seen *s = ud;
    s->done++;
    s->code = r->code;
    snprintf(s->message, sizeof s->message, "%s", r->err->message);
    /* the job has ended: the accessors no longer read it */
    s->done_greeting_null = mw_loop_pop3_greeting(job) == NULL && mw_loop_pop3_capa_count(job) == 0;
}

/* Runs one command-sequence job (no TLS) against a server that answers
 * each of the job's sends with the next of `script` (the greeting
 * first); what the job sent goes into sent. */
static int run(const char *const *script, int auth, const mw_loop_pop3_cmd *cmd, seen *s,
               char *sent, size_t cap)
{
    mw_loop *loop = NULL;
    int sv[2];
    memset(s, 0, sizeof *s);
    if (mw_loop_new(&loop, NULL, NULL) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
        return -1;
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.tls = MW_TLS_NONE;
    o.auth = auth;
    o.user = "u";
    o.password = "p";
    o.allow_plaintext = 1;
    mw_error e;
    int rc = mwi_loop_add_pop3_cmds_fd(loop, NULL, &o, cmd, 1, on_reply, s, sv[0], on_done, s, &e);
    size_t used = 0, lines = 0, answered = 0;
    for (int k = 0; !rc && mw_loop_running(loop) && k < 200; k++) {
        /* one answer for each command line the job sent */
        while (answered <= lines && script[answered]) {
            const char *a = script[answered++];
            if (send(sv[1], a, strlen(a), 0) != (ssize_t)strlen(a)) break;
        }
        mw_loop_fd f;
        if (mw_loop_fds(loop, &f, 1) == 1) mw_loop_action(loop, f.fd, MW_LOOP_IN | MW_LOOP_OUT);
        ssize_t n = recv(sv[1], sent + used, cap - used - 1, MSG_DONTWAIT);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                lines += sent[used + (size_t)i] == '\n';
            used += (size_t)n;
        }
    }
    sent[used] = 0;
    int running = (int)mw_loop_running(loop);
    close(sv[1]);
    mw_loop_free(loop);
    return rc ? rc : running ? -2 : 0;
}

int main(void)
{
    char sent[512];
    seen s;
    mw_loop_pop3_cmd ifnone = {MW_LOOP_POP3_CAPA, 0, MW_LOOP_POP3_CAPA_IF_NONE, 0};

    /* Lines known from the open's CAPA: no second CAPA. */
    int rc = run((const char *[]){"+OK ready <1.2@x>\r\n", "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n",
                                  "+OK bye\r\n", NULL},
                 MW_POP3_AUTH_NONE, &ifnone, &s, sent, sizeof sent);
    ok(rc == 0 && s.done == 1 && s.code == 0,
       "serverinfo-like job over a CAPA with lines ends with 0");
    ok(s.done_greeting_null, "in the done callback the accessors give NULL and 0 (the job ended)");
    ok(!strcmp(sent, "CAPA\r\nQUIT\r\n"),
       "CAPA once, then QUIT: the kept lines answer the command");
    ok(s.ends == 1 && s.status_value == 0 && !strcmp(s.status, "") && s.lines == 2,
       "the command's reply: status \"\" value 0, the two kept lines, END");
    ok(!strcmp(s.greeting, "ready <1.2@x>"), "mw_loop_pop3_greeting: the text after +OK");
    ok(s.capa_known == 1 && s.ncapa == 2 && !strcmp(s.capa[0], "USER") &&
           !strcmp(s.capa[1], "SASL PLAIN"),
       "mw_loop_pop3_capa_known 1, _capa_count 2, _capa_line in order");
    ok(s.tls_rc == MW_EUNSUPPORTED, "mw_loop_pop3_tls_info without TLS: MW_EUNSUPPORTED");

    /* CAPA refused at the open and again: an answer, not an error. */
    rc = run((const char *[]){"+OK old\r\n", "-ERR what\r\n", "-ERR what again\r\n", "+OK bye\r\n",
                              NULL},
             MW_POP3_AUTH_NONE, &ifnone, &s, sent, sizeof sent);
    ok(rc == 0 && s.done == 1 && s.code == 0, "CAPA refused twice: the job still ends with 0");
    ok(!strcmp(sent, "CAPA\r\nCAPA\r\nQUIT\r\n"), "CAPA asked again (no lines known), then QUIT");
    ok(s.ends == 1 && s.status_value == 1 && !strcmp(s.status, "what again") && s.lines == 0,
       "the -ERR is the reply: status value 1 with its text, END");
    ok(s.capa_known == 0 && s.ncapa == 0 && mw_loop_pop3_capa_line(NULL, 0) == NULL,
       "capa_known 0, no lines");

    /* An empty list at the open: asked again, the second answer's lines. */
    rc = run(
        (const char *[]){"+OK x\r\n", "+OK\r\n.\r\n", "+OK\r\nTOP\r\n.\r\n", "+OK bye\r\n", NULL},
        MW_POP3_AUTH_NONE, &ifnone, &s, sent, sizeof sent);
    ok(rc == 0 && !strcmp(sent, "CAPA\r\nCAPA\r\nQUIT\r\n") && s.status_value == 0 &&
           s.lines == 1 && s.capa_known == 1 && s.ncapa == 1 && !strcmp(s.capa[0], "TOP"),
       "an empty CAPA list: asked again, its line given and kept, capa_known 1");

    /* Refused at the open, answered when asked again: those lines, kept
     * printable. */
    rc = run((const char *[]){"+OK x\r\n", "-ERR later\r\n", "+OK\r\nUSER\r\nX-\033[31m\r\n.\r\n",
                              "+OK bye\r\n", NULL},
             MW_POP3_AUTH_NONE, &ifnone, &s, sent, sizeof sent);
    ok(rc == 0 && s.code == 0 && !strcmp(sent, "CAPA\r\nCAPA\r\nQUIT\r\n") && s.status_value == 0 &&
           s.lines == 2,
       "refused, then answered: the second CAPA's status and lines");
    ok(s.capa_known == 1 && s.ncapa == 2 && !strcmp(s.capa[0], "USER") &&
           !strcmp(s.capa[1], "X-?[31m"),
       "capa_known 1 and the second answer's lines kept, control octets as '?'");

    /* A plain CAPA command (no flag) refused still ends the job. */
    mw_loop_pop3_cmd plain = {MW_LOOP_POP3_CAPA, 0, 0, 0};
    rc = run((const char *[]){"+OK x\r\n", "-ERR no\r\n", "-ERR no\r\n", "+OK bye\r\n", NULL},
             MW_POP3_AUTH_NONE, &plain, &s, sent, sizeof sent);
    ok(rc == 0 && s.done == 1 && s.code == MW_EUNSUPPORTED && !strcmp(sent, "CAPA\r\nCAPA\r\n"),
       "a CAPA command without the flag: -ERR ends the job (MW_EUNSUPPORTED), no QUIT");

    /* After a login: the facts are still the ones before it. */
    mw_loop_pop3_cmd noop = {MW_LOOP_POP3_NOOP, 0, 0, 0};
    rc = run((const char *[]){"+OK hi\r\n", "+OK\r\nUSER\r\n.\r\n", "+OK\r\n", "+OK\r\n",
                              "+OK 0 0\r\n", "+OK\r\n", "+OK bye\r\n", NULL},
             MW_POP3_AUTH_USER, &noop, &s, sent, sizeof sent);
    ok(rc == 0 && s.code == 0 && !strcmp(s.greeting, "hi") && s.capa_known == 1 && s.ncapa == 1 &&
           !strcmp(s.capa[0], "USER"),
       "during a command after USER/PASS and STAT: greeting and CAPA lines of the open");

    ok(mw_loop_pop3_greeting(NULL) == NULL && mw_loop_pop3_capa_known(NULL) == 0 &&
           mw_loop_pop3_capa_count(NULL) == 0,
       "NULL job: NULL, 0, 0");
    mw_tls_info ti;
    ok(mw_loop_pop3_tls_info(NULL, &ti) == MW_EINVAL && ti.protocol[0] == 0,
       "mw_loop_pop3_tls_info(NULL): MW_EINVAL, *out zeroed");

    printf("1..%d\n", ntest);
    return failed;
}

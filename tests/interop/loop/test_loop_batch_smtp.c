/* The loop's SMTP batch (mw_loop_add_smtp_batch) against the real Postfix
 * (submission, STARTTLS, AUTH through Dovecot; tests/servers/README.md).
 * User l1 sends 6 messages on one connection: message 2 goes to an
 * unknown user (550 at RCPT: MW_ESERVER, RSET, the batch goes on),
 * message 4 to l2 and the unknown user with atleastone (sent, one
 * recipient rejected); the others to l2.  Checked: each message reported
 * once and in order, one session (two EHLO, one AUTH, six MAIL), the next
 * envelope sent behind the end of the data where RFC 2920 §3.1 allows it
 * (4 times: not after the refused message's RSET), and the 5 messages in
 * l2's Maildir.  TAP; waits are bounds, never measurements. */
#include "mailwire/loop.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

#define NMSG 6

typedef struct st {
    char text[NMSG][512];
    char subj[NMSG][80];
    const char *to[2];
    const char *nobody[1];
    int rc[NMSG], order[NMSG], ndone;
    size_t nrejected[NMSG];
    int reply550;
    int job_n, job_code, job_sent, quit_ok;
    /* the trace: sends counted, and how often MAIL followed the end of a
     * message's data with no reply read between */
    int ehlo, auth, mail, crossed, after_data;
    /* mw_loop_smtp_session at the first message: what the blocking
     * accessors read of it */
    int session_ok;
} st;

static void trace_cb(int dir, const char *line, size_t len, void *ud)
{
    st *s = ud;
    if (getenv("MW_TEST_TRACE")) printf("# %d %.*s\n", dir, (int)len, line);
    if (dir == MW_TRACE_RECV) {
        s->after_data = 0;
    } else if (dir == MW_TRACE_SEND) {
        if (len >= 4 && !strncmp(line, "EHLO", 4)) s->ehlo++;
        if (len >= 4 && !strncmp(line, "AUTH", 4)) s->auth++;
        if (len >= 9 && !strncmp(line, "MAIL FROM", 9)) {
            s->mail++;
            s->crossed += s->after_data;
            s->after_data = 0;
        }
    } else if (len > 1 && strstr(line, "octets of message data")) {
        s->after_data = 1;
    }
}

static int next_cb(mw_loop_job *job, size_t i, mw_smtp_msg *m, void *ud)
{
    st *s = ud;
    if (i == 0) {
        const mw_smtp *ss = mw_loop_smtp_session(job);
        mw_tls_info ti;
        unsigned port = 0;
        s->session_ok = ss && mw_smtp_is_tls(ss) && mw_smtp_esmtp(ss) &&
                        strstr(mw_smtp_greeting(ss), "ESMTP") &&
                        strstr(mw_smtp_ehlo_text(ss, 0), "STARTTLS") &&
                        strstr(mw_smtp_ehlo_text(ss, 1), "AUTH") && *mw_smtp_auth_mech(ss) &&
                        !strcmp(mw_smtp_server(ss, &port), "127.0.0.1") && port &&
                        mw_smtp_tls_info(ss, &ti) == 0 && !strncmp(ti.protocol, "TLSv1", 5) &&
                        ti.verified && strstr(ti.subject, "CN=");
        printf("# session: greeting \"%s\", mechanism %s, %s %s\n", mw_smtp_greeting(ss),
               mw_smtp_auth_mech(ss), ti.protocol, ti.subject);
    }
    if (i >= NMSG) return 0;
    m->data = s->text[i];
    m->len = strlen(s->text[i]);
    m->originator = "l1@test.domain";
    m->recipients = i == 1 ? s->nobody : s->to;
    m->nrecipients = i == 3 ? 2 : 1;
    m->atleastone = 1;
    m->use_chunking = 0; /* DATA: BDAT is never crossed (as mw_smtp_send_batch) */
    return 1;
}

static void msg_cb(mw_loop_job *job, size_t i, int rc, const mw_smtp_result *r, const mw_error *e,
                   void *ud)
{
    (void)job;
    st *s = ud;
    if (s->ndone < NMSG) {
        s->order[s->ndone] = (int)i;
        s->rc[s->ndone] = rc;
        s->nrejected[s->ndone] = r ? r->nrejected : 99;
    }
    if (i == 1 && e->reply_code == 550) s->reply550 = 1;
    printf("# message %zu: %d %s\n", i, rc, rc ? e->message : "sent");
    s->ndone++;
}

static void job_cb(mw_loop_job *job, const mw_loop_result *r, void *ud)
{
    (void)job;
    st *s = ud;
    s->job_n++;
    s->job_code = r->code;
    s->job_sent = r->sent;
    s->quit_ok = r->quit_ok;
    if (r->code) printf("# job: %d %s\n", r->code, r->err->message);
}

static int in_maildir(const char *md, const char *subj)
{
    for (int s = 0; s < 2; s++) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s/%s", md, s ? "cur" : "new");
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char f[1200], buf[4096];
            if (snprintf(f, sizeof f, "%s/%s", dir, e->d_name) >= (int)sizeof f) continue;
            FILE *fp = fopen(f, "rb");
            size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
            if (fp) fclose(fp);
            buf[n] = 0;
            if (strstr(buf, subj)) {
                closedir(d);
                return 1;
            }
        }
        if (d) closedir(d);
    }
    return 0;
}

int main(void)
{
    const char *sport = getenv("MW_SMTP_PORT"), *ca = getenv("MW_CA_FILE");
    const char *root = getenv("MW_MAILDIR_ROOT");
    if (!sport || !ca || !root) {
        printf("1..1\nok 1 - loop smtp batch # SKIP servers not running\n");
        return 0;
    }
    printf("1..7\n");
    static st s;
    s.to[0] = "l2@test.domain";
    s.to[1] = "nobody-batch@test.domain";
    s.nobody[0] = "nobody-batch@test.domain";
    for (int k = 0; k < NMSG; k++) {
        snprintf(s.subj[k], sizeof s.subj[k], "loop-batch %d-%lld-%d", (int)getpid(),
                 (long long)time(NULL), k);
        snprintf(s.text[k], sizeof s.text[k],
                 "From: l1@test.domain\nTo: l2@test.domain\nSubject: %s\n\nmessage %d\n.dot\n",
                 s.subj[k], k);
    }
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    tls.ca_file = ca;
    mw_loop *loop = NULL;
    if (mw_loop_new(&loop, NULL, NULL) != 0) return 1;
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.host = "127.0.0.1";
    o.port = (unsigned)strtoul(sport, NULL, 10);
    o.tls_opts = &tls;
    o.user = "l1";
    o.password = "pw-l1";
    o.trace = trace_cb;
    o.trace_userdata = &s;
    mw_loop_smtp_batch b = MW_LOOP_SMTP_BATCH_INIT;
    b.next = next_cb;
    b.done = msg_cb;
    b.userdata = &s;
    mw_error err = {0};
    int rc = mw_loop_add_smtp_batch(loop, NULL, &o, &b, job_cb, &s, &err);
    if (!rc) rc = mw_loop_run(loop, mw_now_ms() + 300000, &err);
    if (rc) printf("# %d %s\n", rc, err.message);
    mw_loop_free(loop);
    int order = s.ndone == NMSG;
    for (int k = 0; order && k < NMSG; k++)
        order = s.order[k] == k && s.rc[k] == (k == 1 ? MW_ESERVER : 0);
    ok(rc == 0 && order, "6 messages, each reported once in order: 0 but message 2 MW_ESERVER");
    ok(s.reply550 && s.nrejected[3] == 1,
       "message 2 refused with the 550; message 4 sent with its one recipient rejected");
    ok(s.job_n == 1 && s.job_code == 0 && s.job_sent == 5 && s.quit_ok,
       "the job: 0, 5 messages accepted, 221 to QUIT");
    printf("# EHLO %d, AUTH %d, MAIL %d, crossed %d\n", s.ehlo, s.auth, s.mail, s.crossed);
    ok(s.ehlo == 2 && s.auth == 1 && s.mail == NMSG,
       "one session: EHLO before and after STARTTLS, one AUTH, six MAIL");
    ok(s.crossed == 4, "the next envelope behind the data 4 times (not after the RSET)");
    char md[512];
    snprintf(md, sizeof md, "%s/l2/Maildir", root);
    int found = 0;
    /* Postfix delivers within ~0.1 s usually; 60 s is a bound, not a measure. */
    for (int i = 0; i < 600; i++) {
        found = 0;
        for (int k = 0; k < NMSG; k++)
            found += k != 1 && in_maildir(md, s.subj[k]);
        if (found == NMSG - 1) break;
        usleep(100 * 1000);
    }
    ok(found == NMSG - 1, "the 5 accepted messages arrived in l2's Maildir");
    ok(s.session_ok,
       "mw_loop_smtp_session: greeting, EHLO before and after STARTTLS, the "
       "mechanism, server and port, the TLS details (verified) as blocking reads them");
    return failed;
}

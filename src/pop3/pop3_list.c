/* POP3 listings: LIST and UIDL, whole or of one message, and both in one
 * round trip (RFC 1939 §5 and §7, RFC 2449 §6.6), each entry checked and
 * the listing bounded by the message count. */
#include "pop3/pop3_int.h"

#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- LIST / UIDL ------------------------------------------------------------ */

typedef struct list_acc {
    void *items;
    size_t n, cap, size;
    int uidl;
    int lenient; /* UIDL: a bad unique-id gives an entry with uid "" */
} list_acc;

/* A listing that runs past what it may hold ends the session at once: the
 * rest of the reply is not read (it may never end). */
static int list_overflow(mw_pop3 *p, int rc)
{
    return mwi_pop3_fatal(p, rc);
}

static int list_line(mw_pop3 *p, const char *line, size_t len, void *ud)
{
    list_acc *a = ud;
    uint64_t msg, size = 0;
    const char *uid = NULL;
    size_t ul = 0;
    int bad = a->uidl ? mwi_pop3_parse_uidl(line, len, &msg, &uid, &ul)
                      : mwi_pop3_parse_listing(line, len, &msg, &size);
    /* RFC 1939 §7: a unique-id is 1-70 octets of 0x21-0x7E.  One that is
     * not costs its own message only (fetch leaves it on the server): the
     * entry keeps the number, with an empty uid. */
    if (bad && a->lenient && !mwi_pop3_parse_uidl_msg(line, len, &msg)) {
        bad = 0;
        uid = "";
        ul = 0;
    }
    if (bad || (p->have_count && msg > p->count)) {
        mwi_err_set_reply(&p->err, line, len);
        mwi_err_set(&p->err, MW_EPROTO,
                    bad ? "bad %s line: '%s'" : "%s names a message over the count: '%s'",
                    a->uidl ? "UIDL" : "LIST", p->err.reply);
        return list_overflow(p, MW_EPROTO);
    }
    /* A listing has at most one entry per message: the count bounds what
     * we allocate for it, and how long we read. */
    if (p->have_count && a->n >= p->count) {
        mwi_err_set_reply(&p->err, line, len);
        mwi_err_set(&p->err, MW_EPROTO,
                    "%s lists more entries than the %llu messages: '%s'; stopped reading it",
                    a->uidl ? "UIDL" : "LIST", (unsigned long long)p->count, p->err.reply);
        return list_overflow(p, MW_EPROTO);
    }
    size_t most = P3_MAX_LIST_ITEMS;
    if (a->n >= most) {
        mwi_err_set(&p->err, MW_ETOOBIG, "%s reply of over %zu entries%s; stopped reading it",
                    a->uidl ? "UIDL" : "LIST", most,
                    p->have_count ? "" : " with no message count (STAT) to bound it");
        return list_overflow(p, MW_ETOOBIG);
    }
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 64;
        if (ncap > most) ncap = most;
        void *ni = realloc(a->items, ncap * a->size);
        if (!ni) return mwi_err_set(&p->err, MW_ENOMEM, "out of memory");
        a->items = ni;
        a->cap = ncap;
    }
    if (a->uidl) {
        mw_pop3_uid *u = (mw_pop3_uid *)a->items + a->n;
        u->msg = msg;
        memcpy(u->uid, uid, ul);
        u->uid[ul] = '\0';
    } else {
        mw_pop3_listing *l = (mw_pop3_listing *)a->items + a->n;
        l->msg = msg;
        l->size = size;
    }
    a->n++;
    return 0;
}

/* Reads one LIST or UIDL reply whose command was sent: its status line,
 * then every entry, checked and bounded by list_line. */
static int read_listing(mw_pop3 *p, int uidl, int lenient, void **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    const char *what = uidl ? "UIDL" : "LIST";
    /* Named in errors even when the other command went out after it. */
    mwi_err_set_command(&p->err, what, 4);
    mw_pop3_status st;
    int rc = mwi_pop3_read_status(p, &st);
    if (rc) return rc;
    if (st.kind != MW_POP3_OK) return mwi_pop3_server_error(p, &st, MW_ESERVER, what);
    list_acc a = {NULL, 0, 0, uidl ? sizeof(mw_pop3_uid) : sizeof(mw_pop3_listing), uidl, lenient};
    rc = mwi_pop3_read_lines(p, list_line, &a);
    if (rc == MW_EPROTO && p->state != P3_BROKEN)
        mwi_pop3_fatal(p, rc); /* a server that lies in listings is not trusted further */
    if (rc) {
        free(a.items);
        return rc;
    }
    *items = a.items;
    *n = a.n;
    return 0;
}

static int list_all(mw_pop3 *p, int uidl, void **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    const char *what = uidl ? "UIDL" : "LIST";
    int rc = mwi_pop3_require(p, P3_TRANS, what);
    if (rc) return rc;
    mwi_pop3_command_deadline(p, 1);
    rc = mwi_pop3_send(p, what, 4, NULL, 1);
    if (!rc) rc = read_listing(p, uidl, 0, items, n);
    mwi_pop3_command_deadline(p, 0);
    return rc;
}

/* Without a STAT (mw_pop3_opts.skip_stat) the count comes from LIST: RFC
 * 1939 §5 counts in STAT exactly the messages LIST lists (neither includes
 * those marked deleted).  Only a listing numbered 1..n, as a session that
 * deleted nothing has, is taken; the count then bounds the UIDL that
 * follows as STAT's would. */
static void count_from_list(mw_pop3 *p, const mw_pop3_listing *l, size_t n)
{
    if (p->have_count) return;
    for (size_t i = 0; i < n; i++)
        if (l[i].msg != i + 1) return;
    p->count = n;
    p->have_count = 1;
}

int mw_pop3_list_uidl(mw_pop3 *p, mw_pop3_listing **items, size_t *n, mw_pop3_uid **uids,
                      size_t *nuids, int *uidl_rc)
{
    if (!p || !items || !n || !uids || !nuids || !uidl_rc) return MW_EINVAL;
    *items = NULL;
    *uids = NULL;
    *n = *nuids = 0;
    *uidl_rc = 0;
    int rc = mwi_pop3_require(p, P3_TRANS, "LIST");
    if (rc) return rc;
    /* RFC 2449 §6.6: with PIPELINING the client may send several commands
     * before reading; the replies come back in order.  Two short lines go
     * in one write, so the server's two replies cost one round trip. */
    int piped = p->pipelining;
    mwi_pop3_command_deadline(p, 1);
    rc = mwi_pop3_send(p, "LIST", 4, NULL, !piped);
    if (!rc && piped) rc = mwi_pop3_send(p, "UIDL", 4, NULL, 1);
    void *li = NULL, *ui = NULL;
    size_t nl = 0, nu = 0;
    if (!rc) rc = read_listing(p, 0, 0, &li, &nl);
    if (!rc) count_from_list(p, li, nl);
    if (p->state == P3_TRANS && (piped || !rc)) {
        /* Pipelined, the UIDL reply is read even after a LIST -ERR, so the
         * session stays in step; LIST's error is the one reported. */
        mw_error list_err = p->err;
        int urc = piped ? 0 : mwi_pop3_send(p, "UIDL", 4, NULL, 1);
        if (!urc) urc = read_listing(p, 1, 1, &ui, &nu);
        if (p->state == P3_BROKEN) {
            rc = urc;
        } else if (rc) {
            free(ui);
            ui = NULL;
            p->err = list_err;
        } else if (urc) {
            *uidl_rc = urc; /* the detail stays in mw_pop3_error(p) */
        }
    }
    mwi_pop3_command_deadline(p, 0);
    if (rc) {
        free(li);
        free(ui);
        return rc;
    }
    *items = li;
    *n = nl;
    *uids = ui;
    *nuids = nu;
    return 0;
}

int mw_pop3_list(mw_pop3 *p, mw_pop3_listing **items, size_t *n)
{
    if (!p || !items || !n) return MW_EINVAL;
    void *it;
    int rc = list_all(p, 0, &it, n);
    *items = it;
    return rc;
}

int mw_pop3_uidl(mw_pop3 *p, mw_pop3_uid **items, size_t *n)
{
    if (!p || !items || !n) return MW_EINVAL;
    void *it;
    int rc = list_all(p, 1, &it, n);
    *items = it;
    return rc;
}

void mw_pop3_list_free(mw_pop3_listing *items)
{
    free(items);
}
void mw_pop3_uidl_free(mw_pop3_uid *items)
{
    free(items);
}

int mw_pop3_list_one(mw_pop3 *p, uint64_t msg, uint64_t *size)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "LIST");
    if (!rc) rc = mwi_pop3_check_msg(p, msg);
    if (rc) return rc;
    mw_pop3_status st;
    rc = mwi_pop3_simple(p, &st, "LIST", "LIST %llu", (unsigned long long)msg);
    if (rc) return rc;
    uint64_t m, s;
    if (mwi_pop3_parse_listing(st.text, st.text_len, &m, &s) || m != msg) {
        mwi_err_set_reply(&p->err, st.text, st.text_len);
        return mwi_pop3_fatal(p, mwi_err_set(&p->err, MW_EPROTO, "bad LIST %llu reply: '%s'",
                                             (unsigned long long)msg, p->err.reply));
    }
    if (size) *size = s;
    return 0;
}

int mw_pop3_uidl_one(mw_pop3 *p, uint64_t msg, char uid[71])
{
    if (!p || !uid) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "UIDL");
    if (!rc) rc = mwi_pop3_check_msg(p, msg);
    if (rc) return rc;
    mw_pop3_status st;
    rc = mwi_pop3_simple(p, &st, "UIDL", "UIDL %llu", (unsigned long long)msg);
    if (rc) return rc;
    uint64_t m;
    const char *u;
    size_t ul;
    if (mwi_pop3_parse_uidl(st.text, st.text_len, &m, &u, &ul) || m != msg) {
        mwi_err_set_reply(&p->err, st.text, st.text_len);
        return mwi_pop3_fatal(p, mwi_err_set(&p->err, MW_EPROTO, "bad UIDL %llu reply: '%s'",
                                             (unsigned long long)msg, p->err.reply));
    }
    memcpy(uid, u, ul);
    uid[ul] = '\0';
    return 0;
}

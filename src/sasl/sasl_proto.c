/* The codes of POP3 and SMTP for the SASL driver (driver.h): how each
 * protocol's replies to AUTH read as continue, success or which refusal. */
#include "sasl/driver.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto/pop3_codec.h"
#include "proto/smtp_reply.h"

static void pop3_classify(const void *reply, unsigned flags, mwi_sasld_reply *out)
{
    const mw_pop3_status *st = reply;
    memset(out, 0, sizeof *out);
    out->text = st->text;
    out->len = st->text_len;
    if (st->kind == MW_POP3_CONT) {
        /* RFC 5034 §4: "+" SP base64 (or a bare "+": an empty challenge). */
        out->kind = MWI_SASLD_R_CONT;
        snprintf(out->status, sizeof out->status, "+");
        return;
    }
    if (st->kind == MW_POP3_OK) {
        out->kind = MWI_SASLD_R_OK;
        snprintf(out->status, sizeof out->status, "+OK");
        return;
    }
    snprintf(out->status, sizeof out->status, "-ERR");
    snprintf(out->resp_code, sizeof out->resp_code, "%s", st->code);
    const char *c = st->code;
    if (!strcasecmp(c, "AUTH"))
        out->kind = MWI_SASLD_R_CREDS; /* RFC 3206 §5 */
    else if (!strncasecmp(c, "SYS/TEMP", 8) || !strcasecmp(c, "IN-USE") ||
             !strcasecmp(c, "LOGIN-DELAY"))
        out->kind = MWI_SASLD_R_TEMP; /* RFC 2449 §8.1, RFC 3206 §4 */
    else if (!strncasecmp(c, "SYS/PERM", 8) || (flags & MWI_SASLD_F_RESP_CODES))
        /* RFC 3206 §4: [SYS/PERM] is the server's system, not the
         * credentials; §6: with AUTH-RESP-CODE announced, a refusal of the
         * credentials says [AUTH], so this one is about something else. */
        out->kind = MWI_SASLD_R_MECH;
    else
        out->kind = MWI_SASLD_R_CREDS; /* it may be the password: no retry */
}

static void smtp_classify(const void *reply, unsigned flags, mwi_sasld_reply *out)
{
    (void)flags;
    const mw_smtp_reply *rep = reply;
    memset(out, 0, sizeof *out);
    int code = rep->code;
    out->reply_code = code;
    snprintf(out->enhanced, sizeof out->enhanced, "%s", rep->enhanced);
    snprintf(out->status, sizeof out->status, "%03d%s%s", code > 0 && code < 1000 ? code : 0,
             rep->enhanced[0] ? " " : "", rep->enhanced);
    if (code == 334) {
        /* RFC 4954 §4: "334" SP base64, on one line. */
        out->text = mwi_smtp_reply_line(rep, 0, &out->len);
        out->kind = rep->nlines == 1 ? MWI_SASLD_R_CONT : MWI_SASLD_R_BAD;
        return;
    }
    out->text = mwi_smtp_reply_summary(rep, &out->len);
    if (code >= 200 && code < 300)
        out->kind = MWI_SASLD_R_OK; /* 235 (RFC 4954 §6) */
    else if (code == 421)
        out->kind = MWI_SASLD_R_GONE; /* RFC 5321 §3.8 */
    else if (code == 432 || code == 535 || !strcmp(rep->enhanced, "5.7.8"))
        out->kind = MWI_SASLD_R_CREDS; /* RFC 4954 §6: transition needed, invalid */
    else if (code >= 400 && code < 500)
        out->kind = MWI_SASLD_R_TEMP; /* 454 and the like */
    else if (code == 500 || code == 501 || code == 504 || code == 534 || code == 538)
        /* RFC 4954 §6: line too long, cancelled or bad argument, unknown
         * mechanism, too weak, needs encryption. */
        out->kind = MWI_SASLD_R_MECH;
    else if (code >= 500 && code < 600)
        out->kind = MWI_SASLD_R_OTHER;
    else
        out->kind = MWI_SASLD_R_BAD;
}

const mwi_sasl_proto mwi_sasl_proto_pop3 = {"POP3", "pop", 255, pop3_classify};
const mwi_sasl_proto mwi_sasl_proto_smtp = {"SMTP", "smtp", 512, smtp_classify};

/* What `mailwire pop3 serverinfo` and `mailwire smtp serverinfo` share: the
 * TLS session details, as text or as a JSON object. */
#include "commands.h"
#include "connopts.h"

#include <string.h>

static void jfield(FILE *f, const char *name, const char *v, int first)
{
    fprintf(f, "%s\"%s\":", first ? "" : ",", name);
    mw_cli_json_string(f, v, strlen(v));
}

void mw_cli_print_tls_info(FILE *f, const mw_tls_info *t, const char *how, int json)
{
    if (json) {
        if (!t) {
            fputs("null", f);
            return;
        }
        fputc('{', f);
        jfield(f, "how", how, 1);
        jfield(f, "protocol", t->protocol, 0);
        jfield(f, "cipher", t->cipher, 0);
        jfield(f, "subject", t->subject, 0);
        jfield(f, "issuer", t->issuer, 0);
        jfield(f, "not_before", t->not_before, 0);
        jfield(f, "not_after", t->not_after, 0);
        jfield(f, "sha256", t->sha256, 0);
        jfield(f, "cert_pin", t->cert_pin, 0);
        jfield(f, "spki_pin", t->spki_pin, 0);
        fprintf(f, ",\"verified\":%s", t->verified ? "true" : "false");
        jfield(f, "verify_error", t->verify_error, 0);
        fputc('}', f);
        return;
    }
    if (!t) {
        fputs("TLS: none (plain text)\n", f);
        return;
    }
    fprintf(f,
            "TLS (%s):\n"
            "    Protocol:    %s\n"
            "    Cipher:      %s\n"
            "    Subject:     %s\n"
            "    Issuer:      %s\n"
            "    Valid from:  %s\n"
            "    Valid until: %s\n"
            "    SHA-256:     %s\n"
            "    Pins:        %s (certificate)\n"
            "                 %s (public key)\n"
            "    Verified:    %s%s\n",
            how, t->protocol, t->cipher, t->subject, t->issuer, t->not_before, t->not_after,
            t->sha256, t->cert_pin, t->spki_pin,
            t->verified ? "yes" : "no: ", t->verified ? "" : t->verify_error);
}

/* Masking AUTH exchanges in traces (docs/CONVENTIONS.md, "Safe defaults"). */
#include "sasl/sasl.h"

#include <string.h>
#include <strings.h>

static size_t emit(char *out, size_t outsz, size_t pos, const char *s, size_t n)
{
    if (pos >= outsz) return pos;
    size_t room = outsz - 1 - pos;
    if (n > room) n = room;
    memcpy(out + pos, s, n);
    out[pos + n] = '\0';
    return pos + n;
}

size_t mwi_sasl_mask(char *out, size_t outsz, const char *line, size_t len)
{
    if (!out || outsz == 0) return 0;
    out[0] = '\0';
    if (!line) return 0;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    /* RFC 4954 §4 / RFC 5034 §4: "AUTH" SP mechanism [SP initial-response].
     * The keyword and the mechanism name are kept so a trace still shows
     * which mechanism was tried; everything after them is a secret. */
    if (len >= 5 && strncasecmp(line, "AUTH", 4) == 0 && (line[4] == ' ' || line[4] == '\t')) {
        size_t i = 5;
        while (i < len && line[i] == ' ')
            i++;
        size_t mech = i;
        while (i < len && line[i] != ' ' && line[i] != '\t' && i - mech < MW_SASL_MECH_NAME_MAX)
            i++;
        /* The mechanism name must be a mechanism name (RFC 4422 §3.1:
         * upper-case letters, digits, '-' and '_'); anything else is masked. */
        int name_ok = i > mech;
        for (size_t k = mech; k < i; k++) {
            char c = line[k];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_'))
                name_ok = 0;
        }
        size_t pos = emit(out, outsz, 0, line, 5);
        if (!name_ok) return emit(out, outsz, pos, "****", 4);
        pos = emit(out, outsz, pos, line + mech, i - mech);
        if (i < len) pos = emit(out, outsz, pos, " ****", 5);
        return pos;
    }
    /* RFC 4954 §4: "*" cancels the exchange; nothing secret in it, nor in
     * an empty response. */
    if (len == 0) return 0;
    if (len == 1 && line[0] == '*') return emit(out, outsz, 0, "*", 1);
    return emit(out, outsz, 0, "****", 4);
}

/* Dates (RFC 5322 §3.3 and the obsolete forms of §4.3) and unique IDs. */
#include "mime/mime_int.h"
#include "util/err.h"
#include "util/fmt.h"
#include "util/random.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                     "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const wdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
static const char *const Months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const Wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

struct cur {
    const char *s;
    size_t n, i;
};

/* Skips white space, folding and comments (comments may nest). */
static void skip(struct cur *c)
{
    while (c->i < c->n) {
        char ch = c->s[c->i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            c->i++;
        } else if (ch == '(') {
            int depth = 0;
            while (c->i < c->n) {
                char x = c->s[c->i++];
                if (x == '\\' && c->i < c->n)
                    c->i++;
                else if (x == '(')
                    depth++;
                else if (x == ')' && --depth == 0)
                    break;
            }
        } else {
            break;
        }
    }
}

static int number(struct cur *c, int maxdigits, int *out, int *ndigits)
{
    int v = 0, d = 0;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9' && d < maxdigits) {
        v = v * 10 + (c->s[c->i++] - '0');
        d++;
    }
    if (ndigits) *ndigits = d;
    *out = v;
    return d > 0;
}

static size_t word(struct cur *c, char *buf, size_t size)
{
    size_t k = 0;
    while (c->i < c->n) {
        char ch = c->s[c->i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))) break;
        if (k + 1 < size) buf[k++] = (char)mw_lower((unsigned char)ch);
        c->i++;
    }
    buf[k] = '\0';
    return k;
}

/* RFC 5322 §4.3 obs-zone. */
static int obs_zone(const char *w, int *minutes)
{
    static const struct {
        const char *n;
        int h;
    } z[] = {{"ut", 0},   {"gmt", 0},  {"utc", 0},  {"z", 0},    {"est", -5}, {"edt", -4},
             {"cst", -6}, {"cdt", -5}, {"mst", -7}, {"mdt", -6}, {"pst", -8}, {"pdt", -7}};
    for (size_t k = 0; k < sizeof z / sizeof z[0]; k++)
        if (!strcmp(w, z[k].n)) {
            *minutes = z[k].h * 60;
            return 1;
        }
    /* Military zones: §4.3 says treat them as -0000 (unknown). */
    if (strlen(w) == 1) {
        *minutes = 0;
        return 1;
    }
    return 0;
}

static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    /* Days since 1970-01-01 in the proleptic Gregorian calendar. */
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

int mw_mime_date_parse(mw_mime_date *out, const char *s, size_t n)
{
    struct cur c = {s, n, 0};
    char w[16];
    memset(out, 0, sizeof *out);
    out->weekday = -1;
    skip(&c);
    size_t save = c.i;
    if (word(&c, w, sizeof w)) {
        int found = -1;
        for (int k = 0; k < 7; k++)
            if (!strncmp(w, wdays[k], 3)) found = k;
        if (found < 0) return MW_EFORMAT;
        out->weekday = found;
        skip(&c);
        if (c.i < n && s[c.i] == ',') c.i++;
        skip(&c);
    } else {
        c.i = save;
    }
    int day, year, yd, h, m, sec = 0;
    if (!number(&c, 2, &day, NULL) || day < 1 || day > 31) return MW_EFORMAT;
    skip(&c);
    if (!word(&c, w, sizeof w)) return MW_EFORMAT;
    int mon = -1;
    for (int k = 0; k < 12; k++)
        if (!strncmp(w, months[k], 3)) mon = k;
    if (mon < 0) return MW_EFORMAT;
    skip(&c);
    if (!number(&c, 4, &year, &yd)) return MW_EFORMAT;
    /* RFC 5322 §4.3: two-digit years < 50 are 20xx, else 19xx; three-digit
     * years have 1900 added. */
    if (yd == 2)
        year += year < 50 ? 2000 : 1900;
    else if (yd == 3)
        year += 1900;
    skip(&c);
    if (!number(&c, 2, &h, NULL) || h > 23) return MW_EFORMAT;
    skip(&c);
    if (c.i >= n || s[c.i] != ':') return MW_EFORMAT;
    c.i++;
    skip(&c);
    if (!number(&c, 2, &m, NULL) || m > 59) return MW_EFORMAT;
    skip(&c);
    if (c.i < n && s[c.i] == ':') {
        c.i++;
        skip(&c);
        if (!number(&c, 2, &sec, NULL) || sec > 60) return MW_EFORMAT;
        skip(&c);
    }
    int zone = 0, zknown = 1;
    if (c.i < n && (s[c.i] == '+' || s[c.i] == '-')) {
        int sign = s[c.i] == '-' ? -1 : 1, z, zd;
        c.i++;
        if (!number(&c, 4, &z, &zd) || zd != 4 || z % 100 > 59) return MW_EFORMAT;
        zone = sign * (z / 100 * 60 + z % 100);
        if (sign < 0 && z == 0) zknown = 0; /* RFC 5322 §3.3: -0000 means "local time unknown" */
    } else if (word(&c, w, sizeof w)) {
        if (!obs_zone(w, &zone)) return MW_EFORMAT;
        if (strlen(w) == 1 && strcmp(w, "z")) zknown = 0;
    } else {
        zknown = 0; /* no zone: lenient, taken as UTC */
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (day > mdays[mon]) return MW_EFORMAT;
    out->year = year;
    out->month = mon + 1;
    out->day = day;
    out->hour = h;
    out->minute = m;
    out->second = sec;
    out->zone_minutes = zone;
    out->zone_known = zknown;
    long long days = days_from_civil(year, (unsigned)mon + 1, (unsigned)day);
    out->utc =
        (int64_t)(days * 86400 + h * 3600 + m * 60 + (sec > 59 ? 59 : sec)) - (int64_t)zone * 60;
    return 0;
}

/* RFC 5322 §3.3, written with the table above and util/fmt.h, not
 * strftime (the caller's locale cannot change the names) nor printf (this
 * runs once per message sent: SMTP's Date field comes from here too). */
int mw_mime_date_format(char *buf, size_t size, int64_t t, int zone_minutes)
{
    if (size < MW_MIME_DATE_SIZE || zone_minutes < -1439 || zone_minutes > 1439) return MW_EINVAL;
    time_t local = (time_t)(t + (int64_t)zone_minutes * 60);
    struct tm tm;
    if (!gmtime_r(&local, &tm)) return MW_EINVAL;
    int az = zone_minutes < 0 ? -zone_minutes : zone_minutes;
    mw_fmt f;
    mw_fmt_init(&f, buf, size);
    mw_fmt_str(&f, Wdays[tm.tm_wday]);
    mw_fmt_mem(&f, ", ", 2);
    mw_fmt_uint(&f, (unsigned)tm.tm_mday, 1);
    mw_fmt_mem(&f, " ", 1);
    mw_fmt_str(&f, Months[tm.tm_mon]);
    mw_fmt_mem(&f, " ", 1);
    mw_fmt_uint(&f, (unsigned long long)((long long)tm.tm_year + 1900), 4);
    mw_fmt_mem(&f, " ", 1);
    mw_fmt_uint(&f, (unsigned)tm.tm_hour, 2);
    mw_fmt_mem(&f, ":", 1);
    mw_fmt_uint(&f, (unsigned)tm.tm_min, 2);
    mw_fmt_mem(&f, ":", 1);
    mw_fmt_uint(&f, (unsigned)tm.tm_sec, 2);
    mw_fmt_mem(&f, zone_minutes < 0 ? " -" : " +", 2);
    mw_fmt_uint(&f, (unsigned)(az / 60), 2);
    mw_fmt_uint(&f, (unsigned)(az % 60), 2);
    return f.over ? MW_EINVAL : 0;
}

int mw_mime_date_now(char *buf, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    if (!localtime_r(&now, &tm)) return MW_EINVAL;
    return mw_mime_date_format(buf, size, (int64_t)now, (int)(tm.tm_gmtoff / 60));
}

/* Message-ID (RFC 5322 §3.6.4): unique, not secret; SMTP's come from here
 * too.  Drawing random octets per message cost a system call for every
 * message of a batch; instead each thread draws 12 random octets once and
 * adds a counter.  A fork copies that state, so a pthread_atfork handler
 * bumps a generation number that makes every thread of the child draw
 * afresh. */
static unsigned long msgid_generation = 1;
static pthread_once_t msgid_once = PTHREAD_ONCE_INIT;
static void msgid_forked(void)
{
    __atomic_add_fetch(&msgid_generation, 1, __ATOMIC_RELAXED);
}
static void msgid_init(void)
{
    pthread_atfork(NULL, NULL, msgid_forked);
}

int mw_mime_unique_id(char *buf, size_t size, const char *domain)
{
    static _Thread_local unsigned char seed[12];
    static _Thread_local unsigned long seed_gen;
    static _Thread_local unsigned long long counter;
    char host[256];
    if (!buf || size == 0) return MW_EINVAL;
    if (!domain || !*domain) {
        /* The host name when it looks qualified; else a name that cannot
         * collide with a real domain (RFC 2606). */
        if (gethostname(host, sizeof host) == 0 &&
            (host[sizeof host - 1] = '\0', strchr(host, '.')))
            domain = host;
        else
            domain = "mailwire.invalid";
    }
    if (strpbrk(domain, "<>\r\n \t@")) return MW_EINVAL;
    pthread_once(&msgid_once, msgid_init);
    unsigned long gen = __atomic_load_n(&msgid_generation, __ATOMIC_RELAXED);
    if (seed_gen != gen) {
        /* The kernel's generator, not OpenSSL's: the first RAND_bytes of a
         * process sets up its DRBG and providers, costly when TLS is not
         * used at all. */
        if (mwi_random_bytes(seed, sizeof seed, NULL)) return MW_EIO;
        seed_gen = gen;
        counter = 0;
    }
    counter++;
    /* <time.seed-in-hex.counter@domain>, by table and without printf. */
    static const char digits[] = "0123456789abcdef";
    char hex[24];
    for (size_t i = 0; i < sizeof seed; i++) {
        hex[2 * i] = digits[seed[i] >> 4];
        hex[2 * i + 1] = digits[seed[i] & 15];
    }
    mw_fmt f;
    mw_fmt_init(&f, buf, size);
    time_t now = time(NULL);
    mw_fmt_mem(&f, "<", 1);
    mw_fmt_uint(&f, now > 0 ? (unsigned long long)now : 0, 1);
    mw_fmt_mem(&f, ".", 1);
    mw_fmt_mem(&f, hex, sizeof hex);
    mw_fmt_mem(&f, ".", 1);
    mw_fmt_hex(&f, counter);
    mw_fmt_mem(&f, "@", 1);
    mw_fmt_str(&f, domain);
    mw_fmt_mem(&f, ">", 1);
    return f.over ? MW_ETOOBIG : 0;
}

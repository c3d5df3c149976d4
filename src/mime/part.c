/* The MIME part tree: creation, derived properties, accessors. */
#include "mime/mime_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mw_mime_part *mwi_part_new(mw_mime_part *parent, const mw_mime_header_opts *hopts)
{
    mw_mime_part *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (mw_mime_headers_new(&p->hdr, hopts, NULL)) {
        free(p);
        return NULL;
    }
    char tmp[32];
    if (parent) {
        snprintf(tmp, sizeof tmp, ".%zu", parent->nchild + 1);
        size_t pl = strlen(parent->path), tl = strlen(tmp);
        p->path = malloc(pl + tl + 1);
        if (p->path) {
            memcpy(p->path, parent->path, pl);
            memcpy(p->path + pl, tmp, tl + 1);
        }
    } else {
        p->path = strdup("1");
    }
    if (!p->path) {
        mw_mime_headers_free(p->hdr);
        free(p);
        return NULL;
    }
    if (parent) {
        p->parent = parent;
        p->depth = parent->depth + 1;
        if (parent->last)
            parent->last->next = p;
        else
            parent->first = p;
        parent->last = p;
        parent->nchild++;
    }
    return p;
}

void mw_mime_part_free(mw_mime_part *p)
{
    if (!p) return;
    /* Children first; the recursion is bounded by max_depth when parsed. */
    mw_mime_part *c = p->first;
    while (c) {
        mw_mime_part *n = c->next;
        c->parent = NULL;
        c->next = NULL;
        mw_mime_part_free(c);
        c = n;
    }
    if (p->parent) {
        /* A part freed on its own leaves its parent's list. */
        mw_mime_part **pp = &p->parent->first, *prev = NULL;
        while (*pp && *pp != p) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = p->next;
            if (p->parent->last == p) p->parent->last = prev;
            p->parent->nchild--;
        }
    }
    mw_mime_headers_free(p->hdr);
    mw_mime_ctype_free(p->ct);
    mw_mime_ctype_free(p->cd);
    free(p->type);
    free(p->filename);
    free(p->path);
    mwi_buf_free(&p->body);
    mwi_buf_free(&p->delim);
    mwi_buf_free(&p->close);
    mwi_buf_free(&p->epilogue);
    free(p->file);
    free(p->boundary);
    free(p);
}

static const char *enc_names[] = {"",       "7bit",   "8bit", "binary", "quoted-printable",
                                  "base64", "unknown"};

const char *mw_mime_encoding_name(int e)
{
    if (e < 0 || e > MW_MIME_ENC_UNKNOWN) return "unknown";
    return e == MW_MIME_ENC_NONE ? "7bit" : enc_names[e];
}

static int encoding_from_name(const char *s, size_t n)
{
    for (int e = MW_MIME_ENC_7BIT; e < MW_MIME_ENC_UNKNOWN; e++)
        if (!mwi_ascii_casecmp_n(s, n, enc_names[e], strlen(enc_names[e]))) return e;
    /* Old mailers wrote these (RFC 1341 era). */
    if (!mwi_ascii_casecmp_n(s, n, "quoted_printable", 16)) return MW_MIME_ENC_QP;
    return MW_MIME_ENC_UNKNOWN;
}

unsigned mwi_part_derive(mw_mime_part *p)
{
    unsigned flags = 0;
    mw_mime_ctype_free(p->ct);
    mw_mime_ctype_free(p->cd);
    p->ct = p->cd = NULL;
    free(p->type);
    p->type = NULL;
    free(p->filename);
    p->filename = NULL;
    mw_mime_field f;
    if (!mw_mime_headers_find(p->hdr, "content-type", 0, &f)) {
        mw_mime_ctype *ct;
        if (mw_mime_ctype_parse(&ct, f.value, f.value_len, NULL) == 0) {
            if (!strchr(mw_mime_ctype_value(ct), '/')) {
                mw_mime_ctype_free(ct);
                flags |= MW_MIME_F_BAD_CTYPE;
            } else {
                p->ct = ct;
            }
        } else {
            flags |= MW_MIME_F_BAD_CTYPE;
        }
    }
    if (p->ct) {
        p->type = strdup(mw_mime_ctype_value(p->ct));
    } else {
        /* RFC 2046 §5.1.5: in a multipart/digest the default is message/rfc822;
         * RFC 2045 §5.2: elsewhere text/plain; charset=us-ascii. */
        int digest = p->parent && p->parent->type && !strcmp(p->parent->type, "multipart/digest");
        p->type = strdup(digest ? "message/rfc822" : "text/plain");
    }
    p->enc = MW_MIME_ENC_NONE;
    if (!mw_mime_headers_find(p->hdr, "content-transfer-encoding", 0, &f)) {
        size_t a = 0, b = f.value_len;
        while (a < b && (f.value[a] == ' ' || f.value[a] == '\t'))
            a++;
        size_t e = a;
        while (e < b && f.value[e] != ' ' && f.value[e] != '\t' && f.value[e] != '(' &&
               f.value[e] != ';')
            e++;
        p->enc = encoding_from_name(f.value + a, e - a);
    }
    if (!mw_mime_headers_find(p->hdr, "content-disposition", 0, &f))
        mw_mime_ctype_parse(&p->cd, f.value, f.value_len, NULL);
    /* RFC 2183 §2.3 filename, else the older Content-Type name parameter. */
    const char *fn = p->cd ? mw_mime_ctype_param(p->cd, "filename") : NULL;
    if (!fn && p->ct) fn = mw_mime_ctype_param(p->ct, "name");
    if (fn) p->filename = strdup(fn);
    return flags;
}

const char *mw_mime_part_path(const mw_mime_part *p)
{
    return p->path;
}
const char *mw_mime_part_type(const mw_mime_part *p)
{
    return p->type ? p->type : "text/plain";
}
const mw_mime_ctype *mw_mime_part_ctype(const mw_mime_part *p)
{
    return p->ct;
}

const char *mw_mime_part_param(const mw_mime_part *p, const char *name)
{
    return p->ct ? mw_mime_ctype_param(p->ct, name) : NULL;
}

const char *mw_mime_part_charset(const mw_mime_part *p)
{
    return mw_mime_part_param(p, "charset");
}

int mw_mime_part_encoding(const mw_mime_part *p)
{
    return p->enc;
}

const char *mw_mime_part_disposition(const mw_mime_part *p)
{
    return p->cd ? mw_mime_ctype_value(p->cd) : NULL;
}

const char *mw_mime_part_filename(const mw_mime_part *p)
{
    return p->filename;
}

const char *mw_mime_part_content_id(const mw_mime_part *p)
{
    return mw_mime_headers_get(p->hdr, "content-id", 0);
}

uint64_t mw_mime_part_decoded_size(const mw_mime_part *p)
{
    return p->decoded;
}
unsigned mw_mime_part_flags(const mw_mime_part *p)
{
    return p->flags;
}
int mw_mime_part_is_multipart(const mw_mime_part *p)
{
    return p->kind == MW_K_MULTI;
}
mw_mime_headers *mw_mime_part_headers(mw_mime_part *p)
{
    return p->hdr;
}
size_t mw_mime_part_child_count(const mw_mime_part *p)
{
    return p->nchild;
}
mw_mime_part *mw_mime_part_parent(const mw_mime_part *p)
{
    return p->parent;
}

mw_mime_part *mw_mime_part_child(const mw_mime_part *p, size_t i)
{
    mw_mime_part *c = p->first;
    while (c && i--)
        c = c->next;
    return c;
}

const char *mw_mime_part_preamble(const mw_mime_part *p, size_t *len)
{
    *len = p->kind == MW_K_MULTI ? p->body.len : 0;
    return *len ? p->body.data : "";
}

const char *mw_mime_part_epilogue(const mw_mime_part *p, size_t *len)
{
    *len = p->epilogue.len;
    return *len ? p->epilogue.data : "";
}

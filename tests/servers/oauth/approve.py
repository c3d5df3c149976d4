#!/usr/bin/env python3
"""Plays the user at the test authorization server (provider.mjs): signs in
and approves (or denies) a device code or an authorization request, over
HTTPS with the test CA, so the flows run without a browser.

  approve.py --ca CA.pem --user o1 [--deny] device URL USER_CODE
  approve.py --ca CA.pem --user o1 [--deny] code AUTH_URL

`device`: URL is the verification URI; the code is typed into the form.
`code`: AUTH_URL is the authorization request; the loopback redirect at the
end is followed (the client's listener on 127.0.0.1 gets the code).
Prints the last page's first line or the redirect it ended at; exit 0 when
the flow reached its end (success page or redirect), 1 otherwise.
"""
import argparse
import html
import http.client
import re
import ssl
import sys
import urllib.parse


class Agent:
    """A minimal cookie-keeping HTTP user agent (one origin + loopback)."""

    def __init__(self, ca):
        self.ctx = ssl.create_default_context(cafile=ca)
        self.cookies = {}

    def request(self, method, url, form=None):
        u = urllib.parse.urlsplit(url)
        if u.hostname != "127.0.0.1":
            raise SystemExit("approve.py: refusing a non-loopback URL: " + url)
        if u.scheme == "https":
            conn = http.client.HTTPSConnection(u.hostname, u.port, context=self.ctx, timeout=60)
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(k + "=" + v for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read().decode("utf-8", "replace")
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                val = rest.split(";", 1)[0]
                if val:
                    self.cookies[name.strip()] = val
                else:
                    self.cookies.pop(name.strip(), None)
        conn.close()
        return r.status, r.getheader("Location"), data

    def walk(self, method, url, form=None, answer=None, limit=30):
        """Follows redirects and submits the forms answer(page) fills in.
        Returns (final_url, status, page)."""
        for _ in range(limit):
            status, loc, page = self.request(method, url, form)
            if status in (301, 302, 303, 307) and loc:
                nxt = urllib.parse.urljoin(url, loc)
                if urllib.parse.urlsplit(nxt).scheme == "http" and "/callback" in nxt:
                    # The loopback redirect: deliver it to the client.
                    try:
                        s2, _, p2 = self.request("GET", nxt)
                    except OSError as e:
                        return nxt, 0, "callback not delivered: %s" % e
                    return nxt, s2, p2
                url, method, form = nxt, "GET", None
                continue
            step = answer(url, page) if status == 200 else None
            if step is None:
                return url, status, page
            if len(step) == 3:  # ("GET", link, None): follow a link
                url, method, form = urllib.parse.urljoin(url, step[1]), step[0], step[2]
            else:
                url, method, form = urllib.parse.urljoin(url, step[0]), "POST", step[1]
        return url, 0, "too many steps"


def forms(page):
    """[(action, {hidden inputs}, form_html)] of the page's forms."""
    out = []
    for m in re.finditer(r"<form([^>]*)>(.*?)</form>", page, re.S | re.I):
        attrs, inner = m.group(1), m.group(2)
        a = re.search(r'action="([^"]*)"', attrs)
        fields = {}
        for inp in re.finditer(r"<input([^>]*)>", inner, re.I):
            t = inp.group(1)
            n = re.search(r'name="([^"]*)"', t)
            v = re.search(r'value="([^"]*)"', t)
            if n and re.search(r'type="hidden"', t):
                fields[n.group(1)] = html.unescape(v.group(1)) if v else ""
        out.append((html.unescape(a.group(1)) if a else "", fields, m.group(0)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ca", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--deny", action="store_true")
    ap.add_argument("mode", choices=["device", "code"])
    ap.add_argument("url")
    ap.add_argument("user_code", nargs="?")
    a = ap.parse_args()
    agent = Agent(a.ca)

    def answer(url, page):
        fs = forms(page)
        if not fs:
            return None
        action, fields, text = fs[0]
        if 'name="user_code"' in text and "confirm" not in fields:
            fields["user_code"] = a.user_code or ""
            return action, fields
        if "confirm" in fields:  # device: "is this your device?"
            if a.deny:
                del fields["confirm"]
                fields["abort"] = "yes"
            return action, fields
        if a.deny and "/interaction/" in url:
            # Sign-in or consent page: the user cancels (a GET of the
            # provider's abort link), which ends in access_denied.
            m = re.search(r'href="([^"]*/abort)"', page)
            return None if not m else ("GET", html.unescape(m.group(1)), None)
        if 'name="login"' in text:
            fields.update({"login": a.user, "password": "any", "prompt": "login"})
            return action, fields
        if fields.get("prompt") == "consent" or "consent" in page:
            fields["prompt"] = "consent"
            return action, fields
        return None

    if a.mode == "device":
        final, status, page = agent.walk("GET", a.url, answer=answer)
    else:
        final, status, page = agent.walk("GET", a.url, answer=answer)
    first = re.sub(r"<[^>]+>", " ", page)
    first = " ".join(first.split())[:200]
    ok = status == 200 and ("Success" in page or "/callback" in final or "successful" in page)
    if a.deny:
        ok = status in (200, 400) and ("/callback" in final or "abort" in page.lower() or
                                       "denied" in page.lower() or "interrupted" in page.lower())
    print("%s %s %s" % ("approved" if ok else "ended", status, final if "/callback" in final else first))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Parser for scripted-server case files (format: tests/script/README.md).

Everything is checked when the file is read, so a typo in a case is reported
with its line number before any server or client is started."""
import ipaddress
import re
import shlex

SECTION_RE = re.compile(r"^\[(stdin|stdout|file|input|server)(?:\s+([^\]]*?))?\s*\]\s*$")
PLACEHOLDER_RE = re.compile(
    r"\{(mailwire|build|port(?::[A-Za-z0-9_.-]+)?|closedport|host|certdir|ca|tmp|srcdir|top|python)\}")

HEADER_SINGLE = {"name", "cmd", "sh", "stdin", "stdin-file", "exit", "stdout",
                 "timeout", "max-duration", "min-duration", "parallel", "loop-skip"}
HEADER_MULTI = {"env", "env-unset", "stdout-re", "stdout-not-re", "stderr-re",
                "stderr-not-re", "file-re", "file-absent", "requires"}
BLOCK_MODIFIERS = {"crlf", "nonl", "esc"}

# Directives written "NAME: text" (the text may be empty) and those written
# "NAME args".
COLON_DIRECTIVES = ("S-raw", "S", "C-re", "C-opt", "C-until", "C-raw", "C")
WORD_DIRECTIVES = {"tls", "sleep", "stall", "close", "reset", "expect-close",
                   "garbage", "lines", "repeat", "accept", "no-connection",
                   "C-any", "trickle", "scram-first"}
TERMINAL = {"close", "reset", "stall", "expect-close"}
TLS_VERSIONS = {"1.2", "1.3"}


class CaseError(Exception):
    """A malformed case file; str() is 'file:line: what is wrong'."""


def decode_esc(text):
    """Decodes \\r \\n \\t \\\\ \\xNN into bytes; other text is UTF-8."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            j = text.find("\\", i)
            if j < 0:
                j = len(text)
            out += text[i:j].encode("utf-8")
            i = j
            continue
        if i + 1 >= len(text):
            raise ValueError("backslash at the end of the text")
        nxt = text[i + 1]
        if nxt in "rnt\\":
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}[nxt]
            i += 2
        elif nxt == "x":
            hexd = text[i + 2:i + 4]
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", hexd):
                raise ValueError(f"\\x needs two hex digits, got {hexd!r}")
            out.append(int(hexd, 16))
            i += 4
        else:
            raise ValueError(f"unknown escape \\{nxt} (use \\r \\n \\t \\\\ \\xNN)")
    return bytes(out)


class Directive:
    def __init__(self, lineno, op, arg, **kw):
        self.lineno = lineno
        self.op = op
        self.arg = arg          # raw text after the directive name
        self.__dict__.update(kw)

    def __repr__(self):
        if self.op in COLON_DIRECTIVES:
            return f"{self.op}: {self.arg}"
        return f"{self.op} {self.arg}".rstrip()


class Block:
    def __init__(self, lineno, kind, target, modifiers, lines, mode=None):
        self.lineno = lineno
        self.kind = kind
        self.target = target    # path for [file PATH] and [input PATH]
        self.modifiers = modifiers
        self.lines = lines
        self.mode = mode        # permissions for [input PATH mode=NNN]

    def text(self):
        """The block content as a str (placeholders still in it)."""
        lines = list(self.lines)
        while lines and lines[-1].strip() == "":
            lines.pop()
        eol = "\r\n" if "crlf" in self.modifiers else "\n"
        body = eol.join(lines)
        if lines and "nonl" not in self.modifiers:
            body += eol
        return body

    def data(self, subst):
        """The block content as bytes after placeholder substitution."""
        text = subst(self.text())
        if "esc" in self.modifiers:
            return decode_esc(text)
        return text.encode("utf-8")


class Server:
    def __init__(self, name, lineno):
        self.name = name        # "" for the unnamed [server]
        self.lineno = lineno
        self.listen = "127.0.0.1"
        self.directives = []

    @property
    def label(self):
        return f"[server {self.name}]" if self.name else "[server]"


class Case:
    def __init__(self, path):
        self.path = path
        self.header = {}        # single keys -> (lineno, value)
        self.multi = {k: [] for k in HEADER_MULTI}  # -> [(lineno, value)]
        self.blocks = []
        self.servers = []

    def get(self, key, default=None):
        v = self.header.get(key)
        return v[1] if v else default

    def block(self, kind):
        return [b for b in self.blocks if b.kind == kind]

    @property
    def name(self):
        return self.get("name") or self.path.rsplit("/", 1)[-1]

    def needs_certs(self):
        if any(d.op == "tls" for s in self.servers for d in s.directives):
            return True
        texts = [v for _, v in self.header.values()]
        texts += [v for lst in self.multi.values() for _, v in lst]
        texts += [b.text() + (b.target or "") for b in self.blocks]
        return any("{certdir}" in t or "{ca}" in t for t in texts)


def _int_arg(where, text, what, minimum=0):
    try:
        v = int(text)
    except ValueError:
        raise CaseError(f"{where}: {what} must be an integer, got {text!r}") from None
    if v < minimum:
        raise CaseError(f"{where}: {what} must be >= {minimum}, got {v}")
    return v


def _float_arg(where, text, what):
    try:
        v = float(text)
    except ValueError:
        raise CaseError(f"{where}: {what} must be a number of seconds, got {text!r}") from None
    if v <= 0:
        raise CaseError(f"{where}: {what} must be > 0, got {text!r}")
    return v


def _parse_tls(where, arg):
    words = arg.split()
    if not words:
        raise CaseError(f"{where}: tls needs a certificate name (good, expired, wronghost, selfsigned, ...)")
    name = words[0]
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise CaseError(f"{where}: bad certificate name {name!r}")
    opts = {"cert": name, "fail": None, "client_cert": None, "client_cn": None,
            "min": None, "max": None}
    for w in words[1:]:
        if w in ("must-fail", "may-fail"):
            if opts["fail"]:
                raise CaseError(f"{where}: only one of must-fail/may-fail")
            opts["fail"] = w
        elif w.startswith("client-cert="):
            v = w.split("=", 1)[1]
            if v not in ("required", "optional"):
                raise CaseError(f"{where}: client-cert= must be required or optional, got {v!r}")
            opts["client_cert"] = v
        elif w.startswith("client-cn="):
            opts["client_cn"] = w.split("=", 1)[1]
        elif w.startswith("min=") or w.startswith("max="):
            k, v = w.split("=", 1)
            if v not in TLS_VERSIONS:
                raise CaseError(f"{where}: {k}= must be 1.2 or 1.3, got {v!r}")
            opts[k] = v
        else:
            raise CaseError(f"{where}: unknown tls option {w!r} "
                            "(must-fail, may-fail, client-cert=, client-cn=, min=, max=)")
    if opts["client_cn"] and not opts["client_cert"]:
        opts["client_cert"] = "required"
    return opts


def parse_directive(path, lineno, line):
    where = f"{path}:{lineno}"
    for name in COLON_DIRECTIVES:
        if line.startswith(name + ":"):
            rest = line[len(name) + 1:]
            if rest.startswith(" "):
                rest = rest[1:]
            d = Directive(lineno, name, rest)
            if name in ("S-raw", "C-raw"):
                try:
                    d.data = decode_esc(rest)
                except ValueError as e:
                    raise CaseError(f"{where}: {name}: {e}") from None
                if not d.data:
                    raise CaseError(f"{where}: {name}: nothing to {'send' if name == 'S-raw' else 'expect'}")
            elif name == "C-re":
                try:
                    re.compile(rest)
                except re.error as e:
                    raise CaseError(f"{where}: C-re: bad regex: {e}") from None
            return d
    word, _, arg = line.partition(" ")
    arg = arg.strip()
    if word not in WORD_DIRECTIVES:
        raise CaseError(f"{where}: unknown directive {line[:40]!r} (see tests/script/README.md)")
    d = Directive(lineno, word, arg)
    if word == "stall":
        d.min_ms = d.max_ms = None
        for w in arg.split():
            k, _, v = w.partition("=")
            if k not in ("min", "max") or not v:
                raise CaseError(f"{where}: usage: stall [min=MS] [max=MS]")
            setattr(d, k + "_ms", _int_arg(where, v, f"stall {k}=MS"))
    elif word in ("close", "reset", "expect-close", "accept", "no-connection"):
        if arg:
            raise CaseError(f"{where}: {word} takes no argument")
    elif word == "sleep":
        d.ms = _int_arg(where, arg, "sleep MS")
    elif word == "C-any":
        d.count = _int_arg(where, arg, "C-any N", 1) if arg else 1
    elif word == "garbage":
        parts = arg.split()
        if len(parts) not in (1, 2):
            raise CaseError(f"{where}: usage: garbage N [SEED]")
        d.count = _int_arg(where, parts[0], "garbage N", 1)
        d.seed = _int_arg(where, parts[1], "garbage SEED") if len(parts) == 2 else 1
    elif word in ("lines", "repeat"):
        n, _, text = arg.partition(" ")
        d.count = _int_arg(where, n, f"{word} N", 1)
        if word == "repeat":
            try:
                d.data = decode_esc(text)
            except ValueError as e:
                raise CaseError(f"{where}: repeat: {e}") from None
            if not d.data:
                raise CaseError(f"{where}: usage: repeat N ESCAPED-TEXT")
        else:
            d.text = text
    elif word == "trickle":
        ms, _, text = arg.partition(" ")
        d.ms = _int_arg(where, ms, "trickle MS", 1)
        try:
            d.data = decode_esc(text)
        except ValueError as e:
            raise CaseError(f"{where}: trickle: {e}") from None
        if not d.data:
            raise CaseError(f"{where}: usage: trickle MS ESCAPED-TEXT")
    elif word == "scram-first":
        parts = arg.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise CaseError(f"{where}: usage: scram-first PREFIX ITERATIONS")
        d.prefix, d.iterations = parts
    elif word == "tls":
        d.tls = _parse_tls(where, arg)
    return d


def _check_server(path, srv):
    ds = srv.directives
    if any(d.op == "no-connection" for d in ds) and len(ds) != 1:
        raise CaseError(f"{path}:{srv.lineno}: no-connection must be the only directive of {srv.label}")
    closed = None
    for d in ds:
        if closed and d.op != "accept":
            raise CaseError(f"{path}:{d.lineno}: {d.op} after {closed.op} (line {closed.lineno}); "
                            "only accept may follow it")
        if d.op in TERMINAL or (d.op == "tls" and d.tls["fail"] == "must-fail"):
            closed = d
        elif d.op == "accept":
            closed = None


def parse_case(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    case = Case(path)
    section = None           # None = header; else a Block or a Server
    for idx, raw in enumerate(lines):
        lineno = idx + 1
        line = raw[:-1] if raw.endswith("\r") else raw
        m = SECTION_RE.match(line)
        if m:
            kind, arg = m.group(1), (m.group(2) or "").strip()
            if kind == "server":
                words = arg.split()
                opts = [w for w in words if "=" in w]
                names = [w for w in words if "=" not in w]
                if len(names) > 1 or (names and not re.fullmatch(r"[A-Za-z0-9_.-]+", names[0])):
                    raise CaseError(f"{path}:{lineno}: bad server name {arg!r}")
                name = names[0] if names else ""
                if any(s.name == name for s in case.servers):
                    raise CaseError(f"{path}:{lineno}: duplicate [server{' ' + name if name else ''}]")
                section = Server(name, lineno)
                for o in opts:
                    k, _, v = o.partition("=")
                    if k != "listen" or not v:
                        raise CaseError(f"{path}:{lineno}: unknown server option {o!r} (listen=ADDR)")
                    try:
                        ipaddress.ip_address(v)
                    except ValueError:
                        raise CaseError(f"{path}:{lineno}: listen= needs an IP address, got {v!r}") from None
                    if not ipaddress.ip_address(v).is_loopback:
                        raise CaseError(f"{path}:{lineno}: listen= must be a loopback address, got {v!r}")
                    section.listen = v
                case.servers.append(section)
                continue
            words = arg.split()
            target = None
            mode = None
            if kind in ("file", "input"):
                if not words:
                    raise CaseError(f"{path}:{lineno}: [{kind} PATH] needs a path")
                target, words = words[0], words[1:]
                if kind == "input":
                    for w in [w for w in words if w.startswith("mode=")]:
                        if not re.fullmatch(r"mode=0?[0-7]{3}", w):
                            raise CaseError(f"{path}:{lineno}: mode= needs octal permissions like 600, got {w!r}")
                        mode = int(w[5:], 8)
                        words.remove(w)
            elif words and words[0] not in BLOCK_MODIFIERS:
                raise CaseError(f"{path}:{lineno}: unknown modifier {words[0]!r} (crlf, nonl, esc)")
            bad = [w for w in words if w not in BLOCK_MODIFIERS]
            if bad:
                raise CaseError(f"{path}:{lineno}: unknown modifier {bad[0]!r} (crlf, nonl, esc)")
            if kind in ("stdin", "stdout") and case.block(kind):
                raise CaseError(f"{path}:{lineno}: duplicate [{kind}]")
            section = Block(lineno, kind, target, set(words), [], mode)
            case.blocks.append(section)
            continue
        if isinstance(section, Block):
            section.lines.append(line)
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if section is None:
            key, sep, value = line.partition(":")
            key = key.strip()
            if not sep or not re.fullmatch(r"[a-z][a-z-]*", key):
                raise CaseError(f"{path}:{lineno}: expected 'key: value' in the header, got {line[:40]!r}")
            value = value.strip()
            if key in HEADER_MULTI:
                case.multi[key].append((lineno, value))
            elif key in HEADER_SINGLE:
                if key in case.header:
                    raise CaseError(f"{path}:{lineno}: {key}: given twice "
                                    f"(first on line {case.header[key][0]})")
                case.header[key] = (lineno, value)
            else:
                raise CaseError(f"{path}:{lineno}: unknown header key {key!r}")
        else:
            section.directives.append(parse_directive(path, lineno, line))
    _validate(case)
    return case


def _validate(case):
    p = case.path
    h = case.header
    if ("cmd" in h) == ("sh" in h):
        raise CaseError(f"{p}: exactly one of cmd: or sh: is required")
    if "cmd" in h:
        try:
            if not shlex.split(h["cmd"][1]):
                raise CaseError(f"{p}:{h['cmd'][0]}: cmd: is empty")
        except ValueError as e:
            raise CaseError(f"{p}:{h['cmd'][0]}: cmd: {e}") from None
    if "exit" in h:
        ln, v = h["exit"]
        if v != "nonzero" and not re.fullmatch(r"\d{1,3}", v):
            raise CaseError(f"{p}:{ln}: exit: expected a status 0-255 or 'nonzero', got {v!r}")
    for key in ("timeout", "max-duration", "min-duration"):
        if key in h:
            _float_arg(f"{p}:{h[key][0]}", h[key][1], key)
    if "parallel" in h and h["parallel"][1] not in ("yes", "no"):
        raise CaseError(f"{p}:{h['parallel'][0]}: parallel: must be yes or no")
    if "stdout" in h and case.block("stdout"):
        raise CaseError(f"{p}: both stdout: and [stdout]")
    if sum(k in h for k in ("stdin", "stdin-file")) + len(case.block("stdin")) > 1:
        raise CaseError(f"{p}: stdin given more than once")
    for key in ("stdin", "stdout"):
        if key in h:
            try:
                decode_esc(h[key][1])
            except ValueError as e:
                raise CaseError(f"{p}:{h[key][0]}: {key}: {e}") from None
    for key in ("stdout-re", "stdout-not-re", "stderr-re", "stderr-not-re", "file-re"):
        for ln, v in case.multi[key]:
            rx = v
            if key == "file-re":
                parts = v.split(None, 1)
                if len(parts) != 2:
                    raise CaseError(f"{p}:{ln}: usage: file-re: PATH REGEX")
                rx = parts[1]
            try:
                re.compile(rx)
            except re.error as e:
                raise CaseError(f"{p}:{ln}: {key}: bad regex: {e}") from None
    for ln, v in case.multi["env"]:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", v):
            raise CaseError(f"{p}:{ln}: env: expected NAME=value, got {v!r}")
    for ln, v in case.multi["env-unset"]:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise CaseError(f"{p}:{ln}: env-unset: expected a variable name, got {v!r}")
    for b in case.blocks:
        if "esc" in b.modifiers:
            for off, line in enumerate(b.lines):
                try:
                    decode_esc(line)
                except ValueError as e:
                    raise CaseError(f"{p}:{b.lineno + 1 + off}: {e}") from None
    names = {s.name for s in case.servers}
    texts = [v for _, v in h.values()] + [v for lst in case.multi.values() for _, v in lst]
    texts += [b.text() + " " + (b.target or "") for b in case.blocks]
    texts += [d.arg for s in case.servers for d in s.directives]
    for t in texts:
        for m in PLACEHOLDER_RE.finditer(t):
            ph = m.group(1)
            if ph.startswith("port"):
                want = ph[5:] if ph.startswith("port:") else ""
                if want not in names:
                    label = f"[server {want}]" if want else "[server]"
                    raise CaseError(f"{p}: {{{ph}}} is used but there is no {label} section")
    for s in case.servers:
        if not s.directives:
            raise CaseError(f"{p}:{s.lineno}: {s.label} has no directives")
        _check_server(p, s)

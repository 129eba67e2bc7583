"""A strict parser of Prometheus's text exposition format (version 0.0.4), standard library only.

parse(text) -> {family name: Family}; raises ValueError naming the line for anything the format does
not allow, and for what Prometheus would reject or what we promise on top of it:
- every family has exactly one "# HELP" and one "# TYPE" (counter, gauge, histogram, summary,
  untyped), both before its first sample, and its samples are contiguous (no interleaving);
- metric and label names are valid, label names do not start with "__", label values use only the
  escapes \\\\, \\" and \\n, no label name twice in a series, no series twice;
- values are Go floats (digits, exponent, +Inf, -Inf, NaN); counters are never negative;
- histograms: every series has _bucket lines with ascending "le" ending in +Inf, cumulative counts that
  never fall, a +Inf bucket equal to _count, and a _sum;
- the page ends with a newline and has no blank lines.
"""

import math
import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Family:
    def __init__(self, name):
        self.name = name
        self.help = None
        self.type = None
        self.samples = []  # (sample name, {label: value}, float)

    def value(self, sample=None, **labels):
        """The value of the one sample with exactly these labels (0.0 if absent)."""
        sample = sample or self.name
        for n, l, v in self.samples:
            if n == sample and l == labels:
                return v
        return 0.0

    def total(self, sample=None, **labels):
        """The sum over samples whose labels include these."""
        sample = sample or self.name
        return sum(v for n, l, v in self.samples if n == sample and all(l.get(k) == x for k, x in labels.items()))


def parse_float(s, where):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not FLOAT.match(s):
        raise ValueError(f"{where}: bad value {s!r}")
    return float(s)


def parse_labels(text, i, where):
    """Parses {a="x",b="y"} starting at text[i] == '{'; returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if text[i] == "}":
            return labels, i + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(text, i)
        if not m:
            raise ValueError(f"{where}: bad label name at {text[i:i+20]!r}")
        name = m.group(0)
        if name.startswith("__"):
            raise ValueError(f"{where}: reserved label name {name}")
        if name in labels:
            raise ValueError(f"{where}: label {name} twice")
        i = m.end()
        if text[i:i + 2] != '="':
            raise ValueError(f"{where}: expected =\" after {name}")
        i += 2
        value = []
        while True:
            if i >= len(text):
                raise ValueError(f"{where}: unterminated label value")
            c = text[i]
            if c == "\\":
                nxt = text[i + 1:i + 2]
                if nxt == "\\":
                    value.append("\\")
                elif nxt == '"':
                    value.append('"')
                elif nxt == "n":
                    value.append("\n")
                else:
                    raise ValueError(f"{where}: bad escape \\{nxt} in a label value")
                i += 2
                continue
            if c == '"':
                i += 1
                break
            if c == "\n":
                raise ValueError(f"{where}: raw newline in a label value")
            value.append(c)
            i += 1
        labels[name] = "".join(value)
        if text[i] == ",":
            i += 1
            if text[i] == "}":
                return labels, i + 1  # a trailing comma is allowed
        elif text[i] != "}":
            raise ValueError(f"{where}: expected , or }} after a label")


def family_of(sample, families):
    if sample in families:
        return families[sample]
    for suffix in ("_bucket", "_sum", "_count"):
        if sample.endswith(suffix):
            base = sample[: -len(suffix)]
            if base in families and families[base].type in ("histogram", "summary"):
                return families[base]
    return None


def parse(text):
    if not text.endswith("\n"):
        raise ValueError("the page does not end with a newline")
    families = {}
    order = []  # family names in the order their samples appear
    closed = set()
    current = None
    series = set()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}"
        if line == "":
            raise ValueError(f"{where}: blank line")
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                if len(parts) < 4 or not NAME.match(parts[2]):
                    raise ValueError(f"{where}: malformed {parts[1]} line")
                name = parts[2]
                fam = families.setdefault(name, Family(name))
                if fam.samples:
                    raise ValueError(f"{where}: {parts[1]} for {name} after its samples")
                if parts[1] == "HELP":
                    if fam.help is not None:
                        raise ValueError(f"{where}: second HELP for {name}")
                    if re.search(r"\\[^\\n]", parts[3].replace("\\\\", "")):
                        raise ValueError(f"{where}: bad escape in HELP")
                    fam.help = parts[3]
                else:
                    if fam.type is not None:
                        raise ValueError(f"{where}: second TYPE for {name}")
                    if parts[3] not in TYPES:
                        raise ValueError(f"{where}: unknown type {parts[3]!r}")
                    fam.type = parts[3]
            continue  # other comments are allowed
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        if not m:
            raise ValueError(f"{where}: bad metric name in {line[:40]!r}")
        sample = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = parse_labels(line, i, where)
        if i >= len(line) or line[i] != " ":
            raise ValueError(f"{where}: expected one space before the value")
        fields = line[i + 1:].split(" ")
        if len(fields) not in (1, 2) or "" in fields:
            raise ValueError(f"{where}: expected a value and an optional timestamp")
        value = parse_float(fields[0], where)
        if len(fields) == 2 and not re.match(r"-?\d+\Z", fields[1]):
            raise ValueError(f"{where}: bad timestamp")
        fam = family_of(sample, families)
        if fam is None or fam.type is None or fam.help is None:
            raise ValueError(f"{where}: sample {sample} has no family with HELP and TYPE before it")
        if fam is not current:
            if fam.name in closed:
                raise ValueError(f"{where}: samples of {fam.name} are not contiguous")
            if current is not None:
                closed.add(current.name)
            current = fam
            order.append(fam.name)
        key = (sample, tuple(sorted(labels.items())))
        if key in series:
            raise ValueError(f"{where}: series {sample}{labels} twice")
        series.add(key)
        if fam.type == "counter" and not value >= 0:
            raise ValueError(f"{where}: counter {sample} is {value}")
        if fam.type == "histogram" and sample == fam.name:
            raise ValueError(f"{where}: a histogram has only _bucket, _sum and _count samples")
        fam.samples.append((sample, labels, value))
    for fam in families.values():
        if fam.type is None or fam.help is None:
            raise ValueError(f"family {fam.name} lacks HELP or TYPE")
        if fam.type == "histogram":
            check_histogram(fam)
    return families


def check_histogram(fam):
    groups = {}
    for sample, labels, value in fam.samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sample == fam.name + "_bucket":
            if "le" not in labels:
                raise ValueError(f"{fam.name}: a bucket without le")
            g["buckets"].append((parse_float(labels["le"], fam.name), value))
        elif sample == fam.name + "_sum":
            g["sum"] = value
        elif sample == fam.name + "_count":
            g["count"] = value
    for rest, g in groups.items():
        b = g["buckets"]
        if not b or b[-1][0] != math.inf:
            raise ValueError(f"{fam.name}{dict(rest)}: no +Inf bucket last")
        for (le1, c1), (le2, c2) in zip(b, b[1:]):
            if not le2 > le1:
                raise ValueError(f"{fam.name}{dict(rest)}: le not ascending")
            if c2 < c1:
                raise ValueError(f"{fam.name}{dict(rest)}: bucket counts fall")
        if g["count"] is None or g["sum"] is None:
            raise ValueError(f"{fam.name}{dict(rest)}: no _count or _sum")
        if g["count"] != b[-1][1]:
            raise ValueError(f"{fam.name}{dict(rest)}: +Inf bucket {b[-1][1]} != _count {g['count']}")

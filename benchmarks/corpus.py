"""The benchmark corpus: deterministic, seeded mail that looks like a real mailbox.

The same ``(seed, n)`` always gives the same messages (bytes), flags, internal dates
and folder assignment, on any machine and any Python >= 3.11: every message has its own
``random.Random`` seeded from a string (hashed with SHA-512 by ``random``), so one
message never depends on how many were generated before it.

Shape (roughly what a real account looks like):

- sizes: ~94% text messages, log-normal around a median of ~5 KB (1-45 KB); ~6% of
  50-500 KB with a base64 attachment; a few (``max(2, n // 2500)``) of 2-5 MB;
- folders: INBOX, Sent, Archive, Archive/2023 (a child of a folder that holds mail),
  Lists/python and Lists/debian-devel (children of a parent that holds none),
  Projets/Été, Reçus 2024 and Работа (non-ASCII names, a space);
- flags: \\Seen ~70%, \\Answered ~15%, \\Flagged ~8%, \\Draft ~1% -- only flags all three
  tools map to Maildir letters (no keywords: mbsync 1.4 does not sync them);
- subjects and senders: about a third non-ASCII (RFC 2047 encoded).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime, formataddr

#: Folder names as the user sees them ('/' = hierarchy) and their share of the corpus.
FOLDERS: tuple[tuple[str, float], ...] = (
    ("INBOX", 0.35),
    ("Sent", 0.10),
    ("Archive", 0.18),
    ("Archive/2023", 0.12),
    ("Lists/python", 0.09),
    ("Lists/debian-devel", 0.07),
    ("Projets/Été", 0.05),
    ("Reçus 2024", 0.02),
    ("Работа", 0.02),
)

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Draft")

_PEOPLE = (
    ("Alice Martin", "alice@example.org"),
    ("Bob Lee", "bob@example.com"),
    ("Chloé Dubois", "chloe@exemple.fr"),
    ("Dmitri Иванов", "dmitri@example.net"),
    ("Eve Müller", "eve@beispiel.de"),
    ("田中 花子", "hanako@example.jp"),
    ("Python-list", "python-list@python.org"),
    ("Grace Hopper", "grace@example.com"),
)
_SUBJECTS = (
    "Meeting notes for {day}",
    "Re: quarterly report {n}",
    "Réunion de lundi — ordre du jour",
    "Invoice #{n}",
    "[Python-Dev] PEP {n}: typing improvements",
    "Grüße aus Berlin",
    "Fwd: photos from the trip 📷",
    "Your order {n} has shipped",
    "Привет, как дела?",
    "Build failed on main ({n})",
    "会議の予定 {n}",
    "Re: [debian-devel] bug #{n}",
)
_WORDS = (  # noqa: SIM905 - prose reads better than a list of 150 strings
    "the of and to in is that for it as was with be by on not he this are or his from "
    "at which but have an they you were her she there been one all we their has would "
    "when if so no will can more out up about into them than only other new some what "
    "time could these two may first then do any like my now over such our man me even "
    "most made after also did many before must through back years where much your way "
    "well down should because each just those people how too little state good very "
    "make world still own see men work long get here between both life being under "
    "never day same another know while last might us great old year off come since "
    "réunion über naïve café déjà привет мир 日本語 résumé straße"
).split()

_TEXT_MEDIAN = 4400
_TEXT_MIN, _TEXT_MAX = 800, 45_000
_LARGE_SHARE = 0.06
_LARGE_MIN, _LARGE_MAX = 50_000, 500_000
_HUGE_MIN, _HUGE_MAX = 2_000_000, 5_000_000
_EPOCH = datetime(2023, 1, 2, 8, 0, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Message:
    """One corpus message: where it goes, its bytes (CRLF), flags and INTERNALDATE."""

    folder: str
    message_id: str
    raw: bytes
    flags: tuple[str, ...]
    date: datetime


@dataclasses.dataclass(frozen=True)
class Layout:
    """Which message goes where: per folder, the count; globally, the huge ones."""

    counts: tuple[tuple[str, int], ...]
    huge: frozenset[tuple[str, int]]

    @property
    def total(self) -> int:
        return sum(c for _f, c in self.counts)


def folder_names() -> list[str]:
    """The corpus folders, '/' as the hierarchy separator."""
    return [name for name, _share in FOLDERS]


def layout(n: int, seed: int) -> Layout:
    """Split ``n`` messages over :data:`FOLDERS` and pick the huge ones."""
    counts = [(name, int(n * share)) for name, share in FOLDERS]
    rest = n - sum(c for _n, c in counts)
    counts[0] = (counts[0][0], counts[0][1] + rest)
    rng = random.Random(f"{seed}/layout/{n}")
    slots = [(name, i) for name, c in counts for i in range(c) if name in ("INBOX", "Archive")]
    n_huge = min(len(slots), max(2, n // 2500))
    return Layout(tuple(counts), frozenset(rng.sample(slots, n_huge)))


def generate(n: int, seed: int) -> Iterator[Message]:
    """The ``n`` messages of the corpus, folder by folder, in append order."""
    plan = layout(n, seed)
    for folder, count in plan.counts:
        for i in range(count):
            yield make_message(seed, "c", folder, i, huge=(folder, i) in plan.huge)


def new_messages(count: int, seed: int, tag: str) -> list[Message]:
    """``count`` further messages (never huge), spread over the folders like the corpus.

    ``tag`` makes their Message-IDs distinct from the corpus and from other batches.
    """
    rng = random.Random(f"{seed}/new/{tag}")
    names = folder_names()
    weights = [share for _n, share in FOLDERS]
    folders = rng.choices(names, weights, k=count)
    return [make_message(seed, tag, f, i, huge=False) for i, f in enumerate(folders)]


def make_message(seed: int, tag: str, folder: str, index: int, *, huge: bool) -> Message:
    """Message ``index`` of ``folder`` in batch ``tag``; a pure function of its arguments."""
    rng = random.Random(f"{seed}/{tag}/{folder}/{index}")
    date = _EPOCH + timedelta(minutes=37 * index + rng.randrange(30), days=rng.randrange(300))
    sender, rcpt = rng.choice(_PEOPLE), rng.choice(_PEOPLE)
    n = rng.randrange(1000, 99999)
    subject = rng.choice(_SUBJECTS).format(day=date.strftime("%A"), n=n)
    slug = hashlib.blake2s(folder.encode("utf-8"), digest_size=5).hexdigest()
    message_id = f"<{tag}.{seed}.{slug}.{index}@corpus.syncd.test>"
    if huge:
        size_class, attach = "huge", rng.randrange(_HUGE_MIN, _HUGE_MAX)
    elif rng.random() < _LARGE_SHARE:
        size_class, attach = "large", rng.randrange(_LARGE_MIN, _LARGE_MAX)
    else:
        size_class, attach = "text", 0
    text_size = int(min(_TEXT_MAX, max(_TEXT_MIN, rng.lognormvariate(0, 0.7) * _TEXT_MEDIAN)))
    if attach:
        text_size = min(text_size, 3000)
    headers = [
        ("From", _address(sender)),
        ("To", _address(rcpt)),
        ("Date", format_datetime(date)),
        ("Subject", _encode_header(subject)),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        ("X-Corpus", f"{tag} {size_class}"),
    ]
    # Hand-assembled MIME rather than email.message.EmailMessage: it is ~20x faster for
    # 100k messages and gives exact control over sizes and boundaries (determinism).
    text = _text(rng, text_size, sender[0])
    if not attach:
        headers += [
            ("Content-Type", 'text/plain; charset="utf-8"'),
            ("Content-Transfer-Encoding", "8bit"),
        ]
        body = text
    else:
        boundary = f"=_bench_{seed}_{tag}_{slug}_{index}"
        headers.append(("Content-Type", f'multipart/mixed; boundary="{boundary}"'))
        payload = base64.encodebytes(rng.randbytes(attach * 3 // 4))
        body = b"\n".join(
            [
                b"This is a multi-part message in MIME format.",
                b"",
                f"--{boundary}".encode(),
                b'Content-Type: text/plain; charset="utf-8"',
                b"Content-Transfer-Encoding: 8bit",
                b"",
                text,
                f"--{boundary}".encode(),
                b"Content-Type: application/octet-stream",
                f'Content-Disposition: attachment; filename="scan-{n}.bin"'.encode(),
                b"Content-Transfer-Encoding: base64",
                b"",
                payload,
                f"--{boundary}--".encode(),
                b"",
            ]
        )
    head = "".join(f"{k}: {v}\n" for k, v in headers).encode("ascii")
    raw = (head + b"\n" + body).replace(b"\n", b"\r\n")
    return Message(folder, message_id, raw, _flags(rng), date)


def _address(person: tuple[str, str]) -> str:
    name, addr = person
    if name.isascii():
        return formataddr(person)
    return f"{_encode_header(name)} <{addr}>"


def _encode_header(value: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


def _text(rng: random.Random, size: int, signature: str) -> bytes:
    lines: list[str] = []
    total = 0
    while total < size:
        words = rng.choices(_WORDS, k=rng.randrange(6, 14))
        line = " ".join(words).capitalize() + "."
        lines.append(line)
        total += len(line.encode("utf-8")) + 1
    lines += ["", "-- ", signature, ""]
    return "\n".join(lines).encode("utf-8")


def _flags(rng: random.Random) -> tuple[str, ...]:
    flags = []
    if rng.random() < 0.70:
        flags.append("\\Seen")
    if rng.random() < 0.15:
        flags.append("\\Answered")
    if rng.random() < 0.08:
        flags.append("\\Flagged")
    if rng.random() < 0.01:
        flags.append("\\Draft")
    return tuple(flags)


def describe(messages: Sequence[Message]) -> dict[str, float]:
    """Size facts about ``messages`` (for the report)."""
    sizes = sorted(len(m.raw) for m in messages)
    if not sizes:
        return {"count": 0}
    return {
        "count": len(sizes),
        "total_mb": round(sum(sizes) / 1e6, 1),
        "median_kb": round(sizes[len(sizes) // 2] / 1e3, 1),
        "over_50kb_pct": round(100 * sum(s >= 50_000 for s in sizes) / len(sizes), 1),
        "over_2mb": sum(s >= 2_000_000 for s in sizes),
    }

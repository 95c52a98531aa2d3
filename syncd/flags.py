"""Maildir info letters <-> IMAP flag names.  Pure; no I/O.

A Maildir file name is ``<unique>:2,<letters>`` (cr.yp.to/proto/maildir.html):
each letter after ``2,`` is an independent flag and letters are stored in ASCII
order.  The six standard letters map to IMAP system flags; lower-case ``a``..``z``
are IMAP keywords through the folder's ``dovecot-keywords`` file (letter ``a`` is
index 0), the Dovecot convention that mutt, notmuch and Dovecot itself read.
Every other letter is *unknown*: it is kept, untouched, across syncd's renames.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from syncd.model import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    FORWARDED,
    NO_FLAGS,
    SEEN,
    SYSTEM_FLAGS,
    Flags,
    intern_flags,
)

INFO_SEPARATOR = ":2,"

LETTER_TO_FLAG: Mapping[str, str] = {
    "D": DRAFT,
    "F": FLAGGED,
    "P": FORWARDED,
    "R": ANSWERED,
    "S": SEEN,
    "T": DELETED,
}
FLAG_TO_LETTER: Mapping[str, str] = {flag: letter for letter, flag in LETTER_TO_FLAG.items()}

# Dovecot has 26 keyword letters; a keyword beyond them has no place in a file name.
MAX_KEYWORDS = 26
_KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def parse_info(filename: str) -> tuple[str, str, bool]:
    """Split a Maildir file name into ``(unique_name, letters, delimiter_found)``.

    The unique name is the message's identity: everything before the *last*
    ``:2,`` (a unique name never contains ``:``, so the last one is the info;
    taking the last keeps a rename round-trip exact even for odd names).  A name
    without ``:2,`` -- normal in ``new/`` -- has no letters and is its own
    unique name.  Dovecot's ``,S=<size>,W=<vsize>`` stay part of the unique name.
    Only ``:2,`` is recognised (not the Windows ``!2,`` variant).
    """
    cut = filename.rfind(INFO_SEPARATOR)
    if cut < 0:
        return filename, "", False
    return filename[:cut], filename[cut + len(INFO_SEPARATOR) :], True


def letter_for_index(index: int) -> str | None:
    """The info letter of keyword number ``index`` in ``dovecot-keywords``, if any."""
    return _KEYWORD_LETTERS[index] if 0 <= index < MAX_KEYWORDS else None


def split_letters(letters: str, keywords: Sequence[str]) -> tuple[Flags, str]:
    """Decode info letters into ``(flags, extra)``.

    ``keywords[i]`` is the keyword of letter ``chr(ord('a') + i)``; an empty
    string is an unused slot.  ``extra`` holds every letter that means nothing
    to syncd (unknown upper-case letters, digits, keyword letters without a
    ``dovecot-keywords`` entry), de-duplicated and sorted, so it can be written
    back unchanged by :func:`flags_to_letters`.
    """
    flags: set[str] = set()
    extra: set[str] = set()
    for letter in letters:
        system = LETTER_TO_FLAG.get(letter)
        if system is not None:
            flags.add(system)
            continue
        index = _KEYWORD_LETTERS.find(letter) if letter.isascii() else -1
        if 0 <= index < len(keywords) and keywords[index]:
            flags.add(keywords[index])
        else:
            extra.add(letter)
    return (intern_flags(frozenset(flags)) if flags else NO_FLAGS), "".join(sorted(extra))


def letters_to_flags(letters: str, keywords: Sequence[str]) -> Flags:
    """The IMAP flags that ``letters`` stand for; unknown letters are ignored."""
    return split_letters(letters, keywords)[0]


def keyword_index(keywords: Sequence[str]) -> dict[str, int]:
    """Invert a ``dovecot-keywords`` list into ``{keyword: index}``."""
    return {keyword: index for index, keyword in enumerate(keywords) if keyword}


def unmapped_flags(flags: Iterable[str], keyword_index: Mapping[str, int]) -> Flags:
    """The flags :func:`flags_to_letters` cannot write: keywords without a letter
    (more than 26 in a folder, or not in ``keyword_index``) and unknown
    ``\\``-flags such as ``\\Recent``.  The caller warns about these.
    """
    return frozenset(
        flag
        for flag in flags
        if flag not in FLAG_TO_LETTER and letter_for_index(keyword_index.get(flag, -1)) is None
    )


def flags_to_letters(flags: Iterable[str], keyword_index: Mapping[str, int], keep: str = "") -> str:
    """Encode ``flags`` as info letters, sorted in ASCII order, without duplicates.

    ``keep`` are the unknown letters of the current file name (the ``extra`` of
    :func:`split_letters`); they are written back, except letters that now mean
    a system flag or a known keyword -- those are decided by ``flags`` alone, so
    that decoding the result gives back exactly ``flags`` (minus
    :func:`unmapped_flags`).  Flags without a letter are left out silently; see
    :func:`unmapped_flags`.
    """
    out: set[str] = set()
    for flag in flags:
        letter = FLAG_TO_LETTER.get(flag)
        if letter is None:
            letter = letter_for_index(keyword_index.get(flag, -1))
        if letter is not None:
            out.add(letter)
    if keep:
        owned = {letter_for_index(i) for i in keyword_index.values()}
        out.update(k for k in keep if k not in LETTER_TO_FLAG and k not in owned)
    return "".join(sorted(out))


def is_keyword(flag: str) -> bool:
    """True for an IMAP keyword (``$Junk``, ``work``), false for a ``\\``-flag."""
    return flag not in SYSTEM_FLAGS and not flag.startswith("\\")


def kept_local_only(flags: Iterable[str], permanent: Iterable[str] | None) -> Flags:
    """The keywords in ``flags`` the server will not keep (RFC 3501 §7.1): those not
    in the mailbox's PERMANENTFLAGS when it lacks ``\\*``.  None for ``permanent``
    (the server sent no PERMANENTFLAGS) means every flag is kept.

    Only keywords: a server that cannot keep a *system* flag is read-only for it,
    and that is not something to paper over locally.  Keywords compare without
    regard to case, as IMAP servers treat them.
    """
    if permanent is None:
        return NO_FLAGS
    allowed = {flag.lower() for flag in permanent}
    if "\\*" in allowed:
        return NO_FLAGS
    return intern_flags(
        frozenset(flag for flag in flags if is_keyword(flag) and flag.lower() not in allowed)
    )

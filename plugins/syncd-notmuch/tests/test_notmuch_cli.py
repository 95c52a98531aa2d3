"""The notmuch CLI layer against a real notmuch database: batch lines encode any
tag and any message id; ``show`` output is read back; the revision moves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from syncd_notmuch_cli import (
    Notmuch,
    NotmuchError,
    batch_line,
    encode_tag,
    id_query,
    walk_show,
)

ODD_TAGS = ["has space", "100%", "été✓", "+plus", "-minus", "(paren)", '"quoted"', "$Junk", "a--b"]
ODD_IDS = ["plain@x", 'q"uote)paren@x', "dollar$and(more)@x"]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A notmuch database over a Maildir holding one message per id of ODD_IDS."""
    assert shutil.which("notmuch"), "notmuch is not installed: run contrib/setup.sh"
    mail = tmp_path / "mail"
    for sub in ("cur", "new", "tmp"):
        (mail / sub).mkdir(parents=True)
    for n, mid in enumerate(ODD_IDS):
        (mail / "cur" / f"{n}.host:2,S").write_text(
            f"From: a@example.org\nSubject: {n}\nMessage-ID: <{mid}>\n\nbody\n"
        )
    config = tmp_path / "notmuch-config"
    config.write_text(f"[database]\npath={mail}\n[new]\ntags=inbox\n")
    monkeypatch.setenv("NOTMUCH_CONFIG", str(config))
    Notmuch().new()
    return mail


def test_encode_tag_keeps_safe_characters_and_escapes_the_rest() -> None:
    assert encode_tag("work.2024_a@b=c") == "work.2024_a@b=c"
    assert encode_tag("a b%é") == "a%20b%25%C3%A9"
    assert id_query('a"b') == 'id:"a""b"'
    assert batch_line("m@x", {"b", "a"}, {"c"}) == '+a +b -c -- id:"m@x"'


def test_batch_tags_any_tag_on_any_id_in_one_process(db: Path) -> None:
    nm = Notmuch()
    nm.tag([batch_line(mid, ODD_TAGS, {"inbox"}) for mid in ODD_IDS])
    found = {m.id: m for m in nm.messages("*")}
    assert set(found) == set(ODD_IDS)
    for mid in ODD_IDS:
        assert found[mid].tags == set(ODD_TAGS)
        assert [p.parent for p in found[mid].files] == [db / "cur"]
    nm.tag([batch_line(ODD_IDS[1], (), ODD_TAGS)])
    assert {m.id: m.tags for m in nm.messages(id_query(ODD_IDS[1]))} == {ODD_IDS[1]: set()}


def test_revision_moves_with_tags_and_renames(db: Path) -> None:
    nm = Notmuch()
    uuid, before = nm.revision()
    assert [m.id for m in nm.messages(f"lastmod:{before + 1}..")] == []
    nm.tag([batch_line("plain@x", {"x"}, ())])
    (db / "cur" / "2.host:2,S").rename(db / "cur" / "2.host:2,FS")
    nm.new(hooks=False)
    after_uuid, after = nm.revision()
    assert after_uuid == uuid and after > before
    changed = sorted(m.id for m in nm.messages(f"lastmod:{before + 1}.."))
    assert changed == sorted(["plain@x", "dollar$and(more)@x"])


def test_a_failing_command_is_one_line(db: Path) -> None:
    with pytest.raises(NotmuchError, match=r"^notmuch show exited 1: .*"):
        Notmuch().messages("date:nonsense..")  # a query notmuch refuses


def test_the_deadline_is_shared_by_every_call(db: Path) -> None:
    nm = Notmuch(timeout=0)
    with pytest.raises(NotmuchError, match="no time left"):
        nm.revision()


def test_walk_show_skips_the_messages_that_did_not_match() -> None:
    data = [[[{"id": "a", "tags": []}, [[None, [[{"id": "b", "tags": ["x"]}, []]]]]]]]
    assert [m["id"] for m in walk_show(data)] == ["a", "b"]

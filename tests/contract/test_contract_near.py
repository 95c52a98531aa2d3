"""The near-store contract (:class:`syncd.stores.base.NearFolder`), proved on every
near store: the memory store and a Maildir folder on disk."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from contract_support import NearHandle, message

from syncd.errors import MessageError
from syncd.message import body_hash
from syncd.model import FLAGGED, SEEN
from syncd.stores.base import NearFolder
from syncd.stores.maildir.folder import MaildirFolder
from syncd.stores.maildir.store import MaildirStore
from syncd.stores.memory import MemoryNear


def _created(near: NearHandle) -> None:
    assert near.folder.signature() is None or near.folder.exists()
    near.folder.create()
    near.folder.create()  # idempotent
    assert near.folder.exists()


def test_a_missing_folder_has_no_signature(near: NearHandle) -> None:
    if not near.folder.exists():
        assert near.folder.signature() is None
    _created(near)
    assert near.folder.signature() is not None


def test_deliver_then_scan_and_read(near: NearHandle) -> None:
    _created(near)
    data = message(1, body="one\ntwo\n")
    name = near.folder.new_name()
    msg = near.folder.deliver(
        data, name=name, flags=frozenset({SEEN}), mtime=1_700_000_000.0, to_new=False
    )
    near.folder.flush()
    assert msg.name == name
    found, skipped = near.folder.scan()
    assert skipped == []
    assert set(found) == {name}
    assert found[name].flags == frozenset({SEEN})
    assert found[name].mtime == pytest.approx(1_700_000_000.0)
    read = near.folder.read(found[name])
    assert b"\r\n" in read and b"\n" not in read.replace(b"\r\n", b"")
    assert body_hash(read) == body_hash(data)


def test_new_names_are_distinct(near: NearHandle) -> None:
    _created(near)
    names = {near.folder.new_name() for _ in range(100)}
    assert len(names) == 100


def test_set_flags_keeps_identity_and_is_idempotent(near: NearHandle) -> None:
    _created(near)
    name = near.add(message(1))
    found, _ = near.folder.scan()
    msg = near.folder.set_flags(found[name], frozenset({SEEN, FLAGGED}))
    again = near.folder.set_flags(msg, frozenset({SEEN, FLAGGED}))
    assert (msg.name, again.name) == (name, name)
    found, _ = near.folder.scan()
    assert found[name].flags == frozenset({SEEN, FLAGGED})


def test_keywords_are_kept(near: NearHandle) -> None:
    _created(near)
    near.folder.prepare_flags(["$label"])
    name = near.folder.new_name()
    near.folder.deliver(
        message(1), name=name, flags=frozenset({"$label"}), mtime=None, to_new=False
    )
    found, _ = near.folder.scan()
    assert found[name].flags == frozenset({"$label"})
    assert near.folder.unkeepable(frozenset({"$label", SEEN})) == frozenset()


def test_delete_is_idempotent(near: NearHandle) -> None:
    _created(near)
    name = near.add(message(1))
    found, _ = near.folder.scan()
    near.folder.delete(found[name])
    near.folder.delete(found[name])
    assert near.folder.scan()[0] == {}
    with pytest.raises(MessageError):
        near.folder.read(found[name])


def test_deliver_from_several_threads(near: NearHandle) -> None:
    _created(near)
    names = [near.folder.new_name() for _ in range(20)]
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda n: near.folder.deliver(
                    message(hash(n) % 1000), name=n, flags=frozenset(), mtime=None, to_new=True
                ),
                names,
            )
        )
    assert set(near.folder.scan()[0]) == set(names)


def test_own_changes_keep_the_signature_trusted(near: NearHandle) -> None:
    _created(near)
    near.add(message(1))
    before = near.folder.signature()
    assert before is not None
    found, _ = near.folder.scan()
    assert near.folder.trusted_signature(before, changed=False, settled_before=True) == before
    name = near.folder.new_name()
    near.folder.deliver(message(2), name=name, flags=frozenset(), mtime=None, to_new=False)
    [first] = found.values()
    near.folder.set_flags(first, frozenset({SEEN}))
    near.folder.flush()
    after = near.folder.trusted_signature(before, changed=True, settled_before=True)
    assert after is not None
    assert after == near.folder.signature()


def test_someone_elses_change_is_not_trusted(near: NearHandle) -> None:
    _created(near)
    before = near.folder.signature()
    near.folder.scan()
    name = near.folder.new_name()
    near.folder.deliver(message(1), name=name, flags=frozenset(), mtime=None, to_new=False)
    near.add(message(2))  # a mail reader, meanwhile
    assert near.folder.trusted_signature(before, changed=True, settled_before=True) is None
    assert near.folder.trusted_signature(before, changed=False, settled_before=True) is None


def _sibling(near: NearHandle) -> NearFolder:
    """Another folder of the same store, for moves between folders."""
    if isinstance(near.folder, MaildirStore):
        other: NearFolder = MaildirStore(
            MaildirFolder(near.folder.path.parent / "other", fsync=False)
        )
    else:
        other = MemoryNear(exists=False, name="other")
    other.create()
    return other


def test_head_and_size_in_wire_form(near: NearHandle) -> None:
    _created(near)
    name = near.add(message(1, body="one\ntwo\n" * 50))
    msg = near.folder.scan()[0][name]
    head, size = near.folder.head_and_size(msg)
    data = near.folder.read(msg)
    assert size == len(data)
    assert data.startswith(head) and head.endswith(b"\r\n\r\n") and b"two" not in head


def test_move_into_another_folder_keeps_name_flags_and_keywords(near: NearHandle) -> None:
    _created(near)
    other = _sibling(near)
    other.prepare_flags(["$Other"])
    other.deliver(message(9), name=other.new_name(), flags=frozenset({"$Other"}), mtime=None,
                  to_new=False)  # fmt: skip
    name = near.add(message(1), frozenset({SEEN, "$Label"}))
    msg = near.folder.scan()[0][name]
    moved = near.folder.move_into(msg, other)
    assert (moved.name, moved.flags) == (name, frozenset({SEEN, "$Label"}))
    assert near.folder.locate(name) is None and name not in near.folder.scan()[0]
    found = other.scan()[0]
    assert found[name].flags == frozenset({SEEN, "$Label"})
    assert body_hash(other.read(found[name])) == body_hash(message(1))
    assert other.locate(name) is not None
    with pytest.raises(MessageError):  # gone from here now
        near.folder.move_into(msg, other)

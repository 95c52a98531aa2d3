"""The far-store contract (:class:`syncd.stores.base.FarFolder`), proved on every far
store: the memory store and the IMAP store on a real Dovecot."""

from __future__ import annotations

from contract_support import FarHandle, message

from syncd.message import body_hash, message_id, wire_size
from syncd.model import DELETED, FLAGGED, SEEN
from syncd.stores.base import Capability, Checkpoint, NewMessage, Refused


def _open(far: FarHandle, checkpoint: Checkpoint | None = None) -> None:
    far.folder.open(checkpoint, readonly=False)


def test_open_tells_the_epoch_and_the_watermark(far: FarHandle) -> None:
    view = far.folder.open(None, readonly=False)
    caps = far.folder.capabilities
    assert (view.uidvalidity is not None) == (Capability.UIDVALIDITY in caps)
    assert view.uidnext >= 1
    assert (view.highestmodseq is not None) == (Capability.MODSEQ in caps)
    key = far.put(message(1))
    assert far.folder.open(None, readonly=False).uidnext > key >= view.uidnext


def test_listing_shows_every_message_with_its_flags(far: FarHandle) -> None:
    a = far.put(message(1), [SEEN])
    b = far.put(message(2), [FLAGGED, "$label"])
    _open(far)
    listed = far.folder.list_all(sizes=True)
    assert {k: m.flags for k, m in listed.items()} == {
        a: frozenset({SEEN}),
        b: frozenset({FLAGGED, "$label"}),
    }
    assert listed[a].size == wire_size(message(1)) or listed[a].size == len(message(1))
    assert far.folder.listing(None, {}, full=True).keys() == {a, b}


def test_a_delta_listing_equals_a_full_one(far: FarHandle) -> None:
    keys = [far.put(message(i), [SEEN]) for i in range(3)]
    view = far.folder.open(None, readonly=False)
    known = far.folder.list_all(sizes=False)
    far.set_flags(keys[1], [SEEN, FLAGGED])
    new = far.put(message(9))
    view2 = far.folder.open(Checkpoint(view.uidvalidity, view.highestmodseq), readonly=False)
    delta = far.folder.listing(view.highestmodseq, known, full=False)
    full = far.folder.list_all(sizes=False)
    assert {k: m.flags for k, m in delta.items()} == {k: m.flags for k, m in full.items()}
    assert new in delta
    if view2.highestmodseq is not None and view.highestmodseq is not None:
        assert view2.highestmodseq > view.highestmodseq


def test_append_then_fetch_gives_the_same_bytes(far: FarHandle) -> None:
    view = far.folder.open(None, readonly=False)
    data = message(1, body="line one\nline two\n")
    [outcome] = far.folder.append(
        [NewMessage(data, frozenset({SEEN}), None)], uidvalidity=view.uidvalidity
    )
    assert not isinstance(outcome, Refused)
    found = far.folder.keys_from(view.uidnext)
    assert len(found) == 1
    key = found[0]
    if outcome is not None:
        assert outcome == key
    [body] = list(far.folder.fetch([key]))
    assert body.key == key
    assert body_hash(body.data) == body_hash(data)
    assert far.folder.metas([key])[key].flags == frozenset({SEEN})


def test_gone_keys_are_left_out(far: FarHandle) -> None:
    key = far.put(message(1))
    _open(far)
    far.folder.mark_deleted([key])
    if not far.folder.expunge([key]):
        return  # cannot expunge exactly: nothing more to see
    assert far.folder.metas([key, key + 5]) == {}
    assert list(far.folder.fetch([key])) == []
    assert far.folder.headers([key], ["Message-ID"]) == {}


def test_headers_carry_the_message_id(far: FarHandle) -> None:
    data = message(1)
    key = far.put(data)
    _open(far)
    got = far.folder.headers([key], ["Message-ID"])
    assert message_id(got[key]) == message_id(data)


def test_flag_changes_are_idempotent(far: FarHandle) -> None:
    key = far.put(message(1), [SEEN])
    _open(far)
    for _ in range(2):
        far.folder.add_flags([key], frozenset({FLAGGED}))
    assert far.folder.metas([key])[key].flags == frozenset({SEEN, FLAGGED})
    for _ in range(2):
        far.folder.remove_flags([key], frozenset({SEEN}))
    assert far.folder.metas([key])[key].flags == frozenset({FLAGGED})


def test_expunge_takes_exactly_the_given_keys(far: FarHandle) -> None:
    mine = far.put(message(1))
    theirs = far.put(message(2), [DELETED])  # another client's deleted mail
    _open(far)
    far.folder.mark_deleted([mine])
    expunged = far.folder.expunge([mine])
    assert expunged == (Capability.EXPUNGE in far.folder.capabilities)
    left = far.folder.list_all(sizes=False)
    assert theirs in left
    assert (mine in left) != expunged
    assert far.folder.expunge([mine]) == expunged  # idempotent


def test_move_to_a_new_folder(far: FarHandle) -> None:
    key = far.put(message(1), [SEEN])
    far.put(message(2))
    _open(far)
    mapping = far.folder.move_to([key], "Trash")
    left = far.folder.list_all(sizes=False)
    assert key not in left or DELETED in left[key].flags
    trash = far.other("Trash")
    trash.open(None, readonly=True)
    moved = trash.list_all(sizes=False)
    assert [m.flags - {DELETED} for m in moved.values()] == [frozenset({SEEN})]
    # the new key when the store tells it (UIDPLUS' COPYUID), else nothing
    if Capability.EXPUNGE in far.folder.capabilities:
        assert mapping == {key: next(iter(moved))}
    else:
        assert mapping == {}


def test_status_agrees_with_open(far: FarHandle) -> None:
    far.put(message(1))
    status = far.folder.status()
    if Capability.MODSEQ not in far.folder.capabilities:
        assert status is None
        return
    assert status is not None
    view = far.folder.open(None, readonly=True)
    assert (status.uidvalidity, status.uidnext, status.messages) == (
        view.uidvalidity,
        view.uidnext,
        1,
    )

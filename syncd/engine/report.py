"""What happened to one folder in one run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FolderReport:
    """What happened to one folder; printed by the CLI, kept in the state."""

    name: str
    downloaded: int = 0
    uploaded: int = 0
    flagged: int = 0
    deleted_far: int = 0
    deleted_near: int = 0
    skipped: int = 0  # local files that are not messages (junk in cur/, symlinks...)
    failed: int = 0  # messages that could not be copied or changed this time
    held: int = 0  # local messages the server refused before, not offered again yet
    dropped: bool = False  # the error dropped the connection (a protocol error)
    error: str | None = None
    problem: str | None = None  # the first message-level refusal, for `syncd status`
    planned: list[str] = field(default_factory=list)
    # The first sync of a folder another tool synced: what was paired and why not.
    adoption: list[str] = field(default_factory=list)

    def changed(self) -> bool:
        return bool(
            self.downloaded
            or self.uploaded
            or self.flagged
            or self.deleted_far
            or self.deleted_near
        )

    def summary(self) -> str:
        return (
            f"{self.downloaded} downloaded, {self.uploaded} uploaded, {self.flagged} flag changes, "
            f"{self.deleted_near} deleted here, {self.deleted_far} deleted on the server"
            + (f", {self.skipped} local files skipped" if self.skipped else "")
            + (f", {self.failed} failed" if self.failed else "")
            + (f", {self.held} held back (refused by the server)" if self.held else "")
        )

"""Adopting another sync tool's Maildir: readers for mbsync and offlineimap state,
a content identity that ignores the headers they add, and config importers.

Pure entry points (nothing is written, the server is not contacted):

- :func:`syncd.adopt.mbsync.read_mbsync_store` -> ``list[AdoptedFolder]``
- :func:`syncd.adopt.offlineimap.read_offlineimap_account` -> ``list[AdoptedFolder]``
- :func:`syncd.adopt.identity.adopted_identity` and friends
- :func:`syncd.adopt.mbsyncrc.import_mbsyncrc`,
  :func:`syncd.adopt.offlineimaprc.import_offlineimaprc` -> ``ImportResult``
"""

from syncd.adopt.common import AdoptedFolder, AdoptedPair, AdoptError, GonePair

__all__ = ["AdoptError", "AdoptedFolder", "AdoptedPair", "GonePair"]

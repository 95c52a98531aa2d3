"""``syncd status``: what each account is doing and how its last attempt went.

:mod:`~syncd.status.runtime` is the daemon's status file (written by the daemon,
read here); :mod:`~syncd.status.collect` puts it together with the accounts'
state databases; :mod:`~syncd.status.render` prints the text and one-line forms.
"""

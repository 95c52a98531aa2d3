"""The Maildir near store.

Modules, bottom up: ``names`` (what a file name may be), ``fsio`` (safe file
steps, the directory signature), ``keywords`` (the ``dovecot-keywords`` table) and
``folder`` (:class:`~syncd.stores.maildir.folder.MaildirFolder`).
"""

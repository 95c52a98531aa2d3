"""Account discovery for ``syncd init ADDRESS``: from an e-mail address to a probed
IMAP server and a new ``[accounts.NAME]`` table.

One reason per module: ``model`` (records), ``autoconfig`` (config-v1.1 XML),
``http`` (fetching a document), ``dns`` (SRV and MX), ``providers`` (built-in
profiles), ``sources`` (the order sources are asked in), ``probe`` (TLS +
CAPABILITY), ``tomlwrite`` (the config text).  The command itself is
``syncd.cli.init``; writing the file (validate as ``syncd check`` does, then
rename into place) is ``syncd.cli.configfile``.
"""

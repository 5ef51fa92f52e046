"""fxaug.integrations: bridges to other tools (FiftyOne).

Installed as the subpackage `fxaug.integrations`; each integration imports its tool lazily so
that fxaug works without it.
"""

"""Emulators of the 1C side of the hub's protocols and generators of the data they send.

Import the modules directly (`connectors.emulator.catalog`,
`connectors.emulator.commerceml_client`, ...). This package imports none of them, so one
module that fails to import does not break the others.
"""

"""tentorium_hub: the integration hub between branch 1C bases and the shop, app and CMS."""

__version__ = "0.1.0"

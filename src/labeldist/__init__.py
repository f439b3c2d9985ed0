"""labeldist: what a language model believes when it labels text with several labels at once."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("labeldist")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

"""spotify-etl's local tooling: the `spotify-etl` command line, bootstrap, the demo, and the
lake's answers as pandas DataFrames (`open_lake`, contract §11). Never packaged for Lambda.

`open_lake` and `Lake` are loaded on first use: `import spotify_etl` (and so every CLI command)
stays free of pandas, which only notebooks and scripts need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spotify_etl.notebook import Lake, LakeError, open_lake

__all__ = ["Lake", "LakeError", "open_lake"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from spotify_etl import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The dashboard (contract §10): named-query results drawn as one self-contained HTML page.

Pure Python on the Lambda side: Vega-Lite specs are plain dicts (`charts`), the page inlines the
vendored Vega builds (`page`, `vendor/`), and the queries run together (`collect`). `app.py`'s
`GET /dashboard` calls `respond`; `spotify-etl report --html` calls `write_report`.
"""

from chalicelib.dashboard.build import (
    DashboardNotReady,
    build_dashboard,
    parse_request,
    respond,
    write_report,
)

__all__ = ["DashboardNotReady", "build_dashboard", "parse_request", "respond", "write_report"]

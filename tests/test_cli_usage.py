"""The command line's contract: exit codes on bad usage, help on every command, output formats."""

from __future__ import annotations

import json

import pytest

from spotify_etl.cli import build_parser, main
from spotify_etl.report import render

COMMANDS = ("demo", "run", "query", "reprocess", "connect", "bootstrap", "doctor")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 3


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--datasets", "popularity"],
        ["run", "--at", "yesterday"],
        ["bootstrap"],
        ["nonsense"],
    ],
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2


def test_run_accepts_every_contract_dataset() -> None:
    args = build_parser().parse_args(
        ["run", "--datasets", "plays", "playlists", "top_items", "saved_tracks", "artists",
         "--users", "u1", "--at", "2026-03-01T06:00:00Z"]
    )  # fmt: skip
    assert args.datasets == ["plays", "playlists", "top_items", "saved_tracks", "artists"]
    assert args.at.isoformat() == "2026-03-01T06:00:00+00:00"


ROWS = [
    {"artist_id": "a1", "artist_name": 'Ünï "quoted", name', "plays": 3, "minutes": 9.5},
    {"artist_id": "a2", "artist_name": None, "plays": 1, "minutes": 0.0},
]
COLUMNS = ["artist_id", "artist_name", "plays", "minutes"]


def test_json_output_is_a_list_of_row_objects() -> None:
    assert json.loads(render(COLUMNS, ROWS, "json")) == ROWS


def test_csv_output_quotes_and_keeps_column_order() -> None:
    text = render(COLUMNS, ROWS, "csv")
    assert text.splitlines()[0] == "artist_id,artist_name,plays,minutes"
    assert text.splitlines()[1] == 'a1,"Ünï ""quoted"", name",3,9.5'


def test_table_output_aligns_columns_and_says_when_empty() -> None:
    lines = render(COLUMNS, ROWS, "table").splitlines()
    assert lines[0].split() == COLUMNS
    assert lines[2].startswith("a1 ")
    assert "(no rows)" in render(COLUMNS, [], "table")


def test_table_output_aligns_wide_characters() -> None:
    rows = [{"name": "坂本龍一", "plays": 2}, {"name": "Björk", "plays": 10}]
    lines = render(["name", "plays"], rows, "table").splitlines()
    # "坂本龍一" takes 8 terminal columns, so both plays columns start at the same column.
    assert lines[2] == "坂本龍一  2"
    assert lines[3] == "Björk     10"

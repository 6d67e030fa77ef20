"""schemathesis (PyPI) against a live server, from web.api's own OpenAPI document: every
operation with generated valid and invalid inputs, signed in, as the issue asks. Its checks:
no 500, a status the document lists, the documented content type and a body that conforms
to the documented schema. schemathesis runs as its own command (``st run``), as its users
run it, so its pytest plugin never mixes with this suite's trio tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import trio

import web

from .api_app import running
from .api_client import call, sign_in

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def _st() -> str:
    """The ``st`` command beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("st")
    found = str(beside) if beside.exists() else shutil.which("st")
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]' installs it)")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("plain", [False, True], ids=["json_api", "plain_json"])
async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    tmp_path: Path, plain: bool
) -> None:
    st = _st()
    # No rate limit in the way: schemathesis sends thousands of requests.
    unlimited = {"api": web.Limit(1_000_000, 60.0)}
    async with running(f"sqlite:///{tmp_path / 'api.db'}", plain=plain, scopes=unlimited) as r:
        if plain:
            signed = await call(
                r.port,
                "POST",
                "/api/session",
                {"username": "alice", "password": "alice-secret"},
                content_type="application/json",
            )
            token = signed.json["token"]
        else:
            token = await sign_in(r.port, "alice")
        done = await trio.run_process(
            [
                st,
                "run",
                f"http://127.0.0.1:{r.port}/api/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                CHECKS,
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "25",
                "--seed",
                "7",
                "--workers",
                "1",
                "--exclude-operation-id",
                "sign_out",  # it would end the session the rest uses (test_api_auth has it)
                "--no-color",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=tmp_path,
        )
    said = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, said

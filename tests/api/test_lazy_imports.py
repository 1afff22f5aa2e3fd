"""What a started gateway keeps resident: libraries of rarely used features load at first use.

Each check runs in a fresh interpreter (``sys.modules`` of the test process holds whatever
earlier tests imported): it imports what ``waitgate serve`` imports, starts the app, checks
that none of these libraries is loaded, then uses each feature and checks that it works.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LAZY = {
    "jinja2": "templates of the pages (the first page rendered)",
    "jsonschema": "form schemas (the first form parked or answered)",
    "yaml": "the OpenAPI document parsed (/api/v1/openapi.json, /api/v1/docs)",
    "xml.etree.ElementTree": "XML resume bodies",
    "smtplib": "email notifications",
    "gateway.integrations.relay": "`waitgate relay`",
}

SCRIPT = """
import asyncio, sys
from pathlib import Path

import gateway.cli  # noqa: F401 - what `waitgate serve` imports before the app
from gateway.app import create_app
from gateway.config import Secret, Settings

LAZY = {lazy!r}
settings = Settings(database_url="sqlite:///{folder}/w.db", public_url="http://127.0.0.1:1",
                    secret_keys=(Secret("k" * 32),), data_dir=Path("{folder}"))


async def main():
    import httpx

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        loaded = sorted(name for name in LAZY if name in sys.modules)
        assert not loaded, f"loaded at start: {{loaded}}"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:1") as c:
            home = await c.get("/")
            assert home.status_code == 200 and "<html" in home.text, home.text
            spec = await c.get("/api/v1/openapi.json")
            assert spec.status_code == 200 and spec.json()["openapi"].startswith("3."), spec.text
            docs = await c.get("/api/v1/docs")
            assert docs.status_code == 200 and "swagger" in docs.text.lower(), docs.text
            login = await c.get("/ui/login")
            assert login.status_code == 200 and "<form" in login.text, login.text


asyncio.run(main())

from gateway import form_schema, notify
from gateway.payloads import parse_body

schema = {{"type": "object", "properties": {{"when": {{"type": "string", "format": "date"}},
          "who": {{"type": "string", "format": "email"}}}}, "required": ["when"]}}
spec = form_schema.form_spec(schema, None, "")
assert spec.title == "Form", spec
assert form_schema.refusal(schema, {{"when": "2026-11-29", "who": "a@b.example"}}) is None
refused = form_schema.refusal(schema, {{"when": "soon", "who": "nobody"}})
assert refused is not None and len(refused.problems) == 2, refused
assert parse_body("application/xml", b'<a k="v"><b>1</b><b>2</b></a>') == {{
    "a": {{"@k": "v", "b": ["1", "2"]}}
}}
try:
    notify._send_mail("smtp://127.0.0.1:1", False, None, 1.0)
except OSError:
    pass  # nothing listens there: smtplib was loaded and tried
else:
    raise AssertionError("sent to a closed port")

from click.testing import CliRunner

out = CliRunner().invoke(gateway.cli.main, ["relay", "--engine", "celery", "--port", "1"],
                         env={{"WAITGATE_CALLBACK_SECRET": ""}})
assert "no callback secret" in out.output, out.output
missing = sorted(name for name in LAZY if name not in sys.modules)
assert not missing, f"not loaded by their features: {{missing}}"
"""


def test_rarely_used_libraries_load_at_first_use_and_then_work(tmp_path: Path) -> None:
    """jinja2, jsonschema, PyYAML, ElementTree, smtplib and the relay are not imported by a
    started gateway (a few MB resident together); each works once its feature is used."""
    script = SCRIPT.format(lazy=LAZY, folder=tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr

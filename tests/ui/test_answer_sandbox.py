"""Issue 11, finding 2, end to end in Chromium: an engine's HTML answer cannot drive the dashboard.

A key bound to another project, with only ``execution:write``, parks its own execution with
an HTML answer whose script reads the dashboard and stops someone else's execution. An admin
signed in to ``/ui`` opens that resume URL in the same browser. The script must not run.
"""

from __future__ import annotations

import subprocess
from typing import Any

import httpx

from tests.process import WAITGATE, GatewayProcess
from tests.ui.test_browser import api, gateway, page, parked

__all__ = ["gateway", "page"]  # fixtures of the browser tests, used here by name

TAKEOVER = """<!doctype html><title>Invoice</title><script>
document.title = "ran";
(async () => {
  const detail = await (await fetch("/ui/executions/VICTIM")).text();
  const csrf = detail.match(/name="csrf" value="([^"]+)"/)[1];
  await fetch("/ui/executions/VICTIM/stop", {method: "POST", body: new URLSearchParams({csrf})});
  document.title = "stopped";
})();
</script><p>Thanks!</p>"""


def project_writer(process: GatewayProcess) -> str:
    """A new key bound to project ``tenant-b`` that holds only ``execution:write``."""
    created = subprocess.run(
        [WAITGATE, "api-key", "create", "--scope", "execution:write", "--project", "tenant-b"],
        env=process.env,
        cwd=process.workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    return created.stdout.strip().splitlines()[-1]


async def sign_in(page: Any, process: GatewayProcess, key: str) -> None:
    await page.goto(process.url + "/ui")
    await page.fill("#api_key", key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/ui")


async def test_engine_html_answer_cannot_act_on_the_dashboard(
    gateway: tuple[GatewayProcess, str], page: Any
) -> None:
    process, admin_key = gateway
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    with api(gateway) as admin:
        victim = parked(admin, waitTill="2030-01-01T00:00:00Z", webhook={})
    html = TAKEOVER.replace("VICTIM", str(victim["id"]))
    with httpx.Client(
        base_url=process.url, headers={"X-N8N-API-KEY": project_writer(process)}
    ) as attacker:
        lure = parked(
            attacker,
            webhook={"responseHeaders": {"Content-Type": "text/html"}, "responseData": html},
        )
    assert "resumeUrl" in lure, lure
    await sign_in(page, process, admin_key)
    answer = await page.goto(lure["resumeUrl"])
    assert answer is not None
    assert answer.status == 200
    assert (await answer.all_headers())["content-security-policy"] == "sandbox"
    assert await page.inner_text("p") == "Thanks!"  # the answer is shown, as HTML
    assert await page.title() == "Invoice"  # its script never ran
    assert any("sandboxed" in text and "allow-scripts" in text for text in console), console
    with api(gateway) as admin:
        assert admin.get(f"/api/v1/executions/{victim['id']}").json()["status"] == "waiting"
    await page.goto(process.url + "/ui")
    assert page.url.endswith("/ui")  # the admin is still signed in, with their own session


async def test_confirmation_page_still_resumes_in_the_browser(
    gateway: tuple[GatewayProcess, str], page: Any
) -> None:
    with api(gateway) as client:
        wait = parked(client, webhook={"httpMethod": "POST", "responseData": "Confirmed, thanks"})
        shown = await page.goto(wait["resumeUrl"])
        assert shown is not None
        assert "sandbox allow-forms" in (await shown.all_headers())["content-security-policy"]
        await page.get_by_role("button", name="Confirm").click()
        await page.wait_for_selector("text=Done.")  # a page for a person, not the raw answer
        assert client.get(f"/api/v1/executions/{wait['id']}").json()["status"] == "running"

"""What a person sees: the Airflow UI lists the six DAGs after login; MLflow lists the
six experiments and the registered models with their champion alias.

Screenshots land in ``$MLOPS_SCREENSHOT_DIR`` (default ``reports/screenshots``).
"""

from __future__ import annotations

import re
import time

import pytest
from mlops_tools.pipelines import PIPELINES

pytestmark = pytest.mark.e2e

DAG_IDS = [p.dag_id for p in PIPELINES]
EXPERIMENTS = [p.experiment for p in PIPELINES]
MODELS = [p.registered_model for p in PIPELINES]


def test_airflow_login_shows_the_six_dags(stack, browser_context, screenshot_dir):
    from playwright.sync_api import expect

    page = browser_context.new_page()
    page.goto(f"{stack['airflow']}/", wait_until="domcontentloaded")
    # Not logged in: the FAB auth manager redirects to its login form.
    expect(page).to_have_url(re.compile(r"/auth/login"))
    login_page = page.url
    for attempt in (1, 2):
        page.locator("input[name=username]").fill(stack["user"])
        page.locator("input[name=password]").fill(stack["password"])
        with page.expect_navigation() as navigation:
            page.locator("input[type=submit], button[type=submit]").first.click()
        # FAB limits form logins to 5 per 40 s per client: wait out a 429 once, then retry.
        if navigation.value is None or navigation.value.status != 429 or attempt == 2:
            break
        time.sleep(41)
        page.goto(login_page, wait_until="domcontentloaded")
    status = navigation.value.status if navigation.value is not None else None
    if "/auth/login" in page.url or (status or 0) >= 400:
        # A refused login comes back to the form with a flash message.
        flash = " ".join(page.locator(".alert").all_text_contents()).replace("×", "").strip()
        pytest.fail(f"Airflow login as {stack['user']!r} failed (HTTP {status}): {flash or page.url}")
    page.goto(f"{stack['airflow']}/dags", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name=re.compile(r"\d+ Dags?"))).to_be_visible()
    for dag_id in DAG_IDS:
        expect(page.get_by_role("link", name=dag_id, exact=True).first).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "airflow-dags.png"), full_page=True)


def test_mlflow_lists_the_six_experiments(stack, browser_context, screenshot_dir):
    from playwright.sync_api import expect

    page = browser_context.new_page()
    page.goto(f"{stack['mlflow']}/#/experiments", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Experiments")).to_be_visible()
    for name in EXPERIMENTS:
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "mlflow-experiments.png"), full_page=True)


def test_mlflow_lists_the_registered_models_with_champions(stack, browser_context, screenshot_dir):
    from playwright.sync_api import expect

    page = browser_context.new_page()
    page.goto(f"{stack['mlflow']}/#/models", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Registered Models")).to_be_visible()
    expect(page.get_by_role("link", name=MODELS[0], exact=True).first).to_be_visible()
    page.keyboard.press("Escape")  # MLflow 3 greets with a "new Model Registry UI" dialog
    for name in MODELS:
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))
        expect(row).to_have_count(1)
        expect(row).to_contain_text("champion")
    page.screenshot(path=str(screenshot_dir / "mlflow-models.png"), full_page=True)

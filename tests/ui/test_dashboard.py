"""The dashboard in headless Chromium against a real gateway: Bifrost's workshop flow in pure UI
mode (provider, virtual key, budget, requests until the budget trips, restart), login, the API's
validation errors next to their fields, the live log tail, and a screenshot of every page."""

import re
import time

import pytest
from playwright.sync_api import expect

from conftest import Gateway, screenshot, unlabelled_controls

PAGES = ["overview", "providers", "virtual-keys", "teams", "budgets", "routing", "logs", "settings"]


@pytest.fixture
def gateway():
    gw = Gateway().start()
    yield gw
    gw.close()


def goto(page, gw, name):
    page.goto(f"{gw.url}/#/{name}")
    expect(page.locator("main h1")).to_be_visible()
    expect(page.locator("main .loading")).to_have_count(0)


def chat(gw, vk, text="hello"):
    return gw.call(
        "POST",
        "/v1/chat/completions",
        {"model": "openai/gpt-4o-mini", "max_tokens": 6, "messages": [{"role": "user", "content": text}]},
        {"authorization": f"Bearer {vk}"},
    )


def test_workshop_flow_survives_a_restart(page, gateway):
    gw = gateway
    # Providers -> Add provider, pointed at the mock, with its first key.
    goto(page, gw, "providers")
    expect(page.get_by_text("No provider yet")).to_be_visible()
    page.get_by_role("button", name="Add provider").click()
    dialog = page.locator("dialog")
    dialog.get_by_label("Provider", exact=True).fill("openai")
    dialog.get_by_label("Base URL").fill(gw.mock_url)
    dialog.get_by_label("First API key").fill("sk-workshop-upstream-key")
    dialog.get_by_role("button", name="Save").click()
    card = page.locator("section.provider[data-provider=openai]")
    expect(card).to_be_visible()
    # The key is shown redacted, never as typed.
    expect(card.locator("code")).to_have_text("sk-w****(24 chars)")
    assert "sk-workshop-upstream-key" not in page.content()
    card.get_by_role("button", name="Test keys").click()
    result = card.locator(".test-results table tbody tr").first
    expect(result).to_contain_text("ok")
    expect(result).to_contain_text(re.compile(r"\d+(\.\d)? ms"))

    # Virtual keys -> Create: the value is shown once.
    goto(page, gw, "virtual-keys")
    page.get_by_role("button", name="Create virtual key").click()
    dialog = page.locator("dialog")
    dialog.get_by_label("Name", exact=True).fill("workshop-vk-1")
    expect(dialog.get_by_label("Provider", exact=True)).to_have_value("openai")
    dialog.get_by_role("button", name="Create").click()
    secret = page.locator("code.secret")
    expect(secret).to_have_text(re.compile(r"^sk-bf-\S{20,}$"))
    vk = secret.inner_text()
    page.get_by_role("button", name="Done").click()
    row = page.locator("tr", has=page.locator("[data-vk]"))
    expect(row).to_contain_text("workshop-vk-1")
    expect(row).not_to_contain_text(vk)

    # Budgets & limits -> Create budget -> attach to the key -> Save -> active.
    goto(page, gw, "budgets")
    page.get_by_role("button", name="Create budget").click()
    dialog = page.locator("dialog")
    dialog.get_by_label("Name", exact=True).fill("workshop-vk-budget")
    dialog.get_by_label("Limit (USD)").fill("0.50")
    dialog.get_by_label("Resets every").fill("1h")
    dialog.get_by_label("Attach to").select_option(label="workshop-vk-1")
    dialog.get_by_role("button", name="Save").click()
    budget_row = page.locator("tr", has_text="workshop-vk-budget")
    expect(budget_row).to_contain_text("workshop-vk-1")
    expect(budget_row).to_contain_text("$0.50 per hour")
    expect(budget_row).to_contain_text("$0.00 of $0.50")

    # A price that makes each request cost $0.24 (12 prompt tokens at $0.01, 6 completion tokens
    # at $0.02), so the $0.50 budget admits two requests and refuses the third with 402.
    status, _ = gw.call(
        "POST",
        "/api/governance/pricing-overrides",
        {"provider": "openai", "model": "gpt-4o-mini", "input_cost_per_token": 0.01, "output_cost_per_token": 0.02},
    )
    assert status == 200
    statuses = []
    for i in range(10):
        status, body = chat(gw, vk, f"workshop request {i}")
        statuses.append(status)
        if status == 402:
            break
    assert statuses == [200, 200, 402], statuses

    # The spend shows in the usage bar.
    goto(page, gw, "virtual-keys")
    usage = page.locator("tr", has_text="workshop-vk-1").locator(".usage")
    expect(usage).to_contain_text("$0.48 of $0.50")
    expect(usage).to_have_class(re.compile(r"\bhigh\b"))
    screenshot(page, "virtual-keys")

    # The requests are in the logs page, the refused one included.
    goto(page, gw, "logs")
    rows = page.locator("table.logs tbody tr")
    for _ in range(50):
        if rows.count() >= 3 and "402" in rows.first.inner_text():
            break
        page.wait_for_timeout(200)
        page.reload()
        expect(page.locator("main h1")).to_be_visible()
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("402")
    expect(rows.nth(1)).to_contain_text("200")
    expect(rows.nth(1)).to_contain_text("workshop-vk-1")
    rows.nth(1).get_by_role("button", name=re.compile("Details")).click()
    detail = page.locator("dialog.log-detail")
    expect(detail).to_contain_text("workshop request")
    expect(detail).to_contain_text("$0.24")
    expect(detail).to_contain_text("12 in · 6 out")
    screenshot(page, "log-detail")
    detail.get_by_role("button", name="Close").click()

    # Restart the gateway, reload: provider, key, budget and its spend are all still there.
    gw.restart()
    goto(page, gw, "providers")
    expect(page.locator("section.provider[data-provider=openai] code")).to_have_text("sk-w****(24 chars)")
    goto(page, gw, "budgets")
    budget_row = page.locator("tr", has_text="workshop-vk-budget")
    expect(budget_row).to_contain_text("workshop-vk-1")
    expect(budget_row).to_contain_text("$0.48 of $0.50")
    status, _ = chat(gw, vk, "after the restart")
    assert status == 402, "the spent budget still refuses after a restart"


def test_validation_errors_show_next_to_their_field(page, gateway):
    gw = gateway
    assert gw.call("POST", "/api/providers", {"provider": "openai", "keys": [{"name": "k", "value": "sk-upstream-0000000000"}],
                                              "network_config": {"base_url": gw.mock_url}})[0] == 200
    assert gw.call("POST", "/api/governance/teams", {"name": "Research"})[0] == 200
    assert gw.call("POST", "/api/governance/customers", {"name": "Acme"})[0] == 200

    goto(page, gw, "routing")
    page.get_by_role("button", name="Create rule").click()
    dialog = page.locator("dialog")
    dialog.get_by_label("Name", exact=True).fill("broken")
    dialog.get_by_label("CEL expression").fill('model == "gpt-4o" &&')
    dialog.get_by_role("button", name="Create").click()
    cel_field = dialog.locator(".field", has=page.get_by_label("CEL expression"))
    expect(cel_field.locator(".field-error")).to_contain_text("does not parse")
    expect(dialog).to_be_visible()
    screenshot(page, "routing-validation-error")
    dialog.get_by_label("CEL expression").fill('model == "gpt-4o"')
    dialog.get_by_role("button", name="Create").click()
    expect(page.locator("dialog")).to_have_count(0)
    expect(page.locator("main table")).to_contain_text('model == "gpt-4o"')

    goto(page, gw, "virtual-keys")
    page.get_by_role("button", name="Create virtual key").click()
    dialog = page.locator("dialog")
    dialog.get_by_label("Name", exact=True).fill("both-owners")
    dialog.get_by_label("Team").select_option(label="Research")
    dialog.get_by_label("Customer").select_option(label="Acme")
    dialog.get_by_role("button", name="Create").click()
    team_field = dialog.locator(".field", has=page.get_by_label("Team"))
    expect(team_field.locator(".field-error")).to_contain_text("cannot be attached to both Team and Customer")
    assert gw.call("GET", "/api/governance/virtual-keys")[1]["total_count"] == 0


def test_live_tail_shows_new_requests(page, gateway):
    gw = gateway
    gw.call("POST", "/api/providers", {"provider": "openai", "keys": [{"name": "k", "value": "sk-upstream-0000000000"}],
                                       "network_config": {"base_url": gw.mock_url}})
    goto(page, gw, "logs")
    expect(page.get_by_text("No request has been logged yet.")).to_be_visible()
    page.get_by_role("button", name="Live tail").click()
    expect(page.get_by_role("button", name="Live: on")).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(300)
    status, _ = gw.call("POST", "/v1/chat/completions",
                        {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "tail me"}]})
    assert status == 200
    expect(page.locator("table.logs tbody tr.new")).to_have_count(1, timeout=10000)
    expect(page.locator("table.logs tbody tr.new")).to_contain_text("gpt-4o-mini")


def test_every_page_renders_labelled_and_is_screenshotted(page, gateway):
    gw = gateway
    gw.call("POST", "/api/providers", {"provider": "openai", "keys": [
        {"name": "primary", "value": "sk-primary-0123456789"},
        {"name": "from-env", "value": "env.ASBRU_UI_TEST_KEY", "weight": 0},
    ], "network_config": {"base_url": gw.mock_url}})
    _, team = gw.call("POST", "/api/governance/teams", {"name": "Platform", "budgets": [{"max_limit": 100, "reset_duration": "1M"}]})
    _, created = gw.call("POST", "/api/governance/virtual-keys", {
        "name": "checkout-service", "team_id": team["team"]["id"],
        "provider_configs": [{"provider": "openai", "weight": 1}],
        "budgets": [{"id": "checkout-daily", "max_limit": 5, "reset_duration": "1d"}],
        "rate_limit": {"request_max_limit": 600, "request_reset_duration": "1m"},
    })
    vk = created["virtual_key"]["value"]
    for i in range(6):
        chat(gw, vk, f"page request {i}")
    gw.call("POST", "/v1/chat/completions", {"model": "nope/unknown", "messages": []})
    gw.call("POST", "/api/governance/routing-rules", {"name": "free tier to mini", "cel_expression": 'headers["x-tier"] == "free"',
                                                      "targets": [{"provider": "openai", "model": "gpt-4o-mini", "weight": 1}]})
    time.sleep(0.8)  # the log writer's batch interval
    for name in PAGES:
        goto(page, gw, name)
        assert unlabelled_controls(page) == [], name
        screenshot(page, name)
    goto(page, gw, "overview")
    expect(page.locator(".chart canvas")).to_have_count(3)
    # Six requests with the key and one refused for its model.
    expect(page.locator(".kpi").first).to_contain_text("71 errors")
    # Env references are shown as references.
    goto(page, gw, "providers")
    codes = page.locator("section.provider code")
    expect(codes.nth(0)).to_have_text("sk-p****(21 chars)")
    expect(codes.nth(1)).to_have_text("env.ASBRU_UI_TEST_KEY")
    # Forms are labelled too.
    page.get_by_role("button", name="Add provider").click()
    assert unlabelled_controls(page) == []
    page.keyboard.press("Escape")
    expect(page.locator("dialog")).to_have_count(0)


def test_login_gates_everything_and_logout_works(page):
    gw = Gateway("governance:\n  auth_config: {is_enabled: true, admin_username: admin, admin_password: workshop-pass}\n").start()
    try:
        page.goto(f"{gw.url}/#/virtual-keys")
        expect(page.get_by_role("heading", name="Sign in to the dashboard")).to_be_visible()
        expect(page.locator("#shell")).to_be_hidden()
        screenshot(page, "login")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".login .form-error-slot")).to_contain_text("invalid username or password")
        page.get_by_label("Password").fill("workshop-pass")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("main h1")).to_have_text("Virtual keys")
        expect(page.get_by_text("No virtual key matches.")).to_be_visible()
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("heading", name="Sign in to the dashboard")).to_be_visible()
        # The session is gone on the server as well.
        page.reload()
        expect(page.get_by_role("heading", name="Sign in to the dashboard")).to_be_visible()
        status = page.evaluate("fetch('/api/governance/virtual-keys').then((r) => r.status)")
        assert status == 401
    finally:
        gw.close()


def test_edits_keep_what_the_form_does_not_show(page, gateway):
    gw = gateway
    gw.call("POST", "/api/providers", {"provider": "openai", "keys": [{"id": "k1", "name": "k1", "value": "sk-upstream-0000000000", "models": []}],
                                       "network_config": {"base_url": gw.mock_url}})
    _, created = gw.call("POST", "/api/governance/virtual-keys", {
        "name": "locked", "provider_configs": [{"provider": "openai", "weight": None, "allowed_models": [], "key_ids": ["k1"]}],
        "budgets": [{"id": "keep-me", "max_limit": 3, "reset_duration": "1d"}],
    })
    vk_id = created["virtual_key"]["id"]
    goto(page, gw, "virtual-keys")
    page.get_by_role("button", name="Edit locked").click()
    page.locator("dialog").get_by_role("button", name="Save").click()
    expect(page.locator("dialog")).to_have_count(0)
    stored = gw.call("GET", f"/api/governance/virtual-keys/{vk_id}")[1]["virtual_key"]
    pc = stored["provider_configs"][0]
    assert (pc["allowed_models"], pc["weight"], pc["key_ids"]) == ([], None, ["k1"]), pc
    assert stored["budgets"][0]["id"] == "keep-me"

    goto(page, gw, "providers")
    page.get_by_role("button", name="Edit key k1").click()
    page.locator("dialog").get_by_label("Weight").fill("3")
    page.locator("dialog").get_by_role("button", name="Save").click()
    expect(page.locator("dialog")).to_have_count(0)
    key = gw.call("GET", "/api/providers/openai/keys/k1")[1]
    key = key.get("key", key)
    assert (key["weight"], key["models"], key["value"]) == (3, [], "sk-u****(22 chars)"), key


def test_turning_auth_on_in_settings_asks_for_a_login(page, gateway):
    gw = gateway
    goto(page, gw, "settings")
    page.get_by_label("Require a login for the dashboard and the management API").check()
    page.get_by_role("button", name="Save authentication").click()
    form = page.locator("form", has=page.get_by_role("button", name="Save authentication"))
    username_field = form.locator(".field", has=page.get_by_label("Username"))
    expect(username_field.locator(".field-error")).to_contain_text("admin_username and admin_password are needed")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill("s3cret-pass")
    page.get_by_role("button", name="Save authentication").click()
    expect(page.get_by_role("heading", name="Sign in to the dashboard")).to_be_visible()
    login = page.locator("#login-root")
    login.get_by_label("Username").fill("ops")
    login.get_by_label("Password").fill("s3cret-pass")
    login.get_by_role("button", name="Sign in").click()
    expect(page.locator("main h1")).to_have_text("Settings")
    # Logged out from a page that refreshes itself: the login form is left alone.
    goto(page, gw, "virtual-keys")
    expect(page.get_by_text("No virtual key matches.")).to_be_visible()
    calls = []
    page.on("request", lambda r: calls.append((time.time(), r.url)) if "/api/" in r.url else None)
    t0 = time.time()
    page.get_by_role("button", name="Log out").click()
    login.get_by_label("Username").fill("typing")
    page.wait_for_timeout(5600)
    expect(login.get_by_label("Username")).to_have_value("typing")
    assert [u for _, u in calls if "/api/governance" in u] == [], [(round(t - t0, 2), u) for t, u in calls]


def test_pages_fit_a_1024_px_window(page, gateway):
    gw = gateway
    gw.call("POST", "/api/providers", {"provider": "openai", "keys": [{"name": "k", "value": "sk-upstream-0000000000"}],
                                       "network_config": {"base_url": gw.mock_url}})
    gw.call("POST", "/api/governance/virtual-keys", {
        "name": "a-rather-long-virtual-key-name-for-layout", "description": "used by the checkout service in production",
        "provider_configs": [{"provider": "openai", "weight": 1}],
        "budgets": [{"max_limit": 5, "reset_duration": "1d"}, {"max_limit": 50, "reset_duration": "1M"}],
        "rate_limit": {"request_max_limit": 600, "request_reset_duration": "1m"},
    })
    gw.call("POST", "/api/governance/routing-rules", {"name": "long rule", "cel_expression": 'headers["x-tier"] == "free" && model.startsWith("gpt-4o") && budget_used > 50.0',
                                                      "targets": [{"provider": "openai", "model": "gpt-4o-mini"}]})
    gw.call("POST", "/v1/chat/completions", {"model": "openai/gpt-4o-mini", "stream": True,
                                             "messages": [{"role": "user", "content": "a request for the logs page"}]})
    time.sleep(0.8)  # the log writer's batch interval
    page.set_viewport_size({"width": 1024, "height": 768})
    for name in PAGES:
        goto(page, gw, name)
        screenshot(page, f"1024-{name}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1024, f"{name} is {width} px wide at 1024"
        overflow = page.evaluate("[...document.querySelectorAll('.table-wrap')].map((t) => t.scrollWidth - t.clientWidth).filter((d) => d > 1)")
        assert overflow == [], f"{name} has a table that scrolls sideways at 1024 by {overflow} px"


def test_shared_budgets_and_limits_show_where_they_are_attached(page):
    gw = Gateway(
        "governance:\n"
        "  budgets: [{id: budget-dev, max_limit: 50, reset_duration: 1M}]\n"
        "  rate_limits: [{id: rl-standard, request_max_limit: 100, request_reset_duration: 1m}]\n"
        "  teams: [{id: t1, name: Platform, budget_id: budget-dev}]\n"
        "  virtual_keys: [{id: vk1, name: shared-user, value: sk-bf-shared-0000000001, budget_id: budget-dev, rate_limit_id: rl-standard}]\n"
    ).start()
    try:
        goto(page, gw, "budgets")
        row = page.locator("tr", has_text="budget-dev")
        expect(row).to_contain_text("shared")
        expect(row).to_contain_text("Platform")
        expect(row).to_contain_text("shared-user")
        expect(row).to_contain_text("$50.00 per month")
        rate = page.locator("tr", has_text="rl-standard")
        expect(rate).to_contain_text("shared-user")
        expect(rate).to_contain_text("100 requests per minute")
    finally:
        gw.close()
